import threading
import time

from esb_worker.stop import StopFlag


def test_a_new_flag_is_not_requested_and_waits_out_its_timeout() -> None:
    with StopFlag() as stop:
        started = time.monotonic()

        assert stop.wait(0.05) is False
        assert time.monotonic() - started >= 0.05
        assert not stop.requested
        assert stop.reason is None


def test_request_from_another_thread_wakes_a_waiter_at_once() -> None:
    with StopFlag() as stop:
        threading.Timer(0.05, stop.request, args=("test",)).start()
        started = time.monotonic()

        assert stop.wait(30) is True
        assert time.monotonic() - started < 1


def test_the_first_reason_is_kept_and_the_flag_stays_set() -> None:
    with StopFlag() as stop:
        stop.request("SIGTERM")
        stop.request("SIGINT")

        assert stop.reason == "SIGTERM"
        assert stop.wait(30) is True
        assert stop.wait(30) is True
