"""uv workspaces: a root `pyproject.toml` with `[tool.uv.workspace]` and one `uv.lock` for every
member. A service that is a member is checked and exported from the root with `--package`
(`export_requirements`), and locked here, at the root, once for all its members.

The root may be a project of its own or only hold the workspace table: without a `[project]`,
its `requires-python` is that of its members, which uv intersects, and only the lock's is checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from esb_contract.uv_project import RELOCK_COMMAND
from imagetool.venv.indexes import PYPI_INDEX_URL, LockError, project_indexes, read_toml
from imagetool.venv.lock_checks import (
    check_lock_requires_python,
    check_path_sources,
    check_project_requires_python,
)
from imagetool.venv.locking import run_uv_lock
from imagetool.venv.uv_process import Uv


def lock_workspace(
    uv: Uv,
    root_dir: Path,
    python_version: str,
    *,
    display_dir: Optional[str] = None,
    relock_command: Optional[str] = None,
    upgrade: bool = False,
    index_url: str = PYPI_INDEX_URL,
) -> dict[str, object]:
    """(Re)write `root_dir/uv.lock` for every member of the workspace rooted there, keeping the
    versions the existing lock pins unless `upgrade`, then check that it admits the base
    image's `python_version`; return the lock's table. `root_dir` holds the root's
    `pyproject.toml` and that of every member, at their paths below the root."""
    shown = display_dir if display_dir is not None else str(root_dir)
    relock = f"run `{relock_command}`" if relock_command else "lock the workspace again"
    shown_pyproject = f"{shown}/pyproject.toml"
    if not (root_dir / "pyproject.toml").is_file():
        raise LockError(f"The uv workspace {shown} has no pyproject.toml to lock.")
    pyproject = read_toml(root_dir / "pyproject.toml", shown_pyproject, relock)
    workspace = pyproject.get("tool", {}).get("uv", {}).get("workspace")
    if not isinstance(workspace, dict):
        raise LockError(f"{shown_pyproject} has no `[tool.uv.workspace]` table.")
    indexes = project_indexes(pyproject, shown_pyproject)
    check_path_sources(root_dir, display_dir)
    if isinstance(pyproject.get("project"), dict):
        check_project_requires_python(pyproject, python_version, shown)
    run_uv_lock(
        uv,
        root_dir,
        indexes,
        index_url=index_url,
        upgrade=upgrade,
        shown=f"the workspace {shown}",
        relock=relock_command or RELOCK_COMMAND,
    )
    return check_lock_requires_python(
        root_dir / "uv.lock",
        python_version,
        f"{shown}/uv.lock",
        f"{relock}, after changing the members' `requires-python`",
    )
