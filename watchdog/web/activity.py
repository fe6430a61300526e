"""Door requests, told to the core as "in use" for the idle policy.

A request through the door is use; the core must hear of it, but not of every one
(a page load is dozens of requests): at most one report per ``interval_s``, sent by a
thread of its own so that no request ever waits on the core. A request to a sleeping
framework is told at once: that report is what wakes it.

Only requests that passed the gate reach the door, so a stranger can neither keep a
framework awake nor wake one.

    >>> reporter = ActivityReporter(core.activity)                  # doctest: +SKIP
    >>> reporter.seen()             # first request: reported
    >>> reporter.seen()             # within the interval: nothing sent
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..control.api import Refused

log = logging.getLogger(__name__)

INTERVAL_S = 30.0
# The shortest interval, for a policy of a minute or less (tests, impatient people).
MIN_INTERVAL_S = 1.0
# A crowd at a sleeping framework's door wakes it with a few reports, not hundreds.
URGENT_GAP_S = 0.5


def interval_for(after_s: float | None) -> float:
    """A tenth of the idle time, from 1 s to 30 s: a report is never the reason it sleeps."""
    if not after_s:
        return INTERVAL_S
    return max(MIN_INTERVAL_S, min(INTERVAL_S, after_s / 10))


class ActivityReporter:
    def __init__(self, report: Callable[[], object]) -> None:
        self._report = report
        self.interval_s = INTERVAL_S
        self.sent = 0
        self._last = float("-inf")  # when the last report was asked for
        self._due = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def seen(self, urgent: bool = False, after_s: float | None = None) -> None:
        """One request through the door; ``urgent``: the framework sleeps."""
        self.interval_s = interval_for(after_s)
        now = time.monotonic()
        gap = URGENT_GAP_S if urgent else self.interval_s
        if now - self._last < gap or self._due.is_set():
            return  # the hot path: one subtraction per request
        self._last = now
        self._due.set()
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._loop, name="door-activity", daemon=True
                    )
                    self._thread.start()

    def _loop(self) -> None:
        while True:
            self._due.wait()
            self._due.clear()
            try:
                self._report()
                self.sent += 1
            except Refused as exc:  # the core is restarting: the next request tells it
                log.warning("could not report door activity: %s", exc)
