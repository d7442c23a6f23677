"""What a service's `pyproject.toml` means to both halves: whether its own project is installed,
which local paths its uv sources name, and how messages name the command that re-locks it."""

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


def pyproject_path_sources(pyproject: Mapping[str, Any]) -> Tuple[Tuple[str, str], ...]:
    """The (dependency, path) pairs a parsed `pyproject.toml` names in `[tool.uv.sources]`
    (`path = ...`), paths as written, in the file's order."""
    tool = pyproject.get("tool")
    uv_table = tool.get("uv") if isinstance(tool, dict) else None
    sources = uv_table.get("sources") if isinstance(uv_table, dict) else None
    paths: List[Tuple[str, str]] = []
    for name, entries in sources.items() if isinstance(sources, dict) else []:
        for entry in entries if isinstance(entries, list) else [entries]:
            path = entry.get("path") if isinstance(entry, dict) else None
            if isinstance(path, str):
                paths.append((name, path))
    return tuple(paths)
