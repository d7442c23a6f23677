"""Private indexes of a uv project: declarations, credentials, uv's access and hash errors, and
reading the project's TOML files."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from esb_contract.lock_export import LockedDistribution
from imagetool.venv.conftest import DEBIAN_12
from imagetool.venv.export import LockedRequirements, export_requirements
from imagetool.venv.indexes import (
    HashMismatchError,
    IndexAccessError,
    LockError,
    PackageIndex,
    ProjectFileError,
    check_lock_urls,
    credentials_netrc,
    distribution_indexes,
    index_env_name,
    project_indexes,
    read_toml,
)
from imagetool.venv.install import _install_error
from imagetool.venv.lock_checks import check_lock
from imagetool.venv.locking import lock_project
from imagetool.venv.uv_process import Uv

INTERNAL = PackageIndex("internal-pypi", "https://pypi.internal.example/simple")
PRIVATE_LOCK = {
    "version": 1,
    "package": [
        {"name": "six", "version": "1.17.0", "source": {"registry": "https://pypi.org/simple"}},
        {
            "name": "greeting",
            "version": "1.0.0",
            "source": {"registry": "https://pypi.internal.example/simple/"},
            "wheels": [{"url": "https://pypi.internal.example/files/greeting-1.0.0.whl"}],
        },
    ],
}


def write_project(directory: Path, index_url: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [project]
            name = "svc"
            version = "0.1.0"
            requires-python = ">=3.11"
            dependencies = ["six==1.17.0"]

            [[tool.uv.index]]
            name = "internal-pypi"
            url = "{index_url}"
            explicit = true
            """
        )
    )
    return directory


def check_lock_error(uv: Uv, project: Path) -> str:
    """The message of the lock check of `project` as the service `services/svc:svc`."""
    with pytest.raises(LockError) as error:
        check_lock(
            uv,
            project,
            DEBIAN_12.version,
            display_dir="services/svc",
            relock_command="pants esb-lock services/svc:svc",
        )
    return str(error.value)


def test_conflict_markers_name_the_file_the_line_and_the_fix(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\n<<<<<<< HEAD\nversion = "1"\n=======\n>>>>>>> b\n')

    with pytest.raises(ProjectFileError) as error:
        read_toml(pyproject, "services/api/pyproject.toml", "run `pants esb-lock services/api:api`")

    message = str(error.value)
    assert "services/api/pyproject.toml has unresolved merge-conflict markers" in message
    assert "`<<<<<<<` at line 2" in message
    assert "Fix: resolve the conflict" in message
    assert "then run `pants esb-lock services/api:api`" in message


def test_check_lock_reports_conflict_markers_in_pyproject_with_the_target_fix(
    uv: Uv, tmp_path: Path
) -> None:
    project = write_project(tmp_path / "svc", "https://pypi.internal.example/simple")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "<<<<<<< HEAD\n=======\n>>>>>>> main\n")

    message = check_lock_error(uv, project)
    assert "services/svc/pyproject.toml has unresolved merge-conflict markers" in message
    assert "at line 11" in message
    assert "pants esb-lock services/svc:svc" in message


def test_index_names_follow_uv_spelling_of_its_variables() -> None:
    assert index_env_name("internal-pypi.v2") == "INTERNAL_PYPI_V2"
    assert INTERNAL.username_variable == "UV_INDEX_INTERNAL_PYPI_USERNAME"
    assert INTERNAL.password_variable == "UV_INDEX_INTERNAL_PYPI_PASSWORD"
    assert PackageIndex.from_argument(INTERNAL.argument()) == INTERNAL


def test_project_indexes_refuse_credentials_in_a_url() -> None:
    index = {"name": "internal-pypi", "url": "https://bob:hunter2@h/simple"}
    pyproject = {"tool": {"uv": {"index": [index]}}}

    with pytest.raises(ProjectFileError) as error:
        project_indexes(pyproject, "services/x/pyproject.toml")

    message = str(error.value)
    assert "services/x/pyproject.toml: the URL of the index `internal-pypi`" in message
    assert "UV_INDEX_INTERNAL_PYPI_USERNAME and UV_INDEX_INTERNAL_PYPI_PASSWORD" in message
    assert "hunter2" not in message and "bob" not in message


def test_project_indexes_need_a_name() -> None:
    with pytest.raises(ProjectFileError, match="has no `name`"):
        project_indexes({"tool": {"uv": {"index": [{"url": "https://h/simple"}]}}}, "p")


def test_a_lock_with_credentials_in_a_url_is_refused_without_showing_them() -> None:
    lock = {
        "package": [
            {
                "name": "greeting",
                "source": {"registry": "https://h/simple"},
                "wheels": [{"url": "https://bob:hunter2@h/files/greeting.whl"}],
            }
        ]
    }

    with pytest.raises(ProjectFileError) as error:
        check_lock_urls(lock, "services/x/uv.lock", "run `pants esb-lock services/x:x`")

    assert "services/x/uv.lock records credentials in the URLs of greeting" in str(error.value)
    assert "hunter2" not in str(error.value)


