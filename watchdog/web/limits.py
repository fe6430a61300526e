"""How much a stranger gets: credential checks per client, and journal lines per flood.

:class:`AttemptLimiter` is counted *before* a password is hashed: a slot is taken on
arrival, so 41 passwords sent at once get ``max_attempts`` checks, not 41, and a
failed check keeps its slot for the window. A success gives the client's slots back.

:class:`RefusalJournal` writes the first refusal of a client in a window at once and
only a count of the rest when the window closes, for at most ``max_clients`` clients
a window (the others as one line): 10,000 refused requests a minute are a handful
of journal lines, never enough to push real history out.

    >>> limiter = AttemptLimiter(max_attempts=5, window_s=60)
    >>> [limiter.reserve("10.0.0.9") for _ in range(6)][-1] > 0    # the 6th waits
    True
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

MAX_TRACKED = 10_000  # clients remembered at once; the oldest go first


class AttemptLimiter:
    def __init__(
        self, max_attempts: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_attempts = max_attempts
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._attempts: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._attempts.get(key)
        if times is None:
            times = self._attempts[key] = deque()
            while len(self._attempts) > MAX_TRACKED:
                self._attempts.popitem(last=False)
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def reserve(self, key: str) -> float:
        """0 when a check may run now (and is counted); else seconds until one may."""
        with self._lock:
            now = self._clock()
            times = self._recent(key, now)
            if len(times) >= self.max_attempts:
                return times[0] + self.window_s - now
            times.append(now)
            self._attempts.move_to_end(key)
            return 0.0

    def blocked_for(self, key: str) -> float:
        """Seconds left of a lockout (0 when a check may run), without taking a slot."""
        with self._lock:
            if key not in self._attempts:
                return 0.0
            now = self._clock()
            times = self._recent(key, now)
            return times[0] + self.window_s - now if len(times) >= self.max_attempts else 0.0

    def used(self, key: str) -> int:
        with self._lock:
            return len(self._recent(key, self._clock())) if key in self._attempts else 0

    def clear(self, key: str) -> None:
        with self._lock:
            self._attempts.pop(key, None)


class RefusalJournal:
    """Coalesces refusals into ``write(event, **fields)`` calls (see module doc)."""

    def __init__(
        self,
        write: Callable[..., None],
        window_s: float = 60.0,
        max_clients: int = 20,
        event: str = "auth_failed",
    ) -> None:
        self._write = write
        self.window_s = window_s
        self.max_clients = max_clients
        self.event = event
        self._lock = threading.Lock()
        self._window_start = time.monotonic()
        self._seen: dict[tuple[str, str], dict[str, Any]] = {}
        self._others = 0
        self._timer: threading.Timer | None = None

    def note(self, client: str, reason: str, **fields: Any) -> None:
        """One refusal of ``client`` for ``reason`` (``wrong password``, ``bad host``…)."""
        first = False
        with self._lock:
            self._roll()
            key = (client, reason)
            entry = self._seen.get(key)
            if entry is not None:
                entry["count"] += 1
                entry["fields"] = fields  # the summary tells how it stood at the end
            elif len(self._seen) < self.max_clients:
                self._seen[key] = {"count": 0, "fields": fields}
                first = True
            else:
                self._others += 1
            self._arm()
        if first:
            self._write(self.event, client=client, reason=reason, **fields)

    def _roll(self) -> None:
        if time.monotonic() - self._window_start >= self.window_s:
            self._flush_locked()

    def _arm(self) -> None:
        if self._timer is None and (self._others or any(e["count"] for e in self._seen.values())):
            left = max(0.05, self._window_start + self.window_s - time.monotonic())
            self._timer = threading.Timer(left, self.flush)
            self._timer.daemon = True
            self._timer.start()

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        lines = [
            (client, reason, entry["count"], entry["fields"])
            for (client, reason), entry in self._seen.items()
            if entry["count"]
        ]
        others = self._others
        self._seen, self._others = {}, 0
        self._window_start = time.monotonic()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        window = round(self.window_s)
        for client, reason, count, fields in lines:
            self._write(
                self.event, client=client, reason=reason, count=count, window_s=window, **fields
            )
        if others:
            self._write(self.event, client="(other clients)", count=others, window_s=window)
