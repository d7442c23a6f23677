from __future__ import annotations

import pytest

from esb_contract.source_date import parse_source_date_epoch


@pytest.mark.parametrize(
    "value, expected",
    [("0", 0), ("1700000000", 1_700_000_000), ("", None), ("-1", None), ("1.5", None), ("x", None)],
)
def test_parse_source_date_epoch(value: str, expected: int | None) -> None:
    assert parse_source_date_epoch(value) == expected
