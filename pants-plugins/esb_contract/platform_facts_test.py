from __future__ import annotations

import json

import pytest

from esb_contract.image_spec import SpecError
from esb_contract.platform_facts import PlatformFacts


@pytest.mark.parametrize(
    "facts",
    [
        PlatformFacts("amd64", "2.36", "3.11.2"),
        PlatformFacts("arm64", "2.36", "3.12.7", "/usr/local/bin/python3.12"),
        PlatformFacts("amd64", None, None),
    ],
)
def test_facts_round_trip_through_json(facts: PlatformFacts) -> None:
    value = json.loads(json.dumps(facts.to_json()))
    assert PlatformFacts.from_json(value, where="facts") == facts


def test_a_debian_lock_records_no_interpreter_and_a_typo_is_refused() -> None:
    assert "interpreter" not in PlatformFacts("amd64", "2.36", "3.11.2").to_json()
    with pytest.raises(SpecError, match="lock: unknown keys 'pyhton_version'"):
        PlatformFacts.from_json({"architecture": "amd64", "pyhton_version": "3.11.2"}, where="lock")
