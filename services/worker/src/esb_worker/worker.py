"""The polling loop and its configuration."""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

from esb_worker.jobs import pending_jobs, process
from esb_worker.stop import StopFlag

log = structlog.get_logger("esb_worker")

DEFAULT_SPOOL_DIR = Path("/var/spool/esb")
DEFAULT_POLL_INTERVAL_S = 1.0


@dataclass(frozen=True)
class Settings:
    spool_dir: Path = DEFAULT_SPOOL_DIR
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> "Settings":
        interval = environ.get("ESB_POLL_INTERVAL_S", "")
        try:
            poll_interval_s = float(interval) if interval else DEFAULT_POLL_INTERVAL_S
        except ValueError:
            raise ValueError(
                f"ESB_POLL_INTERVAL_S must be a number, got {interval!r}"
            ) from None
        if not poll_interval_s > 0:
            raise ValueError(f"ESB_POLL_INTERVAL_S must be positive, got {interval!r}")
        return cls(
            spool_dir=Path(environ.get("ESB_SPOOL_DIR") or DEFAULT_SPOOL_DIR),
            poll_interval_s=poll_interval_s,
        )


def run(settings: Settings, stop: StopFlag) -> int:
    """Process jobs until a stop is requested; return how many were processed.

    A stop request is honoured between jobs and cuts short the wait between polls.
    """
    settings.spool_dir.mkdir(parents=True, exist_ok=True)
    log.info(
        "worker_started",
        spool_dir=str(settings.spool_dir),
        poll_interval_s=settings.poll_interval_s,
    )
    processed = 0
    while not stop.requested:
        for job_path in pending_jobs(settings.spool_dir):
            if stop.requested:
                break
            try:
                outcome = process(job_path)
            except OSError as error:
                log.error("job_io_error", job=job_path.name, error=str(error))
                continue
            processed += 1
            if outcome.succeeded:
                log.info("job_done", job=outcome.job)
            else:
                log.warning("job_failed", job=outcome.job, error=outcome.error)
        stop.wait(settings.poll_interval_s)
    log.info("worker_stopped", reason=stop.reason, processed=processed)
    return processed
