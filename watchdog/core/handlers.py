"""What each message does to the machine: one function per message type.

``ON_MESSAGE`` is the table the machine steps through: a message's type picks its
handler, which updates what is known and wanted, enters states through
``Machine.enter`` (which checks ``states.TRANSITIONS`` and writes the event) and asks
for effects. What runs is compared with what is wanted afterwards, in
``Machine.reconcile``. The edges each handler may take are named in its comments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..frameworks.busy import Busy
from . import exits, queue_rules, verdicts
from .commands import decide
from .errors import ShuttingDown
from .leaving import Leaving
from .messages import (
    Activity,
    Boot,
    Command,
    Detach,
    Exited,
    IdleCommandDone,
    Probe,
    Ready,
    Reply,
    RequeueDone,
    Shutdown,
    Spawned,
    SpawnFailed,
    StartupOutput,
    Sweep,
    Swept,
    Teardown,
    Tick,
    TornDown,
    Usage,
    Wanted,
)
from .policy import Retry
from .run import RunView
from .states import State as S

if TYPE_CHECKING:
    from .machine import Machine


# -- a person, or the watchdog's own start and end --------------------------------


def on_boot(m: Machine, msg: Boot) -> None:
    wanted = msg.wanted
    if wanted is None or wanted.framework not in m.settings.frameworks:
        wanted = Wanted(m.settings.default_framework, True)
    if wanted.sleeping and m.settings.idle.after_min <= 0:
        wanted = Wanted(wanted.framework, True)  # asleep by a policy that is now off
    m.wanted = wanted
    m.idle.use(m.now, m.wall, "start")
    m.requeue_from = msg.requeue_from
    lost = msg.not_adopted
    if lost and wanted.should_run and not m.requeue_from and m.keeps_queue(lost["framework"]):
        m.requeue_from = str(lost["run_id"])  # it died while no watchdog was there
    now_wanted = {"framework": wanted.framework, "should_run": wanted.should_run}
    m.journal("watchdog_start", **msg.info, **now_wanted, watching=m.watching)
    if msg.not_adopted is not None:
        m.journal("adopt_skipped", **msg.not_adopted)
    if not m.watching:
        return
    a = msg.adopted
    if a is not None:
        configured = m.settings.framework(a.framework).url
        m.run = RunView.adopted(a, m.settings.watch_for(a.framework), configured, m.now)
        # STOPPED -> STARTING: it serves again once it answers (ready line or health).
        # Whatever was asked before the old watchdog died (a stop, a switch, a
        # restart) is finished by reconcile, never undone.
        uptime = round(m.run.uptime(m.now), 1)
        m.enter(S.STARTING, "adopt", **m.run.ids(), requested_by="boot", uptime_s=uptime)
    elif wanted.sleeping:
        # STOPPED -> SLEEPING: the door still wakes it, as before the restart
        why = "asleep (idle) when the watchdog stopped; a request through the door wakes it"
        m.enter(S.SLEEPING, "sleep", framework=wanted.framework, requested_by="boot", reason=why)
    if wanted.restart_run is not None and (a is None or wanted.restart_run != a.run_id):
        m.wanted = Wanted(wanted.framework, wanted.should_run)  # that run is gone
    m.busy_with = "sweep"
    m.out.append(Sweep(keep_run=a.run_id if a else None))
    m.persist()


def on_command(m: Machine, cmd: Command) -> None:
    if m.closing:
        m.out.append(Reply(ShuttingDown("the watchdog is shutting down")))
        return
    if cmd.kind == "keep_awake":
        keep_awake(m, cmd)
        return
    m.used(cmd.requested_by)  # a person is here: whatever they asked, it is not idle
    decision = decide(cmd, m.wanted, m.run, m.leaving is not None)
    if decision.wanted is None:
        m.out.append(Reply(decision.refusal))
        return
    if decision.note is not None:
        m.out.append(Reply(note=decision.note))
        return
    m.seq += 1
    m.spawn_by = cmd.requested_by
    m.interrupt_next = m.interrupt_next or decision.interrupt
    m.clear_next = m.clear_next or decision.clear
    for event, fields in decision.events:
        m.journal(event, **fields)
    if decision.wanted != m.wanted or m.run is None or cmd.kind == "restart":
        m.policy.reset()  # a person's word: what failed before is forgotten
        m.restarts = 0
    queue_rules.owe_queue(m, cmd, decision.wanted)
    m.wanted = decision.wanted
    if not m.wanted.should_run and m.state in (S.BACKOFF, S.FATAL, S.SLEEPING):
        # BACKOFF/FATAL/SLEEPING -> STOPPED: nothing runs, nothing will be tried or woken
        fields = {"reason": "stop requested", "requested_by": cmd.requested_by}
        m.enter(S.STOPPED, "stop", framework=m.wanted.framework, **fields)
    m.persist()  # before it is acted on: a restarted watchdog finishes it
    m.out.append(Reply())


def keep_awake(m: Machine, cmd: Command) -> None:
    """The page's "Keep awake": the idle clock starts over, a pending command is off."""
    idle = m.settings.idle
    if idle.after_min <= 0:
        m.out.append(Reply(note="the idle policy is off (idle.after_min is 0)"))
        return
    pending = m.idle.warned is not None and not m.idle.acted
    idle_s = round(m.now - m.idle.since)
    m.idle.use(m.now, m.wall, cmd.requested_by)
    m.journal("keep_awake", framework=m.wanted.framework, requested_by=cmd.requested_by,
              idle_s=idle_s, cancelled="the idle command" if pending else None)  # fmt: skip
    m.out.append(Reply())


