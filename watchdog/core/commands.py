"""What a person's command means, decided from the command and what runs.

A pure function: the machine applies the decision (new wanted state, events, refusal).

    >>> decide(Command("switch", "comfyui"), Wanted("a1111", True), run=None)
    Decision(wanted=Wanted(framework='comfyui', should_run=True, …), …)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import BusyRefused
from .messages import Command, Wanted
from .run import RunView


@dataclass(frozen=True)
class Decision:
    wanted: Wanted | None = None  # None: refused
    refusal: Exception | None = None
    events: tuple[tuple[str, dict[str, Any]], ...] = field(default=())
    interrupt: bool = False  # a forced command ends a running job: interrupt it first
    clear: bool = False  # the run's own queue is emptied before it is stopped
    # Nothing to do (already so, or the same command is under way): said, not done.
    note: str | None = None


def decide(cmd: Command, wanted: Wanted, run: RunView | None, leaving: bool = False) -> Decision:
    """``leaving``: a run is being stopped (it is no longer ``run``)."""
    name = cmd.name or wanted.framework
    already = _already(cmd, name, wanted, run, leaving)
    if already is not None:
        return Decision(wanted, note=already)
    ends_run = run is not None and (cmd.kind in ("stop", "restart") or name != run.framework)
    interrupt = False
    # Clearing the queue ends its running job too: asking for it is forcing.
    clear = ends_run and cmd.clear_queue and cmd.kind in ("stop", "restart")
    if ends_run and run is not None and run.is_busy and run.busy is not None:
        if not (cmd.force or clear):
            why = f"a generation is running on {run.framework} ({run.busy_text})"
            return Decision(refusal=BusyRefused(f"{why}; force to interrupt it"))
        interrupt = True
    by = {"requested_by": cmd.requested_by}
    if cmd.kind == "stop":
        return Decision(Wanted(wanted.framework, False), interrupt=interrupt, clear=clear)
    if cmd.kind == "restart":
        event = ("restart", {"framework": wanted.framework, **by})
        restart_run = run.run_id if run is not None else None
        wanted = Wanted(wanted.framework, True, restart_run)
        return Decision(wanted, None, (event,), interrupt, clear)
    if cmd.kind in ("start", "switch"):
        events = ()
        if name != wanted.framework:
            events = (("switch", {"framework": name, "previous": wanted.framework, **by}),)
        return Decision(Wanted(name, True), None, events, interrupt)
    return Decision(refusal=ValueError(f"unknown command {cmd.kind!r:.40}"))


def _already(
    cmd: Command, name: str, wanted: Wanted, run: RunView | None, leaving: bool
) -> str | None:
    """Why ``cmd`` changes nothing, if it does not: a double click on Restart joins the
    restart under way instead of doing a second one."""
    if cmd.kind == "restart" and wanted.restart_run is not None:
        return f"a restart of {wanted.framework} is already under way"
    if cmd.kind == "stop" and not wanted.should_run and not wanted.sleeping:
        return f"{wanted.framework} is already {'stopping' if leaving else 'stopped'}"
    same = cmd.kind in ("start", "switch") and wanted == Wanted(name, True)
    if same and run is not None and run.framework == name:
        return f"{name} is already {'running' if run.ready else 'starting'}"
    return None
