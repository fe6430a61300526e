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
        # Keyed by slot too ("" without slots): one GPU's crash loop is not another's.
        self._restarts: Counter[tuple[str, str]] = Counter()
        self._crashes: Counter[tuple[str, str, str]] = Counter()

    def count(self, event: dict[str, Any]) -> None:
        kind, framework = event.get("event"), str(event.get("framework") or "")
        slot = str(event.get("slot") or "")
        with self._lock:
            if kind == "spawn" and event.get("requested_by") == "watch":
                self._restarts[(framework, slot)] += 1
            elif kind in FAILURES:
                self._crashes[(framework, cause_of(event), slot)] += 1

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """Rows name their ``slot`` only where there are slots."""
        with self._lock:
            restarts = [{"framework": f, "count": n, **_slot(s)}
                        for (f, s), n in self._restarts.items()]  # fmt: skip
            crashes = [{"framework": f, "cause": c, "count": n, **_slot(s)}
                       for (f, c, s), n in self._crashes.items()]  # fmt: skip
            return {"restarts": restarts, "crashes": crashes}


def _slot(slot: str) -> dict[str, str]:
    return {"slot": slot} if slot else {}