def on_activity(m: Machine, msg: Activity) -> None:
    """A request through the door: in use; and if it sleeps, wake it."""
    m.used(msg.source)
    if m.wanted.sleeping and not m.closing:
        m.wanted = Wanted(m.wanted.framework, True)
        m.spawn_by = msg.source
        why = f"a request through the {msg.source} woke it"
        m.journal("wake", framework=m.wanted.framework, requested_by=msg.source, reason=why)
        m.persist()  # reconcile spawns it: SLEEPING -> STARTING


def on_idle_command_done(m: Machine, msg: IdleCommandDone) -> None:
    failed = msg.error is not None or msg.exit_code != 0
    why = msg.error or f"exited with code {msg.exit_code}"
    fields = {"exit_code": msg.exit_code, "output": msg.output, "duration_s": msg.duration_s}
    event = "idle_command_failed" if failed else "idle_command_exit"
    m.journal(event, framework=m.wanted.framework, **fields, reason=f"the idle command {why}")


def on_shutdown(m: Machine, msg: Shutdown) -> None:
    m.closing = msg
    run = m.run
    if msg.leave_running and run is not None:
        m.persist()  # with the run: the next watchdog adopts it
        m.run = None
        m.out.append(Detach(run.run_id))
        # STARTING/RUNNING/UNHEALTHY -> STOPPED, the framework left running
        why = "watchdog exiting; framework left running"
        m.enter(S.STOPPED, "detach", **run.ids(), requested_by=msg.requested_by, reason=why)


def on_tick(m: Machine, msg: Tick) -> None:
    pass  # timers are looked at after every message


# -- what the world did ------------------------------------------------------------


def on_spawned(m: Machine, msg: Spawned) -> None:
    m.busy_with = None
    by, m.spawn_by = m.spawn_by, "watch"
    if by == "watch":
        m.restarts += 1
    m.run = RunView.spawned(msg, m.settings.watch_for(msg.framework), m.now)
    m.policy.spawned()
    if m.wanted.restart_run is not None:
        m.wanted = Wanted(m.wanted.framework, True)  # the restart is done
    m.persist()
    # STOPPED/BACKOFF/STOPPING/FATAL -> STARTING
    fields = {**m.run.ids(), "requested_by": by, **msg.details, "restarts": m.restarts}
    m.enter(S.STARTING, "spawn", **fields)


