"""A service's venv, installed from its `uv.lock` for the base image's Python and platform.

The image's interpreter never runs. uv installs the locked wheels into a staging prefix for the
target's Python version and platform; the image tool's own interpreter serves only as uv's model
of the prefix layout (`lib/python3.X/` is renamed for the target's version when the two differ)
and as the bytecode compiler. The prefix then becomes a venv that is valid at `/.venv` in the
image:

- `pyvenv.cfg` and `bin/python*` point at the base's interpreter;
- scripts start with `#!/.venv/bin/python`, and the RECORD rows of the distributions that own
  them are updated to match;
- a `.pth` file puts the service's source directories on `sys.path`: the service's own package
  ships in a layer of its own, so that editing it leaves this layer (and its cache entry) alone;
- bytecode, when wanted, is compiled in `unchecked-hash` mode with in-image paths as file names,
  so it is a pure function of the sources. Only an interpreter of the target's major.minor
  version writes bytecode the target reads (the format changes with every minor release), so
  for a base with another Python (e.g. 3.12 in `python:3.12-slim-bookworm`, while the tool runs
  on 3.11) the venv ships without bytecode, and `BuiltVenv.bytecode_skipped` says why.

`build_venv` checks that no path of the build host is left in the venv before it is packed.
"""

from __future__ import annotations

import base64
import dataclasses
import csv
import hashlib
import importlib.metadata
import io
import os
import posixpath
import py_compile
import re
import subprocess
import sys
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional, Sequence

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from esb_contract.lock_export import LockedDistribution, LockExport
from esb_contract.uv_project import RELOCK_COMMAND, RELOCK_PLACEHOLDER
from imagetool.venv.indexes import (
    PYPI_INDEX_URL,
    LockError,
    PackageIndex,
    VenvBuildError,
    access_error,
    check_lock_urls,
    distribution_indexes,
    hash_mismatch_error,
    project_indexes,
    read_toml,
)
from imagetool.tarlayer import LayerMember, members_from_directory
from imagetool.venv.sdists import LockedSdist, sdist_only_distributions

VENV_PATH = "/.venv"
DEFAULT_SOURCE_PATH = "/app/src"
SOURCE_PATHS_PTH = "esb_service_sources.pth"


_VERSION = re.compile(r"\d+\.\d+\.\d+")
_SDIST_ONLY = re.compile(r"Because (?P<package>[^\s=]+)==(?P<version>\S+) has no usable wheels")
_NO_MATCHING_WHEEL = re.compile(
    r"Because (?P<package>[^\s=]+)==(?P<version>\S+) has no wheels with a matching "
    r"(?P<tag>[\w ]+?) tag"
)


class NoSuitableWheelError(VenvBuildError):
    """A locked package has no wheel that the target Python and platform can install."""

    def __init__(self, message: str, package: str) -> None:
        super().__init__(message)
        self.package = package


@dataclass(frozen=True)
class TargetPython:
    """The base image's Python, for which the venv is installed."""

    version: str
    """The full version, e.g. `3.11.2`: environment markers such as `python_full_version` use it."""
    platform: str
    """A `--python-platform` value of uv, e.g. `x86_64-manylinux_2_36` for Debian 12 on x86-64."""
    interpreter: str
    """The interpreter's absolute path in the image (e.g. `/usr/bin/python3.11`), which
    `bin/python` links to."""

    def __post_init__(self) -> None:
        if not _VERSION.fullmatch(self.version):
            raise VenvBuildError(
                f"The Python version {self.version!r} is not of the form X.Y.Z, e.g. 3.11.2."
            )
        if not posixpath.isabs(self.interpreter):
            raise VenvBuildError(f"The interpreter path {self.interpreter!r} is not absolute.")

    @property
    def minor_version(self) -> str:
        major, minor, _ = self.version.split(".")
        return f"{major}.{minor}"

    def marker_environment(self) -> dict[str, str]:
        """The values of PEP 508 environment markers on the target: CPython on Linux."""
        machine = self.platform.split("-", 1)[0]
        return {
            "implementation_name": "cpython",
            "implementation_version": self.version,
            "os_name": "posix",
            "platform_machine": machine,
            "platform_python_implementation": "CPython",
            "platform_system": "Linux",
            "python_full_version": self.version,
            "python_version": self.minor_version,
            "sys_platform": "linux",
        }


