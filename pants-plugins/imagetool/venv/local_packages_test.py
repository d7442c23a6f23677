"""Path and editable sources inside a service: built into wheels by a pinned backend, installed
with the locked packages, and reproducible."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from imagetool.venv.builds import build_local_wheels
from imagetool.venv.conftest import DEBIAN_12
from imagetool.venv.export import export_requirements, split_local_requirements
from imagetool.venv.indexes import LockError, VenvBuildError
from imagetool.venv.install import InstalledPackage, build_venv
from imagetool.venv.lock_checks import check_lock
from imagetool.venv.uv_process import Uv

EPOCH = 315532800
FLIT_BACKEND = (
    '[build-system]\nrequires = ["flit_core==3.10.1"]\nbuild-backend = "flit_core.buildapi"\n'
)


def write_service(root: Path, build_system: str = FLIT_BACKEND) -> Path:
    """A service that depends on its own `libs/greeting` (editable) and on six from PyPI."""
    project = root / "svc"
    package = project / "libs" / "greeting"
    (package / "greeting").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            """\
            [project]
            name = "svc"
            version = "0.1.0"
            requires-python = "==3.11.*"
            dependencies = ["greeting", "six==1.17.0"]

            [tool.uv.sources]
            greeting = { path = "libs/greeting", editable = true }
            """
        )
    )
    (package / "pyproject.toml").write_text(
        '[project]\nname = "greeting"\nversion = "1.0"\ndescription = "Hello."\n'
        'dependencies = ["idna==3.10"]\n\n' + build_system
    )
    (package / "greeting" / "__init__.py").write_text('def hello():\n    return "hello"\n')
    return project


@pytest.fixture
def service(uv: Uv, tmp_path: Path) -> Path:
    project = write_service(tmp_path)
    result = uv.run(["lock", "--python", sys.executable], cwd=project)
    assert result.returncode == 0, result.stderr
    return project


def test_export_separates_the_local_package_from_the_hashed_requirements(
    uv: Uv, service: Path
) -> None:
    requirements = export_requirements(uv, service)
    assert requirements.local_directories == ("libs/greeting",)
    assert "./libs/greeting" not in requirements.hashed
    assert "idna==3.10" in requirements.hashed and "--hash=sha256:" in requirements.hashed


def test_the_local_package_installs_with_the_lock_and_leaves_no_host_trace(
    uv: Uv, service: Path, tmp_path: Path
) -> None:
    check_lock(uv, service, DEBIAN_12.version)
    requirements = export_requirements(uv, service)
    wheels = build_local_wheels(
        uv, service, requirements.local_directories, tmp_path / "wheels", source_date_epoch=EPOCH
    )
    venv = build_venv(uv, requirements.hashed, tmp_path / "venv", DEBIAN_12, local_wheels=wheels)

    assert InstalledPackage("greeting", "1.0") in venv.packages
    site_packages = venv.root / "lib/python3.11/site-packages"
    dist_info = site_packages / "greeting-1.0.dist-info"
    assert not (dist_info / "direct_url.json").exists()
    assert not (dist_info / "uv_cache.json").exists()
    recorded = {row.split(",")[0] for row in (dist_info / "RECORD").read_text().splitlines()}
    assert "greeting-1.0.dist-info/direct_url.json" not in recorded
    assert all((site_packages / path).exists() for path in recorded), recorded
    hello = subprocess.run(
        [sys.executable, "-c", "import greeting; print(greeting.hello())"],
        env={"PYTHONPATH": str(site_packages)},
        capture_output=True,
        text=True,
    )
    assert hello.stdout == "hello\n", hello.stderr


def test_the_same_sources_build_the_same_wheel(uv: Uv, service: Path, tmp_path: Path) -> None:
    digests = [
        hashlib.sha256(wheel.read_bytes()).hexdigest()
        for attempt in ("first", "second")
        for wheel in build_local_wheels(
            uv, service, ["libs/greeting"], tmp_path / attempt, source_date_epoch=EPOCH
        )
    ]
    assert digests[0] == digests[1]


@pytest.mark.parametrize(
    "build_system, message",
    [
        pytest.param(
            '[build-system]\nrequires = ["flit_core>=3.2"]\nbuild-backend = "flit_core.buildapi"\n',
            "does not pin its build requirements exactly: 'flit_core>=3.2'",
            id="unpinned",
        ),
        pytest.param("", "declares no [build-system] requires", id="no-build-system"),
    ],
)
def test_an_unpinned_build_backend_is_refused_naming_the_package(
    uv: Uv, tmp_path: Path, build_system: str, message: str
) -> None:
    project = write_service(tmp_path, build_system)
    with pytest.raises(VenvBuildError, match=re.escape(message)) as error:
        build_local_wheels(
            uv,
            project,
            ["libs/greeting"],
            tmp_path / "wheels",
            source_date_epoch=EPOCH,
            display_dir="services/svc",
        )
    assert "services/svc/libs/greeting/pyproject.toml" in str(error.value)
    assert 'requires = ["flit_core==3.10.1"]' in str(error.value)


def test_git_sources_are_refused_naming_the_package() -> None:
    exported = (
        "./libs/greeting\n"
        "tool @ git+https://example.com/tool.git@0123456789abcdef0123456789abcdef01234567\n"
        "six==1.17.0 \\\n    --hash=sha256:00\n"
    )
    with pytest.raises(LockError, match=r"packages from git.*\n  - tool @ git\+https://example"):
        split_local_requirements(exported)


def test_editable_lines_are_local_directories() -> None:
    requirements = split_local_requirements(
        "-e ./libs/a\n./libs/b/\nsix==1.17.0 \\\n    --hash=sha256:00\n"
    )
    assert requirements.local_directories == ("libs/a", "libs/b")
    assert requirements.hashed == "six==1.17.0 \\\n    --hash=sha256:00\n"
