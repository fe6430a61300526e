"""The latest view of a framework's queue, kept on disk beside the run's logs.

ComfyUI keeps its queue in memory only: a crash, an out-of-memory kill or a hang
restart loses the running prompt and every pending one. The busy probe already reads
``/queue``; :class:`QueueMemory` writes what it saw to ``runs/<run_id>.queue.json``
(0600, replaced atomically) whenever the set of prompts changes, so it outlives the
framework and a restart of the watchdog, and goes when the run's logs are pruned.

    >>> memory = QueueMemory(Path("logs/runs/r1.queue.json"), "r1")   # doctest: +SKIP
    >>> memory.seen(payload_of_get_queue)
    >>> remembered(Path("logs/runs/r1.queue.json"))
    [QueuedPrompt(number=3.0, prompt_id='p3', …, running=True), …]
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from ..frameworks.comfy_queue import QueuedPrompt, items_of
from .private import opener

log = logging.getLogger(__name__)

SUFFIX = ".queue.json"


def queue_path(runs_dir: Path, run_id: str) -> Path:
    return runs_dir / f"{run_id}{SUFFIX}"


class QueueMemory:
    """Fed each ``/queue`` answer by the run's prober thread; writes only changes."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        self.run_id = run_id
        self.error: str | None = None
        self._last: tuple[tuple[str, bool], ...] | None = None

    def seen(self, payload: Any) -> None:
        items = items_of(payload)
        key = tuple((i.prompt_id, i.running) for i in items)
        if key == self._last:
            return
        data = {"version": 1, "run_id": self.run_id, "taken_at": time.time(),
                "items": [i.to_dict() for i in items]}  # fmt: skip
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "w", encoding="utf-8", opener=opener) as fh:
                json.dump(data, fh)
            os.replace(tmp, self.path)
        except OSError as exc:  # a full disk: the queue is not remembered, nothing else
            self.error = f"cannot remember the queue in {self.path}: {exc.strerror or exc}"
            log.error("%s", self.error)
            return
        self._last, self.error = key, None


def remembered(path: Path) -> list[QueuedPrompt]:
    """The items last written to ``path``; none when it is missing or damaged."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [QueuedPrompt.from_dict(item) for item in data["items"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        if not isinstance(exc, FileNotFoundError):
            log.warning("remembered queue %s unreadable: %s", path, exc)
        return []