# What uv reads as `--exclude-newer`: the backend sets it to lock as of `[esb-uv].exclude_newer`.
EXCLUDE_NEWER_ENV = "UV_EXCLUDE_NEWER"


@dataclass(frozen=True)
class Uv:
    """How to run uv: nothing of the caller's environment reaches it but `network_env`.

    `network_env` holds what uv needs to reach the index, e.g. `SSL_CERT_FILE` and proxy
    variables, and `UV_EXCLUDE_NEWER` when a resolution is fixed in time. Without a
    `cache_dir` uv keeps no cache, and downloads every wheel each time.
    """

    binary: Path
    cache_dir: Optional[Path] = None
    network_env: Mapping[str, str] = field(default_factory=dict)

    def resolving_as_of(self, exclude_newer: Optional[str]) -> Uv:
        """This uv, resolving as of `exclude_newer` (uv's `--exclude-newer`), or with no cutoff
        when it is None, whatever the caller's environment set."""
        env = {k: v for k, v in self.network_env.items() if k != EXCLUDE_NEWER_ENV}
        if exclude_newer is not None:
            env[EXCLUDE_NEWER_ENV] = exclude_newer
        return dataclasses.replace(self, network_env=env)

    def run(
        self,
        args: Sequence[str],
        *,
        cwd: Path,
        stdin: str = "",
        extra_env: Mapping[str, str] = {},
    ) -> subprocess.CompletedProcess[str]:
        cache = (
            ["--cache-dir", str(self.cache_dir.absolute())] if self.cache_dir else ["--no-cache"]
        )
        env = {
            **self.network_env,
            # Without it uv reads the user's `~/.config/uv/uv.toml` (found through the password
            # database when HOME is unset), which would make the result depend on the machine.
            "XDG_CONFIG_HOME": os.devnull,
            **extra_env,
        }
        return subprocess.run(
            [str(self.binary.absolute()), *args, *cache, "--no-python-downloads", "--no-progress"],
            cwd=cwd,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
        )


@dataclass(frozen=True)
class InstalledPackage:
    name: str
    """The normalised (PEP 503) name, as in `uv.lock`."""
    version: str


@dataclass(frozen=True)
class BuiltVenv:
    root: Path
    """The venv's directory on the build host, whose contents go to `/.venv` in the image."""
    packages: tuple[InstalledPackage, ...]
    uncompiled_modules: tuple[str, ...]
    """In-image paths of modules that do not compile (e.g. test data in another Python's
    syntax); they stay source-only, as pip and uv leave them."""
    bytecode_skipped: Optional[str] = None
    """Why the venv has no bytecode although it was asked for, if so."""


