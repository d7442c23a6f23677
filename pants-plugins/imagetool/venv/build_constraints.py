"""`build-constraints.txt`: the build requirements of everything a service builds from source,
pinned with their hashes.

A service builds wheels from (a) each distribution its lock pins with only a source
distribution, (b) each local package (path and editable sources) and (c) its own project when
its `pyproject.toml` has a `[build-system]`. `pants esb-lock` resolves their build requirements
(`[build-system].requires`, or setuptools as PEP 517 assumes for a `setup.py`-only project, plus
what the backend asks for when it runs) with `uv pip compile --generate-hashes` for the image
tool's interpreter, which runs the builds, and writes the result beside `uv.lock`. Every build
then runs with `--build-constraints build-constraints.txt --require-hashes`.

The file's header records what it was made for, one `# build:` line per source: an sdist by its
name, version and sha256, a directory by its path and its declared build requirements. The
offline check compares that record with what the lock and the project ask to build today, so a
new sdist in the lock, or a changed `[build-system]`, makes the file stale without the network.
"""

from __future__ import annotations

import platform
import shutil
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import tomllib

from esb_contract.uv_project import is_package
from imagetool.venv.builds import BuildConstraintsError, build_wheel
from imagetool.venv.indexes import PYPI_INDEX_URL, LockError, VenvBuildError
from imagetool.venv.sdists import LockedSdist, fetch_sdist, sdist_only_distributions
from imagetool.venv.uv_process import Uv

BUILD_CONSTRAINTS_HEADER = "# build: "
# What uv and pip assume for a project without `[build-system]` (PEP 517's fallback).
DEFAULT_BUILD_REQUIRES = ("setuptools>=40.8.0",)
# A backend asks for at most a few requirements beyond its static ones; each round adds some.
_MAX_DYNAMIC_ROUNDS = 5


@dataclass(frozen=True)
class BuildSource:
    """Something the service builds into a wheel."""

    kind: str
    """`sdist`, `local` (a local package) or `project` (the service's own project)."""
    key: str
    """What identifies its build requirements: an sdist by name, version and sha256, a
    directory by its path and its declared `[build-system].requires`."""
    display: str
    sdist: Optional[LockedSdist] = None
    directory: str = ""
    """For `local` and `project`: the directory relative to the project (`.` for the project)."""

    @property
    def record(self) -> str:
        return f"{BUILD_CONSTRAINTS_HEADER}{self.kind} {self.key}"


def declared_build_requires(pyproject: Mapping[str, Any]) -> tuple[str, ...]:
    """`[build-system].requires`, or PEP 517's default when the table or the key is absent."""
    build_system = pyproject.get("build-system")
    requires = build_system.get("requires") if isinstance(build_system, dict) else None
    if isinstance(requires, list) and all(isinstance(r, str) for r in requires):
        return tuple(requires)
    return DEFAULT_BUILD_REQUIRES


