"""A clear error for a service's `pyproject.toml` that is not TOML, where Pants itself reads it.

A service's BUILD file generates its `python_requirement` targets from its `pyproject.toml`
(`python_requirements(source="pyproject.toml")`). When that file does not parse, typically
because a merge left conflict markers in it, Pants 2.17 fails every goal that sees the
directory with the TOML library's bare `TomlDecodeError`, naming neither the file nor the
target. Pants offers no hook into that parser, so `install()` wraps the function its target
generator calls (`parse_pyproject_callback`, looked up when the generator runs) with one that
reports the file, the target, the line and the fix.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any, Callable, Iterator

import toml  # pants: no-infer-dep (Pants itself depends on it)
from pants.backend.python.macros import python_requirements
from pants.backend.python.pip_requirement import PipRequirement

# Pants 2.17 calls it with the file's contents and path; a later signature may add arguments
# (such as the overrides that optional-dependency groups fill in), which the wrapper passes on.
Callback = Callable[..., Iterator[PipRequirement]]

_CONFLICT_MARKER = re.compile(rb"^(<<<<<<<|=======|>>>>>>>)( |\r?$)", re.MULTILINE)


class InvalidPyprojectError(ValueError):
    """A `pyproject.toml` that a `python_requirements` target generates from is not TOML."""


def pyproject_error(content: bytes, path: str, error: Exception) -> InvalidPyprojectError:
    directory = posixpath.dirname(path) or "."
    owner = (
        f"the `python_requirements` target of {directory}/BUILD, which generates its "
        "requirements from it"
    )
    relock = f"`pants esb-lock {directory}::` if the dependencies changed"
    conflict = _CONFLICT_MARKER.search(content)
    if conflict:
        line = content.count(b"\n", 0, conflict.start()) + 1
        return InvalidPyprojectError(
            f"{path} has unresolved merge-conflict markers (`{conflict.group(1).decode()}` at "
            f"line {line}), so Pants cannot read it for {owner}.\n\nFix: resolve the conflict "
            "(keep the right lines, delete the `<<<<<<<`, `=======` and `>>>>>>>` lines), then "
            f"run {relock}."
        )
    return InvalidPyprojectError(
        f"{path} is not valid TOML ({error}), so Pants cannot read it for {owner}.\n\nFix: "
        f"correct the file, then run {relock}."
    )


def reporting(callback: Callback) -> Callback:
    def parse(file_contents: bytes, file_path: str, *args: Any) -> Iterator[PipRequirement]:
        try:
            # The original is a generator: parse now, inside the `try`.
            return iter(list(callback(file_contents, file_path, *args)))
        except (toml.TomlDecodeError, UnicodeDecodeError) as e:
            raise pyproject_error(file_contents, file_path, e) from None

    parse.wrapped = callback  # type: ignore[attr-defined]
    return parse


def install() -> None:
    """Wrap Pants' pyproject.toml callback once (`register.py` may be loaded more than once)."""
    current = python_requirements.parse_pyproject_callback
    if not hasattr(current, "wrapped"):
        # Pants types the callback with named parameters; `reporting` keeps those names.
        python_requirements.parse_pyproject_callback = reporting(current)  # type: ignore[assignment]