def on_spawnfailed(m: Machine, msg: SpawnFailed) -> None:
    m.busy_with = None
    m.spawn_by = "watch"
    m.sweep_needed = True  # what holds the port may be ours: swept before the next try
    m.journal(msg.event, framework=msg.framework, reason=msg.reason, **msg.details)
    watch = m.settings.watch_for(msg.framework)
    outcome = m.policy.on_failure(watch, m.now, False, msg.reason)
    m.after_failure(outcome, (), framework=msg.framework)


def on_ready(m: Machine, msg: Ready) -> None:
    run = m.run
    if run is None or run.run_id != msg.run_id or run.ready:
        return
    run.ready_mono = m.now
    if msg.url and msg.url != run.url:
        run.url = msg.url
        m.persist()
    startup_s = round(run.uptime(m.now), 3)
    fields = {"via": msg.via, "url": run.url, "startup_s": startup_s, "line": msg.line}
    m.enter(S.RUNNING, "ready", **run.ids(), **fields)  # STARTING -> RUNNING
    m.idle.use(m.now, m.wall, "start")  # idle from ready on, not from the spawn
    queue_rules.requeue_at_ready(m, run)
    if run.configured_url and run.url != run.configured_url:
        # Gradio and InvokeAI move to the next free port: the ready line is the truth.
        m.journal("url_changed", **run.ids(), configured=run.configured_url, actual=run.url)


def on_startup_output(m: Machine, msg: StartupOutput) -> None:
    """No state changes: a starting run that writes has its startup clock reset."""
    run = m.run
    if run is None or run.run_id != msg.run_id or run.ready:
        return
    if msg.output_bytes > run.output_bytes:
        run.output_bytes = msg.output_bytes
        run.output_mono = m.now


def on_probe(m: Machine, msg: Probe) -> None:
    run = m.run
    if run is None or run.run_id != msg.run_id or not run.ready:
        return
    if msg.busy is not None:
        _note_resumed_jobs(m, run, msg.busy)
    verdict = verdicts.judge_probe(run, msg, m.now)
    if isinstance(verdict, verdicts.ProbeNews):
        # RUNNING -> UNHEALTHY (first failure), UNHEALTHY -> RUNNING (answered again)
        new = S.UNHEALTHY if verdict.event == "unhealthy" else S.RUNNING
        if new is not m.state:
            m.enter(new, verdict.event, **run.ids(), **verdict.fields)
    elif verdict is not None:
        m.fail(run, verdict)


def _note_resumed_jobs(m: Machine, run: RunView, busy: Busy) -> None:
    """Busy at the first look after ready: nobody asked yet, so these are jobs the
    framework found pending and resumed. Said once, so that a refused stop right after
    a start makes sense."""
    first, run.busy_seen = not run.busy_seen, True
    if first:
        m.queue.started(run.framework)
    if first and busy.busy:
        run.resumed_jobs = True
        why = "jobs found pending at start; a stop waits for them unless forced"
        fields = {"detail": busy.detail, "running": busy.running, "pending": busy.pending}
        m.journal("jobs_resumed", **run.ids(), **fields, reason=why)
    elif not busy.busy:
        run.resumed_jobs = False


def on_usage(m: Machine, msg: Usage) -> None:
    run = m.run
    if run is not None:
        fw = m.settings.frameworks[run.framework]
        limits = verdicts.Limits(fw.max_rss_mb, fw.max_vram_mb)
        verdict = verdicts.judge_usage(run, msg, limits, m.now)
        if isinstance(verdict, verdicts.Notice):
            m.journal(verdict.event, **verdict.fields)
        elif verdict is not None:
            m.fail(run, verdict)


