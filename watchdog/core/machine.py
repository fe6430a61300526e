"""The supervisor's state machine: messages in, effects out, nothing else.

No thread, socket, file or clock of its own: ``step(msg, now, wall)`` takes a message
and the time, changes the machine's fields, and returns the effects for the runtime
to carry out in order (journal, persist, spawn, teardown, sweep, reply). Every edge
is in ``states.TRANSITIONS``; a state is entered only in ``_enter``, which writes the
event that says why.

    >>> m = Machine(settings)                                       # doctest: +SKIP
    >>> m.step(Boot(None), now=0.0, wall=0.0)
    [Journal('watchdog_start', …), Sweep(keep_run=None), Persist(…)]
    >>> m.step(Swept(), now=0.0, wall=0.0)
    [Spawn('demo')]

One step: the handler for the message updates what is known and what is wanted;
then ``_reconcile`` compares what runs with what is wanted and asks for a teardown,
a sweep or a spawn (circus' ``manage_processes``, as a pure function).
"""

from __future__ import annotations

from typing import Any

from ..settings import Settings
from . import handlers, idle, verdicts
from .jobqueue import QueueBook
from .leaving import Leaving
from .messages import (
    Done,
    Effect,
    Journal,
    Message,
    Persist,
    RunIdleCommand,
    Shutdown,
    Spawn,
    Sweep,
    Teardown,
    Wanted,
)
from .policy import GiveUp, RestartPolicy, Retry
from .run import RunView
from .states import TRANSITIONS, State
from .status import ExitInfo

S = State


