"""Locking: `lock_project` writes a lock that passes the check, or refuses a project whose
Python excludes the base; the `uv-lock` command."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagetool.cli import main
from imagetool.venv.conftest import DEBIAN_12, write_unlocked_project
from imagetool.venv.indexes import LockError
from imagetool.venv.lock_checks import check_lock
from imagetool.venv.locking import lock_project
from imagetool.venv.uv_process import Uv


def test_lock_project_writes_a_lock_that_passes_the_check(uv: Uv, tmp_path: Path) -> None:
    project = write_unlocked_project(tmp_path / "svc", ">=3.11", '"six==1.17.0"')

    lock_project(uv, project, DEBIAN_12.version, display_dir="services/svc")

    assert 'name = "six"' in (project / "uv.lock").read_text()
    check_lock(uv, project, DEBIAN_12.version)


def test_lock_project_refuses_a_project_whose_python_excludes_the_base(
    uv: Uv, tmp_path: Path
) -> None:
    project = write_unlocked_project(tmp_path / "svc", ">=3.11,<3.11.1", '"six==1.17.0"')

    with pytest.raises(
        LockError,
        match=r"pyproject.toml requires Python .* excludes the base image's Python 3\.11\.2",
    ):
        lock_project(uv, project, DEBIAN_12.version, display_dir="services/svc")


def test_an_unsatisfiable_project_is_refused_with_uvs_reason_and_the_fix(
    uv: Uv, tmp_path: Path
) -> None:
    project = write_unlocked_project(tmp_path / "svc", ">=3.11", '"no-such-distribution-esb>=1"')

    with pytest.raises(LockError) as error:
        lock_project(
            uv,
            project,
            DEBIAN_12.version,
            display_dir="services/svc",
            relock_command="pants esb-lock services/svc:svc",
        )

    message = str(error.value)
    assert message.startswith("uv could not lock services/svc:\n")
    assert "no-such-distribution-esb" in message
    # uv names the interpreter it found, at a path of the sandbox: not the user's business.
    assert "interpreter at" not in message
    assert message.endswith(
        "Fix: correct what uv names above in pyproject.toml (a requirement that no index "
        "satisfies, or two that conflict), then run `pants esb-lock services/svc:svc`."
    )
    assert not (project / "uv.lock").exists()


def test_a_poetry_project_is_told_where_uv_reads_a_project(uv: Uv, tmp_path: Path) -> None:
    project = tmp_path / "svc"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[tool.poetry]\nname = "svc"\nversion = "1.0"\n\n'
        '[tool.poetry.dependencies]\npython = "^3.11"\nsix = "1.17.0"\n'
    )

    with pytest.raises(LockError) as error:
        lock_project(
            uv,
            project,
            DEBIAN_12.version,
            display_dir="services/svc",
            relock_command="pants esb-lock services/svc:svc",
        )

    assert str(error.value) == (
        "services/svc/pyproject.toml has no [project] table: its metadata is in [tool.poetry], "
        "which uv does not read.\n\nFix: declare the project in a [project] table (PEP 621: "
        "`name`, `version`, `requires-python`, `dependencies`); Poetry 2 reads that table too, "
        "and the migrate-to-uv tool writes it from [tool.poetry]. Then run "
        "`pants esb-lock services/svc:svc`."
    )
    assert not (project / "uv.lock").exists()


def test_uv_lock_command(uv_wheel: Path, tmp_path: Path) -> None:
    project = write_unlocked_project(tmp_path / "svc", ">=3.11", '"six==1.17.0"')
    argv = ["uv-lock", f"--project={project}", f"--uv={uv_wheel}", "--python-version=3.11.2"]

    assert main(argv) == 0
    assert (project / "uv.lock").is_file()