def on_exited(m: Machine, msg: Exited) -> None:
    lv, run = m.leaving, m.run
    if lv is not None and lv.run.run_id == msg.run_id:
        lv.exit_seen = True
        if not lv.after_crash:
            journal_exit(m, exits.stopped(lv, msg, m.now, m.wall))
        return
    if run is None or run.run_id != msg.run_id:
        return
    m.run_ended(run)
    why = "cleanup after exit" if msg.restart_asked else "cleanup after crash"
    m.leaving = Leaving(run, why, "watch", after_crash=True, exit_seen=True)
    m.out.append(Teardown(run.run_id, why, "watch", after_crash=True))
    report = exits.ended(run, msg, m.now, m.wall)
    journal_exit(m, report)
    m.lost_queue(run)
    if report.failure is None:  # A1111's "Apply and restart UI": at once, no failure
        m.policy.retry_now(m.now, report.last_exit.reason)
        # RUNNING -> BACKOFF, for as long as the cleanup takes
        why = "the framework wrote its restart file before the exit"
        m.enter(S.BACKOFF, "restart", **run.ids(), requested_by="framework", reason=why)
    else:
        stable = run.stable(m.now)
        outcome = m.policy.on_failure(run.watch, m.now, stable, report.failure)
        m.after_failure(outcome, msg.stderr_tail, **run.ids())
    m.persist()


def journal_exit(m: Machine, report: exits.ExitReport) -> None:
    m.last_exit = report.last_exit
    for event, fields in report.events:
        m.journal(event, **fields)


def on_torndown(m: Machine, msg: TornDown) -> None:
    lv = m.leaving
    if lv is None or lv.run.run_id != msg.run_id:
        return
    m.leaving = None
    m.sweep_needed = m.sweep_needed or bool(msg.error or msg.remaining)
    if msg.error:
        m.journal("teardown_failed", **lv.run.ids(), reason=lv.reason, error=msg.error)
        why = f"could not stop {lv.run.framework} ({lv.reason}): {msg.error}"
        m.give_up(f"{why}; the next start sweeps what is left", msg.stderr_tail, lv.run)
        m.persist()
        return
    then = lv.afterwards(msg, m.state, bool(m.closing), m.wanted.should_run, m.may_spawn())
    if then.enter is S.STOPPED and m.wanted.sleeping and not m.closing:
        m.enter(S.SLEEPING, "sleep", **lv.stop_details(msg))  # STOPPING -> SLEEPING
    elif then.enter is S.STOPPED:
        m.enter(S.STOPPED, "stop", **lv.stop_details(msg))  # STOPPING -> STOPPED
    elif not lv.quiet(msg):
        m.journal("cleanup" if lv.after_crash else "stop", **lv.stop_details(msg))
    vram = lv.vram_event(msg)
    if vram is not None:
        m.journal(vram[0], **lv.run.ids(), **vram[1])
    if then.fatal:
        m.give_up(then.fatal, msg.stderr_tail, lv.run)
    elif then.enter is S.BACKOFF and isinstance(lv.then, Retry):
        m.enter_backoff(lv.then, **lv.run.ids())  # STOPPING -> BACKOFF
    m.persist()


def on_swept(m: Machine, msg: Swept) -> None:
    m.busy_with = None
    m.sweep_needed = bool(msg.error or msg.remaining)
    if msg.pids or msg.error:
        left = list(msg.remaining) or None
        fields = {"pids": list(msg.pids), "forced": msg.forced, "remaining": left}
        fields["error"] = msg.error
        why = "leftovers of earlier runs"
        m.journal("cleanup", framework=m.wanted.framework, reason=why, **fields)
    if m.sweep_needed and m.wanted.should_run and m.run is None and not m.closing:
        why = msg.error or f"processes {list(msg.remaining)} survived SIGKILL"
        m.give_up(f"leftovers of earlier runs could not be stopped: {why}", (), None)


ON_MESSAGE: dict[type, Callable[[Machine, Any], None]] = {
    Boot: on_boot,
    Command: on_command,
    Shutdown: on_shutdown,
    Tick: on_tick,
    Spawned: on_spawned,
    SpawnFailed: on_spawnfailed,
    Ready: on_ready,
    Probe: on_probe,
    StartupOutput: on_startup_output,
    Usage: on_usage,
    Activity: on_activity,
    IdleCommandDone: on_idle_command_done,
    RequeueDone: queue_rules.on_requeue_done,
    Exited: on_exited,
    TornDown: on_torndown,
    Swept: on_swept,
}
