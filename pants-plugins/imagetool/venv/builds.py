"""Wheels built from sources: a local package's directory, the service's own project, or a
locked distribution's source distribution (sdist).

Every build goes through `build_wheel`: `uv build --wheel` with uv's settings files ignored, the
image tool's own interpreter (CPython of the base's minor version), `SOURCE_DATE_EPOCH` fixed so
that the same sources give the same wheel bytes, and a `PATH` that holds no program at all, so
that a build needing a C compiler fails rather than use whatever compiler the build host has.
When a build-constraints file is given (`build-constraints.txt`, written by `pants esb-lock`),
every build requirement must be pinned in it with its hashes.

A wheel of a compiled extension is refused: it would be built against the build host's
headers and libraries instead of the base's. So is a local package whose `[build-system]` does
not pin its requirements exactly (`check_pinned_build_backend`): an unpinned backend could build
another wheel tomorrow from the same sources.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from esb_contract.source_date import SOURCE_DATE_EPOCH
from esb_contract.uv_project import RELOCK_PLACEHOLDER
from imagetool.venv.indexes import PYPI_INDEX_URL, VenvBuildError, read_toml
from imagetool.venv.uv_process import Uv

_UNHASHED_BUILD_REQUIREMENT = re.compile(
    r"no trusted hash was provided for: `(?P<requirement>[^`]+)`"
)
_NOT_CONSTRAINED = re.compile(r"Hash-checking is required, but (?P<rest>.+)")
# What distutils, setuptools, meson and cmake say when they find no compiler on PATH.
_NO_COMPILER = re.compile(
    r"command '(?P<command>[^']+)' failed: No such file or directory"
    r"|unable to execute '(?P<unable>[^']+)'"
    r"|error: command '(?P<missing>(?:[\w./-]*-)?(?:gcc|g\+\+|cc|c\+\+|clang|clang\+\+))' failed"
    r"|Unknown compiler\(s\)"
    r"|No CMAKE_C_COMPILER could be found"
    r"|(?:C|C\+\+|Fortran|Rust) compiler.{0,40}not found",
    re.IGNORECASE,
)


class BuildConstraintsError(VenvBuildError):
    """A build requirement is not pinned, with its hashes, in the build-constraints file."""

    def __init__(self, message: str, requirement: str) -> None:
        super().__init__(message)
        self.requirement = requirement


class NeedsCompilerError(VenvBuildError):
    """The build needs a C compiler (or produced a wheel of compiled code)."""


def needs_compiler_message(display: str, reason: str) -> str:
    """`display` is `name version` for a locked distribution, else a directory."""
    name, _, version = display.partition(" ")
    if version:
        options = (
            f"  - lock a version of {name} that publishes a wheel for the base's Python and "
            f"platform (a version bound in pyproject.toml, then {RELOCK_PLACEHOLDER});\n"
            "  - ask the project upstream to publish wheels;\n"
        )
    else:
        options = "  - keep the package pure Python;\n"
    return (
        f"{display} needs a C compiler to build ({reason}). Images build source distributions "
        "with no compiler on PATH: a compiled extension would be built against the build "
        "host's headers and libraries, not the base image's.\n\nFix, one of:\n"
        + options
        + "  - build the wheel once and publish it to a private index of your own, and take the "
        'package from there (see docs/uv-locks.md, "Private indexes").'
    )


def build_wheel(
    uv: Uv,
    source: Path,
    out_dir: Path,
    *,
    source_date_epoch: int,
    build_constraints: Optional[Path],
    display: str,
    index_url: str = PYPI_INDEX_URL,
    allow_platform_wheel: bool = False,
) -> Path:
    """Build `source` (a project directory, or an sdist file) into a wheel in `out_dir`, and
    return its path.

    `display` names the source in messages (e.g. `docopt 0.6.2` or `services/api/libs/x`).
    `build_constraints` pins every build requirement with its hashes; without it, the build
    requirements are whatever the index offers (callers then check they are pinned exactly).
    A wheel tagged for a platform is refused unless `allow_platform_wheel`.
    """
    source, out_dir = source.absolute(), out_dir.absolute()
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "build",
        "--wheel",
        f"--out-dir={out_dir}",
        f"--python={sys.executable}",
        f"--default-index={index_url}",
        "--no-config",
    ]
    if build_constraints is not None:
        args += [f"--build-constraints={build_constraints.absolute()}", "--require-hashes"]
    with tempfile.TemporaryDirectory(prefix="esb-no-compiler-") as empty_path:
        result = uv.run(
            [*args, str(source)],
            cwd=source if source.is_dir() else source.parent,
            extra_env={SOURCE_DATE_EPOCH: str(source_date_epoch), "PATH": empty_path},
        )
    built = sorted(out_dir.glob("*.whl"))
    if result.returncode != 0 or len(built) != 1:
        raise build_error(result.stderr.strip(), display, build_constraints is not None)
    wheel = built[0]
    platform_tag = wheel.name[: -len(".whl")].split("-")[-1]
    if platform_tag != "any" and not allow_platform_wheel:
        raise NeedsCompilerError(
            needs_compiler_message(
                display, f"its build produced {wheel.name}, a wheel of compiled code"
            )
        )
    return wheel


def build_error(uv_output: str, display: str, constrained: bool) -> VenvBuildError:
    unhashed = _UNHASHED_BUILD_REQUIREMENT.search(uv_output)
    if unhashed or (constrained and _NOT_CONSTRAINED.search(uv_output)):
        requirement = unhashed.group("requirement") if unhashed else ""
        needed = f"the build requirement `{requirement}`" if requirement else "a build requirement"
        return BuildConstraintsError(
            f"Building {display} needs {needed}, which "
            "build-constraints.txt does not pin with its hashes: the file is stale (a build "
            "requirement changed), or was edited by hand.\n\nFix: run "
            f"{RELOCK_PLACEHOLDER}, which writes build-constraints.txt beside uv.lock, and "
            f"commit it.\n\nuv said:\n{uv_output}",
            requirement,
        )
    compiler = _NO_COMPILER.search(uv_output)
    if compiler:
        command = next((g for g in compiler.groups() if g), None)
        reason = f"it runs `{command}`" if command else "its build looks for a compiler"
        return NeedsCompilerError(
            needs_compiler_message(display, reason) + f"\n\nuv said:\n{uv_output}"
        )
    return VenvBuildError(f"uv could not build a wheel of {display}:\n{uv_output}")


def build_local_wheels(
    uv: Uv,
    project_dir: Path,
    directories: Sequence[str],
    wheel_dir: Path,
    *,
    source_date_epoch: int,
    display_dir: Optional[str] = None,
    index_url: str = PYPI_INDEX_URL,
    build_constraints: Optional[Path] = None,
) -> list[Path]:
    """A wheel of each local package (a directory inside the project), by `build_wheel`.

    The build backends are those `build_constraints` pins with their hashes or, without it,
    those each package pins exactly in its `[build-system].requires`.
    """
    shown = display_dir if display_dir is not None else str(project_dir)
    wheels = []
    for index, directory in enumerate(directories):
        if build_constraints is None:
            check_pinned_build_backend(project_dir / directory, f"{shown}/{directory}")
        wheels.append(
            build_wheel(
                uv,
                project_dir / directory,
                wheel_dir / str(index),
                source_date_epoch=source_date_epoch,
                build_constraints=build_constraints,
                display=f"the local package {shown}/{directory}",
                index_url=index_url,
            )
        )
    return wheels


def check_pinned_build_backend(package_dir: Path, shown: str) -> None:
    pyproject = package_dir / "pyproject.toml"
    fix = (
        "Fix: give the package a pyproject.toml whose [build-system] pins each requirement "
        'exactly, e.g. `requires = ["flit_core==3.10.1"]` and '
        '`build-backend = "flit_core.buildapi"`.'
    )
    if not pyproject.is_file():
        raise VenvBuildError(
            f"The local package {shown} has no pyproject.toml: images build local packages "
            f"only with a declared, pinned build backend.\n\n{fix}"
        )
    build_system = read_toml(pyproject, f"{shown}/pyproject.toml", "build the image again").get(
        "build-system", {}
    )
    requires = build_system.get("requires") if isinstance(build_system, dict) else None
    if not isinstance(requires, list) or not requires:
        raise VenvBuildError(
            f"{shown}/pyproject.toml declares no [build-system] requires: the build would fall "
            f"back to whatever setuptools the index offers that day.\n\n{fix}"
        )
    unpinned = [requirement for requirement in requires if not is_exact_pin(requirement)]
    if unpinned:
        raise VenvBuildError(
            f"{shown}/pyproject.toml does not pin its build requirements exactly: "
            f"{', '.join(map(repr, unpinned))}. An unpinned backend could build another wheel "
            f"tomorrow from the same sources.\n\n{fix}"
        )


def is_exact_pin(requirement: object) -> bool:
    # Imported when used: every build step is a process of its own (see `imagetool.cli`).
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        specifiers = list(Requirement(str(requirement)).specifier)
    except InvalidRequirement:
        return False
    return (
        len(specifiers) == 1
        and specifiers[0].operator in ("==", "===")
        and "*" not in specifiers[0].version
    )
