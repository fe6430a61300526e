"""What an exit means: the words for the page and the events for the journal.

Pure functions of the run's record and the ``Exited`` message; the machine decides
what follows (restart at once, back off, give up).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..frameworks.causes import crash_cause
from .leaving import Leaving
from .messages import Exited
from .run import RunView
from .status import ExitInfo, describe_exit, iso

Events = tuple[tuple[str, dict[str, Any]], ...]


@dataclass(frozen=True)
class ExitReport:
    last_exit: ExitInfo
    events: Events  # journaled in this order
    failure: str | None  # None: not a failure (the framework asked to be restarted)


def stopped(lv: Leaving, msg: Exited, now: float, wall: float) -> ExitReport:
    """The leader of a tree we are stopping exited: the stop worked."""
    code, sig, _ = describe_exit(msg.returncode)
    words = f"stopped: {lv.reason}"
    uptime = round(lv.run.uptime(now), 3)
    fields = {"exit_code": code, "signal": sig, "reason": words, "uptime_s": uptime}
    event = ("exit", {**lv.run.ids(), **fields, "requested_by": lv.requested_by})
    info = ExitInfo(code, sig, words, iso(wall), msg.run_id, lv.run.pid, lv.run.framework)
    return ExitReport(info, (event,), None)


def ended(run: RunView, msg: Exited, now: float, wall: float) -> ExitReport:
    """A live run ended by itself: a crash, or (A1111) a restart it asked for."""
    code, sig, words = describe_exit(msg.returncode)
    common = {**run.ids(), "exit_code": code, "signal": sig, "uptime_s": round(run.uptime(now), 3)}
    if msg.restart_asked:
        why = "restart requested by the framework"
        asked = {"requested_by": "framework", "reason": "the framework asked to be restarted"}
        info = ExitInfo(code, sig, why, iso(wall), run.run_id, run.pid, run.framework)
        return ExitReport(info, (("exit", {**common, **asked}),), None)
    cause = crash_cause(msg.returncode, msg.stderr_tail, msg.oom_killed)
    words = f"{words}: {cause}" if cause else words
    crash = {"reason": words, "cause": cause, "ready": run.ready, "last_stderr": msg.stderr_tail}
    events = (
        ("exit", {**common, "reason": words, "requested_by": "watch"}),
        ("crash", {**common, **crash}),
    )
    info = ExitInfo(code, sig, words, iso(wall), run.run_id, run.pid, run.framework)
    return ExitReport(info, events, f"crash: {words}")
