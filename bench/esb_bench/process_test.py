"""Tests of the bench's command runner: a command that fails on the network is run again, one that
fails on its input is not, and nothing is retried for ever."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from esb_bench.process import ATTEMPTS, CommandFailed, timed_with_retries

UV_TIMEOUT = (
    "error: Failed to download `sqlalchemy==2.1.9`\n"
    "  Caused by: Failed to download distribution due to network timeout. "
    "Try increasing UV_HTTP_TIMEOUT (current value: 30s)."
)


def failing_until(tmp_path: Path, failures: int, message: str) -> tuple[list[str], dict[str, str]]:
    """A command, and its environment, that prints `message` and fails on its first `failures`
    runs, then succeeds."""
    counter = tmp_path / "runs"
    script = (
        f"runs=$(cat {counter} 2>/dev/null || echo 0); echo $((runs + 1)) > {counter}; "
        f'if [ "$runs" -lt {failures} ]; then printf "%s\\n" "$MESSAGE"; exit 1; fi; echo built'
    )
    return ["bash", "-c", script], {**os.environ, "MESSAGE": message}


def run_count(tmp_path: Path) -> int:
    return int((tmp_path / "runs").read_text())


def test_a_network_failure_is_run_again_and_its_log_kept(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    argv, env = failing_until(tmp_path, 1, UV_TIMEOUT)

    attempts = timed_with_retries(argv, cwd=tmp_path, env=env, log=log)

    assert run_count(tmp_path) == 2
    assert len(attempts.failed_seconds) == 1
    assert log.read_text() == "built\n"
    assert "network timeout" in (tmp_path / "build.failed-1.log").read_text()


def test_a_failure_of_the_input_is_not_run_again(tmp_path: Path) -> None:
    argv, env = failing_until(tmp_path, 1, "error: No solution found when resolving dependencies")

    with pytest.raises(CommandFailed, match="No solution found"):
        timed_with_retries(argv, cwd=tmp_path, env=env, log=tmp_path / "build.log")

    assert run_count(tmp_path) == 1


def test_a_network_that_keeps_failing_fails_the_run_after_the_last_attempt(tmp_path: Path) -> None:
    argv, env = failing_until(tmp_path, ATTEMPTS, UV_TIMEOUT)

    with pytest.raises(CommandFailed, match="network timeout"):
        timed_with_retries(argv, cwd=tmp_path, env=env, log=tmp_path / "build.log")

    assert run_count(tmp_path) == ATTEMPTS
    assert sorted(path.name for path in tmp_path.glob("build.failed-*.log")) == [
        f"build.failed-{n}.log" for n in range(1, ATTEMPTS)
    ]
