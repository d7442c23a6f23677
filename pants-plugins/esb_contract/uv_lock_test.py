from __future__ import annotations

import pytest

from esb_contract.uv_lock import (
    LocalSource,
    installed_local_directories,
    leaves_project,
    local_sources,
    lock_local_directories,
    may_build_local_packages,
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


REGISTRY_ENTRY = b"""
[[package]]
name = "six"
version = "1.17.0"
source = { registry = "https://pypi.org/simple" }
"""


@pytest.mark.parametrize(
    "own_entry",
    [
        b'[[package]]\nname = "svc"\nversion = "0.1.0"\nsource = { virtual = "." }\n',
        b'[[package]]\nname = "svc"\nversion = "0.1.0"\nsource = { editable = "." }\n',
        b'[[package]]\nname = "svc"\nversion = "0.1.0"\nsource = { directory = "." }\n',
        b"",
    ],
)
def test_a_lock_whose_only_local_package_is_the_project_needs_no_parse(own_entry: bytes) -> None:
    assert not may_build_local_packages(b"version = 1\n" + own_entry + REGISTRY_ENTRY)


@pytest.mark.parametrize(
    "entry",
    [
        b'source = { editable = "libs/core" }',
        b'source = { directory = "../shared" }',
        b'source = { editable = ".." }',
        b'source = { editable = "./" }',
        b"source = { editable = '.' }",
        b'source = { editable="libs/core" }',
        b'source.editable = "libs/core"',
        # A key spelled with an escape, and a comment that looks like the project's own entry.
        b'source = { "\\u0065ditable" = "libs/core" }',
        b'source = { editable = "libs/core" } # editable = "."',
        b'source = { virtual = "." }\n# editable = "."\n[package.source]\neditable = "lib"',
    ],
)
def test_any_other_spelling_of_a_built_source_is_parsed(entry: bytes) -> None:
    lock = b'version = 1\n[[package]]\nname = "x"\nversion = "1"\n' + entry + b"\n"
    assert may_build_local_packages(lock + REGISTRY_ENTRY)
