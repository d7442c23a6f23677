"""Files under `dist/` that a reader must never see partial: each written to a hidden temporary
file beside it and renamed into place, and only when its bytes (or its link's target) differ
from what is there, so that a run that changes nothing writes nothing.

Pants' own `package` truncates and rewrites every output in place on every run, so a reader (or a
run killed mid-write) can find a file empty or short, and a no-op run costs a write of every file.

No Pants imports: the package rule calls these with the bytes it has.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Iterable

PARTIAL_SUFFIX = ".partial"
"""Temporary files being written are named `.<name>.<pid>.<random>.partial`: hidden, and never
taken for the file itself by anything that opens files by name."""


def write_atomically(path: Path, content: bytes, *, executable: bool = False) -> None:
    """Write `path` by rename, so that no reader sees it partial.

    Two writers of the same file (concurrent runs) both succeed: whichever rename comes last wins.
    """
    try:
        descriptor, temporary = _temporary_beside(path)
    except (FileNotFoundError, NotADirectoryError):
        # Only the first file of a directory creates it: a write per file of a fresh `dist/`
        # would otherwise pay two more system calls. A file in the way of a directory fails
        # here, naming the file.
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = _temporary_beside(path)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
        os.chmod(temporary, 0o755 if executable else 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _temporary_beside(path: Path) -> tuple[int, str]:
    return tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=PARTIAL_SUFFIX
    )


_VERIFIED: dict[str, tuple[bytes, tuple[int, ...]]] = {}
"""Per path: the bytes it was last found to hold, read back, and its identity then. Kept for the
life of the process (pantsd's, across runs), so that a no-op checks a file with one `lstat`."""


def _identity(status: os.stat_result) -> tuple[int, ...]:
    # A write in place, a rename over the file or a chmod changes at least the ctime, which no
    # tool can set back.
    return (
        status.st_dev,
        status.st_ino,
        status.st_size,
        status.st_mode,
        status.st_mtime_ns,
        status.st_ctime_ns,
    )


def write_if_changed(path: Path, content: bytes, *, executable: bool = False) -> bool:
    """Write `path` by rename unless it is a regular file with these bytes and mode; whether it
    wrote. A directory or a link in its place is replaced. A file found to hold `content` is not
    read again while its identity (inode, size, mode, times) stays the same."""
    try:
        status: os.stat_result | None = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        # Absent, or a file stands where a directory of its path must be: the write names it.
        status = None
    if status is not None and stat.S_ISREG(status.st_mode):
        if bool(status.st_mode & 0o111) == executable:
            identity = _identity(status)
            known = _VERIFIED.get(str(path))
            if known is not None and known[1] == identity and known[0] == content:
                return False
            if path.read_bytes() == content:
                _VERIFIED[str(path)] = (content, identity)
                return False
    elif status is not None and stat.S_ISDIR(status.st_mode):
        shutil.rmtree(path)
    write_atomically(path, content, executable=executable)
    return True


def link_if_changed(path: Path, target: str) -> bool:
    """Make `path` a symbolic link to `target` unless it is one already; whether it changed it.
    What is in its place (e.g. a directory) is replaced; the new link appears by rename."""
    if path.is_symlink():
        if os.readlink(path) == target:
            return False
    elif path.is_dir():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.link{PARTIAL_SUFFIX}")
    temporary.unlink(missing_ok=True)
    os.symlink(target, temporary)
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return True


def remove_all_but(directory: Path, keep: Iterable[str]) -> list[Path]:
    """Delete the entries of `directory` not named in `keep` (files, links or directories), but
    not the temporary files of writers that still run; returns what it deleted."""
    kept = set(keep)
    removed: list[Path] = []
    if not directory.is_dir():
        return removed
    with os.scandir(directory) as entries:
        others = [
            (Path(entry.path), _writer(entry.name)) for entry in entries if entry.name not in kept
        ]
    for path, pid in sorted(others):
        if pid is not None and _running(pid):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def remove_abandoned_partials(
    directory: Path, *, of: str | None = None, live_pids: Iterable[int] | None = None
) -> list[Path]:
    """Delete the temporary files of writers that no longer run (killed mid-write), of the file
    named `of` or of any; returns them. A writer's pid is in its file's name; `live_pids` (for
    tests) defaults to asking the kernel."""
    removed: list[Path] = []
    if not directory.is_dir():
        return removed
    prefix = f".{of}." if of is not None else "."
    with os.scandir(directory) as entries:
        partials = [
            (Path(entry.path), _writer(entry.name))
            for entry in entries
            if entry.name.startswith(prefix)
        ]
    live = set(live_pids) if live_pids is not None else None
    for path, pid in partials:
        if pid is None or (pid in live if live is not None else _running(pid)):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _writer(name: str) -> int | None:
    """The pid in the name of a temporary file (`.<name>.<pid>.<random>.partial`), else None."""
    if not (name.startswith(".") and name.endswith(PARTIAL_SUFFIX)):
        return None
    parts = name[: -len(PARTIAL_SUFFIX)].rsplit(".", 2)
    if len(parts) != 3 or not parts[0][1:] or not parts[1].isdigit():
        return None
    return int(parts[1])


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
