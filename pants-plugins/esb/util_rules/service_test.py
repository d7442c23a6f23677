from __future__ import annotations

import pytest

from esb.util_rules.layers import LockedDistribution
from esb.util_rules.service import (
    check_local_packages,
    distribution_layer_groups,
    check_service_files,
    local_package_directories,
)
from pants.engine.addresses import Address
from pants.engine.target import InvalidFieldException


def test_uv_project_present() -> None:
    check_service_files(
        Address("services/api", target_name="api"),
        ("services/api/pyproject.toml", "services/api/uv.lock", "services/api/src/a.py"),
    )


def test_missing_lock_names_target_directory_and_fix() -> None:
    with pytest.raises(InvalidFieldException) as exc:
        check_service_files(
            Address("services/api", target_name="api"),
            ("services/api/pyproject.toml", "services/api/sub/uv.lock"),
        )
    message = str(exc.value)
    assert "target services/api:api selects no uv.lock in services/api/" in message
    assert "run `uv lock` there" in message


LOCK_WITH_LOCAL_PACKAGES = b"""
version = 1
requires-python = ">=3.11"

[[package]]
name = "greeting"
version = "1.0"
source = { editable = "libs/greeting" }

[[package]]
name = "shared"
version = "1.0"
source = { directory = "../shared" }

[[package]]
name = "svc"
version = "0.1.0"
source = { editable = "." }

[[package]]
name = "tools"
version = "2.0"
source = { directory = "./tools/" }

[[package]]
name = "six"
version = "1.17.0"
source = { registry = "https://pypi.org/simple" }
"""


PYPROJECT_WITH_LOCAL_SOURCES = b"""
[project]
name = "svc"
version = "0.1.0"

[tool.uv.sources]
greeting = { path = "libs/greeting", editable = true }
newlib = { path = "libs/newlib" }
outside = { path = "/opt/outside" }
platform-specific = [{ path = "vendor/a", marker = "sys_platform == 'linux'" }, { index = "x" }]
"""


def test_local_package_directories_are_those_inside_the_service() -> None:
    assert local_package_directories(PYPROJECT_WITH_LOCAL_SOURCES, LOCK_WITH_LOCAL_PACKAGES) == (
        "libs/greeting",
        "libs/newlib",
        "tools",
        "vendor/a",
    )


def test_unreadable_files_name_no_local_package() -> None:
    assert local_package_directories(b"[tool.uv", b"this is [not a lock") == ()


def test_a_local_package_outside_the_sources_field_is_named_with_the_glob_to_add() -> None:
    with pytest.raises(InvalidFieldException) as exc:
        check_local_packages(
            Address("services/api", target_name="api"),
            ("services/api/uv.lock", "services/api/libs/greeting/pyproject.toml"),
            ("libs/greeting", "tools"),
        )
    message = str(exc.value)
    assert "The uv project in services/api/ uses the local package(s) `services/api/tools`" in message
    assert "greeting" not in message
    assert 'add "tools/**" to `sources`' in message


def distributions(*names: str) -> tuple[LockedDistribution, ...]:
    return tuple(LockedDistribution(name, f"{name}==1.0 \\\n    --hash=sha256:00\n") for name in names)


def test_each_distribution_gets_a_layer_of_its_own_in_name_order() -> None:
    assert distribution_layer_groups(distributions("six", "idna", "anyio"), 3) == tuple(
        (d,) for d in distributions("anyio", "idna", "six")
    )


def test_past_the_limit_the_last_distributions_share_the_last_layer() -> None:
    groups = distribution_layer_groups(distributions("e", "d", "c", "b", "a"), 3)
    assert groups == (distributions("a"), distributions("b"), distributions("c", "d", "e"))
