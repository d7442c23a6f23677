from __future__ import annotations

import pytest

from imagetool.accounts import account_ids, needs_accounts


def test_account_ids_skip_lines_without_a_numeric_id() -> None:
    table = "root:x:0:0::/root:/bin/bash\n# a comment\n+nis::::\nesb:*:10001:10001::/:/x\n\n"
    assert account_ids(table) == {"root": 0, "esb": 10001}


@pytest.mark.parametrize(
    "user, expected",
    [
        pytest.param("", False, id="unset"),
        pytest.param("10001", False, id="uid"),
        pytest.param("10001:10001", False, id="uid-gid"),
        pytest.param("esb", True, id="name"),
        pytest.param("10001:esb", True, id="uid-group"),
        pytest.param("esb:10001", True, id="name-gid"),
    ],
)
def test_needs_accounts_only_for_names(user: str, expected: bool) -> None:
    assert needs_accounts(user) is expected
