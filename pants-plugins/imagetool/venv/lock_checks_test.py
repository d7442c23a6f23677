"""Lock checks: stale, missing and malformed locks, path sources, the cutoff a lock records,
and messages for services."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pytest

from imagetool.venv.conftest import DEBIAN_12, MakeProject, write_unlocked_project
from imagetool.venv.indexes import LockError
from imagetool.venv.lock_checks import check_lock, check_path_sources
from imagetool.venv.locking import lock_project
from imagetool.venv.uv_process import Uv


def test_check_lock_names_the_service_and_the_pants_fix(uv: Uv, make_project: MakeProject) -> None:
    project = make_project("stale-named", ["six==1.17.0"])
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"six==1.17.0"', '"six==1.16.0"'))

    with pytest.raises(LockError) as error:
        check_lock(
            uv,
            project,
            DEBIAN_12.version,
            display_dir="services/api",
            relock_command="pants esb-lock services/api:api",
        )

    message = str(error.value)
    assert "services/api/uv.lock does not match services/api/pyproject.toml" in message
    assert "Fix: run `pants esb-lock services/api:api` and commit services/api/uv.lock" in message


@pytest.mark.parametrize(
    "content, problem",
    [
        pytest.param("version = \n", "is not valid TOML", id="not-toml"),
        pytest.param('name = "x"\n', "is not a uv lockfile", id="not-a-lock"),
        pytest.param(
            'version = 1\nrequires-python = "=>3"\n',
            "is not a version specifier",
            id="bad-specifier",
        ),
    ],
)
def test_check_lock_reports_a_malformed_lock(
    uv: Uv, make_project: MakeProject, content: str, problem: str
) -> None:
    project = make_project("malformed", ["six==1.17.0"])
    (project / "uv.lock").write_text(content)

    with pytest.raises(LockError, match=f"uv.lock is malformed: .*{problem}"):
        check_lock(uv, project, DEBIAN_12.version)


def test_check_lock_reports_a_lock_uv_rejects_as_stale_or_malformed(
    uv: Uv, make_project: MakeProject
) -> None:
    project = make_project("garbled", ["six==1.17.0"])
    lock = project / "uv.lock"
    lock.write_text(lock.read_text().replace('version = "1.17.0"', 'version = "not a version"'))

    with pytest.raises(LockError, match="the lock is stale, or uv cannot read it"):
        check_lock(uv, project, DEBIAN_12.version)


@pytest.mark.parametrize(
    "path, refused",
    [
        pytest.param("libs/helper", False, id="inside"),
        pytest.param("./libs/../libs/helper", False, id="inside-normalised"),
        pytest.param("../shared", True, id="parent"),
        pytest.param("libs/../../shared", True, id="escapes-through-subdir"),
        pytest.param("/opt/shared", True, id="absolute"),
    ],
)
def test_check_path_sources(tmp_path: Path, path: str, refused: bool) -> None:
    (tmp_path / "pyproject.toml").write_text(
        f'[project]\nname = "svc"\nversion = "0"\n\n[tool.uv.sources]\nhelper = {{ path = "{path}" }}\n'
    )
    if refused:
        with pytest.raises(
            LockError, match=r"helper = .* outside its directory|outside its directory"
        ):
            check_path_sources(tmp_path, "services/svc")
    else:
        check_path_sources(tmp_path, "services/svc")


def test_check_path_sources_reads_the_lock_too(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "svc"\nversion = "0"\n')
    (tmp_path / "uv.lock").write_text(
        'version = 1\n\n[[package]]\nname = "shared"\nversion = "1"\nsource = { editable = "../shared" }\n'
    )

    with pytest.raises(LockError, match=r"shared = '\.\./shared' \(in services/svc/uv.lock\)"):
        check_path_sources(tmp_path, "services/svc")


@pytest.mark.parametrize("checked_with", [None, "2026-01-01T00:00:00Z"], ids=["unset", "other"])
def test_a_lock_is_checked_as_of_the_time_it_records(
    uv: Uv, tmp_path: Path, checked_with: Optional[str]
) -> None:
    project = write_unlocked_project(tmp_path / "svc", ">=3.11", '"six==1.17.0"')
    lock_project(uv.resolving_as_of("2025-06-01T00:00:00Z"), project, DEBIAN_12.version)
    assert 'exclude-newer = "2025-06-01T00:00:00Z"' in (project / "uv.lock").read_text()

    # Whatever the checking process's own cutoff, the lock passes as of its own time...
    check_lock(uv.resolving_as_of(checked_with), project, DEBIAN_12.version)
    # ...and a real staleness still fails.
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("six==1.17.0", "six==1.16.0"))
    with pytest.raises(LockError, match="does not match"):
        check_lock(uv.resolving_as_of(checked_with), project, DEBIAN_12.version)


def test_check_lock_fails_on_a_stale_lock(uv: Uv, make_project: MakeProject) -> None:
    project = make_project("stale", ["six==1.17.0"])
    check_lock(uv, project, DEBIAN_12.version)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"six==1.17.0"', '"six==1.16.0"'))
    with pytest.raises(LockError, match="Fix: run `pants esb-lock <service target>`"):
        check_lock(uv, project, DEBIAN_12.version)


def test_check_lock_fails_without_a_lock(uv: Uv, tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "0"\n')
    with pytest.raises(LockError, match="has no uv.lock"):
        check_lock(uv, tmp_path, DEBIAN_12.version)


def test_check_lock_fails_when_the_lock_excludes_the_base_python(
    uv: Uv, demo_project: Path
) -> None:
    with pytest.raises(
        LockError, match=r"locked for Python `==3\.11\.\*`, which excludes .* 3\.12\.1"
    ):
        check_lock(uv, demo_project, "3.12.1")