def test_distribution_indexes_map_locked_packages_to_declared_indexes() -> None:
    found = distribution_indexes(PRIVATE_LOCK, [INTERNAL], "x/uv.lock", "x/pyproject.toml")

    assert found == {("greeting", "1.0.0"): INTERNAL}


def test_a_registry_the_project_does_not_declare_is_refused() -> None:
    with pytest.raises(ProjectFileError, match="does not declare as a \\[\\[tool.uv.index\\]\\]"):
        distribution_indexes(PRIVATE_LOCK, [], "x/uv.lock", "x/pyproject.toml")


def test_credentials_netrc_reads_the_files_of_the_given_indexes(tmp_path: Path) -> None:
    (tmp_path / "INTERNAL_PYPI.netrc").write_text("machine h login u password p\n")
    (tmp_path / "OTHER.netrc").write_text("machine o login x password y\n")

    assert credentials_netrc(tmp_path, [INTERNAL]) == "machine h login u password p\n"
    assert credentials_netrc(None, [INTERNAL]) == ""
    assert credentials_netrc(tmp_path, [PackageIndex("absent", "https://a/simple")]) == ""


UNAUTHORIZED = (
    "error: Failed to download `greeting==1.0.0`\n"
    "  cause: HTTP status client error (401 Unauthorized) for url "
    "(https://pypi.internal.example/files/greeting-1.0.0-py3-none-any.whl)"
)
HASH_MISMATCH = (
    "error: Failed to download `greeting==1.0.0`\n"
    "  cause: Hash mismatch for `greeting==1.0.0`\n\n"
    "         Expected:\n           sha256:b5c5\n\n         Computed:\n           sha256:a5c5"
)


def test_an_install_refused_by_the_index_names_it_and_the_variables() -> None:
    error = _install_error(UNAUTHORIZED, DEBIAN_12, [INTERNAL])

    assert isinstance(error, IndexAccessError)
    message = str(error)
    assert "`internal-pypi` (https://pypi.internal.example/simple)" in message
    assert "set UV_INDEX_INTERNAL_PYPI_USERNAME and UV_INDEX_INTERNAL_PYPI_PASSWORD" in message
    assert "netrc" in message


def test_a_hash_mismatch_names_the_distribution_and_the_fix() -> None:
    error = _install_error(HASH_MISMATCH, DEBIAN_12)

    assert isinstance(error, HashMismatchError)
    message = str(error)
    assert message.startswith("greeting==1.0.0: the file the index served does not have the sha256")
    assert "`pants esb-lock <service target>`" in message
    assert "check that the index serves the locked file" in message
    assert "sha256:a5c5" in message


def test_lock_project_refuses_an_index_url_with_credentials_before_running_uv(
    tmp_path: Path,
) -> None:
    project = write_project(tmp_path / "svc", "https://bob:hunter2@pypi.internal.example/simple")
    never_run = Uv(tmp_path / "no-uv-here")

    with pytest.raises(ProjectFileError, match="the URL of the index `internal-pypi`"):
        lock_project(never_run, project, DEBIAN_12.version, display_dir="services/svc")
    assert not (project / "uv.lock").exists()


def test_export_names_the_index_of_each_distribution_that_is_not_pypi(
    uv: Uv, tmp_path: Path
) -> None:
    # An explicit index serves only the packages pinned to it: six comes from PyPI, and the
    # index stays unreached.
    project = write_project(tmp_path / "svc", "https://pypi.internal.example/simple")
    assert uv.run(["lock", "--python", __import__("sys").executable], cwd=project).returncode == 0
    lock = project / "uv.lock"
    lock.write_text(
        lock.read_text().replace(
            'source = { registry = "https://pypi.org/simple" }',
            'source = { registry = "https://pypi.internal.example/simple" }',
        )
    )

    exported = export_requirements(uv, project, display_dir="services/svc")

    assert exported == LockedRequirements(
        (
            LockedDistribution(
                "six",
                exported.distributions[0].requirement,
                "internal-pypi=https://pypi.internal.example/simple",
            ),
        )
    )


def test_check_lock_reports_conflict_markers_in_the_lock(uv: Uv, tmp_path: Path) -> None:
    project = write_project(tmp_path / "svc", "https://pypi.internal.example/simple")
    (project / "uv.lock").write_text("version = 1\n<<<<<<< HEAD\n=======\n>>>>>>> x\n")

    message = check_lock_error(uv, project)
    assert "services/svc/uv.lock has unresolved merge-conflict markers (`<<<<<<<` at line 2)" in (
        message
    )
    assert "run `pants esb-lock services/svc:svc` and commit services/svc/uv.lock" in message
