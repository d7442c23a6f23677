"""Fixtures for tests that run the real uv against PyPI on small, pinned projects."""

from __future__ import annotations

import os
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Callable, Iterator, Sequence

import pytest

from imagetool.venv.target_python import TargetPython
from imagetool.venv.uv_binary import extract_uv_binary
from imagetool.venv.uv_process import Uv

# Fetched by the `uv-wheel` target of this directory's BUILD file.
UV_WHEEL = (
    Path(__file__).parent / "uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
)

DEBIAN_12 = TargetPython("3.11.2", "x86_64-manylinux_2_36", "/usr/bin/python3.11")
# The official python image's: another minor version than the image tool's CPython 3.11.
PYTHON_3_12 = TargetPython("3.12.7", "x86_64-manylinux_2_36", "/usr/local/bin/python3.12")
# The image-tool arguments that name DEBIAN_12 as the target.
TARGET_ARGS = (
    f"--python-version={DEBIAN_12.version}",
    f"--python-platform={DEBIAN_12.platform}",
    f"--interpreter={DEBIAN_12.interpreter}",
)

MakeProject = Callable[..., Path]


def write_unlocked_project(directory: Path, requires_python: str, dependencies: str) -> Path:
    """Writes a service project with the given `requires-python` and dependencies, unlocked."""
    directory.mkdir(parents=True)
    (directory / "pyproject.toml").write_text(
        f'[project]\nname = "svc"\nversion = "0.1.0"\nrequires-python = "{requires_python}"\n'
        f"dependencies = [{dependencies}]\n"
    )
    return directory


@pytest.fixture(scope="session", autouse=True)
def scratch_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The tests' scratch files, uv's included, in a directory of their own, as a build step's
    are in its sandbox, rather than left in the machine's /tmp."""
    scratch = tmp_path_factory.mktemp("scratch")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tempfile, "tempdir", str(scratch))
        yield scratch


@pytest.fixture(scope="session")
def uv_wheel() -> Path:
    if not UV_WHEEL.is_file():
        pytest.fail(
            f"{UV_WHEEL.name} is missing: run these tests with `pants test`, which fetches it."
        )
    return UV_WHEEL


@pytest.fixture(scope="session")
def uv(uv_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Uv:
    binary = extract_uv_binary(uv_wheel, tmp_path_factory.mktemp("uv-binary"))
    network_env = (
        {"SSL_CERT_FILE": os.environ["SSL_CERT_FILE"]} if "SSL_CERT_FILE" in os.environ else {}
    )
    return Uv(binary, tmp_path_factory.mktemp("uv-cache"), network_env)


@pytest.fixture(scope="session")
def make_project(uv: Uv, tmp_path_factory: pytest.TempPathFactory) -> MakeProject:
    """Writes a service project with the given dependencies and test extra, and locks it."""

    def make(name: str, dependencies: Sequence[str], test_extra: Sequence[str] = ()) -> Path:
        project = tmp_path_factory.mktemp("services") / name
        project.mkdir()
        (project / "pyproject.toml").write_text(
            textwrap.dedent(
                f"""\
                [project]
                name = "{name}"
                version = "0.1.0"
                requires-python = "==3.11.*"
                dependencies = {list(dependencies)!r}

                [project.optional-dependencies]
                test = {list(test_extra)!r}
                """
            ).replace("'", '"')
        )
        result = uv.run(["lock", "--python", sys.executable], cwd=project)
        assert result.returncode == 0, result.stderr
        return project

    return make


@pytest.fixture(scope="session")
def demo_project(make_project: MakeProject) -> Path:
    """A pure wheel (six), one with a compiled extension (markupsafe), one with a console script
    (idna), and a test extra that must stay out of the image (iniconfig)."""
    return make_project(
        "demo",
        ["six==1.17.0", "markupsafe==3.0.2", "idna==3.20"],
        test_extra=["iniconfig==2.0.0"],
    )
