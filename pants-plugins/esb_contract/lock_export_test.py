from __future__ import annotations

import json

import pytest

from esb_contract.image_spec import SpecError
from esb_contract.lock_export import LockedDistribution, LockExport

SIX = LockedDistribution("six", "six==1.17.0 \\\n    --hash=sha256:aa\n")
PRIVATE = LockedDistribution(
    "greeting", "greeting==1.0 ; sys_platform == 'linux'\n", "internal=https://i.example/simple"
)
SDIST = LockedDistribution(
    "docopt", "docopt==0.6.2 --hash=sha256:bb\n", sdist_url="https://f/d.tgz"
)


@pytest.mark.parametrize(
    "export", [LockExport((SIX, PRIVATE, SDIST), ("libs/shared",)), LockExport(())]
)
def test_what_the_tool_writes_the_backend_reads(export: LockExport) -> None:
    value = json.loads(json.dumps(export.to_json()))
    assert LockExport.from_json(value, where="lock-export.json") == export


def test_pinned_names_the_distribution_and_version_only() -> None:
    assert [d.pinned for d in (SIX, PRIVATE, SDIST)] == [
        "six==1.17.0",
        "greeting==1.0",
        "docopt==0.6.2",
    ]


def test_a_misspelt_key_is_refused() -> None:
    value = {"distributions": [{"name": "six", "requirment": "six==1"}], "local_directories": []}
    with pytest.raises(SpecError, match=r"distributions\[0\]: the key 'requirement' is required"):
        LockExport.from_json(value, where="lock-export.json")
