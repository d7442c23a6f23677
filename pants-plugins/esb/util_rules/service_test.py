from __future__ import annotations

import pytest
from pants.engine.addresses import Address
from pants.engine.fs import EMPTY_DIGEST, Digest
from pants.engine.process import ProcessExecutionFailure
from pants.engine.target import InvalidFieldException
from pants.option.global_options import KeepSandboxes

from esb.toml_files import toml_table
from esb.util_rules.index_credentials import PackageIndex
from esb.util_rules.layers import BuiltLayer
from esb.util_rules.lock_testutil import UV_WHEEL
from esb.util_rules.platform import BasePlatform
from esb.util_rules.service import (
    ServiceProject,
    check_extras,
    check_local_packages,
    check_service_files,
    distribution_indexes,
    distribution_install_error,
    distribution_layer_groups,
    export_lock_argv,
    is_distribution_layer_failure,
    is_project_layer_failure,
    local_package_directories,
    merged_venv_layers,
    project_globs,
    source_path,
)
from esb_contract import flags
from esb_contract.commands import read_argv
from esb_contract.limits import MERGED_LAYER_BELOW_BYTES
from esb_contract.lock_export import LockedDistribution, LockExport


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
    assert "run `pants esb-lock services/api:api`" in message


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
    pyproject = toml_table(PYPROJECT_WITH_LOCAL_SOURCES)
    assert local_package_directories(pyproject, LOCK_WITH_LOCAL_PACKAGES) == (
        "libs/greeting",
        "libs/newlib",
        "tools",
        "vendor/a",
    )


def test_unreadable_files_name_no_local_package() -> None:
    assert local_package_directories(toml_table(b"[tool.uv"), b"this is [not a lock") == ()


def test_a_local_package_outside_the_sources_field_is_named_with_the_glob_to_add() -> None:
    with pytest.raises(InvalidFieldException) as exc:
        check_local_packages(
            Address("services/api", target_name="api"),
            ("services/api/uv.lock", "services/api/libs/greeting/pyproject.toml"),
            ("libs/greeting", "tools"),
        )
    message = str(exc.value)
    assert (
        "The uv project in services/api/ uses the local package(s) `services/api/tools`" in message
    )
    assert "greeting" not in message
    assert 'add "tools/**" to `sources`' in message


def distributions(*names: str) -> tuple[LockedDistribution, ...]:
    return tuple(
        LockedDistribution(name, f"{name}==1.0 \\\n    --hash=sha256:00\n") for name in names
    )


def test_each_distribution_gets_a_layer_of_its_own_in_name_order() -> None:
    assert distribution_layer_groups(distributions("six", "idna", "anyio"), 3) == tuple(
        (d,) for d in distributions("anyio", "idna", "six")
    )


def test_past_the_limit_the_last_distributions_share_the_last_layer() -> None:
    groups = distribution_layer_groups(distributions("e", "d", "c", "b", "a"), 3)
    assert groups == (distributions("a"), distributions("b"), distributions("c", "d", "e"))


def built_layers(*names: str) -> tuple[BuiltLayer, ...]:
    return tuple(BuiltLayer("distribution", EMPTY_DIGEST, name) for name in names)


def test_the_small_venv_layers_are_merged_above_the_others_in_their_order() -> None:
    large, small = MERGED_LAYER_BELOW_BYTES, MERGED_LAYER_BELOW_BYTES - 1
    layers = built_layers("anyio", "numpy", "six", "venv")

    kept, merged = merged_venv_layers(layers, (small, large, small, small))

    assert kept == built_layers("numpy")
    assert merged == built_layers("anyio", "six", "venv")


def test_a_lone_small_venv_layer_is_listed_as_it_is() -> None:
    layers = built_layers("numpy", "venv")
    assert merged_venv_layers(layers, (MERGED_LAYER_BELOW_BYTES, 10)) == (layers, ())


INTERNAL = "internal=https://pypi.internal.example/simple"


def private(name: str) -> LockedDistribution:
    return LockedDistribution(name, f"{name}==1.0 \\\n    --hash=sha256:00\n", INTERNAL)


def test_past_the_limit_a_private_distribution_keeps_a_layer_of_its_own() -> None:
    groups = distribution_layer_groups((*distributions("e", "d", "c", "a"), private("b")), 3)
    assert groups == (distributions("a"), (private("b"),), distributions("c", "d", "e"))