def _read_pyproject(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        # The lock check reports a malformed pyproject.toml with its own message.
        return {}


def _directory_source(kind: str, project_dir: Path, directory: str, shown: str) -> BuildSource:
    requires = declared_build_requires(_read_pyproject(project_dir / directory / "pyproject.toml"))
    return BuildSource(
        kind,
        f"{directory} requires={','.join(sorted(requires))}",
        shown if directory == "." else f"{shown}/{directory}",
        directory=directory,
    )


def build_sources(
    project_dir: Path,
    lock: Mapping[str, Any],
    local_directories: Sequence[str],
    *,
    display_dir: str,
) -> tuple[BuildSource, ...]:
    """What the service builds: the lock's sdist-only distributions (all of them, whatever
    their markers, so that the record does not depend on the base), its local packages, and its
    own project when it is a package (`project.is_package`: the project the service layer
    builds). Offline."""
    sources = [
        BuildSource("sdist", sdist.key, sdist.display, sdist=sdist)
        for _, sdist in sorted(sdist_only_distributions(lock).items())
    ]
    sources += [
        _directory_source("local", project_dir, directory, display_dir)
        for directory in sorted(set(local_directories))
    ]
    if is_package(_read_pyproject(project_dir / "pyproject.toml")):
        sources.append(_directory_source("project", project_dir, ".", display_dir))
    return tuple(sources)


def sdist_build_requires(sdist_file: Path) -> tuple[str, ...]:
    """The static build requirements of an sdist: its top-level `pyproject.toml`'s, or PEP
    517's default."""
    content = _sdist_member(sdist_file, "pyproject.toml")
    if content is None:
        return DEFAULT_BUILD_REQUIRES
    try:
        return declared_build_requires(tomllib.loads(content.decode("utf-8")))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return DEFAULT_BUILD_REQUIRES


def _sdist_member(sdist_file: Path, name: str) -> Optional[bytes]:
    """The file `<top>/<name>` of an sdist (a .tar.gz or .zip with one top directory)."""
    try:
        if sdist_file.name.endswith(".zip"):
            with zipfile.ZipFile(sdist_file) as archive:
                for member in archive.namelist():
                    if member.count("/") == 1 and member.endswith(f"/{name}"):
                        return archive.read(member)
            return None
        with tarfile.open(sdist_file) as archive:
            for info in archive.getmembers():
                parts = info.name.lstrip("./").split("/")
                if len(parts) == 2 and parts[1] == name and info.isfile():
                    extracted = archive.extractfile(info)
                    return extracted.read() if extracted else None
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as e:
        raise VenvBuildError(f"{sdist_file.name} is not a readable source distribution: {e}")
    return None


def compile_args(output: Path, *, exclude_newer: Optional[str], upgrade: bool) -> list[str]:
    """`uv pip compile` of requirements on stdin into `output`, with every file's hash, for the
    image tool's interpreter (which runs the builds) on Linux."""
    return [
        "pip",
        "compile",
        "-",
        f"--output-file={output}",
        "--generate-hashes",
        "--no-header",
        "--no-annotate",
        f"--python={sys.executable}",
        f"--python-version={sys.version_info.major}.{sys.version_info.minor}",
        f"--python-platform={platform.machine()}-unknown-linux-gnu",
        "--no-config",
        *([f"--exclude-newer={exclude_newer}"] if exclude_newer else []),
        *(["--upgrade"] if upgrade else []),
    ]


def write_build_constraints(
    uv: Uv,
    project_dir: Path,
    sources: Sequence[BuildSource],
    out: Path,
    *,
    relock_command: str,
    source_date_epoch: int = 315532800,
    index_url: str = PYPI_INDEX_URL,
    netrc_text: str = "",
    exclude_newer: Optional[str] = None,
    upgrade: bool = False,
) -> bool:
    """Resolve the build requirements of `sources` and write them, hashed, to `out`; returns
    False (and writes nothing) when there is nothing to build.

    The versions an existing `out` pins are kept unless `upgrade` (uv's preferences of an
    existing output file). Requirements a backend asks for only when it runs (its
    `get_requires_for_build_wheel`) are found by building each source once with the file so far:
    uv names a requirement the file lacks, which is added, until every build gets past the
    resolution of its build requirements. A build that fails for another reason (e.g. it needs a
    compiler) is left for `package` and `lint` to report.
    """
    if not sources:
        return False
    with tempfile.TemporaryDirectory(prefix="esb-build-constraints-") as scratch:
        scratch_dir = Path(scratch)
        sdist_files = {
            source.key: fetch_sdist(source.sdist, scratch_dir, netrc_text)
            for source in sources
            if source.sdist is not None
        }
        requirements: set[str] = set()
        for source in sources:
            if source.sdist is not None:
                requirements.update(sdist_build_requires(sdist_files[source.key]))
            else:
                pyproject = _read_pyproject(project_dir / source.directory / "pyproject.toml")
                requirements.update(declared_build_requires(pyproject))
        compiled = scratch_dir / "build-constraints.txt"
        if out.is_file() and not upgrade:
            shutil.copyfile(out, compiled)
        for _ in range(_MAX_DYNAMIC_ROUNDS):
            _compile(uv, sorted(requirements), compiled, project_dir, exclude_newer, upgrade)
            missing = set()
            for index, source in enumerate(sources):
                try:
                    build_wheel(
                        uv,
                        sdist_files.get(source.key) or project_dir / source.directory,
                        scratch_dir / "wheels" / str(index),
                        source_date_epoch=source_date_epoch,
                        build_constraints=compiled,
                        display=source.display,
                        index_url=index_url,
                        allow_platform_wheel=True,
                    )
                except BuildConstraintsError as e:
                    if e.requirement:
                        missing.add(e.requirement)
                except VenvBuildError:
                    pass
            if not missing - requirements:
                break
            requirements |= missing
        body = compiled.read_text(encoding="utf-8")
    header = (
        "# The build requirements of what the uv.lock beside this file builds from source, pinned\n"
        f"# with their hashes for CPython {sys.version_info.major}.{sys.version_info.minor} on Linux. "
        f"Written by `{relock_command}`: do not edit.\n"
        + "".join(f"{source.record}\n" for source in sources)
    )
    out.write_text(header + body, encoding="utf-8")
    return True


def _compile(
    uv: Uv,
    requirements: Sequence[str],
    output: Path,
    cwd: Path,
    exclude_newer: Optional[str],
    upgrade: bool,
) -> None:
    result = uv.run(
        compile_args(output, exclude_newer=exclude_newer, upgrade=upgrade),
        cwd=cwd,
        stdin="".join(f"{r}\n" for r in requirements),
    )
    if result.returncode != 0:
        raise LockError(
            "uv could not resolve the build requirements "
            f"({', '.join(requirements)}):\n{result.stderr.strip()}"
        )


def recorded_sources(constraints_file: Path) -> tuple[str, ...]:
    """The `# build:` records of a build-constraints file."""
    lines = constraints_file.read_text(encoding="utf-8").splitlines()
    return tuple(line for line in lines if line.startswith(BUILD_CONSTRAINTS_HEADER))


def check_build_constraints(
    constraints_file: Path,
    sources: Sequence[BuildSource],
    *,
    shown_file: str,
    relock_command: str,
) -> None:
    """Fail unless `constraints_file` exists and was written for exactly `sources` (offline).
    With nothing to build, the file is not needed, and not read."""
    if not sources:
        return
    fix = f"Fix: run `{relock_command}` and commit {shown_file}"
    listed = "".join(f"  - {source.display} ({source.kind})\n" for source in sources)
    if not constraints_file.is_file():
        raise LockError(
            f"{shown_file} is missing, and the service builds these from source:\n{listed}\n"
            "Their build requirements must be pinned with their hashes in that file, beside "
            f"uv.lock.\n\n{fix} (and keep it in the target's `sources`, whose default includes "
            "it)."
        )
    recorded = set(recorded_sources(constraints_file))
    wanted = {source.record for source in sources}
    if recorded != wanted:
        start = len(BUILD_CONSTRAINTS_HEADER)
        added = "".join(f"  + {r[start:]}\n" for r in sorted(wanted - recorded))
        removed = "".join(f"  - {r[start:]}\n" for r in sorted(recorded - wanted))
        raise LockError(
            f"{shown_file} is stale: it pins the build requirements of other sources than those "
            f"the service builds now:\n{added}{removed}\n{fix}."
        )
