"""Is a generation running, and is it moving? One parser per framework's busy endpoint.

Each parser turns the framework's own JSON into a :class:`Busy`: whether a job is in
progress, a fingerprint that changes while the job advances (so a long job is told
apart from a stuck one), and a short description for people::

    >>> parse_busy("automatic1111", {"progress": 0.25, "state": {"job_count": 1,
    ...     "sampling_step": 5, "sampling_steps": 20, "job_no": 0}}).detail
    'step 5/20 (25%)'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Busy:
    busy: bool
    fingerprint: str  # changes while a job makes progress
    detail: str
    # The framework's own queue, where it says (ComfyUI, InvokeAI): jobs in progress
    # and waiting. What a crash loses, or what InvokeAI resumes at its next start.
    running: int = 0
    pending: int = 0

    @property
    def queued(self) -> int:
        return self.running + self.pending


IDLE = Busy(False, "", "idle")


def _a1111(p: dict[str, Any]) -> Busy:
    # GET /sdapi/v1/progress?skip_current_image=true (A1111, Forge; needs --api)
    state = p.get("state") or {}
    jobs = int(state.get("job_count") or 0)
    if jobs <= 0:
        return IDLE
    step, steps = state.get("sampling_step"), state.get("sampling_steps")
    progress = float(p.get("progress") or 0.0)
    fingerprint = f"{state.get('job_no')}|{step}|{progress:.4f}|{state.get('job_timestamp')}"
    return Busy(True, fingerprint, f"step {step}/{steps} ({progress:.0%})")


def _comfyui(p: dict[str, Any]) -> Busy:
    # GET /queue: {"queue_running": [[number, prompt_id, …]], "queue_pending": [...]}
    running = p.get("queue_running") or []
    pending = len(p.get("queue_pending") or [])
    if not running:
        return Busy(False, "", "idle", pending=pending) if pending else IDLE
    ids = ",".join(str(item[1]) if len(item) > 1 else str(item) for item in running)
    detail = f"running {len(running)}, {pending} queued"
    return Busy(True, f"{ids}|{pending}", detail, len(running), pending)


def _invokeai(p: dict[str, Any]) -> Busy:
    # GET /api/v1/queue/default/status
    queue = p.get("queue") or {}
    processor = p.get("processor") or {}
    in_progress, pending = int(queue.get("in_progress") or 0), int(queue.get("pending") or 0)
    if not (processor.get("is_processing") or in_progress > 0):
        return Busy(False, "", "idle", pending=pending) if pending else IDLE
    fingerprint = f"{queue.get('item_id')}|{queue.get('completed')}|{pending}"
    return Busy(True, fingerprint, f"{pending} pending", in_progress, pending)


def _sdnext(p: dict[str, Any]) -> Busy:
    # GET /sdapi/v1/status: {"status": "idle" | …, "task": …, "step": …, "steps": …}
    status = str(p.get("status") or "idle")
    if status.lower() == "idle":
        return IDLE
    step, steps = p.get("step"), p.get("steps")
    fingerprint = f"{p.get('task')}|{step}|{p.get('progress')}"
    return Busy(True, fingerprint, f"{status} step {step}/{steps}")


PARSERS: dict[str, Callable[[dict[str, Any]], Busy]] = {
    "automatic1111": _a1111,
    "comfyui": _comfyui,
    "invokeai": _invokeai,
    "sdnext": _sdnext,
}


def parse_busy(kind: str, payload: Any) -> Busy:
    """ValueError for a payload that is not the shape this framework sends."""
    if not isinstance(payload, dict):
        raise ValueError(f"expected a JSON object from the {kind} busy endpoint")
    try:
        return PARSERS[kind](payload)
    except (TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ValueError(f"unexpected {kind} busy payload: {exc}") from None
