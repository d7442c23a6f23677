from __future__ import annotations

import pytest

from esb_contract.uv_project import is_package, pyproject_path_sources

SETUPTOOLS = {"requires": ["setuptools==75.8.0"], "build-backend": "setuptools.build_meta"}


@pytest.mark.parametrize(
    "pyproject, expected",
    [
        ({"project": {"name": "x"}, "build-system": SETUPTOOLS}, True),
        ({"build-system": SETUPTOOLS, "tool": {"uv": {"package": False}}}, False),
        ({"project": {"name": "x"}}, False),
        ({"project": {"name": "x"}, "tool": {"uv": {"package": True}}}, True),
        ({"project": {"name": "x"}, "tool": "not a table"}, False),
    ],
)
def test_a_project_is_a_package_as_uv_decides(pyproject: dict, expected: bool) -> None:
    assert is_package(pyproject) is expected


def test_path_sources_are_read_with_their_dependency() -> None:
    sources = {"a": {"path": "libs/a"}, "b": [{"path": "../b"}], "c": {"git": "x"}}
    pyproject = {"tool": {"uv": {"sources": sources}}}
    assert pyproject_path_sources(pyproject) == (("a", "libs/a"), ("b", "../b"))
    assert pyproject_path_sources({"tool": "not a table"}) == ()
