"""Run the worker: `python -m esb_worker`."""

import logging
import os
import sys

import structlog

from esb_worker.stop import StopFlag, stop_on_signals
from esb_worker.worker import Settings, run


def configure_logging() -> None:
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )


def main() -> None:
    configure_logging()
    try:
        settings = Settings.from_environment(os.environ)
    except ValueError as error:
        raise SystemExit(f"esb_worker: {error}") from None
    with StopFlag() as stop:
        stop_on_signals(stop)
        run(settings, stop)


if __name__ == "__main__":
    main()
