"""The project layer: the service's own project built by its pinned backend and installed into
/.venv; and the lock check of projects whose metadata only their build backend knows."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from imagetool.cli import main
from imagetool.venv.conftest import DEBIAN_12
from imagetool.venv.indexes import LockError, VenvBuildError
from imagetool.venv.lock_checks import check_lock
from imagetool.venv.project import (
    ProjectBuildError,
    ServiceProject,
    backend_environment,
    build_project_wheel,
    install_project_wheel,
)
from imagetool.venv.uv_process import Uv

EPOCH = 315532800
SETUPTOOLS = "setuptools==75.8.0"
SERVICE = ServiceProject("services/svc:svc", "services/svc")


def write_own_project(root: Path, requires: str = f'["{SETUPTOOLS}"]') -> Path:
    """A flat-layout service that is a package: a dynamic version, a console script, an entry
    point, package data; and a local package whose metadata only its `setup.py` knows."""
    project = root / "svc"
    (project / "app" / "data").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [project]
            name = "svc"
            dynamic = ["version"]
            requires-python = "==3.11.*"
            dependencies = ["greeting", "six==1.17.0"]

            [project.scripts]
            svc-hello = "app.main:main"

            [project.entry-points."svc.plugins"]
            hello = "app.main:main"

            [build-system]
            requires = {requires}
            build-backend = "setuptools.build_meta"

            [tool.setuptools.dynamic]
            version = {{attr = "app.__version__"}}

            [tool.setuptools.packages.find]
            include = ["app*"]

            [tool.setuptools.package-data]
            app = ["data/*.txt"]

            [tool.uv.sources]
            greeting = {{ path = "libs/greeting", editable = true }}
            """
        )
    )
    (project / "app" / "__init__.py").write_text('__version__ = "1.2.3"\n')
    (project / "app" / "main.py").write_text(
        "from importlib.resources import files\n\n\n"
        "def main():\n"
        '    print(files("app").joinpath("data/greeting.txt").read_text().strip())\n'
    )
    (project / "app" / "data" / "greeting.txt").write_text("hello from data\n")
    (project / "app" / "BUILD").write_text("python_sources()\n")
    package = project / "libs" / "greeting"
    (package / "greeting").mkdir(parents=True)
    (package / "setup.py").write_text(
        "from setuptools import setup\n\n"
        'setup(name="greeting", version="0.4", packages=["greeting"], '
        'install_requires=["idna==3.10"])\n'
    )
    (package / "pyproject.toml").write_text(
        f'[build-system]\nrequires = ["{SETUPTOOLS}"]\nbuild-backend = "setuptools.build_meta"\n'
    )
    (package / "greeting" / "__init__.py").write_text("")
    return project


@pytest.fixture(scope="module")
def own_project(uv: Uv, tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = write_own_project(tmp_path_factory.mktemp("own"))
    result = uv.run(["lock", "--python", sys.executable], cwd=project)
    assert result.returncode == 0, result.stderr
    return project


def copy_project(project: Path, destination: Path) -> Path:
    shutil.copytree(project, destination)
    return destination


def build_error(uv: Uv, project: Path, tmp_path: Path) -> str:
    """The message of the ProjectBuildError that building `project` raises."""
    with pytest.raises(ProjectBuildError) as error:
        build_project_wheel(uv, project, tmp_path / "build", SERVICE, source_date_epoch=EPOCH)
    return str(error.value)


def check(uv: Uv, project: Path, scratch: Path, *, with_backends: bool = True) -> None:
    # As export-lock runs it: without a cache, which would hold the backend from the lock.
    uv = Uv(uv.binary, None, uv.network_env)
    check_lock(
        uv,
        project,
        DEBIAN_12.version,
        display_dir="services/svc",
        relock_command="pants esb-lock services/svc:svc",
        build_environment=(
            (
                lambda output: backend_environment(
                    output,
                    uv,
                    project,
                    ["libs/greeting"],
                    scratch,
                    display_dir="services/svc",
                    relock_command="pants esb-lock services/svc:svc",
                )
            )
            if with_backends
            else None
        ),
    )


def test_a_lock_with_dynamic_metadata_is_up_to_date_with_the_pinned_backends(
    uv: Uv, own_project: Path, tmp_path: Path
) -> None:
    project = copy_project(own_project, tmp_path / "svc")
    # Offline alone, uv cannot build the metadata it compares: it calls the lock stale.
    with pytest.raises(LockError, match="the lock is stale"):
        check(uv, project, tmp_path, with_backends=False)
    check(uv, project, tmp_path)


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(
            ("pyproject.toml", '"six==1.17.0"]', '"six==1.17.0", "attrs==24.2.0"]'), id="own"
        ),
        pytest.param(
            ("libs/greeting/setup.py", '"idna==3.10"]', '"idna==3.10", "attrs==24.2.0"]'),
            id="local",
        ),
    ],
)
def test_a_dependency_added_without_relocking_is_still_stale(
    uv: Uv, own_project: Path, tmp_path: Path, edit: tuple[str, str, str]
) -> None:
    project = copy_project(own_project, tmp_path / "svc")
    path, old, new = edit
    content = (project / path).read_text()
    assert old in content
    (project / path).write_text(content.replace(old, new))
    with pytest.raises(LockError) as error:
        check(uv, project, tmp_path)
    message = str(error.value)
    assert "services/svc/uv.lock does not match services/svc/pyproject.toml" in message
    assert "Fix: run `pants esb-lock services/svc:svc`" in message
    assert "the lock is stale" in message


