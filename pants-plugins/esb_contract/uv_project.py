"""What a service's uv project means to both halves: whether its own project is installed, and
how messages name the command that re-locks it."""

from typing import Mapping

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