def test_distribution_indexes_are_those_other_than_pypi_once_each() -> None:
    export = LockExport((*distributions("six"), private("a"), private("b")), ())
    assert distribution_indexes(export) == (
        PackageIndex("internal", "https://pypi.internal.example/simple"),
    )


def test_a_failed_distribution_layer_names_the_lock_and_the_relock_command() -> None:
    project = ServiceProject(
        Address("services/api", target_name="api"),
        EMPTY_DIGEST,
        BasePlatform("3.11.2", "2.36", "amd64", "/usr/bin/python3.11"),
        Address("base", target_name="esb-service-base"),
    )
    failure = ProcessExecutionFailure(
        1,
        b"",
        b"greeting==1.0: the file the index served does not have "
        b"the sha256 the lock pins.\n\nFix: re-lock the service (`pants esb-lock <service "
        b"target>`) if the new file is the one you want",
        "Install greeting==1.0 into a layer",
        keep_sandboxes=KeepSandboxes.never,
    )

    message = distribution_install_error(project, failure)

    assert is_distribution_layer_failure(failure)
    assert message.startswith("Installing a distribution that services/api/uv.lock pins failed")
    assert "greeting==1.0: the file the index served" in message
    assert "(`pants esb-lock services/api:api`)" in message


def test_the_source_path_follows_the_layout() -> None:
    assert source_path(("src/esb_api/__init__.py", "README.md")) == "/app/src"
    assert source_path(("app/main.py", "app/__init__.py")) == "/app"
    assert source_path(()) == "/app"


def test_the_build_constraints_belong_to_the_project_and_reach_the_check() -> None:
    address = Address("services/x", target_name="x")
    assert "services/x/build-constraints.txt" in project_globs(address, ())
    project = ServiceProject(
        address,
        EMPTY_DIGEST,
        BasePlatform("3.11.2", "2.36", "amd64", "/usr/bin/python3.11"),
        Address("base", target_name="base"),
        is_package=True,
        build_constraints=Digest("0" * 64, 120),
    )
    argv = (*export_lock_argv(project), *UV_WHEEL.argv)
    assert argv.count("--build-constraints") == 1
    assert read_argv(argv).value(flags.BUILD_CONSTRAINTS) == "project/build-constraints.txt"
    assert project.builds_wheels
    assert not ServiceProject(
        address, EMPTY_DIGEST, project.platform, project.base_address
    ).builds_wheels


def test_a_failure_of_the_project_layer_is_told_apart_by_its_service() -> None:
    def failure(description: str) -> ProcessExecutionFailure:
        return ProcessExecutionFailure(
            1, b"", b"...", description, keep_sandboxes=KeepSandboxes.never
        )

    assert is_project_layer_failure(
        failure("Build the project layer of services/x:x"), "services/x:x"
    )
    assert not is_project_layer_failure(
        failure("Build the project layer of services/x:x"), "services/y:y"
    )
    assert not is_project_layer_failure(failure("Install six==1.17.0 into a layer"), "services/x:x")


PYPROJECT_WITH_EXTRAS = b"""\
[project]
name = "svc"
version = "1"

[project.optional-dependencies]
Main_App = ["gunicorn"]
test = ["pytest"]
"""


def test_extras_are_matched_as_pep_685_normalises_them_and_reach_the_export() -> None:
    address = Address("services/x", target_name="x")
    check_extras(address, ("main-app", "MAIN.APP"), toml_table(PYPROJECT_WITH_EXTRAS))
    project = ServiceProject(
        address,
        EMPTY_DIGEST,
        BasePlatform("3.11.2", "2.36", "amd64", "/usr/bin/python3.11"),
        Address("base", target_name="base"),
        extras=("main-app",),
    )
    argv = (*export_lock_argv(project), *UV_WHEEL.argv)
    assert read_argv(argv).value(flags.EXTRA) == "main-app"


def test_an_extra_the_project_does_not_define_names_the_field_and_the_groups() -> None:
    address = Address("services/x", target_name="x")
    with pytest.raises(InvalidFieldException) as error:
        check_extras(address, ("server", "test"), toml_table(PYPROJECT_WITH_EXTRAS))
    message = str(error.value)
    assert "The `extras` field of the target services/x:x names 'server'" in message
    assert "services/x/pyproject.toml does not define" in message
    assert "(it defines `Main_App`, `test`)" in message
    assert "`pants esb-lock services/x:x`" in message
