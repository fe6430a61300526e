"""What the machine is told (messages in) and what it asks for (effects out).

Messages come from the runtime: a person's command, and what the world did (a spawn
happened, a run became ready, a probe answered, a process exited, a tree is gone).
Effects are the machine's answer; the runtime carries them out in order, so a
``Persist`` listed before a ``Teardown`` is on disk before the first signal is sent.

All are frozen dataclasses of plain values: a history of them can be written down in
a test and replayed against the machine without a process, thread or file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..frameworks.busy import Busy

# -- messages in --------------------------------------------------------------------


@dataclass(frozen=True)
class Wanted:
    """What a person asked for, persisted before it is acted on.

    ``restart_run``: a restart of that run is in flight (a restarted watchdog that
    adopts this run finishes the restart instead of keeping the old process).
    ``sleeping``: stopped by the idle policy; the next request through the door wakes
    it (a restarted watchdog keeps it asleep).
    """

    framework: str
    should_run: bool
    restart_run: str | None = None
    sleeping: bool = False


@dataclass(frozen=True)
class AdoptedRun:
    """A live run a previous watchdog left behind, checked by the runtime (pid, start
    time and run marker all match)."""

    framework: str
    run_id: str
    pid: int
    started_mono: float
    started_at: float
    url: str | None


@dataclass(frozen=True)
class Boot:
    """The watchdog started: what it remembered, and the run it could adopt."""

    wanted: Wanted | None  # None: nothing remembered (or not usable): the default
    adopted: AdoptedRun | None = None
    info: dict[str, Any] = field(default_factory=dict)  # for the watchdog_start event
    not_adopted: dict[str, Any] | None = None  # the recorded run's ids, and why not
    requeue_from: str | None = None  # a lost queue still owed (see Persist)


@dataclass(frozen=True)
class Command:
    kind: str  # start, stop, restart, switch
    name: str | None = None
    requested_by: str = "api"
    force: bool = False
    requeue: bool = False  # stop, restart: submit the queue again at the next ready
    clear_queue: bool = False  # stop, restart: empty the framework's own queue first


@dataclass(frozen=True)
class Spawned:
    run_id: str
    framework: str
    pid: int
    started_mono: float
    started_at: float
    url: str | None
    details: dict[str, Any] = field(default_factory=dict)  # command, cwd, log files


@dataclass(frozen=True)
class SpawnFailed:
    framework: str
    reason: str
    event: str = "spawn_failed"  # or port_busy
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Ready:
    run_id: str
    via: str  # "ready line" or "health URL"
    url: str | None
    line: str | None = None


@dataclass(frozen=True)
class Probe:
    """A liveness probe of a ready run; ``output_bytes``: its log files' size now."""

    run_id: str
    ok: bool
    detail: str
    busy: Busy | None = None
    output_bytes: int = 0


@dataclass(frozen=True)
class StartupOutput:
    """A starting run wrote more (``output_bytes``: its log files' size now): a first
    start that installs for many minutes is progress, not a hang."""

    run_id: str
    output_bytes: int


@dataclass(frozen=True)
class Exited:
    run_id: str
    returncode: int | None  # None: an adopted run, whose status went to init
    stderr_tail: tuple[str, ...] = ()
    restart_asked: bool = False  # the framework wrote its restart file before exiting
    oom_killed: bool = False  # the kernel's out-of-memory killer ended it (SIGKILL only)


@dataclass(frozen=True)
class VramWait:
    """How the wait for a stopped tree's GPU memory ended."""

    skipped: str | None = None  # why no wait was needed (no GPU…)
    released: bool = True
    waited_s: float = 0.0
    freed_mb: float | None = None
    held_pids: tuple[int, ...] = ()
    held_mb: float | None = None


@dataclass(frozen=True)
class TornDown:
    """A teardown worker's definite answer; ``error`` when it could not finish."""

    run_id: str
    duration_s: float = 0.0
    signal: str | None = None
    forced: bool = False
    swept: tuple[int, ...] = ()
    remaining: tuple[int, ...] = ()
    port_free: bool | None = None
    port_wait_s: float = 0.0
    vram: VramWait = VramWait(skipped="not measured")
    stderr_tail: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class Swept:
    """Leftovers of earlier runs found before a spawn, and how stopping them went."""

    pids: tuple[int, ...] = ()
    remaining: tuple[int, ...] = ()
    forced: bool = False
    error: str | None = None