def check_lock(
    uv: Uv,
    project_dir: Path,
    python_version: str,
    *,
    display_dir: Optional[str] = None,
    relock_command: Optional[str] = None,
    build_environment: Optional[Callable[[str], Optional[Path]]] = None,
) -> dict[str, object]:
    """Fail unless `project_dir` has a `uv.lock` that matches its `pyproject.toml` and admits
    the base image's `python_version` (X.Y.Z); return the lock's table.

    The check runs offline. It proves a lock up to date without the network whenever the
    project's requirements are those recorded in the lock; when they are not, uv would need the
    index to tell whether a new resolution changes anything, and the lock is reported as stale:
    re-locking is the fix either way.

    uv builds the metadata of a package whose metadata is not static (a `setup.py`, a dynamic
    version or dependencies) to compare it with the lock, and offline it cannot fetch the build
    backend. When the offline check fails, `build_environment` (if given) is called with uv's
    output and returns an interpreter whose environment holds the pinned build backends (or None
    when the failure is not for want of one), and the
    check runs again with it, without build isolation: still offline for the resolution, so a
    real staleness fails it as before.

    Messages name the project as `display_dir` (the service's directory in the repository;
    default `project_dir`) and give `relock_command` (default `pants esb-lock <service
    target>`, which the backend replaces with the service's) as the fix.
    """
    shown = display_dir if display_dir is not None else str(project_dir)
    pyproject, lock = project_dir / "pyproject.toml", project_dir / "uv.lock"
    shown_pyproject, shown_lock = f"{shown}/pyproject.toml", f"{shown}/uv.lock"
    relock = f"run `{relock_command or RELOCK_COMMAND}` and commit {shown_lock}"
    if not pyproject.is_file():
        raise LockError(
            f"{shown} has no pyproject.toml: a service declares its dependencies there "
            "and locks them in uv.lock beside it."
        )
    project_indexes(read_toml(pyproject, shown_pyproject, relock), shown_pyproject)
    if not lock.is_file():
        raise LockError(f"{shown} has no uv.lock: every service installs exactly what its lock pins.\n\nFix: {relock}.")
    content = _check_requires_python(lock, python_version, shown_lock, relock)
    check_lock_urls(content, shown_lock, relock)
    check_path_sources(project_dir, display_dir)
    # `uv lock --check` calls a lock stale unless it resolves as of the time the lock records:
    # each lock is checked against its own cutoff, so locks made at different times coexist.
    uv = uv.resolving_as_of(recorded_exclude_newer(content))
    result = uv.run(["lock", "--check", "--offline", "--python", sys.executable], cwd=project_dir)
    backends = (
        build_environment(result.stderr) if result.returncode != 0 and build_environment else None
    )
    if backends is not None:
        result = uv.run(
            ["lock", "--check", "--offline", "--no-build-isolation", "--python", str(backends)],
            cwd=project_dir,
        )
    if result.returncode != 0:
        raise LockError(
            f"{shown_lock} does not match {shown_pyproject} (checked offline by `uv lock --check "
            f"--offline`): the lock is stale, or uv cannot read it.\n\nFix: {relock}.\n\n"
            f"uv said:\n{result.stderr.strip()}"
        )
    return content


def recorded_exclude_newer(lock: Mapping[str, object]) -> Optional[str]:
    """The time a uv lock was resolved as of (its `[options] exclude-newer`), if any."""
    options = lock.get("options")
    value = options.get("exclude-newer") if isinstance(options, dict) else None
    return value if isinstance(value, str) else None


def _check_requires_python(
    lock: Path, python_version: str, shown_lock: str, relock: str
) -> dict[str, object]:
    """The lock's table, once it is known to be a uv lock that admits `python_version`."""
    content = read_toml(lock, shown_lock, f"{relock}; never edit a lock by hand")
    if not isinstance(content.get("version"), int) or not isinstance(content.get("package", []), list):
        raise LockError(
            f"{shown_lock} is malformed: it is not a uv lockfile (no integer `version`, or "
            f"`package` is not an array of tables).\n\nFix: {relock}."
        )
    requires_python = content.get("requires-python", "")
    try:
        specifier = SpecifierSet(requires_python)
    except (InvalidSpecifier, TypeError) as e:
        raise LockError(
            f"{shown_lock} is malformed: its `requires-python` {requires_python!r} is not a "
            f"version specifier ({e}).\n\nFix: {relock}."
        ) from None
    if not specifier.contains(python_version, prereleases=True):
        raise LockError(
            f"{shown_lock} is locked for Python `{requires_python}`, which excludes the base image's "
            f"Python {python_version}.\n\nFix: include {python_version} in "
            f"`requires-python` in pyproject.toml and re-lock ({relock.removeprefix('run ')}), "
            "or build the service on a base whose Python the project supports."
        )
    return content


