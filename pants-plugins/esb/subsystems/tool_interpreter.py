"""The image tool's interpreter, found by its file name instead of by running a process.

Pants finds a PEX's interpreter by running pex, which starts every interpreter on the search path
to learn its version: a process per pantsd start, before the first cache lookup of a step that
runs the tool. When the tool's constraints allow exactly one whole CPython minor version and the
search path holds exactly one interpreter of that minor (by the names pex looks for, followed to
the real file), that file is the one pex would pick, and no process needs to run. In any other
case, e.g. two patch releases of that minor, a `python3` that is not a link to a versioned name,
or none at all, the answer is left to Pants' own discovery.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Iterable, Optional

from pants.backend.python.subsystems.setup import PythonSetup
from pants.backend.python.util_rules.interpreter_constraints import InterpreterConstraints
from pants.backend.python.util_rules.pex_environment import PythonExecutable
from pants.core.subsystems.python_bootstrap import PythonBootstrap
from pants.engine.rules import Get, _uncacheable_rule, collect_rules, rule
from pants.util.logging import LogLevel

# The file names pex considers a CPython interpreter of: `python`, `python3`, `python3.11` (PyPy's
# `pypy…` names it leaves out of CPython constraints).
_PEX_NAME = re.compile(r"^python([23](\.[0-9]{1,2})?)?$")
# The real file of a CPython interpreter carries its major.minor version in its name.
_CPYTHON_FILE = re.compile(r"^python([23])\.([0-9]{1,2})$")


def find_by_name(search_paths: Iterable[str], major: int, minor: int) -> Optional[str]:
    """The real path of the one CPython `major.minor` interpreter in `search_paths`, or None when
    its name cannot tell: none, more than one, or a candidate whose real file is unversioned."""
    found: set[str] = set()
    for directory in search_paths:
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in filter(_PEX_NAME.match, names):
            path = os.path.join(directory, name)
            if not os.path.isfile(path) or not os.access(path, os.X_OK):
                continue
            real = os.path.realpath(path)
            version = _CPYTHON_FILE.match(os.path.basename(real))
            if version is None:
                return None
            if (int(version.group(1)), int(version.group(2))) == (major, minor):
                found.add(real)
    return found.pop() if len(found) == 1 else None


def single_cpython_minor(
    constraints: InterpreterConstraints, universe: Iterable[str]
) -> Optional[tuple[int, int]]:
    """The (major, minor) that `constraints` allow every CPython patch release of and nothing
    else besides, if there is one."""
    if not constraints or any(c.project_name != "CPython" for c in constraints):
        return None
    universe = tuple(universe)
    allowed = constraints.enumerate_python_versions(universe)
    minors = {(major, minor) for major, minor, _ in allowed}
    if len(minors) != 1:
        return None
    major, minor = minors.pop()
    whole = InterpreterConstraints([f"CPython=={major}.{minor}.*"])
    return (major, minor) if whole.enumerate_python_versions(universe) == allowed else None


@dataclass(frozen=True)
class ToolInterpreterRequest:
    interpreter_constraints: InterpreterConstraints


@dataclass(frozen=True)
class ToolInterpreter:
    """The interpreter found by name, or None for Pants' discovery to find one."""

    python: Optional[PythonExecutable]


@dataclass(frozen=True)
class _Minor:
    version: Optional[tuple[int, int]]


@rule
async def tool_interpreter_minor(
    request: ToolInterpreterRequest, python_setup: PythonSetup
) -> _Minor:
    # Apart from the lookup on disk: the constraints change only with the options.
    return _Minor(
        single_cpython_minor(
            request.interpreter_constraints, python_setup.interpreter_versions_universe
        )
    )


# Uncacheable: the search path is outside the workspace, which the engine does not watch, so each
# run looks again (a few directory listings), as a new pantsd would run pex again.
@_uncacheable_rule(desc="Find the image tool's interpreter by name", level=LogLevel.DEBUG)
async def find_tool_interpreter(
    request: ToolInterpreterRequest, bootstrap: PythonBootstrap
) -> ToolInterpreter:
    minor = await Get(_Minor, ToolInterpreterRequest, request)
    path = minor.version and find_by_name(bootstrap.interpreter_search_paths, *minor.version)
    if not path:
        return ToolInterpreter(None)
    stat = os.stat(path)
    # Pants' discovery fingerprints the file's content; its identity on disk serves the same
    # purpose here (a replaced interpreter is a different value) without reading it.
    identity = f"{stat.st_dev}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"
    return ToolInterpreter(PythonExecutable.fingerprinted(path, identity.encode()))


def rules():
    return collect_rules()
