"""Submitting a lost queue again: after a crash, a hang or a limit restart of ComfyUI,
once the new run is ready, the prompts it had (remembered by ``queue_memory``) go back
in their order, with their prompt ids and their tabs' ``client_id``.

Skipped, each with a ``requeue_skipped`` event that says why: a prompt ``/history``
shows finished, and a prompt that was running at two unasked ends in a row (it may be
what kills the framework; it is set aside, not lost: its prompt stays in the event).
Runs on a worker thread; a framework that refuses a prompt is told in the journal,
never a reason to stop.

    >>> resubmit(Requeue("r2", "comfyui", "http://127.0.0.1:8188", "r1", True),
    ...          runs_dir, suspects_path, events)                    # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from ..core.messages import Requeue, RequeueDone
from ..frameworks.comfy_queue import QueuedPrompt, finished
from .events import Journal
from .private import opener
from .queue_memory import queue_path, remembered

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0
SET_ASIDE_AFTER = 2  # running at this many unasked ends in a row: set aside
SUSPECTS = "requeue-suspects.json"


def requeue_work(
    effect: Requeue,
    runs_dir: Path,
    suspects_path: Path,
    events: Journal,
    post: Callable[[RequeueDone], None],
) -> None:
    """What a worker thread does for ``Requeue``: submit, then tell the machine (also
    when something unforeseen broke it: the page must not wait for an answer)."""
    try:
        done = resubmit(effect, runs_dir, suspects_path, events)
    except Exception as exc:
        log.exception("requeue of run %s failed", effect.from_run)
        done = RequeueDone(
            effect.run_id, effect.from_run, error=f"{exc.__class__.__name__}: {exc}"[:300]
        )
    post(done)


def resubmit(effect: Requeue, runs_dir: Path, suspects_path: Path, events: Journal) -> RequeueDone:
    items = remembered(queue_path(runs_dir, effect.from_run))
    ids = {"framework": effect.framework, "run_id": effect.run_id, "from_run_id": effect.from_run}
    if not items:
        return RequeueDone(effect.run_id, effect.from_run)
    counts = _count_suspects(items, suspects_path) if effect.unasked else {}
    session = requests.Session()
    session.trust_env = False  # a cloud image's proxy must not sit before 127.0.0.1
    sent: list[str] = []
    skipped: list[tuple[str, str]] = []
    aside: list[str] = []
    try:
        for item in items:
            why, set_aside = _why_not(item, counts, effect.url, session), False
            if why is None:
                why = _post(session, effect.url, item)
            else:
                set_aside = item.running and "set aside" in why
            if why is None:
                sent.append(item.prompt_id)
                continue
            skipped.append((item.prompt_id, why))
            if set_aside:
                aside.append(item.prompt_id)
            events.write("requeue_skipped", **ids, prompt_id=item.prompt_id, reason=why,
                         prompt=item.prompt if set_aside else None)  # fmt: skip
    finally:
        session.close()
    if sent:
        why = f"{len(sent)} of {len(items)} prompts lost with run {effect.from_run}"
        events.write("requeued", **ids, count=len(sent), prompt_ids=sent, reason=why)
    return RequeueDone(effect.run_id, effect.from_run, tuple(sent), tuple(skipped), tuple(aside))


def _why_not(
    item: QueuedPrompt, counts: dict[str, int], url: str, session: requests.Session
) -> str | None:
    if item.running and counts.get(item.prompt_id, 0) >= SET_ASIDE_AFTER:
        return (f"it was running at {counts[item.prompt_id]} unasked ends in a row:"
                " set aside (it may be what ends the framework)")  # fmt: skip
    try:
        resp = session.get(f"{url}/history/{item.prompt_id}", timeout=TIMEOUT_S)
        if resp.status_code == 200 and finished(resp.json(), item.prompt_id):
            return "it finished already (in /history)"
    except (requests.RequestException, ValueError):
        pass  # no history to ask: submit it
    return None


def _post(session: requests.Session, url: str, item: QueuedPrompt) -> str | None:
    try:
        resp = session.post(f"{url}/prompt", json=item.resubmit_body(), timeout=TIMEOUT_S)
    except requests.RequestException as exc:
        return f"POST /prompt failed: {exc.__class__.__name__}"
    if resp.status_code >= 400:
        return f"POST /prompt answered HTTP {resp.status_code}: {resp.text[:200]}"
    return None


def _count_suspects(items: list[QueuedPrompt], path: Path) -> dict[str, int]:
    """How many unasked ends in a row each running prompt was running at; only this
    end's running prompts are kept, so a prompt that ran through resets its count."""
    try:
        before: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        before = {}
    before = before if isinstance(before, dict) else {}
    counts = {i.prompt_id: int(before.get(i.prompt_id, 0)) + 1 for i in items if i.running}
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8", opener=opener) as fh:
            json.dump(counts, fh)
        os.replace(tmp, path)
    except OSError as exc:
        log.error("cannot keep the requeue counts in %s: %s", path, exc)
    return counts