def _applies_to(distribution: LockedDistribution, target: TargetPython) -> bool:
    """Whether its environment marker (if any) holds on the target."""
    marker = Requirement(_first_line(distribution.requirement)).marker
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
) -> LockedRequirements:
    """The locked requirements of the project's runtime, each with the index the lock takes it
    from when that is not PyPI.

    Dependency groups (`dev` and any other default group) and extras not asked for stay out, so
    test-only dependencies never enter the image. Editable sources are exported as plain local
    directories: an image is immutable, so there is nothing to edit in place. With `package`,
    `project_dir` is a uv workspace's root and the requirements are those of that member (see
    imagetool/venv/workspace.py); local directories are then relative to the root.
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


def _sdist_url_of(
    distribution: LockedDistribution, sdists: Mapping[tuple[str, str], LockedSdist]
) -> str:
    version = Requirement(_first_line(distribution.requirement)).specifier
    for (name, locked_version), sdist in sdists.items():
        if name == distribution.name and version.contains(locked_version, prereleases=True):
            return sdist.url
    return ""


def _index_of(
    distribution: LockedDistribution, indexes: Mapping[tuple[str, str], PackageIndex]
) -> str:
    version = Requirement(_first_line(distribution.requirement)).specifier
    for (name, locked_version), index in indexes.items():
        if canonicalize_name(name) == distribution.name and version.contains(
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
            name = canonicalize_name(Requirement(requirement).name)
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


def install_args(prefix: Path, target: TargetPython, index_url: str) -> list[str]:
    """`uv pip install` of a hashed requirements.txt on stdin into `prefix`, wheels only."""
    return [
        "pip",
        "install",
        "--requirements=-",
        "--no-deps",
        "--require-hashes",
        "--only-binary=:all:",
        f"--python-platform={target.platform}",
        f"--python-version={target.version}",
        f"--python={sys.executable}",
        f"--prefix={prefix}",
        f"--default-index={index_url}",
        # Hard links into uv's cache would tie the staged files to it; copies are plain files.
        "--link-mode=copy",
        "--no-config",
    ]


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
    try:
        specifiers = list(Requirement(str(requirement)).specifier)
    except InvalidRequirement:
        return False
    return (
        len(specifiers) == 1
        and specifiers[0].operator in ("==", "===")
        and "*" not in specifiers[0].version
    )


def build_venv(
    uv: Uv,
    requirements: str,
    venv_dir: Path,
    target: TargetPython,
    *,
    local_wheels: Sequence[Path] = (),
    source_paths: Sequence[str] = (DEFAULT_SOURCE_PATH,),
    compile_bytecode: bool = True,
    index_url: str = PYPI_INDEX_URL,
) -> BuiltVenv:
    """Install `requirements` (hashed, from `export_requirements`) and `local_wheels` (from
    `builds.build_local_wheels`) as a venv for `/.venv` in `venv_dir`: `install_distributions`, and
    the files that make the directory a venv (`write_venv_files`).

    `venv_dir` must not exist yet. `source_paths` are the in-image directories that the `.pth`
    file puts on `sys.path`.
    """
    venv = install_distributions(
        uv,
        requirements,
        venv_dir,
        target,
        local_wheels=local_wheels,
        compile_bytecode=compile_bytecode,
        index_url=index_url,
    )
    write_venv_files(venv.root, target, source_paths)
    return venv


def install_distributions(
    uv: Uv,
    requirements: str,
    prefix: Path,
    target: TargetPython,
    *,
    local_wheels: Sequence[Path] = (),
    compile_bytecode: bool = True,
    index_url: str = PYPI_INDEX_URL,
    indexes: Sequence[PackageIndex] = (),
) -> BuiltVenv:
    """Install `requirements` (hashed) and `local_wheels` into `prefix` (which must not exist
    yet) as files for `/.venv`, without their dependencies and without the venv's own files.
    `indexes` are the named indexes among them, for messages about access to them.

    Installed alone, one distribution gives the same files as within a whole lock, so its
    layer is the same for every service that locks it. Bytecode is compiled only when this
    interpreter can write it for the target (see `bytecode_incompatibility`).
    """
    prefix = prefix.absolute()
    prefix.mkdir(parents=True)
    # Hashed like the rest, so that `--require-hashes` holds for every file installed.
    wheel_lines = "".join(
        f"{wheel.absolute()} --hash=sha256:{hashlib.sha256(wheel.read_bytes()).hexdigest()}\n"
        for wheel in local_wheels
    )
    if requirements.strip() or wheel_lines:
        result = uv.run(
            install_args(prefix, target, index_url), cwd=prefix, stdin=requirements + wheel_lines
        )
        if result.returncode != 0:
            raise _install_error(result.stderr.strip(), target, indexes)
    # uv's lock file for concurrent installs into the same prefix.
    (prefix / ".lock").unlink(missing_ok=True)
    _relocate_version_directories(prefix, target)

    site_packages = site_packages_of(prefix, target)
    site_packages.mkdir(parents=True, exist_ok=True)
    _remove_install_provenance(site_packages)
    _update_records(site_packages, _rewrite_script_shebangs(prefix / "bin"))
    skipped = bytecode_incompatibility(target) if compile_bytecode else None
    uncompiled = (
        compile_modules(site_packages, prefix, VENV_PATH)
        if compile_bytecode and not skipped
        else ()
    )
    # The target's interpreter may be the host's own (Debian's /usr/bin/python3.11), and then
    # its path is rightly everywhere in the venv.
    host_paths = {str(prefix), sys.executable} - {target.interpreter}
    _check_no_host_paths(prefix, sorted(host_paths))
    return BuiltVenv(prefix, _installed_packages(site_packages), tuple(uncompiled), skipped)


def site_packages_of(venv_dir: Path, target: TargetPython) -> Path:
    return venv_dir / "lib" / f"python{target.minor_version}" / "site-packages"


def venv_layer_members(venv: BuiltVenv) -> Iterator[LayerMember]:
    """The layer members of `/.venv`: root:root, 0755 for directories and executables, else 0644."""
    return members_from_directory(venv.root, prefix=VENV_PATH)


def host_minor_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def bytecode_incompatibility(target: TargetPython) -> Optional[str]:
    """Why this interpreter cannot compile bytecode for `target`, or None when it can.

    A `.pyc` file starts with the magic number of the CPython minor release that wrote it, and
    any other release ignores it (and, with `PYTHONDONTWRITEBYTECODE=1` as in our images,
    compiles the module anew at every start); the code objects inside change between minor
    releases too. So only CPython X.Y compiles for X.Y.
    """
    host = host_minor_version()
    if sys.implementation.name == "cpython" and host == target.minor_version:
        return None
    return (
        f"the image tool runs on {sys.implementation.name} {host} and the base's Python is "
        f"CPython {target.minor_version}; bytecode is valid only for the minor version that "
        "wrote it"
    )


def _relocate_version_directories(venv_dir: Path, target: TargetPython) -> None:
    """uv lays the prefix out for the interpreter it runs with (`lib/python3.11/...`); the
    target's Python looks in `lib/python<its X.Y>/`."""
    host, wanted = host_minor_version(), target.minor_version
    if host == wanted:
        return
    for parent in (venv_dir / "lib", venv_dir / "include", venv_dir / "include" / "site"):
        source = parent / f"python{host}"
        if source.is_dir() and not source.is_symlink():
            source.rename(parent / f"python{wanted}")


