"""ComfyUI's prompt queue, as the demo impersonates it (``--impersonate comfyui``).

The HTTP shapes of ComfyUI's ``server.py``: ``POST /prompt`` (``prompt``, optional
``prompt_id``, ``number``, ``client_id``, ``extra_data``; the answer ``{"prompt_id",
"number", "node_errors"}``), ``GET /queue`` (``queue_running`` / ``queue_pending``
items ``[number, prompt_id, prompt, extra_data, outputs_to_execute]``), ``GET
/history`` and ``/history/<prompt_id>``, ``POST /interrupt``, ``POST /queue``
(``{"clear": true}`` empties the pending ones, ``{"delete": [ids]}``). One prompt runs at a
time for ``seconds`` each, in ``number`` order; like ComfyUI, the queue lives in
memory only, so a crash loses it.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

Item = list[Any]  # [number, prompt_id, prompt, extra_data, outputs_to_execute]


class PromptQueue:
    def __init__(self, seconds: float = 2.0) -> None:
        self.seconds = seconds
        self.lock = threading.Lock()
        self.pending: list[Item] = []
        self.running: Item | None = None
        self.history: dict[str, dict[str, Any]] = {}
        self.number = 0
        self._wake = threading.Event()
        self._cut = threading.Event()
        self.routes: dict[tuple[str, str], Callable[[Any], tuple[int, dict[str, Any]]]] = {
            ("POST", "/prompt"): self.submit,
            ("POST", "/queue"): self.manage,
        }
        threading.Thread(target=self._work, name="prompt-worker", daemon=True).start()

    def submit(self, body: Any) -> tuple[int, dict[str, Any]]:
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), dict):
            return 400, {"error": {"type": "no_prompt", "message": "No prompt provided"},
                         "node_errors": {}}  # fmt: skip
        prompt_id = str(body.get("prompt_id") or uuid.uuid4())
        extra = dict(body.get("extra_data") or {})
        if "client_id" in body:
            extra["client_id"] = body["client_id"]
        with self.lock:
            number = body["number"] if isinstance(body.get("number"), (int, float)) else None
            if number is None:
                number = self.number
            self.number = max(self.number, int(number)) + 1
            self.pending.append([number, prompt_id, body["prompt"], extra, []])
            self.pending.sort(key=lambda item: item[0])
        self._wake.set()
        print(f"demo: got prompt {prompt_id}", flush=True)
        return 200, {"prompt_id": prompt_id, "number": number, "node_errors": {}}

    def manage(self, body: Any) -> tuple[int, dict[str, Any]]:
        """ComfyUI's ``POST /queue``: the running prompt is left to ``/interrupt``."""
        if isinstance(body, dict):
            with self.lock:
                if body.get("clear"):
                    self.pending = []
                gone = body.get("delete")
                if isinstance(gone, list):
                    self.pending = [i for i in self.pending if i[1] not in gone]
            print(f"demo: queue changed ({body!r:.80})", flush=True)
        return 200, {}

    def queue(self) -> dict[str, list[Item]]:
        with self.lock:
            running = [self.running] if self.running is not None else []
            return {"queue_running": running, "queue_pending": list(self.pending)}

    def history_of(self, prompt_id: str | None = None) -> dict[str, Any]:
        with self.lock:
            if prompt_id is None:
                return dict(self.history)
            found = self.history.get(prompt_id)
            return {prompt_id: found} if found is not None else {}

    def interrupt(self) -> None:
        self._cut.set()

    def _work(self) -> None:
        while True:
            with self.lock:
                item = self.pending.pop(0) if self.pending else None
                self.running = item
            if item is None:
                self._wake.wait()
                self._wake.clear()
                continue
            self._cut.clear()
            print(f"demo: running prompt {item[1]}", flush=True)
            cut = self._cut.wait(self.seconds)
            with self.lock:
                self.running = None
                self.history[item[1]] = {
                    "prompt": item,
                    "outputs": {},
                    "status": {"status_str": "error" if cut else "success",
                               "completed": not cut, "messages": []},
                }  # fmt: skip
            print(f"demo: prompt {item[1]} {'interrupted' if cut else 'done'}", flush=True)
