from __future__ import annotations

import pytest

from esb_contract.uv_lock import (
    LocalSource,
    installed_local_directories,
    leaves_project,
    local_sources,
    lock_local_directories,
)


def package(name: str, source: dict, *dependencies: dict, **optional: list) -> dict:
    entry: dict = {"name": name, "version": "1.0", "source": source}
    if dependencies:
        entry["dependencies"] = list(dependencies)
    if optional:
        entry["optional-dependencies"] = optional
    return entry


PYPI = {"registry": "https://pypi.org/simple"}

# A workspace's lock as `uv lock` writes it (hashes left out: nothing here reads them).
WORKSPACE = {
    "version": 1,
    "package": [
        package("core", {"editable": "libs/core"}),
        package("idna", PYPI),
        package("shared", {"editable": "libs/shared"}, {"name": "core"}, {"name": "six"}),
        package("six", PYPI),
        package("svc-a", {"virtual": "services/a"}, {"name": "shared"}, {"name": "idna"}),
        package("svc-b", {"virtual": "services/b"}, {"name": "six"}),
    ],
}


def test_local_sources_are_every_package_from_a_path_in_lock_order() -> None:
    lock = {
        "package": [
            package("svc", {"editable": "."}),
            package("shared", {"editable": "libs/./shared"}),
            package("vendored", {"directory": "vendor/x"}),
            package("alpha", {"virtual": "services/alpha"}),
            package("wheel", {"path": "wheels/w-1.0-py3-none-any.whl"}),
            package("six", PYPI),
            "not a table",
        ]
    }
    assert [(s.package, s.kind, s.directory) for s in local_sources(lock)] == [
        ("svc", "editable", "."),
        ("shared", "editable", "libs/shared"),
        ("vendored", "directory", "vendor/x"),
        ("alpha", "virtual", "services/alpha"),
        ("wheel", "path", "wheels/w-1.0-py3-none-any.whl"),
    ]
    # Only project directories other than the project itself are built into wheels.
    assert lock_local_directories(lock) == ("libs/shared", "vendor/x")


@pytest.mark.parametrize("lock", [{}, {"package": "x"}, {"package": [{"source": "x"}]}])
def test_a_lock_of_the_wrong_shape_names_nothing(lock: dict) -> None:
    assert local_sources(lock) == ()
    assert installed_local_directories(lock, "x") == ()


@pytest.mark.parametrize(
    "path, outside",
    [
        ("libs/a", False),
        ("./libs/../libs/a", False),
        (".", False),
        ("..", True),
        ("../shared", True),
        ("libs/../../shared", True),
        ("/opt/shared", True),
        ("~/shared", True),
    ],
)
def test_a_path_leaves_the_project_when_it_resolves_outside(path: str, outside: bool) -> None:
    assert leaves_project(path) is outside
    assert LocalSource("x", "directory", path).is_built is (path not in (".",))


def test_installed_members_are_transitive_and_only_runtime() -> None:
    assert installed_local_directories(WORKSPACE, "svc-a") == ("libs/core", "libs/shared")
    assert installed_local_directories(WORKSPACE, "svc-b") == ()
    assert installed_local_directories(WORKSPACE, "SVC_A") == ("libs/core", "libs/shared")
    # A run of separators is one `-`, as uv normalises the name it writes in the lock.
    assert installed_local_directories(WORKSPACE, "svc__a") == ("libs/core", "libs/shared")


def test_an_extra_brings_its_optional_members() -> None:
    lock = {
        "package": [
            package("core", {"editable": "libs/core"}),
            package(
                "shared", {"editable": "libs/shared"}, {"name": "six"}, fast=[{"name": "core"}]
            ),
            package("six", PYPI),
            package("svc-a", {"virtual": "services/a"}, {"name": "shared"}),
            package(
                "svc-b",
                {"virtual": "services/b"},
                {"name": "six"},
                {"name": "shared", "extra": ["fast"]},
            ),
        ]
    }
    assert installed_local_directories(lock, "svc-b") == ("libs/core", "libs/shared")
    assert installed_local_directories(lock, "svc-a") == ("libs/shared",)
