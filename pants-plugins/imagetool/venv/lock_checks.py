"""Whether a service's `uv.lock` can be built from: it exists, matches its `pyproject.toml`,
admits the base image's Python, names only index URLs without credentials, and has no local
path source outside the service's directory.

Every build checks the lock before it installs anything from it, so a stale or hand-edited lock
fails with the `pants esb-lock` command that fixes it, rather than installing something other
than what the project declares. The checks run offline.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Mapping, Optional

import tomllib

from esb_contract.uv_lock import leaves_project, local_sources
from esb_contract.uv_project import RELOCK_COMMAND, pyproject_path_sources
from imagetool.venv.indexes import LockError, check_lock_urls, project_indexes, read_toml
from imagetool.venv.uv_process import Uv


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
        raise LockError(
            f"{shown} has no uv.lock: every service installs exactly what its lock pins."
            f"\n\nFix: {relock}."
        )
    content = check_lock_requires_python(lock, python_version, shown_lock, relock)
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


def check_lock_requires_python(
    lock: Path, python_version: str, shown_lock: str, relock: str
) -> dict[str, object]:
    """The lock's table, once it is known to be a uv lock that admits `python_version`."""
    content = read_toml(lock, shown_lock, f"{relock}; never edit a lock by hand")
    if not isinstance(content.get("version"), int) or not isinstance(
        content.get("package", []), list
    ):
        raise LockError(
            f"{shown_lock} is malformed: it is not a uv lockfile (no integer `version`, or "
            f"`package` is not an array of tables).\n\nFix: {relock}."
        )
    # Imported when used: every build step is a process of its own (see `imagetool.cli`).
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

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
            f"{shown_lock} is locked for Python `{requires_python}`, which excludes the base "
            f"image's Python {python_version}.\n\nFix: include {python_version} in "
            f"`requires-python` in pyproject.toml and re-lock ({relock.removeprefix('run ')}), "
            "or build the service on a base whose Python the project supports."
        )
    return content


def check_project_requires_python(
    pyproject: Mapping[str, object], python_version: str, shown: str, relock: str = RELOCK_COMMAND
) -> None:
    project = pyproject.get("project")
    if not isinstance(project, dict):
        tool = pyproject.get("tool")
        poetry = isinstance(tool, dict) and isinstance(tool.get("poetry"), dict)
        raise LockError(
            f"{shown}/pyproject.toml has no [project] table"
            + (
                ": its metadata is in [tool.poetry], which uv does not read."
                if poetry
                else ", where uv reads the project's name, Python and dependencies."
            )
            + "\n\nFix: declare the project in a [project] table (PEP 621: `name`, `version`, "
            "`requires-python`, `dependencies`)"
            + (
                "; Poetry 2 reads that table too, and the migrate-to-uv tool writes it from "
                "[tool.poetry]"
                if poetry
                else ""
            )
            + f". Then run `{relock}`."
        )
    requires_python = project.get("requires-python")
    if not isinstance(requires_python, str):
        raise LockError(
            f"{shown}/pyproject.toml declares no `requires-python`.\n\nFix: add "
            f'`requires-python = ">={".".join(python_version.split(".")[:2])}"` to its '
            "[project] table: the lock must cover the base image's Python."
        )
    # Imported when used: every build step is a process of its own (see `imagetool.cli`).
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

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
            sources = pyproject_path_sources(tomllib.loads(pyproject.read_text()))
        except tomllib.TOMLDecodeError:
            sources = ()
        for name, path in sorted(sources):
            if leaves_project(path):
                outside.append((f"{shown}/pyproject.toml", name, path))
    lock = project_dir / "uv.lock"
    if lock.is_file():
        try:
            locked = local_sources(tomllib.loads(lock.read_text()))
        except tomllib.TOMLDecodeError:
            locked = ()
        for source in locked:
            if leaves_project(source.path):
                outside.append((f"{shown}/uv.lock", source.package, source.path))
    if outside:
        listed = "\n".join(f"  - {name} = {path!r} (in {where})" for where, name, path in outside)
        raise LockError(
            f"The uv project in {shown} depends on local paths outside its directory:\n{listed}\n\n"
            "A service image sees only files under its own directory (the sandbox rule), so such a "
            f"dependency cannot be installed.\n\nFix: move the code under {shown}/ and point the "
            "source there, or publish it as a package to an index and depend on it by version."
        )
