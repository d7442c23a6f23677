from __future__ import annotations

import pytest

from esb_contract.uv_project import is_package, lock_local_directories, pyproject_path_sources

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


def test_local_directories_are_read_from_the_lock_and_the_sources() -> None:
    lock = {
        "package": [
            {"name": "svc", "source": {"editable": "."}},
            {"name": "shared", "source": {"editable": "libs/./shared"}},
            {"name": "vendored", "source": {"directory": "vendor/x"}},
            {"name": "alpha", "source": {"virtual": "services/alpha"}},
            {"name": "six", "source": {"registry": "https://pypi.org/simple"}},
        ]
    }
    assert lock_local_directories(lock) == ("libs/shared", "vendor/x")
    sources = {"a": {"path": "libs/a"}, "b": [{"path": "../b"}], "c": {"git": "x"}}
    pyproject = {"tool": {"uv": {"sources": sources}}}
    assert pyproject_path_sources(pyproject) == ("libs/a", "../b")
    assert pyproject_path_sources({"tool": "not a table"}) == ()
