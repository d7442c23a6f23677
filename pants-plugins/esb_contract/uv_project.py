"""What a service's uv project means to both halves: whether its own project is installed, and
how messages name the command that re-locks it."""

import posixpath
from typing import Any, List, Mapping, Tuple

# The fix of messages the image tool writes where it cannot name the service (a layer's process
# is shared by every service that locks the distribution); the backend puts the service's own
# command in its place.
RELOCK_COMMAND = "pants esb-lock <service target>"
RELOCK_PLACEHOLDER = f"`{RELOCK_COMMAND}`"


def is_package(pyproject: Mapping[str, object]) -> bool:
    """Whether the project (a parsed `pyproject.toml`) is built and installed, as uv decides it:
    `[tool.uv] package` when set (true builds a project without `[build-system]` with
    setuptools, PEP 517's default), else whether it declares a `[build-system]`."""
    tool = pyproject.get("tool")
    uv_table = tool.get("uv") if isinstance(tool, dict) else None
    package = uv_table.get("package") if isinstance(uv_table, dict) else None
    if isinstance(package, bool):
        return package
    return isinstance(pyproject.get("build-system"), dict)


def lock_local_directories(lock: Mapping[str, Any]) -> Tuple[str, ...]:
    """The directories of the local packages (path and editable sources, and workspace members
    that are packages) a parsed `uv.lock` installs, as it spells them relative to the project,
    normalised; the project itself (`.`) is not one."""
    found = set()
    packages = lock.get("package", [])
    for package in packages if isinstance(packages, list) else []:
        source = package.get("source") if isinstance(package, dict) else None
        for kind in ("editable", "directory"):
            path = source.get(kind) if isinstance(source, dict) else None
            if isinstance(path, str) and posixpath.normpath(path) != ".":
                found.add(posixpath.normpath(path))
    return tuple(sorted(found))


def pyproject_path_sources(pyproject: Mapping[str, Any]) -> Tuple[str, ...]:
    """The paths a parsed `pyproject.toml` names in `[tool.uv.sources]` (`path = ...`), as
    written."""
    tool = pyproject.get("tool")
    uv_table = tool.get("uv") if isinstance(tool, dict) else None
    sources = uv_table.get("sources") if isinstance(uv_table, dict) else None
    paths: List[str] = []
    for entries in sources.values() if isinstance(sources, dict) else []:
        for entry in entries if isinstance(entries, list) else [entries]:
            path = entry.get("path") if isinstance(entry, dict) else None
            if isinstance(path, str):
                paths.append(path)
    return tuple(paths)
