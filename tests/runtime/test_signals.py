"""Signals reach their route whichever thread the kernel delivers them to."""

from __future__ import annotations

import signal
import threading

from watchdog.runtime.signals import SignalRoutes


def test_a_signal_delivered_to_another_thread_still_wakes_its_route():
    got: list[int] = []
    routed = threading.Event()
    routes = SignalRoutes({signal.SIGUSR1: lambda signum: (got.append(signum), routed.set())})
    before = signal.getsignal(signal.SIGUSR1)
    routes.start()
    try:
        # Sent to a worker thread, as the kernel may do with a process-directed
        # signal: a Python handler would wait for the main thread to run bytecode,
        # and the main thread is asleep in wait().
        def send_from_worker() -> None:
            threading.Event().wait(0.3)  # the main thread is in wait() by now
            signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)

        worker = threading.Thread(target=send_from_worker)
        worker.start()
        assert routed.wait(10), "the route ran while the main thread slept"
        worker.join()
        assert got == [signal.SIGUSR1]
    finally:
        routes.stop()
    assert signal.getsignal(signal.SIGUSR1) is before, "the old handler is back"


def test_a_failing_route_does_not_end_signal_handling():
    calls: list[int] = []
    second = threading.Event()

    def flaky(signum: int) -> None:
        calls.append(signum)
        if len(calls) == 1:
            raise RuntimeError("first call fails")
        second.set()

    routes = SignalRoutes({signal.SIGUSR2: flaky})
    routes.start()
    try:
        signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR2)
        threading.Event().wait(0.2)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR2)
        assert second.wait(10)
    finally:
        routes.stop()
