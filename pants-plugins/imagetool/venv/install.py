"""A service's venv, installed from its `uv.lock` for the base image's Python and platform.

The image's interpreter never runs. uv installs the locked wheels into a staging prefix for the
target's Python version and platform; the image tool's own interpreter, which must have the
target's major.minor version, serves only as uv's model of the prefix layout and as the bytecode
compiler. The prefix then becomes a venv that is valid at `/.venv` in the image:

- `pyvenv.cfg` and `bin/python*` point at the base's interpreter;
- scripts start with `#!/.venv/bin/python`, and the RECORD rows of the distributions that own
  them are updated to match;
- a `.pth` file puts the service's source directories on `sys.path`: the service's own package
  ships in a layer of its own, so that editing it leaves this layer (and its cache entry) alone;
- bytecode, when wanted, is compiled in `unchecked-hash` mode with in-image paths as file names,
  so it is a pure function of the sources.

`build_venv` checks that no path of the build host is left in the venv before it is packed.
"""

from __future__ import annotations

import base64
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
from typing import Iterator, Mapping, Optional, Sequence

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from imagetool.errors import ToolError
from imagetool.tarlayer import LayerMember, members_from_directory

VENV_PATH = "/.venv"
DEFAULT_SOURCE_PATH = "/app/src"
PYPI_INDEX_URL = "https://pypi.org/simple"
SOURCE_PATHS_PTH = "esb_service_sources.pth"

_VERSION = re.compile(r"\d+\.\d+\.\d+")
_SDIST_ONLY = re.compile(r"Because (?P<package>[^\s=]+)==(?P<version>\S+) has no usable wheels")
_NO_MATCHING_WHEEL = re.compile(
    r"Because (?P<package>[^\s=]+)==(?P<version>\S+) has no wheels with a matching "
    r"(?P<tag>[\w ]+?) tag"
)


class VenvBuildError(ToolError):
    """A service's venv cannot be built; the message says why and how to fix it."""


class LockError(VenvBuildError):
    """The service's `uv.lock` is missing, out of date, or locked for another Python."""


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


