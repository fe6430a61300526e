"""What a person's command means, decided from the command and what runs.

A pure function: the machine applies the decision (new wanted state, events, refusal).

    >>> decide(Command("switch", "comfyui"), Wanted("a1111", True), run=None)
    Decision(wanted=Wanted(framework='comfyui', should_run=True, restart_run=None), …)
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


def decide(cmd: Command, wanted: Wanted, run: RunView | None) -> Decision:
    name = cmd.name or wanted.framework
    ends_run = run is not None and (cmd.kind in ("stop", "restart") or name != run.framework)
    interrupt = False
    if ends_run and run is not None and run.is_busy and run.busy is not None:
        if not cmd.force:
            why = f"a generation is running on {run.framework} ({run.busy.detail})"
            return Decision(refusal=BusyRefused(f"{why}; force to interrupt it"))
        interrupt = True
    by = {"requested_by": cmd.requested_by}
    if cmd.kind == "stop":
        return Decision(Wanted(wanted.framework, False), interrupt=interrupt)
    if cmd.kind == "restart":
        event = ("restart", {"framework": wanted.framework, **by})
        restart_run = run.run_id if run is not None else None
        return Decision(Wanted(wanted.framework, True, restart_run), None, (event,), interrupt)
    if cmd.kind in ("start", "switch"):
        events = ()
        if name != wanted.framework:
            events = (("switch", {"framework": name, "previous": wanted.framework, **by}),)
        return Decision(Wanted(name, True), None, events, interrupt)
    return Decision(refusal=ValueError(f"unknown command {cmd.kind!r:.40}"))