def _install_error(
    uv_output: str, target: TargetPython, indexes: Sequence[PackageIndex] = ()
) -> VenvBuildError:
    known = access_error(uv_output, indexes) or hash_mismatch_error(uv_output)
    if known:
        return known
    sdist_only = _SDIST_ONLY.search(uv_output)
    if sdist_only:
        package, version = sdist_only.group("package", "version")
        return NoSuitableWheelError(
            f"{package} {version} has no usable wheel on the index, only a source distribution "
            "(sdist), although the lock pins a wheel of it: the index is not the one the lock "
            "was made with, or its files changed since.\n\nFix: re-lock with "
            f"{RELOCK_PLACEHOLDER}; a distribution locked with only an sdist is built into a "
            "wheel (see docs/uv-locks.md, \"Source distributions\").\n\n"
            f"uv said:\n{uv_output}",
            package,
        )
    no_matching_wheel = _NO_MATCHING_WHEEL.search(uv_output)
    if no_matching_wheel:
        package, version, tag = no_matching_wheel.group("package", "version", "tag")
        return NoSuitableWheelError(
            f"{package} {version} has no wheel for the base image's Python and platform "
            f"(CPython {target.version} on {target.platform}): none has a matching {tag} tag."
            "\n\nFix, one of:\n"
            f"  - lock a version of {package} that publishes such a wheel;\n"
            f"  - if the service needs {package} only elsewhere, give the dependency an "
            "environment marker (e.g. `; sys_platform == 'win32'`) and re-lock;\n"
            "  - check that the base's platform is right: a newer glibc base accepts newer "
            "manylinux wheels.\n\n"
            f"uv said:\n{uv_output}",
            package,
        )
    return VenvBuildError(f"uv could not install the locked requirements:\n{uv_output}")