@dataclass(frozen=True)
class Usage:
    """The sampler's reading of the framework's tree: RSS (``max_rss_mb``), the GPU
    memory its pids hold (``max_vram_mb``; None: no GPU or unreadable) and its GPUs'
    utilisation (a sign of life during a long generation)."""

    rss_mb: float | None
    gpu_util_pct: float | None = None
    vram_mb: float | None = None


@dataclass(frozen=True)
class Activity:
    """Someone used the framework: a request through the door (reported by the front,
    at most every few seconds). It wakes a sleeping framework."""

    source: str = "door"


@dataclass(frozen=True)
class IdleCommandDone:
    """How the idle policy's command ended: its exit code (None: it never ran to an
    end) and the last of its output."""

    exit_code: int | None
    output: str = ""
    duration_s: float = 0.0
    error: str | None = None


@dataclass(frozen=True)
class RequeueDone:
    """What a ``Requeue`` did: the prompt ids submitted again, and those skipped with
    why (``set_aside``: running at too many unasked ends in a row)."""

    run_id: str
    from_run: str
    requeued: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()  # (prompt id, why)
    set_aside: tuple[str, ...] = ()
    error: str | None = None  # the worker itself failed


@dataclass(frozen=True)
class Tick:
    """Nothing happened, but time passed (a deadline is due)."""


@dataclass(frozen=True)
class Shutdown:
    leave_running: bool = False
    requested_by: str = "signal"


Message = (
    Boot
    | Command
    | Spawned
    | SpawnFailed
    | Ready
    | Probe
    | StartupOutput
    | Exited
    | TornDown
    | Swept
    | Usage
    | Activity
    | IdleCommandDone
    | RequeueDone
    | Tick
    | Shutdown
)

# -- effects out --------------------------------------------------------------------


@dataclass(frozen=True)
class Journal:
    """One event for ``events.jsonl``; ``tails``: add that many last lines of the run's
    stdout and stderr (the runtime reads them: the machine reads no file)."""

    event: str
    fields: dict[str, Any]
    tails: int = 0


@dataclass(frozen=True)
class Persist:
    wanted: Wanted
    run_id: str | None  # the run a restarted watchdog should adopt
    url: str | None = None
    requeue_from: str | None = None  # the run whose queue goes back at the next ready


@dataclass(frozen=True)
class Spawn:
    framework: str


@dataclass(frozen=True)
class Teardown:
    run_id: str
    reason: str
    requested_by: str
    after_crash: bool = False  # the leader is dead: clear what is left, quickly
    interrupt: bool = False  # call the framework's interrupt endpoint first
    url: str | None = None  # where it serves (the port to wait for, the interrupt)
    clear_queue: bool = False  # a person asked: empty the framework's queue first


@dataclass(frozen=True)
class Sweep:
    """Find and stop leftovers of earlier runs (run marker, recorded group, orphans)."""

    keep_run: str | None = None  # the adopted run, which is no leftover


@dataclass(frozen=True)
class RunIdleCommand:
    """Run ``idle.command`` (the settings have it: the machine never holds it)."""

    framework: str
    idle_min: float


@dataclass(frozen=True)
class Requeue:
    """Submit ``from_run``'s remembered queue to the ready run ``run_id`` at ``url``;
    ``unasked``: it ended by a crash, hang or limit (counts toward setting aside)."""

    run_id: str
    framework: str
    url: str
    from_run: str
    unasked: bool = True


@dataclass(frozen=True)
class Detach:
    run_id: str


@dataclass(frozen=True)
class Reply:
    """The answer to the command being stepped: None is success (the new status);
    ``note``: it was accepted but changed nothing, and why."""

    error: Exception | None = None
    note: str | None = None


@dataclass(frozen=True)
class Done:
    """Shutdown is complete: nothing runs, nothing is in flight."""


Effect = (
    Journal | Persist | Spawn | Teardown | Sweep | RunIdleCommand | Requeue | Detach | Reply | Done
)
