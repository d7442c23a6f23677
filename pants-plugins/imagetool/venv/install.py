"""A service's venv, installed from its `uv.lock` for the base image's Python and platform.

The image's interpreter never runs. uv installs the locked wheels (hashed, from
`export.export_requirements`) into a staging prefix for the target's Python version and
platform, wheels only and without dependencies: installed alone, one distribution gives the same
files as within a whole lock, so its layer is the same for every service that locks it. The
image tool's own interpreter serves only as uv's model of the prefix layout and as the bytecode
compiler (imagetool/venv/bytecode.py). The prefix is then made valid at `/.venv` in the image
and checked for paths of the build host (imagetool/venv/relocation.py).
"""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

from esb_contract.uv_lock import normalise_name
from esb_contract.uv_project import RELOCK_PLACEHOLDER
from imagetool.tarlayer import LayerMember, members_from_directory
from imagetool.venv.bytecode import bytecode_incompatibility, compile_modules
from imagetool.venv.indexes import (
    PYPI_INDEX_URL,
    PackageIndex,
    VenvBuildError,
    access_error,
    hash_mismatch_error,
)
from imagetool.venv.relocation import (
    VENV_PATH,
    check_no_host_paths,
    relocate_version_directories,
    remove_install_provenance,
    rewrite_script_shebangs,
    site_packages_of,
    update_records,
    write_venv_files,
)
from imagetool.venv.target_python import TargetPython
from imagetool.venv.uv_process import Uv

DEFAULT_SOURCE_PATH = "/app/src"

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
class InstalledPackage:
    name: str
    """The normalised (PEP 503) name, as in `uv.lock`."""
    version: str


@dataclass(frozen=True)
class BuiltVenv:
    root: Path
    """The venv's directory on the build host, whose contents go to `/.venv` in the image."""
    site_packages: Path
    uncompiled_modules: tuple[str, ...]
    """In-image paths of modules that do not compile (e.g. test data in another Python's
    syntax); they stay source-only, as pip and uv leave them."""
    bytecode_skipped: Optional[str] = None
    """Why the venv has no bytecode although it was asked for, if so."""

    @property
    def packages(self) -> tuple[InstalledPackage, ...]:
        """The distributions installed, by name. Read when asked for, not by the build: the
        layer's inventory records them for the image, and the metadata reader costs every
        distribution's layer process its import."""
        # Imported when used: every build step is a process of its own (see `imagetool.cli`).
        import importlib.metadata

        packages = (
            InstalledPackage(normalise_name(dist.metadata["Name"]), dist.version)
            for dist in importlib.metadata.distributions(path=[str(self.site_packages)])
        )
        return tuple(sorted(packages, key=lambda package: package.name))


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
    """Install `requirements` (hashed, from `export.export_requirements`) and `local_wheels`
    (from `builds.build_local_wheels`) as a venv for `/.venv` in `venv_dir`:
    `install_distributions`, and the files that make the directory a venv
    (`relocation.write_venv_files`).

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
    relocate_version_directories(prefix, target)

    site_packages = site_packages_of(prefix, target)
    site_packages.mkdir(parents=True, exist_ok=True)
    remove_install_provenance(site_packages)
    update_records(site_packages, rewrite_script_shebangs(prefix / "bin"))
    skipped = bytecode_incompatibility(target) if compile_bytecode else None
    uncompiled = (
        compile_modules(site_packages, prefix, VENV_PATH)
        if compile_bytecode and not skipped
        else ()
    )
    # The target's interpreter may be the host's own (Debian's /usr/bin/python3.11), and then
    # its path is rightly everywhere in the venv.
    host_paths = {str(prefix), sys.executable} - {target.interpreter}
    check_no_host_paths(prefix, sorted(host_paths))
    return BuiltVenv(prefix, site_packages, tuple(uncompiled), skipped)


def venv_layer_members(venv: BuiltVenv) -> Iterator[LayerMember]:
    """The layer members of `/.venv`: root:root, 0755 for directories and executables, else 0644."""
    return members_from_directory(venv.root, prefix=VENV_PATH)


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
            'wheel (see docs/uv-locks.md, "Source distributions").\n\n'
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