def _rewrite_script_shebangs(bin_dir: Path) -> dict[Path, bytes]:
    """Point the scripts uv wrote for the host's interpreter at the venv's; returns them."""
    executable = sys.executable
    shell_quoted = "'" + executable.replace("'", "'\"'\"'") + "'"
    host_shebangs = (
        f"#!{executable}\n".encode(),
        # uv's form for interpreter paths too long (or too odd) for the kernel's shebang.
        f"#!/bin/sh\n'''exec' {shell_quoted} \"$0\" \"$@\"\n' '''\n".encode(),
    )
    venv_shebang = f"#!{VENV_PATH}/bin/python\n".encode()
    rewritten: dict[Path, bytes] = {}
    scripts = sorted(bin_dir.iterdir()) if bin_dir.is_dir() else []
    for script in scripts:
        if script.is_symlink() or not script.is_file():
            continue
        content = script.read_bytes()
        for shebang in host_shebangs:
            if content.startswith(shebang):
                content = venv_shebang + content[len(shebang) :]
                script.write_bytes(content)
                rewritten[script] = content
                break
    return rewritten


# What an installer records about where a wheel came from: for a locally built wheel, the build
# host's path (PEP 610's direct_url.json) and the time of the install (uv's uv_cache.json).
_INSTALL_PROVENANCE = ("direct_url.json", "uv_cache.json")


def _remove_install_provenance(site_packages: Path) -> None:
    for dist_info in sorted(site_packages.glob("*.dist-info")):
        removed = {name for name in _INSTALL_PROVENANCE if (dist_info / name).is_file()}
        if not removed:
            continue
        for name in removed:
            (dist_info / name).unlink()
        record = dist_info / "RECORD"
        rows = [row for row in csv.reader(io.StringIO(record.read_text(encoding="utf-8"))) if row]
        kept = [row for row in rows if posixpath.basename(row[0]) not in removed or not row[0].startswith(dist_info.name + "/")]
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(kept)
        record.write_text(text.getvalue(), encoding="utf-8")


def _update_records(site_packages: Path, rewritten: Mapping[Path, bytes]) -> None:
    for record in sorted(site_packages.glob("*.dist-info/RECORD")):
        rows = [row for row in csv.reader(io.StringIO(record.read_text(encoding="utf-8"))) if row]
        changed = False
        for row in rows:
            content = rewritten.get(Path(os.path.normpath(site_packages / row[0])))
            if content is not None:
                row[1:3] = [f"sha256={_record_digest(content)}", str(len(content))]
                changed = True
        if changed:
            text = io.StringIO()
            csv.writer(text, lineterminator="\n").writerows(rows)
            record.write_text(text.getvalue(), encoding="utf-8")