@dataclass(frozen=True)
class Uv:
    """How to run uv: nothing of the caller's environment reaches it but `network_env`.

    `network_env` holds what uv needs to reach the index, e.g. `SSL_CERT_FILE` and proxy
    variables. Without a `cache_dir` uv keeps no cache, and downloads every wheel each time.
    """

    binary: Path
    cache_dir: Optional[Path] = None
    network_env: Mapping[str, str] = field(default_factory=dict)

    def run(
        self, args: Sequence[str], *, cwd: Path, stdin: str = ""
    ) -> subprocess.CompletedProcess[str]:
        cache = (
            ["--cache-dir", str(self.cache_dir.absolute())] if self.cache_dir else ["--no-cache"]
        )
        env = {
            **self.network_env,
            # Without it uv reads the user's `~/.config/uv/uv.toml` (found through the password
            # database when HOME is unset), which would make the result depend on the machine.
            "XDG_CONFIG_HOME": os.devnull,
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


def check_lock(uv: Uv, project_dir: Path, python_version: str) -> None:
    """Fail unless `project_dir` has a `uv.lock` that matches its `pyproject.toml` and admits
    the base image's `python_version` (X.Y.Z).

    The check runs offline. It proves a lock up to date without the network whenever the
    project's requirements are those recorded in the lock; when they are not, uv would need the
    index to tell whether a new resolution changes anything, and the lock is reported as stale:
    re-locking is the fix either way.
    """
    pyproject, lock = project_dir / "pyproject.toml", project_dir / "uv.lock"
    relock = f"run `uv lock --directory {project_dir}` and commit {lock}"
    if not pyproject.is_file():
        raise LockError(
            f"{project_dir} has no pyproject.toml: a service declares its dependencies there "
            "and locks them in uv.lock beside it."
        )
    if not lock.is_file():
        raise LockError(f"{project_dir} has no uv.lock.\n\nFix: {relock}.")
    _check_requires_python(lock, python_version)
    result = uv.run(["lock", "--check", "--offline", "--python", sys.executable], cwd=project_dir)
    if result.returncode != 0:
        raise LockError(
            f"{lock} does not match {pyproject} (checked offline by `uv lock --check "
            f"--offline`).\n\nFix: {relock}.\n\nuv said:\n{result.stderr.strip()}"
        )


def _check_requires_python(lock: Path, python_version: str) -> None:
    try:
        requires_python = tomllib.loads(lock.read_text()).get("requires-python", "")
        specifier = SpecifierSet(requires_python)
    except (tomllib.TOMLDecodeError, InvalidSpecifier) as e:
        raise LockError(f"{lock} cannot be read: {e}.") from None
    if not specifier.contains(python_version, prereleases=True):
        raise LockError(
            f"{lock} is locked for Python `{requires_python}`, which excludes the base image's "
            f"Python {python_version}.\n\nFix: include {python_version} in "
            f"`requires-python` in pyproject.toml and re-lock, or build the service on a base "
            "whose Python the project supports."
        )


def export_requirements(uv: Uv, project_dir: Path, extras: Sequence[str] = ()) -> str:
    """The locked requirements of the project's runtime, with hashes, as a requirements.txt.

    Dependency groups (`dev` and any other default group) and extras not asked for stay out, so
    test-only dependencies never enter the image.
    """
    result = uv.run(export_args(extras), cwd=project_dir)
    if result.returncode != 0:
        raise LockError(
            f"uv could not export the locked requirements of {project_dir}:\n"
            + result.stderr.strip()
        )
    return result.stdout


def export_args(extras: Sequence[str]) -> list[str]:
    return [
        "export",
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


def build_venv(
    uv: Uv,
    requirements: str,
    venv_dir: Path,
    target: TargetPython,
    *,
    source_paths: Sequence[str] = (DEFAULT_SOURCE_PATH,),
    compile_bytecode: bool = True,
    index_url: str = PYPI_INDEX_URL,
) -> BuiltVenv:
    """Install `requirements` (from `export_requirements`) as a venv for `/.venv` in `venv_dir`.

    `venv_dir` must not exist yet. `source_paths` are the in-image directories that the `.pth`
    file puts on `sys.path`.
    """
    _check_host_python(target)
    for path in source_paths:
        if not posixpath.isabs(path):
            raise VenvBuildError(f"The source path {path!r} is not absolute.")
    venv_dir = venv_dir.absolute()
    venv_dir.mkdir(parents=True)
    result = uv.run(install_args(venv_dir, target, index_url), cwd=venv_dir, stdin=requirements)
    if result.returncode != 0:
        raise _install_error(result.stderr.strip(), target)
    # uv's lock file for concurrent installs into the same prefix.
    (venv_dir / ".lock").unlink(missing_ok=True)

    site_packages = venv_dir / "lib" / f"python{target.minor_version}" / "site-packages"
    _update_records(site_packages, _rewrite_script_shebangs(venv_dir / "bin"))
    _write_venv_files(venv_dir, site_packages, target, source_paths)
    uncompiled = _compile_bytecode(site_packages, venv_dir) if compile_bytecode else ()
    # The target's interpreter may be the host's own (Debian's /usr/bin/python3.11), and then
    # its path is rightly everywhere in the venv.
    host_paths = {str(venv_dir), sys.executable} - {target.interpreter}
    _check_no_host_paths(venv_dir, sorted(host_paths))
    return BuiltVenv(venv_dir, _installed_packages(site_packages), tuple(uncompiled))


def venv_layer_members(venv: BuiltVenv) -> Iterator[LayerMember]:
    """The layer members of `/.venv`: root:root, 0755 for directories and executables, else 0644."""
    return members_from_directory(venv.root, prefix=VENV_PATH)


def _check_host_python(target: TargetPython) -> None:
    host = f"{sys.version_info.major}.{sys.version_info.minor}"
    if sys.implementation.name != "cpython" or host != target.minor_version:
        raise VenvBuildError(
            f"The image tool runs on {sys.implementation.name} {host}, but the base image's Python "
            f"is CPython {target.version}. They must share the version X.Y: uv lays out "
            f"site-packages for the running interpreter, and bytecode is compiled by it.\n\n"
            f"Fix: run the image tool on CPython {target.minor_version} (its resolve's "
            "interpreter constraints)."
        )


def _install_error(uv_output: str, target: TargetPython) -> VenvBuildError:
    sdist_only = _SDIST_ONLY.search(uv_output)
    if sdist_only:
        package, version = sdist_only.group("package", "version")
        return NoSuitableWheelError(
            f"{package} {version} has no wheel, only a source distribution (sdist), and images "
            "install wheels only: building it would run the package's build code on the build "
            "host, with the host's compilers and libraries.\n\nFix, one of:\n"
            f"  - lock a version of {package} that has a wheel for CPython {target.version} on "
            f"{target.platform}: `uv lock --upgrade-package {package}`, or a version bound in "
            "pyproject.toml;\n"
            f"  - replace {package} with a package that publishes wheels;\n"
            f"  - build a wheel of {package} and publish it to the index the lock uses.\n\n"
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


def _write_venv_files(
    venv_dir: Path, site_packages: Path, target: TargetPython, source_paths: Sequence[str]
) -> None:
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
    (site_packages / SOURCE_PATHS_PTH).write_text("".join(f"{path}\n" for path in source_paths))


def _compile_bytecode(site_packages: Path, venv_dir: Path) -> list[str]:
    """Compile every module in `site_packages`; returns the in-image paths of those that fail."""
    uncompiled = []
    for source in sorted(site_packages.rglob("*.py")):
        if source.is_symlink() or not source.is_file():
            continue
        in_image_path = f"{VENV_PATH}/{source.relative_to(venv_dir).as_posix()}"
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
