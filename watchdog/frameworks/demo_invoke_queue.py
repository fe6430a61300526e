"""InvokeAI's session queue, as the demo impersonates it (``--impersonate invokeai
--queue-db FILE``).

Like InvokeAI, the queue lives in a database (here a JSON file) and survives the
process: at start, an item that was in progress is marked cancelled, and the pending
ones run again. The HTTP shapes of InvokeAI's ``session_queue`` router: ``POST
/api/v1/queue/default/enqueue_batch`` (``{"batch": {"runs": N}}`` → ``enqueued``,
``item_ids``), ``GET …/status`` (``queue``: ``pending``, ``in_progress``, ``completed``,
``canceled``, ``item_id``; ``processor``: ``is_processing``), ``PUT …/clear``
(``{"deleted": N}``). One item runs at a time for ``seconds``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

BASE = "/api/v1/queue/default"
MAX_RUNS = 100
STATUSES = ("pending", "in_progress", "completed", "failed", "canceled")


class SessionQueue:
    def __init__(self, path: Path, seconds: float = 2.0) -> None:
        self.path, self.seconds = path, seconds
        self.lock = threading.Lock()
        self.items: list[dict[str, Any]] = self._load()
        for item in self.items:  # InvokeAI's _set_in_progress_to_canceled, at start
            if item["status"] == "in_progress":
                item["status"] = "canceled"
        self._save()
        self._wake, self._cut = threading.Event(), threading.Event()
        self.routes: dict[tuple[str, str], Callable[[Any], tuple[int, dict[str, Any]]]] = {
            ("POST", f"{BASE}/enqueue_batch"): self.enqueue,
            ("PUT", f"{BASE}/clear"): self.clear,
        }
        threading.Thread(target=self._work, name="session-worker", daemon=True).start()

    def enqueue(self, body: Any) -> tuple[int, dict[str, Any]]:
        batch = body.get("batch") if isinstance(body, dict) else None
        if not isinstance(batch, dict):
            return 422, {"detail": "batch: field required"}
        runs = batch.get("runs", 1)
        runs = min(max(int(runs), 1), MAX_RUNS) if isinstance(runs, int) else 1
        with self.lock:
            first = max((i["item_id"] for i in self.items), default=0) + 1
            new = [{"item_id": first + n, "status": "pending"} for n in range(runs)]
            self.items.extend(new)
            self._save()
        self._wake.set()
        ids = [i["item_id"] for i in new]
        return 200, {"queue_id": "default", "enqueued": runs, "requested": runs, "item_ids": ids}

    def clear(self, _body: Any = None) -> tuple[int, dict[str, Any]]:
        with self.lock:
            deleted = len(self.items)
            self.items = []
            self._save()
        self._cut.set()
        print(f"demo: queue cleared ({deleted} deleted)", flush=True)
        return 200, {"deleted": deleted}

    def status(self) -> dict[str, Any]:
        with self.lock:
            count = {s: sum(i["status"] == s for i in self.items) for s in STATUSES}
            current = next((i["item_id"] for i in self.items if i["status"] == "in_progress"), None)
        queue = {"queue_id": "default", "item_id": current, **count, "total": len(self.items)}
        return {"queue": queue, "processor": {"is_started": True, "is_processing": bool(current)}}

    def _load(self) -> list[dict[str, Any]]:
        try:
            items = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []

    def _save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.items), encoding="utf-8")
        os.replace(tmp, self.path)

    def _set(self, item: dict[str, Any], status: str) -> None:
        with self.lock:
            if any(i is item for i in self.items):  # not cleared meanwhile
                item["status"] = status
                self._save()

    def _work(self) -> None:
        while True:
            with self.lock:
                item = next((i for i in self.items if i["status"] == "pending"), None)
            if item is None:
                self._wake.wait()
                self._wake.clear()
                continue
            self._cut.clear()
            self._set(item, "in_progress")
            print(f"demo: running queue item {item['item_id']}", flush=True)
            cut = self._cut.wait(self.seconds)
            self._set(item, "canceled" if cut else "completed")
