"""Running the contenders' commands: timed, logged, and failing with the end of their log."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, cast

# What uv (and Pants' downloader) print when a download failed on the network rather than on its
# input. The Docker contenders download every wheel once per service: at N = 100 that is thousands
# of downloads, and one timeout among them says nothing about a contender's speed.
TRANSIENT_NETWORK_FAILURE = re.compile(
    r"network timeout|error sending request|connection (?:reset|closed)|tcp connect error|dns error"
    r"|operation timed out|temporary failure in name resolution",
    re.IGNORECASE,
)
ATTEMPTS = 3


class BenchError(Exception):
    pass


class CommandFailed(BenchError):
    def __init__(self, message: str, seconds: float):
        super().__init__(message)
        self.seconds = seconds


@dataclass(frozen=True)
class Attempts:
    seconds: float
    """Of the attempt that succeeded."""
    failed_seconds: tuple[float, ...] = ()
    """Of each attempt before it, which failed on the network."""


def run(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode:
        raise BenchError(f"`{shlex.join(argv)}` failed ({result.returncode}):\n{result.stderr}")
    return result.stdout.strip()


def log_tail(log: Path) -> str:
    return "".join(log.read_text(errors="replace").splitlines(keepends=True)[-40:])


def timed(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    log: Path,
    feed: Callable[[BinaryIO], None] | None = None,
) -> float:
    """Runs argv with its output in `log`, and `feed` writing its standard input when given;
    returns the wall-clock seconds it took, feeding included."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        start = time.monotonic()
        stdin = subprocess.PIPE if feed else None
        # Unbuffered: closing the pipe of a command that stopped reading cannot fail then.
        with subprocess.Popen(
            argv, bufsize=0, cwd=cwd, env=env, stdin=stdin, stdout=out, stderr=subprocess.STDOUT
        ) as process:
            if feed and process.stdin:
                try:
                    # With bufsize=0 the pipe is a raw binary file, which typeshed types as IO.
                    feed(cast(BinaryIO, process.stdin))
                except BrokenPipeError:
                    pass  # the command stopped reading: its status and log say why
                process.stdin.close()
        elapsed = time.monotonic() - start
    if process.returncode:
        raise CommandFailed(
            f"`{shlex.join(argv)}` failed ({process.returncode}):\n{log_tail(log)}", elapsed
        )
    return elapsed


def timed_with_retries(argv: list[str], *, cwd: Path, env: dict[str, str], log: Path) -> Attempts:
    """`timed`, run again (up to ATTEMPTS in all) when it fails on the network; each failed
    attempt's log is kept beside `log` as `<stem>.failed-<n><suffix>`."""
    failed: list[float] = []
    while True:
        try:
            return Attempts(timed(argv, cwd=cwd, env=env, log=log), tuple(failed))
        except CommandFailed as error:
            transient = TRANSIENT_NETWORK_FAILURE.search(log.read_text(errors="replace"))
            if not transient or len(failed) + 1 >= ATTEMPTS:
                raise
            failed.append(error.seconds)
            kept = log.with_name(f"{log.stem}.failed-{len(failed)}{log.suffix}")
            log.rename(kept)
            progress(
                f"`{shlex.join(argv[:3])} …` failed on the network ({transient.group(0)}); again (log: {kept})"
            )


def settle() -> None:
    """Writes back every dirty page, untimed: a timed run must not pay for the writeback of the
    bench's own copying or of the build before it, which can delay pantsd's start past Pants'
    own start-up limit."""
    os.sync()


def stop_process(process: subprocess.Popen, *, seconds: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `seconds`; returns once it has exited."""
    process.terminate()
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_until(condition: Callable[[], bool], *, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)
