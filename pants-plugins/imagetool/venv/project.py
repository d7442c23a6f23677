"""The service's own project, when it is a package, and the builds the lock check needs.

A service whose `pyproject.toml` has a `[build-system]` (and does not opt out with `[tool.uv]
package = false`, as uv does) is built into a wheel by its pinned build backend, with
`SOURCE_DATE_EPOCH` fixed, and installed without dependencies (each has a layer of its own):
its console scripts land in `/.venv/bin` with `#!/.venv/bin/python`, and its metadata, entry
points and package data in site-packages. Its files go under `/app` either way, in the app
layer (`imagetool.app_layer`).

The lock check needs the build backends too when uv must build metadata to compare the lock
with the project (a `setup.py`, a dynamic version or dependencies): `backend_environment`
installs the pinned build requirements into an environment of their own, with which the check
runs again, still offline for everything else.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

from esb_contract.image_spec import APP_PATH
from esb_contract.uv_project import RELOCK_PLACEHOLDER, is_package
from imagetool.venv.builds import build_wheel, is_exact_pin
from imagetool.venv.indexes import PYPI_INDEX_URL, VenvBuildError, read_toml
from imagetool.venv.install import BuiltVenv, install_distributions
from imagetool.venv.target_python import TargetPython
from imagetool.venv.uv_process import Uv


class ProjectBuildError(VenvBuildError):
    """The service's own project cannot be built into a wheel."""


def build_requirements(pyproject: Mapping[str, object]) -> list[str]:
    build_system = pyproject.get("build-system", {})
    requires = build_system.get("requires") if isinstance(build_system, dict) else None
    return [str(r) for r in requires] if isinstance(requires, list) else []


def without_tracebacks(output: str) -> str:
    """`output` (uv's) with each Python traceback of the build backend reduced to its last line, the
    exception (e.g. `FileNotFoundError: ... 'README.md'`): the frames are the backend's
    internals, and the exception says what the build lacked."""
    kept, in_traceback = [], False
    for line in output.strip().splitlines():
        if line.strip() == "Traceback (most recent call last):":
            in_traceback = True
        elif in_traceback and line[:1].isspace():
            continue
        else:
            in_traceback = False
            kept.append(line)
    return "\n".join(kept)


@dataclass(frozen=True)
class ServiceProject:
    """How messages name the service: its target and its directory in the repository."""

    target: str
    display_dir: str

    @property
    def pyproject(self) -> str:
        return f"{self.display_dir}/pyproject.toml"

    def fix(self, problem_fix: str) -> str:
        return (
            f"Fix: {problem_fix}; or, to ship the service's files under {APP_PATH} only, remove "
            f"[build-system] from {self.pyproject} (or set `[tool.uv] package = false`). Then run "
            f"`pants package {self.target}`."
        )


def build_project_wheel(
    uv: Uv,
    project_dir: Path,
    scratch: Path,
    service: ServiceProject,
    *,
    source_date_epoch: int,
    build_constraints: Optional[Path] = None,
    index_url: str = PYPI_INDEX_URL,
) -> Path:
    """The wheel of the service's own project, built from a copy of `project_dir` (backends
    write `build/` and `*.egg-info` beside the sources), by its pinned backend."""
    pyproject = read_toml(
        project_dir / "pyproject.toml", service.pyproject, f"run `pants package {service.target}`"
    )
    if build_constraints is None:
        requires = build_requirements(pyproject)
        unpinned = [r for r in requires if not is_exact_pin(r)]
        if not requires or unpinned:
            problem = (
                f"does not pin its build requirements exactly: {', '.join(map(repr, unpinned))}"
                if unpinned
                else "declares no [build-system] requires"
            )
            raise ProjectBuildError(
                f"The service {service.target} is a package, but {service.pyproject} {problem}: "
                "an unpinned build backend could build another wheel tomorrow from the same "
                "sources.\n\n"
                + service.fix(
                    "pin each [build-system] requirement with `==` (e.g. "
                    '`requires = ["setuptools==75.8.0"]`), or run `pants esb-lock '
                    f"{service.target}` to pin them in build-constraints.txt"
                )
            )
    source = scratch / "source"
    shutil.copytree(project_dir, source, symlinks=True)
    try:
        return build_wheel(
            uv,
            source,
            scratch / "wheel",
            source_date_epoch=source_date_epoch,
            build_constraints=build_constraints,
            display=f"the service {service.target} ({service.pyproject})",
            index_url=index_url,
        )
    except VenvBuildError as e:
        raise ProjectBuildError(
            f"The service {service.target} is a package ({service.pyproject} has a "
            f"[build-system]), and its wheel could not be built.\n\n"
            + service.fix(
                "make the project build: the files its build reads (a `readme`, a license "
                f"file, `setup.py`, the package's modules and data) must be selected by the "
                f"`sources` field of {service.target}, and a build that needs a C compiler is "
                "not supported"
            )
            + "\n\n"
            + without_tracebacks(str(e)).replace(
                RELOCK_PLACEHOLDER, f"`pants esb-lock {service.target}`"
            )
        ) from None


