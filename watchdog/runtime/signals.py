"""Signals to callbacks, whichever thread the kernel hands them to.

A Python signal handler runs in the main thread, and only once the main thread
executes bytecode again. The kernel delivers a process-directed signal to *any*
thread that does not block it, so when it picks a waiter or probe thread, a main
thread asleep in ``Event.wait`` never learns of it: a SIGTERM is ignored for an hour,
or a SIGCHLD for an exited orphan is lost and it stays a zombie (seen as PID 1 of a
container, about one run in eight under load).

The C-level handler, though, always writes the signal's number to the wakeup fd,
from whichever thread it ran in. One thread reads that pipe and calls the route.

    routes = SignalRoutes({signal.SIGTERM: lambda _sig: done.set()})
    routes.start()   # from the main thread, before other threads start
    ...
    routes.stop()
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


def _ignore(_signum: int, _frame: object) -> None:
    """Installed so the C handler (and its wakeup-fd write) exists; the work is done
    by the reading thread."""


class SignalRoutes:
    def __init__(self, routes: Mapping[int, Callable[[int], None]]) -> None:
        self._routes = dict(routes)
        self._read = self._write = -1
        self._previous_fd = -1
        self._previous: dict[int, object] = {}
        self._thread = threading.Thread(target=self._loop, name="signals", daemon=True)

    def start(self) -> None:
        """Must run in the main thread (``signal.set_wakeup_fd`` says so)."""
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)  # the C handler must never block
        # Bytes dropped from a full pipe are harmless: the reader is already awake.
        self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        for signum in self._routes:
            self._previous[signum] = signal.signal(signum, _ignore)
        self._thread.start()

    def stop(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        signal.set_wakeup_fd(self._previous_fd)
        os.close(self._write)  # the reader sees end-of-file and returns
        self._thread.join(timeout=2)
        os.close(self._read)

    def _loop(self) -> None:
        while True:
            try:
                data = os.read(self._read, 64)
            except InterruptedError:
                continue
            except OSError:
                return
            if not data:
                return
            for signum in data:
                route = self._routes.get(signum)
                if route is None:
                    continue
                try:
                    route(signum)
                except Exception:  # a failing route must not end signal handling
                    log.exception("handling signal %d failed", signum)
