"""What the journal has said since the core started, counted for ``/metrics``.

A listener of the journal: each event adds one to a small table, so a scrape reads
numbers, never the journal file. Labels stay few: a crash is counted by its cause's
kind (``oom``, ``SIGSEGV``, ``exit``, ``hang``…), never by its text.

    >>> c = Counters(); c.count({"event": "crash", "framework": "a", "signal": "SIGSEGV"})
    >>> c.snapshot()["crashes"]
    [{'framework': 'a', 'cause': 'SIGSEGV', 'count': 1}]
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

# Failures counted as crashes, with the cause they stand for.
FAILURES = {"crash": None, "hang": "hang", "stalled": "stalled", "startup_timeout": "startup"}


def cause_of(event: dict[str, Any]) -> str:
    """A crash's cause as a label: few values whatever the framework printed."""
    kind = FAILURES.get(str(event.get("event")))
    if kind is not None:
        return kind
    if "out of memory" in str(event.get("reason", "")):
        return "oom"
    if event.get("signal"):
        return str(event["signal"])[:12]
    return "exit"


class Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._restarts: Counter[str] = Counter()
        self._crashes: Counter[tuple[str, str]] = Counter()

    def count(self, event: dict[str, Any]) -> None:
        kind, framework = event.get("event"), str(event.get("framework") or "")
        with self._lock:
            if kind == "spawn" and event.get("requested_by") == "watch":
                self._restarts[framework] += 1
            elif kind in FAILURES:
                self._crashes[(framework, cause_of(event))] += 1

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            return {
                "restarts": [{"framework": f, "count": n} for f, n in self._restarts.items()],
                "crashes": [
                    {"framework": f, "cause": c, "count": n} for (f, c), n in self._crashes.items()
                ],
            }
