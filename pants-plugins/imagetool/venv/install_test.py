from __future__ import annotations

import base64
import csv
import glob
import hashlib
import marshal
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imagetool.tarlayer import write_layer
from imagetool.venv.bytecode import bytecode_incompatibility
from imagetool.venv.conftest import DEBIAN_12, PYTHON_3_12, MakeProject
from imagetool.venv.export import export_requirements
from imagetool.venv.indexes import VenvBuildError
from imagetool.venv.install import (
    BuiltVenv,
    InstalledPackage,
    NoSuitableWheelError,
    _install_error,
    build_venv,
    install_args,
    venv_layer_members,
)
from imagetool.venv.lock_checks import check_lock
from imagetool.venv.relocation import SOURCE_PATHS_PTH
from imagetool.venv.target_python import TargetPython
from imagetool.venv.uv_process import Uv

DEMO_PACKAGES = (
    InstalledPackage("idna", "3.20"),
    InstalledPackage("markupsafe", "3.0.2"),
    InstalledPackage("six", "1.17.0"),
)


def test_install_args() -> None:
    assert install_args(Path("/stage/venv"), DEBIAN_12, "https://pypi.org/simple") == [
        "pip",
        "install",
        "--requirements=-",
        "--no-deps",
        "--require-hashes",
        "--only-binary=:all:",
        "--python-platform=x86_64-manylinux_2_36",
        "--python-version=3.11.2",
        f"--python={sys.executable}",
        "--prefix=/stage/venv",
        "--default-index=https://pypi.org/simple",
        "--link-mode=copy",
        "--no-config",
    ]


@pytest.fixture(scope="module")
def wide_project(uv: Uv, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo project's dependencies, locked for every Python from 3.11 on (the demo project
    is locked for 3.11 only, so its lock has no wheels for 3.12)."""
    project = tmp_path_factory.mktemp("services") / "wide"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "wide"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        'dependencies = ["six==1.17.0", "markupsafe==3.0.2", "idna==3.20"]\n'
    )
    result = uv.run(["lock", "--python", sys.executable], cwd=project)
    assert result.returncode == 0, result.stderr
    return project


def test_venv_for_another_minor_version_ships_without_bytecode(
    uv: Uv, wide_project: Path, tmp_path: Path
) -> None:
    check_lock(uv, wide_project, PYTHON_3_12.version)
    venv = build_venv(
        uv, export_requirements(uv, wide_project).hashed, tmp_path / "venv", PYTHON_3_12
    )
    assert venv.bytecode_skipped == bytecode_incompatibility(PYTHON_3_12)
    assert not list(venv.root.rglob("__pycache__")) and not list(venv.root.rglob("*.pyc"))
    # Laid out for the target's Python, with its wheels (cp312), linked to its interpreter.
    assert sorted(path.name for path in (venv.root / "lib").iterdir()) == ["python3.12"]
    site_packages = venv.root / "lib/python3.12/site-packages"
    assert (site_packages / "markupsafe/_speedups.cpython-312-x86_64-linux-gnu.so").is_file()
    assert (site_packages / SOURCE_PATHS_PTH).read_text() == "/app/src\n"
    assert os.readlink(venv.root / "bin/python3.12") == "/usr/local/bin/python3.12"
    assert "version = 3.12.7\n" in (venv.root / "pyvenv.cfg").read_text()
    assert (venv.root / "bin/idna").read_bytes().startswith(b"#!/.venv/bin/python\n")
    assert venv.packages == DEMO_PACKAGES


def _cpython_3_12() -> tuple[str, str] | None:
    """A CPython 3.12 of this machine (pyenv's, else the system's) and its version, if any."""
    candidates = sorted(glob.glob("/root/.pyenv/versions/3.12.*/bin/python3.12"))
    candidates += ["/usr/local/bin/python3.12", "/usr/bin/python3.12"]
    for candidate in candidates:
        if os.path.exists(candidate):
            version = subprocess.run(
                [candidate, "-c", "import platform; print(platform.python_version())"],
                capture_output=True,
                text=True,
            ).stdout.strip()
            return os.path.realpath(candidate), version
    return None


def test_venv_for_another_minor_version_runs_there(
    uv: Uv, wide_project: Path, tmp_path: Path
) -> None:
    found = _cpython_3_12()
    if found is None:
        pytest.skip("no CPython 3.12 on this machine")
    assert found is not None  # `pytest.skip` raises, which the type checker cannot tell
    python312, version = found
    target = TargetPython(version, PYTHON_3_12.platform, python312)
    venv = build_venv(uv, export_requirements(uv, wide_project).hashed, tmp_path / "venv", target)
    result = subprocess.run(
        [
            str(venv.root / "bin/python"),
            "-c",
            "import six, idna, markupsafe._speedups; print('ok')",
        ],
        capture_output=True,
        text=True,
        env={"PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr


# What uv 0.13.9 prints for these failures.
_SDIST_ONLY_OUTPUT = """\
error: No solution found when resolving dependencies
  cause: Because docopt==0.6.2 has no usable wheels and you require docopt==0.6.2, we can conclude that your requirements are unsatisfiable.