def _record_digest(content: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()


def write_venv_files(venv_dir: Path, target: TargetPython, source_paths: Sequence[str]) -> None:
    """`pyvenv.cfg`, `bin/python*` (links to the base's interpreter) and the `.pth` file that
    puts `source_paths` (absolute, in the image) on `sys.path`."""
    for path in source_paths:
        if not posixpath.isabs(path):
            raise VenvBuildError(f"The source path {path!r} is not absolute.")
    (venv_dir / "pyvenv.cfg").write_text(
        f"home = {posixpath.dirname(target.interpreter)}\n"
        "include-system-site-packages = false\n"
        f"version = {target.version}\n"
        f"executable = {target.interpreter}\n"
    )
    bin_dir = venv_dir / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("python", "python3", f"python{target.minor_version}"):
        (bin_dir / name).symlink_to(target.interpreter)
    site_packages = site_packages_of(venv_dir, target)
    site_packages.mkdir(parents=True, exist_ok=True)
    (site_packages / SOURCE_PATHS_PTH).write_text("".join(f"{path}\n" for path in source_paths))


def compile_modules(directory: Path, root: Path, in_image_root: str) -> list[str]:
    """Compile every module under `directory` in `unchecked-hash` mode, each named by its path
    in the image (`in_image_root` plus its path under `root`); returns the in-image paths of
    those that do not compile."""
    uncompiled = []
    for source in sorted(directory.rglob("*.py")):
        if source.is_symlink() or not source.is_file():
            continue
        in_image_path = f"{in_image_root}/{source.relative_to(root).as_posix()}"
        try:
            # Compiling third-party code warns about its style (e.g. invalid escape sequences),
            # which is noise here: it is not ours to fix, and running it would warn again anyway.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                py_compile.compile(
                    str(source),
                    dfile=in_image_path,
                    doraise=True,
                    optimize=0,
                    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
                )
        except py_compile.PyCompileError:
            uncompiled.append(in_image_path)
    return uncompiled