class Machine:
    """One framework at a time, kept as wanted. Owned by one thread (the actor)."""

    def __init__(self, settings: Settings, *, watching: bool = True) -> None:
        self.settings = settings
        self.watching = watching
        self.state = S.STOPPED
        self.wanted = Wanted(settings.default_framework, False)
        self.run: RunView | None = None  # the live run (STARTING, RUNNING, UNHEALTHY)
        self.leaving: Leaving | None = None  # a tree on its way out
        self.policy = RestartPolicy()
        self.restarts = 0
        self.last_exit: ExitInfo | None = None
        self.seq = 0  # commands accepted
        self.spawn_by = "boot"  # who the next spawn is for: a person, boot, or watch
        self.interrupt_next = False  # the next teardown interrupts a job first (forced)
        self.clear_next = False  # the next teardown empties the framework's queue first
        self.sweep_needed = True  # leftovers of earlier runs may exist
        self.busy_with: str | None = None  # "boot", "sweep" or "spawn": an effect in flight
        self.idle = idle.IdleClock()  # the last use, for the idle policy
        # A run whose remembered queue goes back at the next ready (ComfyUI), and
        # whether it ended unasked (a crash, hang or limit: counts toward set-aside).
        self.requeue_from: str | None = None
        self.requeue_unasked = True
        self.queue = QueueBook()  # what the page says of the framework's job queue
        self._kinds: dict[str, str | None] = {}  # framework → its queue's kind
        self.closing: Shutdown | None = None
        self.done = False
        self.out: list[Effect] = []
        self.now = self.wall = 0.0

    # -- the one entry point ---------------------------------------------------------

    def step(self, msg: Message, now: float, wall: float) -> list[Effect]:
        self.out, self.now, self.wall = [], now, wall
        handlers.ON_MESSAGE[type(msg)](self, msg)
        self.check_startup()
        self.check_idle()
        self.reconcile()
        return self.out

    def next_deadline(self) -> float | None:
        """When a ``Tick`` is due (startup timeout, end of a backoff, the idle policy's
        next action), monotonic."""
        run = self.run
        due = []
        if self.watching and not self.closing:
            due.append(idle.deadline(self.idle, self.settings.idle, self.serving))
        if run is not None and not run.ready:
            due.append(verdicts.startup_deadline(run))
        if self.state is S.BACKOFF and self.leaving is None:
            due.append(self.policy.backoff_until)
        return min((d for d in due if d is not None), default=None)

    @property
    def serving(self) -> bool:
        """A ready framework the idle policy may put to sleep."""
        return self.run is not None and self.state in (S.RUNNING, S.UNHEALTHY)

    # -- entering states and writing events -------------------------------------------

    def enter(self, new: State, event: str, **fields: Any) -> None:
        """The only place a state changes; it writes the event that says why."""
        old = self.state
        if (old, new) not in TRANSITIONS:
            raise AssertionError(f"no edge {old.value} -> {new.value} ({event})")
        self.state = new
        self.journal(event, **fields, state=new.value, previous=old.value)

    def journal(self, event: str, tails: int = 0, **fields: Any) -> None:
        self.out.append(Journal(event, fields, tails))

    def persist(self) -> None:
        lv = self.leaving
        run = self.run or (lv.run if lv is not None and not lv.exit_seen else None)
        url = run.url if run else None
        self.out.append(Persist(self.wanted, run.run_id if run else None, url, self.requeue_from))

    def queue_kind(self, framework: str) -> str | None:
        """Whose queue it has, as its busy probe reads it (``comfyui``, ``invokeai``).
        Kept: every published status asks, and the settings never change under us."""
        if framework not in self._kinds:
            try:
                self._kinds[framework] = self.settings.framework(framework).busy_kind
            except (KeyError, ValueError):
                return None
        return self._kinds[framework]

    def keeps_queue(self, framework: str) -> bool:
        """Its queue is remembered and can be submitted again (ComfyUI's)."""
        return self.queue_kind(framework) == "comfyui"

    def lost_queue(self, run: RunView, unasked: bool = True) -> None:
        """``run`` ended: what it had queued goes back once the next run is ready."""
        if self.keeps_queue(run.framework):
            self.requeue_from, self.requeue_unasked = run.run_id, unasked
            self.queue.owe(run.busy)

    def run_ended(self, run: RunView, cleared: bool = False) -> None:
        """The live run is gone (exit, or a teardown begins): the page keeps what its
        queue was (what InvokeAI will resume at its next start), unless emptied."""
        self.run = None
        self.queue.ended(
            run.framework, self.queue_kind(run.framework), None if cleared else run.busy
        )

    # -- failures ------------------------------------------------------------------------

    def fail(self, run: RunView, f: verdicts.Failure) -> None:
        """A verdict ended a live run: journal it, count it, stop the tree. What the
        policy said (retry after a delay, give up) is applied once the tree is gone."""
        self.journal(f.event, tails=f.tails, **{**run.ids(), "reason": f.reason, **f.fields})
        outcome = self.policy.on_failure(run.watch, self.now, f.stable, f.reason)
        self.lost_queue(run)
        self.begin_teardown(run, f.teardown_reason, "watch", then=outcome)

    def after_failure(self, outcome: Retry | GiveUp, tail: tuple[str, ...], **ids: Any) -> None:
        """A run that ended by itself, or never began: back off, or give up now."""
        if isinstance(outcome, GiveUp):
            more = {"failures": outcome.failures, "window_s": outcome.window_s}
            self.give_up(outcome.why(), tail, None, **ids, **more)
        else:
            self.enter_backoff(outcome, **ids)

    def enter_backoff(self, r: Retry, **ids: Any) -> None:
        left = max(0.0, (self.policy.backoff_until or self.now) - self.now)
        fields = {"attempt": r.attempt, "failures_in_window": r.failures_in_window}
        self.enter(S.BACKOFF, "backoff", **ids, delay_s=round(left, 3), **fields,
                    reason=self.policy.reason)  # fmt: skip

    def give_up(self, why: str, tail: tuple[str, ...], run: RunView | None, **fields: Any) -> None:
        self.policy.give_up(why, tail)
        ids = run.ids() if run else {"framework": self.wanted.framework}
        self.enter(S.FATAL, "fatal", **{**ids, **fields}, reason=why, last_stderr=tail)

    # -- timers and reconciling -------------------------------------------------------

    def check_startup(self) -> None:
        run = self.run
        if run is not None and self.state is S.STARTING:
            verdict = verdicts.startup_timeout(run, self.now)
            if verdict is not None:
                self.fail(run, verdict)

    # -- the idle policy ---------------------------------------------------------------

    def used(self, by: str) -> None:
        """Someone used it: the idle clock starts over, and a pending command is off."""
        if self.idle.use(self.now, self.wall, by):
            why = f"used ({by}) during the grace: the idle command will not run"
            self.journal("idle_cancelled", framework=self.wanted.framework, by=by, reason=why)

    def check_idle(self) -> None:
        settings = self.settings.idle
        if settings.after_min <= 0 or not self.watching or self.closing:
            return
        run = self.run
        if self.state is S.STARTING or (run is not None and run.is_busy):
            self.used("generation" if run is not None and run.is_busy else "start")
            return
        what = idle.due(self.idle, settings, self.serving, self.now)
        if what is None:
            return
        span = idle.minutes(settings.after_min)
        nobody = f"nobody used it for {span} (no generation, door request or page action)"
        fw = {"framework": self.wanted.framework, "idle_min": settings.after_min}
        if what == "sleep" and run is not None:
            self.idle.acted = True
            why = f"{nobody}: going to sleep"
            self.journal("idle", **run.ids(), idle_min=settings.after_min, action="stop",
                         last_use=self.idle.last_use, reason=why)  # fmt: skip
            self.wanted = Wanted(self.wanted.framework, False, sleeping=True)
            self.begin_teardown(run, f"idle for {span}: going to sleep", "idle")
        elif what == "warn":
            self.idle.warned = self.now
            grace = idle.minutes(settings.grace_min)
            why = f"{nobody}; the idle command runs in {grace} unless someone uses it"
            self.journal("idle", **fw, action="command", grace_min=settings.grace_min,
                         last_use=self.idle.last_use, reason=why)  # fmt: skip
        else:
            self.idle.acted = True
            self.journal("idle_command", **fw, reason=f"{nobody}: running the idle command")
            self.out.append(RunIdleCommand(self.wanted.framework, settings.after_min))

    def may_spawn(self) -> bool:
        return (
            self.watching
            and self.wanted.should_run
            and not self.closing
            and self.policy.may_spawn(self.now)
        )

    def reconcile(self) -> None:
        run = self.run
        if run is not None:
            why = self._why_end(run)
            if why is not None:
                by = self.closing.requested_by if self.closing else self.spawn_by
                self.begin_teardown(run, why, by)
            return
        if self.leaving is not None or self.busy_with is not None:
            return  # nothing starts while a tree is still going away
        if self.closing:
            if self.state is not S.STOPPED:
                why = {
                    "reason": "watchdog shutting down",
                    "requested_by": self.closing.requested_by,
                }
                self.enter(S.STOPPED, "stop", framework=self.wanted.framework, **why)
            if not self.done:
                self.done = True
                self.out.append(Done())
        elif self.may_spawn():
            self.busy_with = "sweep" if self.sweep_needed else "spawn"
            self.out.append(Sweep() if self.sweep_needed else Spawn(self.wanted.framework))

    def _why_end(self, run: RunView) -> str | None:
        if self.closing:
            return "watchdog shutting down"
        if not self.wanted.should_run:
            return "stop requested"
        if run.framework != self.wanted.framework:
            return f"switch to {self.wanted.framework}"
        if self.wanted.restart_run == run.run_id:
            return "restart requested"
        return None

    def begin_teardown(
        self, run: RunView, reason: str, by: str, then: Retry | GiveUp | None = None
    ) -> None:
        interrupt, self.interrupt_next = self.interrupt_next, False
        clear, self.clear_next = self.clear_next, False
        self.run_ended(run, cleared=clear)
        self.leaving = Leaving(run, reason, by, after_crash=False, exit_seen=False, then=then)
        self.persist()
        self.out.append(
            Teardown(run.run_id, reason, by, interrupt=interrupt, url=run.url, clear_queue=clear)
        )
        # STARTING/RUNNING/UNHEALTHY -> STOPPING
        self.enter(S.STOPPING, "stopping", **run.ids(), reason=reason, requested_by=by)
