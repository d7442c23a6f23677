import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from esb_worker.stop import StopFlag
from esb_worker.worker import Settings, run


@pytest.fixture
def stop() -> Iterator[StopFlag]:
    with StopFlag() as flag:
        yield flag


def wait_for(path: Path, timeout_s: float = 5) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.01)


def test_settings_defaults() -> None:
    assert Settings.from_environment({}) == Settings(
        spool_dir=Path("/var/spool/esb"), poll_interval_s=1.0
    )


def test_settings_from_environment() -> None:
    settings = Settings.from_environment(
        {"ESB_SPOOL_DIR": "/srv/spool", "ESB_POLL_INTERVAL_S": "0.25"}
    )

    assert settings == Settings(spool_dir=Path("/srv/spool"), poll_interval_s=0.25)


@pytest.mark.parametrize("interval", ["soon", "0", "-1", "nan"])
def test_settings_refuse_a_bad_poll_interval(interval: str) -> None:
    with pytest.raises(ValueError, match="ESB_POLL_INTERVAL_S must be"):
        Settings.from_environment({"ESB_POLL_INTERVAL_S": interval})


def test_run_returns_at_once_when_already_stopped(
    tmp_path: Path, stop: StopFlag
) -> None:
    (tmp_path / "job.json").write_text('{"operation": "sum", "values": [1]}')
    stop.request("test")

    assert run(Settings(spool_dir=tmp_path, poll_interval_s=60), stop) == 0
    assert (tmp_path / "job.json").exists()


def test_run_creates_the_spool_and_processes_jobs_until_stopped(
    tmp_path: Path, stop: StopFlag
) -> None:
    spool_dir = tmp_path / "spool"
    processed: list[int] = []
    worker = threading.Thread(
        target=lambda: processed.append(
            run(Settings(spool_dir=spool_dir, poll_interval_s=0.01), stop)
        )
    )
    worker.start()
    try:
        wait_for(spool_dir)
        staged = tmp_path / "late.json"
        staged.write_text('{"operation": "word_count", "text": "a b"}')
        staged.rename(spool_dir / "late.json")
        wait_for(spool_dir / "late.done")
    finally:
        stop.request("test")
        worker.join(timeout=5)

    assert not worker.is_alive()
    assert processed == [1]
    assert json.loads((spool_dir / "late.done").read_text()) == {
        "job": "late",
        "result": 2,
    }


def test_run_wakes_from_its_poll_wait_when_stopped(
    tmp_path: Path, stop: StopFlag
) -> None:
    worker = threading.Thread(
        target=run, args=(Settings(spool_dir=tmp_path, poll_interval_s=60), stop)
    )
    worker.start()
    time.sleep(0.1)

    started = time.monotonic()
    stop.request("test")
    worker.join(timeout=5)

    assert not worker.is_alive()
    assert time.monotonic() - started < 1


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_module_exits_promptly_and_cleanly_on_signal(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    (tmp_path / "first.json").write_text('{"operation": "sum", "values": [1, 2]}')
    environ = {
        **os.environ,
        # The child must import what this process imports, also under a PEX.
        "PYTHONPATH": os.pathsep.join(sys.path),
        "ESB_SPOOL_DIR": str(tmp_path),
        "ESB_POLL_INTERVAL_S": "60",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "esb_worker"],
        env=environ,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None
    try:
        started_line, done_line = worker.stdout.readline(), worker.stdout.readline()

        started = time.monotonic()
        worker.send_signal(stop_signal)
        returncode = worker.wait(timeout=5)
        elapsed = time.monotonic() - started
        [stopped_line] = worker.stdout.read().splitlines()
    finally:
        worker.kill()
        worker.wait()
        worker.stdout.close()

    assert returncode == 0
    assert elapsed < 1
    assert json.loads(started_line)["event"] == "worker_started"
    assert json.loads(done_line) | {"timestamp": None} == {
        "event": "job_done",
        "job": "first",
        "level": "info",
        "timestamp": None,
    }
    assert json.loads(stopped_line) | {"timestamp": None} == {
        "event": "worker_stopped",
        "level": "info",
        "processed": 1,
        "reason": stop_signal.name,
        "timestamp": None,
    }