def test_an_unpinned_backend_is_named_when_the_check_needs_it(
    uv: Uv, own_project: Path, tmp_path: Path
) -> None:
    project = copy_project(own_project, tmp_path / "svc")
    setup = project / "libs" / "greeting" / "pyproject.toml"
    setup.write_text(setup.read_text().replace(SETUPTOOLS, "setuptools>=70"))
    with pytest.raises(VenvBuildError, match="libs/greeting/pyproject.toml does not pin") as error:
        check(uv, project, tmp_path)
    assert "pants esb-lock services/svc:svc" in str(error.value)


def test_the_own_project_builds_the_same_wheel_from_any_directory(
    uv: Uv, own_project: Path, tmp_path: Path
) -> None:
    digests = set()
    for checkout in ("first", "elsewhere/second"):
        project = copy_project(own_project, tmp_path / checkout / "svc")
        wheel = build_project_wheel(
            uv, project, tmp_path / checkout / "scratch", SERVICE, source_date_epoch=EPOCH
        )
        assert wheel.name == "svc-1.2.3-py3-none-any.whl"
        digests.add(hashlib.sha256(wheel.read_bytes()).hexdigest())
    assert len(digests) == 1


def test_the_installed_project_has_its_script_metadata_entry_points_and_data(
    uv: Uv, own_project: Path, tmp_path: Path
) -> None:
    wheel = build_project_wheel(
        uv, own_project, tmp_path / "build", SERVICE, source_date_epoch=EPOCH
    )
    venv = install_project_wheel(uv, wheel, tmp_path / "venv", DEBIAN_12, compile_bytecode=True)

    assert [(p.name, p.version) for p in venv.packages] == [("svc", "1.2.3")]
    script = (venv.root / "bin" / "svc-hello").read_text()
    assert script.startswith("#!/.venv/bin/python\n")
    site_packages = venv.root / "lib/python3.11/site-packages"
    # No dependency: greeting and six have layers of their own.
    assert sorted(p.name for p in site_packages.glob("*.dist-info")) == ["svc-1.2.3.dist-info"]
    assert (site_packages / "app/data/greeting.txt").read_text() == "hello from data\n"
    assert (site_packages / "app/__pycache__/main.cpython-311.pyc").is_file()
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import importlib.metadata as m, app.main;"
            "print(m.version('svc'));"
            "print([e.value for e in m.entry_points(group='svc.plugins')]);"
            "app.main.main()",
        ],
        env={"PYTHONPATH": str(site_packages)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert probe.stdout == "1.2.3\n['app.main:main']\nhello from data\n", probe.stderr


def test_an_unpinned_own_backend_is_refused_naming_the_service_and_the_fix(
    uv: Uv, tmp_path: Path
) -> None:
    project = write_own_project(tmp_path, requires='["setuptools>=70"]')
    message = build_error(uv, project, tmp_path)
    assert "services/svc:svc" in message and "services/svc/pyproject.toml" in message
    assert "'setuptools>=70'" in message
    assert "`pants esb-lock services/svc:svc`" in message
    assert "`pants package services/svc:svc`" in message


def test_a_project_that_does_not_build_is_reported_with_the_service_and_the_fix(
    uv: Uv, tmp_path: Path
) -> None:
    project = write_own_project(tmp_path)
    # Its setup.py reads a readme that is not among the files the build sees.
    (project / "setup.py").write_text(
        'from setuptools import setup\n\nsetup(long_description=open("README.md").read())\n'
    )
    message = build_error(uv, project, tmp_path)
    assert message.startswith(
        "The service services/svc:svc is a package (services/svc/pyproject.toml has a "
        "[build-system]), and its wheel could not be built."
    )
    assert "selected by the `sources` field of services/svc:svc" in message
    assert "FileNotFoundError: [Errno 2] No such file or directory: 'README.md'" in message
    assert "Traceback" not in message and "build_meta.py" not in message


def test_a_project_that_needs_a_compiler_is_refused_not_built_with_the_hosts(
    uv: Uv, tmp_path: Path
) -> None:
    project = write_own_project(tmp_path)
    (project / "app" / "speed.c").write_text("int answer(void) { return 42; }\n")
    (project / "setup.py").write_text(
        "from setuptools import Extension, setup\n\n"
        'setup(ext_modules=[Extension("app.speed", ["app/speed.c"])])\n'
    )
    message = build_error(uv, project, tmp_path)
    assert "a build that needs a C compiler is not supported" in message
    assert "command 'gcc' failed: No such file or directory" in message
    assert "services/svc:svc" in message


def test_the_project_layer_command(uv_wheel: Path, own_project: Path, tmp_path: Path) -> None:
    layer, descriptor = tmp_path / "layer.tar.gz", tmp_path / "layer.json"
    argv = [
        "project-layer",
        f"--python-version={DEBIAN_12.version}",
        f"--python-platform={DEBIAN_12.platform}",
        f"--interpreter={DEBIAN_12.interpreter}",
        f"--project={own_project}",
        f"--uv={uv_wheel}",
        "--service=services/svc:svc",
        "--display-dir=services/svc",
        f"--out-blob={layer}",
        f"--out-descriptor={descriptor}",
        "--mtime=0",
    ]
    assert main(argv) == 0
    first = json.loads(descriptor.read_text())["digest"]
    with tarfile.open(layer) as archive:
        names = set(archive.getnames())
        script = archive.getmember(".venv/bin/svc-hello")
    assert script.mode == 0o755
    # The service's files are the app layer's, which the assembly writes.
    assert not any(name.startswith("app/") for name in names)
    assert ".venv/lib/python3.11/site-packages/svc-1.2.3.dist-info/entry_points.txt" in names
    assert ".venv/lib/python3.11/site-packages/app/data/greeting.txt" in names
    assert not any("six" in name or "greeting-" in name for name in names)

    assert main(argv) == 0
    assert json.loads(descriptor.read_text())["digest"] == first
