"""A stop request that signal handlers and other threads can raise."""

import os
import select
import signal
from types import TracebackType


class StopFlag:
    """Set once, never cleared; `wait` wakes as soon as it is set.

    Not a threading.Event: a signal handler runs in the main thread between two
    bytecodes, possibly while that thread holds the Event's lock inside `wait`, and
    setting the Event there would deadlock. A pipe has no lock: `request` writes one
    byte, which leaves the read end readable for good, and `wait` selects on it.
    """

    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe()
        self.reason: str | None = None

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            os.write(self._write_fd, b"\0")

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def wait(self, timeout_s: float) -> bool:
        """Sleep up to `timeout_s` or until a stop is requested; return if one is."""
        if not self.requested:
            select.select([self._read_fd], [], [], timeout_s)
        return self.requested

    def close(self) -> None:
        os.close(self._read_fd)
        os.close(self._write_fd)

    def __enter__(self) -> "StopFlag":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def stop_on_signals(stop: StopFlag) -> None:
    """Request a stop on SIGTERM or SIGINT.

    As PID 1 in a container the process has no default action for SIGTERM, so
    without a handler `docker stop` would wait out its timeout and then kill.
    """

    def request_stop(signum: int, frame: object) -> None:
        stop.request(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
