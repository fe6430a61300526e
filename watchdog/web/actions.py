"""What the page says about the action a person asked for, until it is over.

A button's command is answered at once (accepted, refused, or nothing to do); the
work goes on in the core. Each refresh compares the page's pending action with the
status and says how it went: "Restarting demo… (stopping)", then "✓ demo is
running again", which stays a few seconds and then clears.

    >>> p = pending_after("restart", "demo", {"run_id": "r1", "framework": "demo"}, now=0)
    >>> progress(p, {"framework": "demo", "state": "RUNNING", "run_id": "r2"}, now=1)[0]
    '✓ **demo** is running again'
"""

from __future__ import annotations

from typing import Any

SHOW_DONE_S = 10.0  # how long the outcome stays before the message clears
Pending = dict[str, Any]  # kept in a gr.State: plain data, copied per session

VERB = {"switch": "Switching to", "start": "Starting", "restart": "Restarting", "stop": "Stopping"}


def pending_after(kind: str, framework: str, before: dict[str, Any], now: float) -> Pending:
    """The action the page now waits for; ``before``: the status when it was asked."""
    return {
        "kind": kind,
        "framework": framework,
        "before_run": before.get("run_id"),
        "at": now,
        "done_at": None,
        "said": "",
    }


def said_now(message: str, now: float) -> Pending:
    """A message with nothing to wait for (refused, or nothing to do): shown a while."""
    return {"kind": None, "framework": "", "before_run": None, "at": now, "done_at": now,
            "said": message}  # fmt: skip


def after_answer(
    kind: str, name: str | None, before: dict[str, Any], answer: dict[str, Any], now: float
) -> Pending:
    """What to wait for once the core accepted ``kind`` (``answer``: the status it
    replied with; its ``note`` says the command changed nothing)."""
    if answer.get("note"):
        note = str(answer["note"])
        return said_now(f"Nothing to do: {note}", now)
    if kind == "keep_awake":  # done when answered: the idle clock started over
        return said_now("✓ Kept awake: the idle clock starts over", now)
    target = name if kind in ("switch", "start") and name else before.get("framework", "")
    return pending_after(kind, str(target), before, now)


def progress(
    pending: Pending | None, info: dict[str, Any], now: float
) -> tuple[str, Pending | None]:
    """The message to show and what is still pending (None: nothing, clear)."""
    if not pending:
        return "", None
    if pending.get("done_at") is not None:
        if now - pending["done_at"] > SHOW_DONE_S:
            return "", None
        return pending["said"], pending
    outcome = _outcome(pending, info)
    if outcome is not None:
        return outcome, {**pending, "done_at": now, "said": outcome}
    name = pending["framework"]
    verb = VERB.get(pending["kind"], pending["kind"])
    state = str(info.get("state", "")).lower()
    wait = int(now - pending["at"])
    return f"{verb} **{name}**… ({state}, {wait} s)", pending


def _outcome(pending: Pending, info: dict[str, Any]) -> str | None:
    """How the action ended, or None while it goes on."""
    kind, name = pending["kind"], pending["framework"]
    state = info.get("state")
    if kind == "stop":
        if state == "STOPPED":
            return f"✓ **{name}** stopped"
        if info.get("should_run"):
            return f"**{info.get('framework')}** was started again by another request"
        return None
    if info.get("framework") != name:
        return f"another request chose **{info.get('framework')}** instead"
    if state == "FATAL":
        return f"✗ **{name}** failed: {info.get('reason') or 'see the events'}"
    if state == "STOPPED" and not info.get("should_run"):
        return f"**{name}** was stopped by another request"
    new_run = info.get("run_id") not in (None, pending["before_run"])
    if state == "RUNNING" and new_run:
        return f"✓ **{name}** is running" + (" again" if kind == "restart" else "")
    return None
