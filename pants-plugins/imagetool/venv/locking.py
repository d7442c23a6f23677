"""(Re)writing a project's `uv.lock` with `uv lock`: what `pants esb-lock` runs.

The project is checked first (its indexes, its path sources, a `requires-python` that admits
the base image's Python and the image tool's own), and the new lock is checked to admit the
base's Python, so that a lock this writes passes `lock_checks.check_lock`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Optional, Sequence

from esb_contract.uv_project import RELOCK_COMMAND
from imagetool.venv.indexes import (
    PYPI_INDEX_URL,
    LockError,
    PackageIndex,
    access_error,
    project_indexes,
    read_toml,
)
from imagetool.venv.lock_checks import (
    check_lock_requires_python,
    check_path_sources,
    check_project_requires_python,
)
from imagetool.venv.uv_process import Uv

_INTERPRETER_LINE = re.compile(r"Using (?:C?Python|PyPy) \S+ interpreter at: ")


def run_uv_lock(
    uv: Uv,
    directory: Path,
    indexes: Sequence[PackageIndex],
    *,
    index_url: str,
    upgrade: bool,
    shown: str,
    relock: str,
) -> None:
    """`uv lock` in `directory` (a project or a workspace's root); `indexes` are the project's
    named indexes, for the message when one refuses access; `shown` names what is locked and
    `relock` is the command that locks it again."""
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
        raise LockError(
            f"uv could not lock {shown}:\n{uv_diagnostics(result.stderr)}\n\nFix: correct what "
            "uv names above in pyproject.toml (a requirement that no index satisfies, or two "
            f"that conflict), then run `{relock}`."
        )


def uv_diagnostics(stderr: str) -> str:
    """uv's message without its line about the interpreter, whose path is the sandbox's."""
    return "\n".join(
        line for line in stderr.strip().splitlines() if not _INTERPRETER_LINE.match(line)
    )


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
    relock = relock_command or RELOCK_COMMAND
    check_project_requires_python(pyproject, python_version, shown, relock)
    run_uv_lock(
        uv, project_dir, indexes, index_url=index_url, upgrade=upgrade, shown=shown, relock=relock
    )
    return check_lock_requires_python(
        project_dir / "uv.lock",
        python_version,
        f"{shown}/uv.lock",
        f"run `{relock}`",
    )
