"""ComfyUI's prompt queue, read from ``GET /queue`` and written back to ``POST /prompt``.

Pure: JSON in, values out. An item of ``/queue`` is ``[number, prompt_id, prompt,
extra_data, outputs_to_execute]`` (``extra_data`` holds the browser tab's
``client_id``); ComfyUI honours a ``prompt_id`` given to ``POST /prompt``, so a prompt
submitted again keeps its id, and a tab that reconnects with its ``client_id`` sees
its results.

    >>> items = items_of({"queue_running": [[3, "p3", {"1": {}}, {"client_id": "tab"}, ["9"]]],
    ...                   "queue_pending": [[4, "p4", {"1": {}}, {}, ["9"]]]})
    >>> [(i.prompt_id, i.running) for i in items]
    [('p3', True), ('p4', False)]
    >>> items[0].resubmit_body()["client_id"]
    'tab'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class QueuedPrompt:
    number: float
    prompt_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any] = field(default_factory=dict)
    outputs: list[Any] = field(default_factory=list)
    running: bool = False

    def resubmit_body(self) -> dict[str, Any]:
        """The ``POST /prompt`` body that queues it again, under the same id."""
        body: dict[str, Any] = {
            "prompt": self.prompt,
            "prompt_id": self.prompt_id,
            "extra_data": self.extra_data,
        }
        if self.extra_data.get("client_id"):
            body["client_id"] = self.extra_data["client_id"]
        return body

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QueuedPrompt:
        return cls(
            float(data["number"]), str(data["prompt_id"]), dict(data["prompt"]),
            dict(data.get("extra_data") or {}), list(data.get("outputs") or []),
            bool(data.get("running")),
        )  # fmt: skip


def _item(raw: Any, running: bool) -> QueuedPrompt | None:
    if not isinstance(raw, list) or len(raw) < 3 or not isinstance(raw[2], dict):
        return None
    number = raw[0] if isinstance(raw[0], (int, float)) else 0
    extra = raw[3] if len(raw) > 3 and isinstance(raw[3], dict) else {}
    outputs = raw[4] if len(raw) > 4 and isinstance(raw[4], list) else []
    return QueuedPrompt(float(number), str(raw[1]), raw[2], extra, outputs, running)


def items_of(payload: Any) -> list[QueuedPrompt]:
    """Running items first, then pending ones in the order ComfyUI will run them;
    malformed entries are left out."""
    if not isinstance(payload, dict):
        return []
    running = [_item(r, True) for r in payload.get("queue_running") or []]
    pending = [_item(p, False) for p in payload.get("queue_pending") or []]
    ordered = sorted((p for p in pending if p is not None), key=lambda p: p.number)
    return [r for r in running if r is not None] + ordered


def finished(history: Any, prompt_id: str) -> bool:
    """``GET /history/<id>`` names the prompt: it ran to an end (or an error) already."""
    return isinstance(history, dict) and prompt_id in history