def install_project_wheel(
    uv: Uv, wheel: Path, prefix: Path, target: TargetPython, *, compile_bytecode: bool
) -> BuiltVenv:
    """Install the project's wheel alone (its dependencies have layers of their own) as files of
    `/.venv`: scripts, metadata, entry points and package data."""
    return install_distributions(
        uv, "", prefix, target, local_wheels=[wheel], compile_bytecode=compile_bytecode
    )


def local_build_requirements(
    project_dir: Path, directories: Sequence[str], display_dir: str, relock_command: str
) -> list[str]:
    """The exact build requirements of the project (when it is a package) and of its local
    packages in `directories`, deduplicated; a requirement that is not pinned exactly is
    refused, as for their builds."""
    requirements: dict[str, None] = {}
    fix = "run `pants package` again after fixing the file"
    sources = [(project_dir / "pyproject.toml", f"{display_dir}/pyproject.toml", True)]
    sources += [
        (project_dir / d / "pyproject.toml", f"{display_dir}/{d}/pyproject.toml", False)
        for d in directories
    ]
    for pyproject_path, shown, is_root in sources:
        pyproject = read_toml(pyproject_path, shown, fix) if pyproject_path.is_file() else {}
        if is_root and not is_package(pyproject):
            continue
        requires = build_requirements(pyproject)
        unpinned = [r for r in requires if not is_exact_pin(r)]
        if not requires or unpinned:
            raise VenvBuildError(
                f"{shown} does not pin its build requirements exactly "
                f"({', '.join(map(repr, unpinned)) or 'no [build-system] requires'}): the lock "
                "check must build its metadata with the backend its build uses.\n\nFix: pin "
                'each [build-system] requirement with `==` (e.g. `requires = ["setuptools=='
                f'75.8.0"]`), or run `{relock_command}` to pin them in build-constraints.txt.'
            )
        requirements.update(dict.fromkeys(requires))
    return list(requirements)


# What uv says when the offline check had to build a package's metadata and could not fetch
# its build backend.
_NEEDS_BACKEND = "Failed to resolve requirements from `build-system.requires`"


def backend_environment(
    uv_output: str,
    uv: Uv,
    project_dir: Path,
    local_directories: Sequence[str],
    scratch: Path,
    *,
    display_dir: str,
    relock_command: str,
    build_constraints: Optional[Path] = None,
    index_url: str = PYPI_INDEX_URL,
) -> Optional[Path]:
    """An interpreter whose environment holds the pinned build requirements of the project and
    of its local packages (every entry of `build_constraints` when given, hash-checked), for a
    lock check without build isolation; None when the offline check's `uv_output` does not say
    that it lacked a build backend, or when nothing is built."""
    if _NEEDS_BACKEND not in uv_output:
        return None
    if build_constraints is not None:
        stdin = build_constraints.read_text()
        hashes = ["--require-hashes"]
    else:
        requirements = local_build_requirements(
            project_dir, local_directories, display_dir, relock_command
        )
        if not requirements:
            return None
        stdin, hashes = "".join(f"{r}\n" for r in requirements), []
    environment = scratch / "build-backends"
    created = uv.run(
        ["venv", str(environment.absolute()), f"--python={sys.executable}", "--no-config"],
        cwd=scratch,
    )
    if created.returncode != 0:
        raise VenvBuildError(f"uv could not create an environment:\n{created.stderr.strip()}")
    python = environment.absolute() / "bin" / "python"
    installed = uv.run(
        [
            "pip",
            "install",
            f"--python={python}",
            "--requirements=-",
            f"--default-index={index_url}",
            "--no-config",
            *hashes,
        ],
        cwd=scratch,
        stdin=stdin,
    )
    if installed.returncode != 0:
        raise VenvBuildError(
            f"uv could not install the build requirements of {display_dir} to check its lock "
            f"(building the metadata of a package needs them):\n{installed.stderr.strip()}"
        )
    return python
