"""The machine, frozen into the :class:`Status` every reader gets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import idle, jobqueue
from .machine import Machine
from .states import State
from .status import Status

if TYPE_CHECKING:
    from ..runtime.logs import RunLogs


def reason_for(m: Machine) -> str | None:
    """Why the machine is in its state, in a sentence for the page."""
    state, run = m.state, m.run
    if state in (State.FATAL, State.BACKOFF):
        return m.policy.reason
    if state is State.STOPPING and m.leaving is not None:
        return m.leaving.reason
    if state is State.UNHEALTHY and run is not None:
        threshold = run.watch.failure_threshold
        return f"{run.probe_failures} of {threshold} health probes failed: {run.last_probe}"
    if state is State.STARTING and run is not None:
        return "waiting for the ready line or the health URL"
    if state is State.SLEEPING:
        return "asleep (idle): the next request through the door wakes it"
    return None


def snapshot(
    m: Machine,
    now: float,
    wall: float,
    errors: tuple[str, ...] = (),
    logs: RunLogs | None = None,
) -> Status:
    run = m.run
    lv = m.leaving
    shown = run or (lv.run if lv is not None and not lv.exit_seen else None)
    try:
        app_cmd = m.settings.framework(m.wanted.framework).command_line
    except (KeyError, ValueError):
        app_cmd = ""
    backoff = None
    if m.state is State.BACKOFF and m.policy.backoff_until is not None:
        backoff = wall + max(0.0, m.policy.backoff_until - now)
    busy = run is not None and run.is_busy
    return Status(
        framework=m.wanted.framework,
        state=m.state,
        should_run=m.wanted.should_run,
        watching=m.watching,
        pid=shown.pid if shown else None,
        run_id=shown.run_id if shown else None,
        run_framework=shown.framework if shown else None,
        url=shown.url if shown else None,
        ready=bool(run and run.ready),
        healthy=bool(run and run.ready and not run.probe_failures),
        is_running=shown is not None,
        spawned_at=shown.started_at if shown else None,
        restarts=m.restarts,
        last_exit=m.last_exit,
        app_cmd=app_cmd,
        frameworks=tuple(m.settings.frameworks),
        reason=reason_for(m),
        last_stderr=m.policy.last_stderr if m.state is State.FATAL else (),
        backoff_until=backoff,
        startup_timeout_s=m.settings.watch_for(m.wanted.framework).startup_timeout_s,
        probe_failures=run.probe_failures if run else 0,
        busy=busy,
        busy_detail=run.busy_text if busy and run else None,
        seq=m.seq,
        errors=errors,
        logs=logs,
        published_at=wall,
        idle=idle.view(m.idle, m.settings.idle, m.serving, m.wanted.sleeping, now, wall),
        queue=jobqueue.view(
            m.queue,
            m.wanted.framework,
            m.queue_kind(m.wanted.framework),
            run.busy if run is not None and run.framework == m.wanted.framework else None,
            m.requeue_from,
        ),
    )
