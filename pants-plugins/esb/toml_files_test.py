from __future__ import annotations

import pytest

from esb.toml_files import TomlError, parse_toml, toml_table

# PEP 735 dependency groups mix strings and tables in one array (TOML 1.0), as real projects'
# pyproject.toml files do; Pants' own `toml` library fails on it.
DEPENDENCY_GROUPS = b"""\
[project]
name = "svc"

[dependency-groups]
test = ["pytest >= 8"]
dev = [
  "ruff",
  { include-group = "test" },
]
"""


def test_toml_1_0_files_that_real_projects_publish_are_read() -> None:
    table = parse_toml(DEPENDENCY_GROUPS)
    assert table["project"]["name"] == "svc"
    assert table["dependency-groups"]["dev"] == ["ruff", {"include-group": "test"}]


@pytest.mark.parametrize("content", [b"name = ", b"\xff\xfe"], ids=["not-toml", "not-utf-8"])
def test_a_file_that_does_not_parse_is_an_error_or_an_empty_table(content: bytes) -> None:
    with pytest.raises(TomlError):
        parse_toml(content)
    assert toml_table(content) == {}
