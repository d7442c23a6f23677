"""What a lock installs: the hashed requirements `uv export` writes for a project's runtime, one
entry per distribution with the index it comes from and its sdist's URL (if any), apart from
the project's local package directories.

Each distribution becomes a layer of its own, keyed by its entry, so the entries are exactly
what installs the distribution: for a target, the distributions whose markers exclude it are
left out and the markers of the others dropped (`LockedRequirements.for_target`).
"""

from __future__ import annotations

import dataclasses
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

from esb_contract.lock_export import LockedDistribution, LockExport
from esb_contract.uv_lock import normalise_name
from esb_contract.uv_project import RELOCK_COMMAND
from imagetool.venv.indexes import (
    LockError,
    PackageIndex,
    distribution_indexes,
    project_indexes,
    read_toml,
)
from imagetool.venv.sdists import LockedSdist, sdist_only_distributions
from imagetool.venv.target_python import TargetPython
from imagetool.venv.uv_process import Uv

if TYPE_CHECKING:
    from packaging.requirements import Requirement


def _applies_to(distribution: LockedDistribution, target: TargetPython) -> bool:
    """Whether its environment marker (if any) holds on the target."""
    marker = _requirement(_first_line(distribution.requirement)).marker
    return marker is None or marker.evaluate(target.marker_environment())


def _without_marker(distribution: LockedDistribution) -> LockedDistribution:
    """The same entry without its environment marker, for a target where the marker holds:
    locks that pin the same distribution under different markers (typing-extensions with and
    without `python_full_version < '3.15'`) then share its layer, whose key is this entry."""
    first, newline, hashes = distribution.requirement.partition("\n")
    pinned = first.split(";", 1)[0].rstrip(" \\")
    continuation = " \\" if first.rstrip().endswith("\\") else ""
    return dataclasses.replace(distribution, requirement=pinned + continuation + newline + hashes)


@dataclass(frozen=True)
class LockedRequirements(LockExport):
    """What the lock installs (written for the backend as the `LockExport` it is), with what the
    tool does with it."""

    @property
    def hashed(self) -> str:
        """The distributions as one hashed requirements.txt."""
        return "".join(distribution.requirement for distribution in self.distributions)

    def for_target(self, target: TargetPython) -> LockedRequirements:
        """Without the distributions whose markers exclude the target (e.g. Windows-only), and
        without the markers of the others, which hold there."""
        return LockedRequirements(
            tuple(_without_marker(d) for d in self.distributions if _applies_to(d, target)),
            self.local_directories,
        )


def export_requirements(
    uv: Uv,
    project_dir: Path,
    extras: Sequence[str] = (),
    display_dir: Optional[str] = None,
    relock_command: Optional[str] = None,
    package: Optional[str] = None,
    lock: Optional[dict[str, Any]] = None,
) -> LockedRequirements:
    """The locked requirements of the project's runtime, each with the index the lock takes it
    from when that is not PyPI.

    Dependency groups (`dev` and any other default group) and extras not asked for stay out, so
    test-only dependencies never enter the image. Editable sources are exported as plain local
    directories: an image is immutable, so there is nothing to edit in place. With `package`,
    `project_dir` is a uv workspace's root and the requirements are those of that member (see
    imagetool/venv/workspace.py); local directories are then relative to the root. `lock` is
    the table of the project's `uv.lock` when the caller has read it already.
    """
    shown = display_dir if display_dir is not None else str(project_dir)
    result = uv.run(export_args(extras, package), cwd=project_dir)
    if result.returncode != 0:
        raise LockError(
            f"uv could not export the locked requirements of {project_dir}:\n"
            + result.stderr.strip()
        )
    requirements = split_local_requirements(result.stdout)
    shown_pyproject, shown_lock = f"{shown}/pyproject.toml", f"{shown}/uv.lock"
    fix = f"run `{relock_command or RELOCK_COMMAND}`"
    pyproject = read_toml(project_dir / "pyproject.toml", shown_pyproject, fix)
    if lock is None:
        lock = read_toml(project_dir / "uv.lock", shown_lock, fix)
    indexes = distribution_indexes(
        lock, project_indexes(pyproject, shown_pyproject), shown_lock, shown_pyproject
    )
    sdists = sdist_only_distributions(lock)
    return LockedRequirements(
        tuple(
            LockedDistribution(
                d.name, d.requirement, _index_of(d, indexes), _sdist_url_of(d, sdists)
            )
            for d in requirements.distributions
        ),
        requirements.local_directories,
    )


def _requirement(text: str) -> Requirement:
    # Imported when used: every build step is a process of its own (see `imagetool.cli`).
    from packaging.requirements import Requirement

    return Requirement(text)


def _sdist_url_of(
    distribution: LockedDistribution, sdists: Mapping[tuple[str, str], LockedSdist]
) -> str:
    version = _requirement(_first_line(distribution.requirement)).specifier
    for (name, locked_version), sdist in sdists.items():
        if name == distribution.name and version.contains(locked_version, prereleases=True):
            return sdist.url
    return ""


def _index_of(
    distribution: LockedDistribution, indexes: Mapping[tuple[str, str], PackageIndex]
) -> str:
    version = _requirement(_first_line(distribution.requirement)).specifier
    for (name, locked_version), index in indexes.items():
        if normalise_name(name) == distribution.name and version.contains(
            locked_version, prereleases=True
        ):
            return index.argument()
    return ""


def split_local_requirements(requirements: str) -> LockedRequirements:
    """Split uv's exported requirements.txt into one entry per distribution (a line and the
    `--hash` lines continuing it), apart from the `./dir` lines of path sources."""
    entries: list[list[str]] = []
    for line in requirements.splitlines(keepends=True):
        if line[:1].isspace() and entries:
            entries[-1].append(line)
        elif line.strip():
            entries.append([line])
    distributions, local, git = [], [], []
    for entry in entries:
        requirement = _first_line("".join(entry)).removeprefix("-e ").strip()
        if requirement.startswith("./"):
            local.append(posixpath.normpath(requirement))
        elif " @ git+" in requirement:
            git.append(requirement)
        else:
            name = normalise_name(_requirement(requirement).name)
            distributions.append(LockedDistribution(name, "".join(entry)))
    if git:
        raise LockError(
            "The lock installs packages from git, which images do not: a git source has no "
            "hash to verify, and the build would need the git host:\n"
            + "".join(f"  - {requirement}\n" for requirement in git)
            + "\nFix: depend on a released version from the index, or vendor the code under "
            "the service's directory and use a path source."
        )
    return LockedRequirements(tuple(distributions), tuple(local))


def _first_line(entry: str) -> str:
    return entry.splitlines()[0].rstrip(" \\").strip()


def export_args(extras: Sequence[str], package: Optional[str] = None) -> list[str]:
    return [
        "export",
        *(("--package", package) if package else ()),
        "--frozen",
        "--no-default-groups",
        "--no-emit-project",
        "--no-editable",
        "--format=requirements-txt",
        "--no-header",
        "--no-annotate",
        *(f"--extra={extra}" for extra in extras),
    ]