def _check_no_host_paths(venv_dir: Path, host_paths: Sequence[str]) -> None:
    needles = [path.encode() for path in host_paths]
    for path in sorted(venv_dir.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        content = path.read_bytes()
        for needle in needles:
            if needle in content:
                raise VenvBuildError(
                    f"{VENV_PATH}/{path.relative_to(venv_dir).as_posix()} contains the build "
                    f"host's path {needle.decode()!r}, which would make the layer differ between "
                    "machines. This is a bug of the image tool: please report it with the "
                    "service's uv.lock."
                )


def _installed_packages(site_packages: Path) -> tuple[InstalledPackage, ...]:
    packages = (
        InstalledPackage(canonicalize_name(dist.metadata["Name"]), dist.version)
        for dist in importlib.metadata.distributions(path=[str(site_packages)])
    )
    return tuple(sorted(packages, key=lambda package: package.name))


def check_path_sources(project_dir: Path, display_dir: Optional[str] = None) -> None:
    """Refuse local (path, directory, editable) sources that point outside the project.

    A service image sees only its own directory: a dependency on `../shared` would make the
    image depend on files its target does not own, which the sandbox rule forbids.
    """
    shown = display_dir if display_dir is not None else str(project_dir)
    outside = []
    pyproject = project_dir / "pyproject.toml"
    if pyproject.is_file():
        try:
            sources = tomllib.loads(pyproject.read_text()).get("tool", {}).get("uv", {}).get("sources", {})
        except tomllib.TOMLDecodeError:
            sources = {}
        for name, entries in sorted(sources.items()):
            for entry in entries if isinstance(entries, list) else [entries]:
                path = entry.get("path") if isinstance(entry, dict) else None
                if isinstance(path, str) and _leaves_project(path):
                    outside.append((f"{shown}/pyproject.toml", name, path))
    lock = project_dir / "uv.lock"
    if lock.is_file():
        try:
            packages = tomllib.loads(lock.read_text()).get("package", [])
        except tomllib.TOMLDecodeError:
            packages = []
        for package in packages:
            source = package.get("source", {}) if isinstance(package, dict) else {}
            for kind in ("path", "directory", "editable"):
                path = source.get(kind) if isinstance(source, dict) else None
                if isinstance(path, str) and _leaves_project(path):
                    outside.append((f"{shown}/uv.lock", package.get("name", "?"), path))
    if outside:
        listed = "\n".join(f"  - {name} = {path!r} (in {where})" for where, name, path in outside)
        raise LockError(
            f"The uv project in {shown} depends on local paths outside its directory:\n{listed}\n\n"
            "A service image sees only files under its own directory (the sandbox rule), so such a "
            f"dependency cannot be installed.\n\nFix: move the code under {shown}/ and point the "
            "source there, or publish it as a package to an index and depend on it by version."
        )


def _leaves_project(path: str) -> bool:
    if posixpath.isabs(path) or path.startswith("~"):
        return True
    normalised = posixpath.normpath(path)
    return normalised == ".." or normalised.startswith("../")


def run_uv_lock(
    uv: Uv,
    directory: Path,
    indexes: Sequence[PackageIndex],
    *,
    index_url: str,
    upgrade: bool,
    shown: str,
) -> None:
    """`uv lock` in `directory` (a project or a workspace's root); `indexes` are the project's
    named indexes, for the message when one refuses access; `shown` names what is locked."""
    args = ["lock", "--python", sys.executable]
    if index_url != PYPI_INDEX_URL:
        args.append(f"--default-index={index_url}")
    if upgrade:
        args.append("--upgrade")
    result = uv.run(args, cwd=directory)
    if result.returncode != 0:
        denied = access_error(result.stderr.strip(), indexes)
        if denied:
            raise denied
        raise LockError(f"uv could not lock {shown}:\n{result.stderr.strip()}")


def lock_project(
    uv: Uv,
    project_dir: Path,
    python_version: str,
    *,
    display_dir: Optional[str] = None,
    upgrade: bool = False,
    index_url: str = PYPI_INDEX_URL,
    relock_command: Optional[str] = None,
) -> dict[str, object]:
    """(Re)write `project_dir/uv.lock` with `uv lock`, keeping the versions an existing lock pins
    unless `upgrade`, then check that it admits the base image's `python_version`; return the
    new lock's table.

    uv resolves universally (for every Python `requires-python` allows); the image tool's own
    interpreter, of the base's minor version, only stands in for "the" Python uv wants to find,
    since uv never downloads one here.
    """
    shown = display_dir if display_dir is not None else str(project_dir)
    if not (project_dir / "pyproject.toml").is_file():
        raise LockError(f"{shown} has no pyproject.toml to lock.")
    pyproject = read_toml(
        project_dir / "pyproject.toml", f"{shown}/pyproject.toml", "lock the project again"
    )
    indexes = project_indexes(pyproject, f"{shown}/pyproject.toml")
    check_path_sources(project_dir, display_dir)
    _check_project_requires_python(pyproject, python_version, shown)
    relock = relock_command or RELOCK_COMMAND
    run_uv_lock(uv, project_dir, indexes, index_url=index_url, upgrade=upgrade, shown=shown)
    return _check_requires_python(
        project_dir / "uv.lock",
        python_version,
        f"{shown}/uv.lock",
        f"run `{relock}`",
    )


def _check_project_requires_python(
    pyproject: Mapping[str, object], python_version: str, shown: str
) -> None:
    project = pyproject.get("project", {})
    requires_python = project.get("requires-python") if isinstance(project, dict) else None
    if not isinstance(requires_python, str):
        raise LockError(
            f"{shown}/pyproject.toml declares no `requires-python`.\n\nFix: add "
            f'`requires-python = ">={".".join(python_version.split(".")[:2])}"` to its '
            "[project] table: the lock must cover the base image's Python."
        )
    try:
        specifier = SpecifierSet(requires_python)
    except InvalidSpecifier as e:
        raise LockError(f"{shown}/pyproject.toml: `requires-python` is invalid: {e}.") from None
    if not specifier.contains(python_version, prereleases=True):
        raise LockError(
            f"{shown}/pyproject.toml requires Python `{requires_python}`, which excludes the base "
            f"image's Python {python_version}.\n\nFix: include {python_version} in "
            "`requires-python`, or build the service on a base whose Python the project supports."
        )
    major_minor = ".".join(python_version.split(".")[:2])
    host = ".".join(str(part) for part in sys.version_info[:3])
    if not specifier.contains(host, prereleases=True):
        # uv wants an interpreter inside `requires-python` and never downloads one here.
        raise LockError(
            f"{shown}/pyproject.toml requires Python `{requires_python}`, which admits the base's "
            f"{python_version} but not the image tool's {host}, which uv needs to lock.\n\nFix: "
            f"widen `requires-python` to a range such as `=={major_minor}.*` or `>={major_minor}`."
        )