hint: Wheels are required for `docopt` because building from source is disabled for all packages (i.e., with `--no-build`)"""
_WRONG_PLATFORM_OUTPUT = """\
error: No solution found when resolving dependencies
  cause: Because pywin32==311 has no wheels with a matching platform tag (e.g., `manylinux_2_36_x86_64`) and you require pywin32==311, we can conclude that your requirements are unsatisfiable.

hint: Wheels are available for `pywin32` (v311) on the following platforms: `win32`, `win_amd64`, `win_arm64`"""


@pytest.mark.parametrize(
    "uv_output, package, message",
    [
        pytest.param(_SDIST_ONLY_OUTPUT, "docopt", "only a source distribution", id="sdist-only"),
        pytest.param(
            _WRONG_PLATFORM_OUTPUT, "pywin32", "matching platform tag", id="wrong-platform"
        ),
    ],
)
def test_install_error_names_the_package(uv_output: str, package: str, message: str) -> None:
    error = _install_error(uv_output, DEBIAN_12)
    assert isinstance(error, NoSuitableWheelError)
    assert error.package == package
    assert message in str(error)
    assert uv_output in str(error)


def test_other_install_errors_carry_uv_output() -> None:
    error = _install_error("error: Failed to fetch: `https://pypi.org/simple/six/`", DEBIAN_12)
    assert type(error) is VenvBuildError
    assert "Failed to fetch" in str(error)


@pytest.fixture(scope="module")
def demo_venv(uv: Uv, demo_project: Path, tmp_path_factory: pytest.TempPathFactory) -> BuiltVenv:
    check_lock(uv, demo_project, DEBIAN_12.version)
    requirements = export_requirements(uv, demo_project).hashed
    return build_venv(uv, requirements, tmp_path_factory.mktemp("stage") / "venv", DEBIAN_12)


def test_venv_layout(demo_venv: BuiltVenv) -> None:
    root = demo_venv.root
    assert (root / "pyvenv.cfg").read_text() == (
        "home = /usr/bin\n"
        "include-system-site-packages = false\n"
        "version = 3.11.2\n"
        "executable = /usr/bin/python3.11\n"
    )
    for name in ("python", "python3", "python3.11"):
        assert os.readlink(root / "bin" / name) == "/usr/bin/python3.11"
    site_packages = root / "lib/python3.11/site-packages"
    assert (site_packages / SOURCE_PATHS_PTH).read_text() == "/app/src\n"
    assert (site_packages / "markupsafe/_speedups.cpython-311-x86_64-linux-gnu.so").is_file()
    assert sorted(path.name for path in root.iterdir()) == ["bin", "lib", "pyvenv.cfg"]
    assert demo_venv.packages == DEMO_PACKAGES
    assert demo_venv.uncompiled_modules == ()


def test_test_extra_stays_out(demo_venv: BuiltVenv) -> None:
    site_packages = demo_venv.root / "lib/python3.11/site-packages"
    assert not list(site_packages.glob("iniconfig*"))


def test_scripts_run_the_venv_python_and_match_their_record(demo_venv: BuiltVenv) -> None:
    script = demo_venv.root / "bin/idna"
    content = script.read_bytes()
    assert content.startswith(b"#!/.venv/bin/python\n")
    digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
    record = demo_venv.root / "lib/python3.11/site-packages/idna-3.20.dist-info/RECORD"
    rows = list(csv.reader(record.read_text().splitlines()))
    assert ["../../../bin/idna", f"sha256={digest}", str(len(content))] in rows


def test_bytecode_is_unchecked_hash_and_names_in_image_paths(demo_venv: BuiltVenv) -> None:
    pyc = demo_venv.root / "lib/python3.11/site-packages/__pycache__/six.cpython-311.pyc"
    data = pyc.read_bytes()
    flags = int.from_bytes(data[4:8], "little")
    assert flags == 0b01  # hash-based, not checked against the source
    assert marshal.loads(data[16:]).co_filename == "/.venv/lib/python3.11/site-packages/six.py"


def test_layer_is_identical_from_other_staging_paths_and_caches(
    uv: Uv, demo_project: Path, demo_venv: BuiltVenv, tmp_path: Path
) -> None:
    without_cache = Uv(uv.binary, None, uv.network_env)
    rebuilt = build_venv(
        without_cache,
        export_requirements(without_cache, demo_project).hashed,
        tmp_path / "elsewhere" / "staging",
        DEBIAN_12,
    )
    first = write_layer(venv_layer_members(demo_venv), tmp_path / "first.tar.gz", mtime=0)
    second = write_layer(venv_layer_members(rebuilt), tmp_path / "second.tar.gz", mtime=0)
    assert first == second
    assert (tmp_path / "first.tar.gz").read_bytes() == (tmp_path / "second.tar.gz").read_bytes()


def test_layer_golden_digest_without_bytecode(uv: Uv, demo_project: Path, tmp_path: Path) -> None:
    # Bytecode is left out because it depends on the host CPython's patch release.
    venv = build_venv(
        uv,
        export_requirements(uv, demo_project).hashed,
        tmp_path / "venv",
        DEBIAN_12,
        compile_bytecode=False,
    )
    assert not list(venv.root.rglob("__pycache__"))
    blob = write_layer(venv_layer_members(venv), tmp_path / "layer.tar.gz", mtime=1700000000)
    assert blob.diff_id == "sha256:03ac705a34ebfc2c4712e7a5ffeea6186ef3629e1a3ca590f60193bec946c347"


def test_venv_runs_on_a_real_cpython(
    uv: Uv, demo_project: Path, make_project: MakeProject, tmp_path: Path
) -> None:
    # The venv links to the interpreter behind this test's own, so it runs here.
    host = TargetPython(DEBIAN_12.version, DEBIAN_12.platform, os.path.realpath(sys.executable))
    source_dir = tmp_path / "src"
    (source_dir / "demo_service").mkdir(parents=True)
    (source_dir / "demo_service/__init__.py").write_text("GREETING = 'hello'\n")
    venv = build_venv(
        uv,
        export_requirements(uv, demo_project).hashed,
        tmp_path / "venv",
        host,
        source_paths=[str(source_dir)],
    )
    result = subprocess.run(
        [
            str(venv.root / "bin/python"),
            "-c",
            "import sys, six, idna, markupsafe, demo_service;"
            "from markupsafe import _speedups;"
            "print(sys.prefix, demo_service.GREETING, markupsafe.escape('<'))",
        ],
        capture_output=True,
        text=True,
        env={},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(venv.root), "hello", "&lt;"]


def test_extras_are_installed_when_asked(uv: Uv, demo_project: Path, tmp_path: Path) -> None:
    requirements = export_requirements(uv, demo_project, extras=["test"]).hashed
    venv = build_venv(uv, requirements, tmp_path / "venv", DEBIAN_12, compile_bytecode=False)
    assert InstalledPackage("iniconfig", "2.0.0") in venv.packages


def test_a_service_without_dependencies_gets_a_venv(
    uv: Uv, make_project: MakeProject, tmp_path: Path
) -> None:
    project = make_project("no-dependencies", [])
    venv = build_venv(uv, export_requirements(uv, project).hashed, tmp_path / "venv", DEBIAN_12)
    assert venv.packages == ()
    assert (venv.root / "lib/python3.11/site-packages" / SOURCE_PATHS_PTH).is_file()
    assert os.readlink(venv.root / "bin/python") == "/usr/bin/python3.11"


def test_installing_an_sdist_as_a_wheel_fails_naming_it_and_the_pants_fix(
    uv: Uv, make_project: MakeProject, tmp_path: Path
) -> None:
    # The venv installs wheels only: an sdist-only distribution is built first (builds.py).
    project = make_project("sdist-only", ["docopt==0.6.2", "six==1.17.0"])
    with pytest.raises(
        NoSuitableWheelError, match="docopt 0.6.2 has no usable wheel on the index"
    ) as error:
        build_venv(uv, export_requirements(uv, project).hashed, tmp_path / "venv", DEBIAN_12)
    assert error.value.package == "docopt"
    assert "`pants esb-lock <service target>`" in str(error.value)
    assert "uv lock" not in str(error.value).split("uv said:")[0]


def test_dependency_without_a_wheel_for_the_platform_fails_naming_it(
    uv: Uv, make_project: MakeProject, tmp_path: Path
) -> None:
    project = make_project("windows-only", ["pywin32==311"])
    with pytest.raises(NoSuitableWheelError, match="pywin32 311 has no wheel for") as error:
        build_venv(uv, export_requirements(uv, project).hashed, tmp_path / "venv", DEBIAN_12)
    assert error.value.package == "pywin32"
