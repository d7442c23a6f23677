"""Running the contenders' commands: timed, logged, and failing with the end of their log."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable


class BenchError(Exception):
    pass


def run(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode:
        raise BenchError(f"`{shlex.join(argv)}` failed ({result.returncode}):\n{result.stderr}")
    return result.stdout.strip()


def log_tail(log: Path) -> str:
    return "".join(log.read_text(errors="replace").splitlines(keepends=True)[-40:])


def timed(argv: list[str], *, cwd: Path, env: dict[str, str], log: Path) -> float:
    """Runs argv with its output in `log`; returns the wall-clock seconds it took."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        start = time.monotonic()
        status = subprocess.run(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        elapsed = time.monotonic() - start
    if status.returncode:
        raise BenchError(f"`{shlex.join(argv)}` failed ({status.returncode}):\n{log_tail(log)}")
    return elapsed


def wait_until(condition: Callable[[], bool], *, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)
