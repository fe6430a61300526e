"""The append-only event journal, ``<logs.dir>/events.jsonl``.

One JSON object per line, written and flushed as it happens, so a crash of the
watchdog loses nothing already said. Readers read backwards from the end::

    >>> journal = EventLog(Path("logs/events.jsonl"))          # doctest: +SKIP
    >>> journal.write("spawn", framework="demo", run_id="…", pid=1234)
    >>> journal.tail(limit=5)                                  # newest first
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .logs import iter_lines_backward
from .private import opener

log = logging.getLogger(__name__)

# The journal rotates to events.jsonl.1 past this size; tail reads across both.
MAX_JOURNAL_BYTES = 20 * 1024 * 1024


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EventLog:
    """Thread-safe writer and backward reader of the journal.

    A write that fails (disk full, directory gone) never raises: supervision matters
    more than its diary. The failure is kept in :attr:`error` and the event is
    counted in :attr:`dropped`, so the status can say that logging is failing.
    """

    def __init__(self, path: Path, max_bytes: int = MAX_JOURNAL_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.error: str | None = None
        self.dropped = 0
        self._lock = threading.Lock()
        self._torn_checked = False
        # Told of every event after it is written (the notifier); each must return at
        # once and never raise into the writer.
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    def write(self, event: str, **fields: Any) -> dict[str, Any]:
        record: dict[str, Any] = {"ts": utc_now_iso(), "event": event}
        record.update({k: v for k, v in fields.items() if v is not None})
        line = json.dumps(record, default=str, ensure_ascii=False) + "\n"
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if not self._torn_checked:
                    # A crash mid-write can leave a last line without its newline; our
                    # first line must not be glued to it (and lost with it).
                    self._torn_checked = True
                    if self._ends_torn():
                        line = "\n" + line
                with open(self.path, "a", encoding="utf-8", opener=opener) as fh:
                    fh.write(line)
                    fh.flush()
                    size = fh.tell()
                if size > self.max_bytes:
                    os.replace(self.path, self._old_path)
                self.error = None
            except OSError as exc:
                self.dropped += 1
                self.error = f"cannot write {self.path}: {exc.strerror or exc}"
                log.error("event %s not journaled: %s", event, self.error)
        log.info("event %s", _summary(record))
        for listener in self.listeners:
            try:
                listener(record)
            except Exception:
                log.exception("an event listener failed on %s", event)
        return record

    def _ends_torn(self) -> bool:
        try:
            with open(self.path, "rb") as fh:
                if fh.seek(0, os.SEEK_END) == 0:
                    return False
                fh.seek(-1, os.SEEK_END)
                return fh.read(1) != b"\n"
        except FileNotFoundError:
            return False

    @property
    def _old_path(self) -> Path:
        return self.path.with_name(self.path.name + ".1")

    def tail(
        self,
        limit: int = 100,
        framework: str | None = None,
        run_id: str | None = None,
        event: str | None = None,
        slot: str | None = None,
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` events matching the filters, newest first.

        Lines that are not valid JSON objects (a torn write, a hand edit) are skipped.
        """
        out: list[dict[str, Any]] = []
        if limit <= 0:
            return out
        for part in (self.path, self._old_path):
            for raw in iter_lines_backward(part):
                try:
                    record = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(record, dict):
                    continue
                if framework is not None and record.get("framework") != framework:
                    continue
                if run_id is not None and record.get("run_id") != run_id:
                    continue
                if event is not None and record.get("event") != event:
                    continue
                if slot is not None and record.get("slot") != slot:
                    continue
                out.append(record)
                if len(out) >= limit:
                    return out
        return out


class SlotJournal:
    """One GPU slot's view of the shared journal: what it writes carries ``slot``,
    what it reads is its own. Same methods as :class:`EventLog`.

    >>> SlotJournal(log, "gpu1").write("spawn", framework="comfyui")["slot"]   # doctest: +SKIP
    'gpu1'
    """

    def __init__(self, log: EventLog, slot: str) -> None:
        self.log = log
        self.slot = slot

    @property
    def error(self) -> str | None:
        return self.log.error

    @property
    def listeners(self) -> list[Callable[[dict[str, Any]], None]]:
        return self.log.listeners

    def write(self, event: str, **fields: Any) -> dict[str, Any]:
        return self.log.write(event, slot=self.slot, **fields)

    def tail(self, limit: int = 100, **filters: Any) -> list[dict[str, Any]]:
        return self.log.tail(limit, **{**filters, "slot": self.slot})


Journal = EventLog | SlotJournal


def _summary(record: dict[str, Any]) -> str:
    keys = ("event", "framework", "run_id", "pid", "reason", "requested_by", "exit_code", "signal")
    return " ".join(f"{k}={record[k]}" for k in keys if k in record)
