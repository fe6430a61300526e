"""The supervisor: one framework kept alive, switched on request, every step journaled.

One control thread owns all mutable state. Everything else talks to it through its
inbox: person's commands (with a future for the reply), exits from the waiter
threads, readiness and liveness from the prober threads, and "tree gone" from the
stopper threads. Timers (backoff, startup timeout) are deadlines of the same loop,
which sleeps in ``Queue.get(timeout)`` so that any message wakes it at once.

Readers never touch that state: after every step the loop publishes an immutable
:class:`Status`, and ``status()`` returns the latest one without locking.

    >>> sup = Supervisor(load_settings(Path("settings.json")))    # doctest: +SKIP
    >>> sup.begin()                 # starts the remembered (or default) framework
    >>> sup.switch("comfyui", requested_by="api").state
    <State.STOPPING: 'STOPPING'>
    >>> sup.shutdown()              # stops the framework's whole tree
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

import requests

from . import __version__
from .busy import Busy
from .causes import crash_cause
from .events import EventLog, utc_now_iso
from .gpu import GpuReader
from .logs import LogStore, RunLogs, tail_lines
from .presets import FrameworkSpec, join_url
from .probes import (
    Liveness,
    Prober,
    Ready,
    port_holder,
    port_in_use,
    probe_session,
    url_port,
    wait_port_free,
)
from .process import KILL_WAIT_S, ManagedProcess, SpawnError, StopResult
from .settings import Settings, WatchSettings
from .statefile import Desired, RunRecord, StateFile

log = logging.getLogger(__name__)

STDERR_TAIL_LINES = 20
COMMAND_REPLY_TIMEOUT_S = 30.0
GPU_ALIVE_PCT = 10.0  # GPU utilisation that counts as progress of a running job
LOCAL_HOSTS = {"127.0.0.1", "localhost", "0.0.0.0", "::1", "::"}


class State(str, Enum):
    STOPPED = "STOPPED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    UNHEALTHY = "UNHEALTHY"
    BACKOFF = "BACKOFF"
    STOPPING = "STOPPING"
    FATAL = "FATAL"


class UnknownFramework(ValueError):
    """A framework name that is not in the settings."""


class NotInstalled(ValueError):
    """A framework whose folder or program is missing on this machine."""


class BusyRefused(RuntimeError):
    """A person's stop/restart/switch while a generation runs, without force."""


class WatchDisabled(RuntimeError):
    """A start/stop/switch asked of a watchdog run with ``--no-watch``."""


@dataclass(frozen=True)
class ExitInfo:
    code: int | None
    signal: str | None
    reason: str
    time: str
    run_id: str
    pid: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "signal": self.signal,
            "reason": self.reason,
            "time": self.time,
            "run_id": self.run_id,
            "pid": self.pid,
        }


def describe_exit(returncode: int | None) -> tuple[int | None, str | None, str]:
    """``-11`` → ``(None, "SIGSEGV", "killed by SIGSEGV")``; ``1`` → ``(1, None, "exited …")``."""
    if returncode is None:
        return None, None, "exited (status unknown: the run was adopted)"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return None, name, f"killed by {name}"
    return returncode, None, f"exited with code {returncode}"


@dataclass(frozen=True)
class Status:
    """What every reader sees: an immutable snapshot published by the control thread."""

    framework: str  # the chosen one
    state: State
    should_run: bool
    watching: bool
    pid: int | None
    run_id: str | None
    run_framework: str | None  # whose process pid is (the old one while switching)
    url: str | None
    ready: bool
    healthy: bool
    is_running: bool
    spawned_at: float | None
    restarts: int
    last_exit: ExitInfo | None
    app_cmd: str
    frameworks: tuple[str, ...]
    reason: str | None
    last_stderr: tuple[str, ...]
    backoff_until: float | None
    startup_timeout_s: float
    probe_failures: int
    busy: bool
    busy_detail: str | None
    seq: int
    errors: tuple[str, ...]
    # The current run's files, or the last run's once it ended (not part of to_dict).
    logs: RunLogs | None = None
    published_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """The status object of the API contract (``GET /info``, ``status``)."""
        now = time.time()
        return {
            "framework": self.framework,
            "state": self.state.value,
            "pid": self.pid,
            "url": self.url,
            "is_running": self.is_running,
            "healthy": self.healthy,
            "ready": self.ready,
            "spawned_secs_ago": round(now - self.spawned_at, 1) if self.spawned_at else None,
            "restarts": self.restarts,
            "last_exit": self.last_exit.to_dict() if self.last_exit else None,
            "APP_CMD": self.app_cmd,
            "frameworks": list(self.frameworks),
            "run_id": self.run_id,
            "run_framework": self.run_framework,
            "should_run": self.should_run,
            "watching": self.watching,
            "reason": self.reason,
            "last_stderr": list(self.last_stderr),
            "backoff_secs_left": (
                round(max(0.0, self.backoff_until - now), 1) if self.backoff_until else None
            ),
            "startup_timeout_s": self.startup_timeout_s,
            "probe_failures": self.probe_failures,
            "busy": self.busy,
            "busy_detail": self.busy_detail,
            "errors": list(self.errors),
        }


# -- messages to the control thread ------------------------------------------------


@dataclass(frozen=True)
class _Command:
    kind: str  # start, stop, restart, switch
    name: str | None
    requested_by: str
    reply: Future[Status]
    force: bool = False


@dataclass(frozen=True)
class _Exited:
    run_id: str
    returncode: int | None  # None: an adopted run, whose exit status went to init


@dataclass(frozen=True)
class _TornDown:
    run_id: str
    result: StopResult
    port_free: bool | None
    port_wait_s: float
    vram: _VramWait


@dataclass(frozen=True)
class _VramWait:
    """How the wait for a stopped tree's GPU memory ended (None fields: no GPU)."""

    skipped: str | None = None  # why no wait was needed
    released: bool = True
    waited_s: float = 0.0
    freed_mb: float | None = None
    held_pids: tuple[int, ...] = ()
    held_mb: float | None = None


@dataclass(frozen=True)
class _Usage:
    rss_mb: float | None
    gpu_util_pct: float | None = None


@dataclass(frozen=True)
class _Shutdown:
    leave_running: bool
    requested_by: str
    reply: Future[None]


# -- control-thread-only records ---------------------------------------------------


@dataclass
class _Run:
    name: str
    spec: FrameworkSpec
    watch: WatchSettings
    proc: ManagedProcess
    logs: RunLogs
    prober: Prober
    url: str | None
    ready: bool = False
    ready_mono: float | None = None
    rss_over_since: float | None = None
    probe_failures: int = 0
    last_probe: str = ""
    busy: Busy | None = None
    progress_mono: float = field(default_factory=time.monotonic)  # last sign of life
    progress_mark: tuple[str, int] = ("", -1)  # busy fingerprint, bytes of output

    @property
    def run_id(self) -> str:
        return self.proc.run_id

    @property
    def uptime(self) -> float:
        return time.monotonic() - self.proc.started_mono

    @property
    def stable(self) -> bool:
        """Served long enough that its failure is news, not a crash loop.

        Counted from ready, not from spawn: a framework that loads for ten minutes
        and dies on its first request is not stable.
        """
        if self.ready_mono is None:
            return False
        return time.monotonic() - self.ready_mono >= self.watch.stable_uptime_s


@dataclass
class _Teardown:
    run: _Run
    reason: str
    requested_by: str
    after_crash: bool  # the leader is already dead; this only clears leftovers
    exit_seen: bool = False
    interrupt: bool = False  # call the framework's interrupt endpoint before stopping


class Supervisor:
    """Keeps the chosen framework alive. Public methods are thread-safe."""

    def __init__(
        self, settings: Settings, *, watch: bool = True, gpu: GpuReader | None = None
    ) -> None:
        self.settings = settings
        self.watching = watch
        self.gpu = gpu
        logs_dir = settings.logs_dir
        self.logs = LogStore(
            logs_dir,
            settings.logs.max_bytes,
            settings.logs.keep_runs,
            settings.logs.max_total_bytes,
        )
        self.events = EventLog(logs_dir / "events.jsonl")
        self.statefile = StateFile(logs_dir / "state.json")
        self._inbox: queue.Queue[object] = queue.Queue()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._abort = threading.Event()

        # Owned by the control thread from begin() on.
        self._desired = settings.default_framework
        self._should_run = False
        self._run: _Run | None = None
        self._teardown: _Teardown | None = None
        self._restart_pending = False
        self._spawn_by = "boot"
        self._cmd_by = "api"
        self._failures: list[float] = []
        self._consecutive = 0
        self._backoff_until: float | None = None
        self._backoff_reason: str | None = None
        self._fatal: str | None = None
        self._fatal_stderr: tuple[str, ...] = ()
        self._restarts = 0
        self._last_exit: ExitInfo | None = None
        self._seq = 0
        self._last_run_id = ""
        self._last_logs: RunLogs | None = None
        self._interrupt_next = False
        self._closing: _Shutdown | None = None
        self._status = self._snapshot()

    # -- public API (any thread) ---------------------------------------------------

    def begin(self, problems: list[str] | None = None) -> Status:
        """Start the control thread and bring back the remembered framework.

        ``problems``: what others found damaged on start (history…), for the journal.
        """
        if self._thread is not None:
            return self._status
        remembered = self.statefile.load()
        found = [*(problems or []), *([self.statefile.error] if self.statefile.error else [])]
        desired = remembered.desired if remembered else None
        if desired and desired.framework in self.settings.frameworks:
            self._desired, self._should_run = desired.framework, desired.should_run
        else:
            if desired:
                log.warning(
                    "remembered framework %r is no longer in the settings; using %r",
                    desired.framework,
                    self.settings.default_framework,
                )
            self._desired, self._should_run = self.settings.default_framework, True
        self.events.write(
            "watchdog_start",
            pid=os.getpid(),
            version=__version__,
            settings=self.settings.source,
            framework=self._desired,
            should_run=self._should_run,
            watching=self.watching,
            problems=found or None,
        )
        if remembered and remembered.run and self.watching:
            self._adopt(remembered.run)  # before the control thread: nothing else runs yet
        self._thread = threading.Thread(target=self._loop, name="supervisor", daemon=True)
        self._thread.start()
        reply: Future[Status] = Future()
        self._inbox.put(_Command("boot", None, "boot", reply))
        return reply.result(COMMAND_REPLY_TIMEOUT_S)

    def status(self) -> Status:
        return self._status

    def tree_pids(self) -> list[int]:
        """Pids of the running framework's whole tree (a /proc scan; for the sampler).

        Reads the control thread's current run without changing it.
        """
        run = self._run
        return [p.pid for p in run.proc.tree()] if run is not None else []

    # Stop, restart and switch refuse (BusyRefused) while the framework reports a
    # generation in progress, unless ``force``: then its interrupt endpoint is called
    # before the stop.

    def start(
        self, name: str | None = None, requested_by: str = "api", force: bool = False
    ) -> Status:
        """Run ``name`` (default: the chosen framework); switches if another runs."""
        return self._command("start", name, requested_by, force)

    def switch(self, name: str, requested_by: str = "api", force: bool = False) -> Status:
        return self._command("switch", name, requested_by, force)

    def stop(self, requested_by: str = "api", force: bool = False) -> Status:
        return self._command("stop", None, requested_by, force)

    def restart(self, requested_by: str = "api", force: bool = False) -> Status:
        return self._command("restart", None, requested_by, force)

    def report_usage(self, rss_mb: float | None, gpu_util_pct: float | None = None) -> None:
        """The sampler's latest RSS of the framework's tree (for ``max_rss_mb``) and GPU
        utilisation (a busy GPU is a sign of life during a long generation)."""
        self._inbox.put(_Usage(rss_mb, gpu_util_pct))

    def wait_for(self, predicate: Callable[[Status], bool], timeout: float) -> Status:
        """Block until a published status satisfies ``predicate``; TimeoutError if not."""
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(self._status), timeout):
                raise TimeoutError(f"status never matched; last: {self._status.to_dict()}")
            return self._status

    def shutdown(
        self, leave_running: bool = False, requested_by: str = "signal", timeout: float = 120
    ) -> None:
        """Stop supervising; stop the framework's tree unless ``leave_running``."""
        if self._thread is None or not self._thread.is_alive():
            self.logs.close()
            return
        reply: Future[None] = Future()
        self._inbox.put(_Shutdown(leave_running, requested_by, reply))
        try:
            reply.result(timeout)
        finally:
            self._abort.set()
            self._thread.join(timeout=5)
            self.logs.close()

    # -- command plumbing ------------------------------------------------------------

    def _command(
        self, kind: str, name: str | None, requested_by: str, force: bool = False
    ) -> Status:
        if name is not None and name not in self.settings.frameworks:
            known = ", ".join(self.settings.frameworks)
            raise UnknownFramework(f"unknown framework {name!r:.80} (known: {known})")
        if name is not None:
            missing = self.settings.framework(name).missing()
            if missing:
                raise NotInstalled(f"{name} is {missing}")
        if not self.watching:
            raise WatchDisabled("this watchdog runs with --no-watch: it never starts or stops")
        if self._thread is None or self._stopped.is_set():
            raise RuntimeError("the supervisor is not running")
        reply: Future[Status] = Future()
        self._inbox.put(_Command(kind, name, requested_by, reply, force))
        return reply.result(COMMAND_REPLY_TIMEOUT_S)

    # -- the control loop (control thread only below) ----------------------------------

    def _loop(self) -> None:
        while True:
            try:
                msg = self._inbox.get(timeout=self._next_timeout())
            except queue.Empty:
                msg = None
            try:
                self._handle(msg)
                self._on_timers()
                self._reconcile()
            except Exception as exc:  # the loop must outlive any bug in one step
                log.exception("supervisor step failed")
                self.events.write("internal_error", error=f"{exc.__class__.__name__}: {exc}")
                if isinstance(msg, _Command) and not msg.reply.done():
                    msg.reply.set_exception(exc)
            self._publish()
            if isinstance(msg, _Command) and not msg.reply.done():
                msg.reply.set_result(self._status)
            if self._closing and self._run is None and self._teardown is None:
                self._finish_shutdown()
                return

    def _next_timeout(self) -> float | None:
        now = time.monotonic()
        deadlines = []
        run = self._run
        if run is not None and not run.ready:
            deadlines.append(run.proc.started_mono + run.watch.startup_timeout_s)
        if self._run is None and self._teardown is None and self._backoff_until is not None:
            deadlines.append(self._backoff_until)
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - now)

    def _handle(self, msg: object) -> None:
        if msg is None:
            return
        if isinstance(msg, _Command):
            self._on_command(msg)
        elif isinstance(msg, _Exited):
            self._on_exited(msg)
        elif isinstance(msg, Ready):
            self._on_ready(msg)
        elif isinstance(msg, Liveness):
            self._on_liveness(msg)
        elif isinstance(msg, _TornDown):
            self._on_torn_down(msg)
        elif isinstance(msg, _Shutdown):
            self._on_shutdown(msg)
        elif isinstance(msg, _Usage):
            self._on_usage(msg)

    def _on_command(self, cmd: _Command) -> None:
        if self._closing:
            cmd.reply.set_exception(RuntimeError("the watchdog is shutting down"))
            return
        if cmd.kind == "boot":
            self._spawn_by = "boot"
            return
        run = self._run
        interrupts = run is not None and (
            cmd.kind in ("stop", "restart") or (cmd.name is not None and cmd.name != self._desired)
        )
        if interrupts and run is not None and run.busy is not None and run.busy.busy:
            if not cmd.force:
                cmd.reply.set_exception(
                    BusyRefused(
                        f"a generation is running on {run.name} ({run.busy.detail});"
                        " force to interrupt it"
                    )
                )
                return
            self._interrupt_next = True
        self._seq += 1
        self._cmd_by = cmd.requested_by
        if cmd.kind == "stop":
            if self._should_run or self._fatal or self._backoff_until:
                self._fresh_start()
            self._should_run = False
            self._restart_pending = False
        elif cmd.kind in ("start", "switch"):
            name = cmd.name or self._desired
            if name != self._desired:
                self.events.write(
                    "switch", framework=name, previous=self._desired, requested_by=cmd.requested_by
                )
            idle = self._run is None and self._teardown is None
            if name != self._desired or not self._should_run or self._fatal or idle:
                self._fresh_start()
                self._spawn_by = cmd.requested_by
            self._desired = name
            self._should_run = True
        elif cmd.kind == "restart":
            self.events.write("restart", framework=self._desired, requested_by=cmd.requested_by)
            self._fresh_start()
            self._should_run = True
            self._restart_pending = self._run is not None
            self._spawn_by = cmd.requested_by
        self._persist()

    def _persist(self) -> None:
        """The choice and the live run, for the next watchdog (see statefile)."""
        run = self._run or (self._teardown.run if self._teardown else None)
        record = None
        if run is not None and not (self._teardown and self._teardown.exit_seen):
            record = RunRecord(
                framework=run.name,
                run_id=run.run_id,
                pid=run.proc.pid,
                start_ticks=run.proc.start_ticks,
                started_at=run.proc.started_at,
                command=run.spec.command_line,
                stdout=str(run.logs.stdout),
                stderr=str(run.logs.stderr),
                url=run.url,
            )
        self.statefile.save(Desired(self._desired, self._should_run), record)

    def _adopt(self, record: RunRecord) -> None:
        """Supervise a run that a previous watchdog started and left running."""
        ids = {"framework": record.framework, "run_id": record.run_id, "pid": record.pid}
        if record.framework not in self.settings.frameworks:
            self.events.write("adopt_skipped", **ids, reason="framework no longer in settings")
            return
        proc = ManagedProcess.adopt(
            record.run_id,
            record.pid,
            record.start_ticks,
            record.started_at,
            on_exit=lambda rc: self._inbox.put(_Exited(record.run_id, rc)),
        )
        if proc is None:
            self.events.write(
                "adopt_skipped",
                **ids,
                reason="that run is gone (its pid is free or belongs to another process)",
            )
            return
        spec = self.settings.framework(record.framework)
        watch = self.settings.watch_for(record.framework)
        run_logs = RunLogs(record.run_id, Path(record.stdout), Path(record.stderr))
        prober = Prober(
            record.run_id,
            spec,
            watch.health_interval_s,
            watch.health_timeout_s,
            [run_logs.stdout, run_logs.stderr],
            self._inbox.put,
        )
        run = _Run(record.framework, spec, watch, proc, run_logs, prober, url=record.url)
        self._run = run
        self._last_logs = run_logs
        self._last_run_id = record.run_id
        self._desired = record.framework
        self._should_run = True
        self.logs.set_live(run_logs)
        self.events.write("adopt", **ids, requested_by="boot", uptime_s=round(run.uptime, 1))
        prober.start()

    def _fresh_start(self) -> None:
        """A person's command: forget failures, leave FATAL/BACKOFF."""
        self._failures.clear()
        self._consecutive = 0
        self._backoff_until = None
        self._backoff_reason = None
        self._fatal = None
        self._fatal_stderr = ()
        self._restarts = 0

    def _on_shutdown(self, msg: _Shutdown) -> None:
        self._closing = msg
        run = self._run
        if msg.leave_running and run is not None:
            self._persist()  # the next watchdog adopts it
            run.prober.stop()
            self.logs.set_live(None)
            self.events.write(
                "detach",
                framework=run.name,
                run_id=run.run_id,
                pid=run.proc.pid,
                requested_by=msg.requested_by,
                reason="watchdog exiting; framework left running",
            )
            self._run = None

    def _finish_shutdown(self) -> None:
        assert self._closing is not None
        self.events.write("watchdog_stop", pid=os.getpid(), requested_by=self._closing.requested_by)
        self._stopped.set()
        self._closing.reply.set_result(None)

    # -- reconciling what runs with what is wanted -------------------------------------

    def _reconcile(self) -> None:
        if self._teardown is not None:
            return  # nothing starts while a tree is still going away
        run = self._run
        if run is not None:
            if self._closing:
                self._begin_teardown(run, "watchdog shutting down", self._closing.requested_by)
            elif not self._should_run:
                self._begin_teardown(run, "stop requested", self._cmd_by)
            elif run.name != self._desired:
                self._begin_teardown(run, f"switch to {self._desired}", self._cmd_by)
            elif self._restart_pending:
                self._restart_pending = False
                self._begin_teardown(run, "restart requested", self._cmd_by)
            return
        self._restart_pending = False
        if self._closing or not self.watching or self._fatal or not self._should_run:
            return
        if self._backoff_until is not None:
            if time.monotonic() < self._backoff_until:
                return
            self._backoff_until = None
        self._spawn()

    def _on_timers(self) -> None:
        run = self._run
        if run is None or run.ready:
            return
        if run.uptime >= run.watch.startup_timeout_s:
            reason = f"not ready within startup_timeout_s={run.watch.startup_timeout_s:g}"
            self.events.write(
                "startup_timeout",
                **self._ids(run),
                reason=reason,
                last_stdout=tail_lines(run.logs.stdout, 3),
                last_stderr=tail_lines(run.logs.stderr, 3),
            )
            self._failure(run.name, reason, False, self._stderr_tail(run), run)
            self._begin_teardown(run, "startup timeout", "watch")

    # -- spawning --------------------------------------------------------------------

    def _new_run_id(self, name: str) -> str:
        now = datetime.now(timezone.utc)
        run_id = f"{now:%Y%m%d-%H%M%S}-{now.microsecond // 1000:03d}-{name}"
        if run_id <= self._last_run_id:  # two spawns in one millisecond
            run_id = f"{self._last_run_id}x"
        self._last_run_id = run_id
        return run_id

    def _spawn(self) -> None:
        name = self._desired
        spec = self.settings.framework(name)
        watch = self.settings.watch_for(name)
        by, self._spawn_by = self._spawn_by, "watch"
        hostport = url_port(spec.url)
        if hostport and hostport[0] in LOCAL_HOSTS and port_in_use(hostport[1]):
            holder = port_holder(hostport[1])
            reason = f"port {hostport[1]} is already in use by {holder or 'another program'}"
            self.events.write(
                "port_busy", framework=name, port=hostport[1], holder=holder, reason=reason
            )
            self._failure(name, reason, False, (), None)
            return
        run_id = self._new_run_id(name)
        run_logs = self.logs.new_run(run_id)
        out, err = self.logs.open_for_child(run_logs)
        try:
            proc = ManagedProcess.spawn(
                spec, run_id, out, err, on_exit=lambda rc: self._inbox.put(_Exited(run_id, rc))
            )
        except (SpawnError, OSError, ValueError) as exc:
            reason = str(exc) if isinstance(exc, SpawnError) else f"cannot start: {exc}"
            self.events.write(
                "spawn_failed", framework=name, run_id=run_id, reason=reason, requested_by=by
            )
            self._failure(name, reason, False, (), None)
            return
        finally:
            out.close()
            err.close()
        if by == "watch":
            self._restarts += 1
        prober = Prober(
            run_id,
            spec,
            watch.health_interval_s,
            watch.health_timeout_s,
            [run_logs.stdout, run_logs.stderr],
            self._inbox.put,
        )
        run = _Run(name, spec, watch, proc, run_logs, prober, url=spec.url)
        self._run = run
        self._last_logs = run_logs
        self.logs.set_live(run_logs)
        self._persist()
        self.events.write(
            "spawn",
            **self._ids(run),
            requested_by=by,
            command=spec.command_line,
            cwd=str(spec.cwd) if spec.cwd else None,
            restarts=self._restarts,
            stdout=str(run_logs.stdout),
            stderr=str(run_logs.stderr),
        )
        prober.start()

    # -- what runs tells us ----------------------------------------------------------

    def _on_ready(self, msg: Ready) -> None:
        run = self._run
        if run is None or run.run_id != msg.run_id or run.ready:
            return
        run.ready = True
        run.ready_mono = time.monotonic()
        if msg.url and msg.url != run.url:
            run.url = msg.url
            self._persist()
        self.events.write(
            "ready",
            **self._ids(run),
            via=msg.via,
            url=run.url,
            startup_s=round(run.uptime, 3),
            line=msg.line,
        )
        if run.spec.url and run.url != run.spec.url:
            # Gradio and InvokeAI move to the next free port: the ready line is the truth.
            self.events.write(
                "url_changed", **self._ids(run), configured=run.spec.url, actual=run.url
            )

    def _on_liveness(self, msg: Liveness) -> None:
        run = self._run
        if run is None or run.run_id != msg.run_id or not run.ready:
            return
        result = msg.result
        if msg.busy is not None:
            run.busy = msg.busy
        if run.busy is not None and run.busy.busy:
            self._judge_busy(run, result.ok)
            return
        run.progress_mono = time.monotonic()
        if result.ok:
            if run.probe_failures:
                self.events.write("healthy", **self._ids(run), after_failures=run.probe_failures)
            run.probe_failures = 0
            run.last_probe = result.detail
            return
        run.probe_failures += 1
        run.last_probe = result.detail
        threshold = run.watch.failure_threshold
        if run.probe_failures < threshold:
            if run.probe_failures == 1:
                self.events.write(
                    "unhealthy", **self._ids(run), detail=result.detail, threshold=threshold
                )
            return
        reason = f"hang: {run.probe_failures} health probes in a row failed ({result.detail})"
        self.events.write(
            "hang",
            **self._ids(run),
            reason=reason,
            failures=run.probe_failures,
            interval_s=run.watch.health_interval_s,
            timeout_s=run.watch.health_timeout_s,
        )
        self._failure(run.name, reason, run.stable, self._stderr_tail(run), run)
        self._begin_teardown(run, "hang", "watch")

    def _judge_busy(self, run: _Run, probe_ok: bool) -> None:
        """During a job, slow or failing probes are no hang while the job moves on.

        Signs of life: the reported step/progress changes, or the framework writes
        output. None of them for ``stall_timeout_s`` while busy is a stall.
        """
        assert run.busy is not None
        output = 0
        for path in (run.logs.stdout, run.logs.stderr):
            try:
                output += path.stat().st_size
            except OSError:
                pass
        mark = (run.busy.fingerprint, output)
        now = time.monotonic()
        if mark != run.progress_mark:
            run.progress_mark = mark
            run.progress_mono = now
        if probe_ok:
            run.probe_failures = 0
        still = now - run.progress_mono
        if still < run.watch.stall_timeout_s:
            return
        reason = (
            f"stalled: busy ({run.busy.detail}) with no progress and no output for"
            f" {still:.0f}s (stall_timeout_s={run.watch.stall_timeout_s:g})"
        )
        self.events.write("stalled", **self._ids(run), reason=reason)
        self._failure(run.name, reason, run.stable, self._stderr_tail(run), run)
        self._begin_teardown(run, "stalled", "watch")

    def _on_exited(self, msg: _Exited) -> None:
        code, sig, words = describe_exit(msg.returncode)
        td = self._teardown
        if td is not None and td.run.run_id == msg.run_id:
            td.exit_seen = True
            if not td.after_crash:
                self._last_exit = ExitInfo(
                    code, sig, f"stopped: {td.reason}", utc_now_iso(), msg.run_id, td.run.proc.pid
                )
                self.events.write(
                    "exit",
                    **self._ids(td.run),
                    exit_code=code,
                    signal=sig,
                    reason=f"stopped: {td.reason}",
                    requested_by=td.requested_by,
                    uptime_s=round(td.run.uptime, 3),
                )
            return
        run = self._run
        if run is None or run.run_id != msg.run_id:
            return
        if self._asked_to_restart(run):
            self.events.write(
                "exit",
                **self._ids(run),
                exit_code=code,
                signal=sig,
                requested_by="framework",
                reason="the framework asked to be restarted",
            )
            self.events.write(
                "restart",
                **self._ids(run),
                requested_by="framework",
                reason=f"{run.spec.restart_file} written before the exit",
            )
            self._last_exit = ExitInfo(
                code,
                sig,
                "restart requested by the framework",
                utc_now_iso(),
                run.run_id,
                run.proc.pid,
            )
            self._backoff_until = time.monotonic()  # at once, and no failure counted
            self._begin_teardown(run, "cleanup after exit", "watch", after_crash=True)
            self._persist()
            return
        uptime = run.uptime
        stable = run.stable
        tail = self._stderr_tail(run)
        cause = crash_cause(msg.returncode, tail)
        if cause:
            words = f"{words}: {cause}"
        self._last_exit = ExitInfo(code, sig, words, utc_now_iso(), run.run_id, run.proc.pid)
        common = {"exit_code": code, "signal": sig, "uptime_s": round(uptime, 3)}
        self.events.write("exit", **self._ids(run), **common, reason=words, requested_by="watch")
        self.events.write(
            "crash",
            **self._ids(run),
            **common,
            reason=words,
            cause=cause,
            ready=run.ready,
            last_stderr=tail,
        )
        self._failure(run.name, f"crash: {words}", stable, tail, run)
        self._begin_teardown(run, "cleanup after crash", "watch", after_crash=True)
        self._persist()

    @staticmethod
    def _asked_to_restart(run: _Run) -> bool:
        """A1111's "Apply and restart UI": it writes tmp/restart, then exits."""
        path = run.spec.restart_file
        try:
            return path is not None and path.stat().st_mtime >= run.proc.started_at - 1
        except OSError:
            return False

    def _failure(
        self,
        name: str,
        reason: str,
        stable: bool,
        stderr_tail: tuple[str, ...],
        run: _Run | None,
    ) -> None:
        """Count a failed run and decide: restart now, back off, or give up (FATAL)."""
        watch = self.settings.watch_for(name)
        now = time.monotonic()
        self._failures = [t for t in self._failures if now - t <= watch.restart_window_s]
        self._failures.append(now)
        if stable:
            self._consecutive = 0
            delay = 0.0
        else:
            self._consecutive += 1
            delay = min(watch.backoff_initial_s * 2 ** (self._consecutive - 1), watch.backoff_max_s)
        ids = self._ids(run) if run else {"framework": name}
        if len(self._failures) > watch.max_restarts:
            self._fatal = (
                f"{reason} — {len(self._failures)} failures within"
                f" {watch.restart_window_s:g}s (max_restarts={watch.max_restarts});"
                " not restarting until started again"
            )
            self._fatal_stderr = stderr_tail
            self._backoff_until = None
            self.events.write(
                "fatal",
                **ids,
                reason=self._fatal,
                failures=len(self._failures),
                window_s=watch.restart_window_s,
                last_stderr=stderr_tail,
            )
            return
        self._backoff_until = now + delay
        self._backoff_reason = reason
        if delay > 0:
            self.events.write(
                "backoff",
                **ids,
                delay_s=round(delay, 3),
                attempt=self._consecutive,
                failures_in_window=len(self._failures),
                reason=reason,
            )

    # -- stopping ----------------------------------------------------------------------

    def _begin_teardown(
        self, run: _Run, reason: str, requested_by: str, after_crash: bool = False
    ) -> None:
        run.prober.stop()
        self._run = None
        td = _Teardown(run, reason, requested_by, after_crash, exit_seen=after_crash)
        td.interrupt, self._interrupt_next = self._interrupt_next, False
        self._teardown = td
        hostport = None if after_crash else url_port(run.url)
        port = hostport[1] if hostport and hostport[0] in LOCAL_HOSTS else None

        def work() -> None:
            if td.interrupt:
                self._call_interrupt(run)
            # After a crash there is nothing to measure before the stop, and every
            # millisecond here delays the respawn.
            held_before = ({run.proc.pid}, None) if after_crash else self._gpu_held(run)
            try:
                result = run.proc.stop(run.spec.stop_signal, run.watch.stop_timeout_s, self._abort)
            except Exception:
                log.exception("stopping run %s failed", run.run_id)
                result = StopResult(0.0, None, False, (), (run.proc.pid,))
            # The waiter posts the exit before setting this, so the exit is handled first.
            run.proc.exited.wait(KILL_WAIT_S)
            free, waited = None, 0.0
            if port is not None:
                t0 = time.monotonic()
                free = wait_port_free(port, run.watch.port_free_timeout_s, self._abort)
                waited = time.monotonic() - t0
            vram = self._wait_vram({run.proc.pid, *result.pids}, run.watch, held_before)
            self._inbox.put(_TornDown(run.run_id, result, free, waited, vram))

        threading.Thread(target=work, name=f"stop-{run.proc.pid}", daemon=True).start()

    def _gpu_held(self, run: _Run) -> tuple[set[int], float | None]:
        """Before a stop: the tree's pids and the VRAM they hold (None: no GPU)."""
        pids = {run.proc.pid, *(p.pid for p in run.proc.tree())}
        if self.gpu is None:
            return pids, None
        snap = self.gpu.read(pids)
        return pids, snap.framework_mb() if snap.available else None

    def _call_interrupt(self, run: _Run) -> None:
        """A forced stop of a busy framework: ask it to end the job first (stopper thread)."""
        if run.spec.interrupt is None or run.url is None:
            self.events.write(
                "interrupt", **self._ids(run), ok=False, detail="this framework has no interrupt"
            )
            return
        method, path = run.spec.interrupt
        try:
            resp = probe_session().request(method, join_url(run.url, path), timeout=5)
            ok, detail = resp.status_code < 400, f"HTTP {resp.status_code}"
        except requests.RequestException as exc:
            ok, detail = False, f"failed: {exc.__class__.__name__}"
        self.events.write("interrupt", **self._ids(run), ok=ok, detail=f"{method} {path}: {detail}")

    def _wait_vram(
        self, pids: set[int], watch: WatchSettings, before: tuple[set[int], float | None]
    ) -> _VramWait:
        """Until no GPU process of the stopped tree is left (runs on the stopper thread).

        The next framework would otherwise die of CUDA out-of-memory while the old
        one's memory is still being freed.
        """
        if self.gpu is None:
            return _VramWait(skipped="no GPU reader")
        pids = pids | before[0]
        t0 = time.monotonic()
        while True:
            snap = self.gpu.read(pids)
            if not snap.available:
                return _VramWait(skipped=snap.message)
            held = [p for p in snap.processes if p.in_framework]
            waited = time.monotonic() - t0
            if not held:
                return _VramWait(released=True, waited_s=waited, freed_mb=before[1])
            if waited >= watch.vram_release_timeout_s or self._abort.is_set():
                return _VramWait(
                    released=False,
                    waited_s=waited,
                    held_pids=tuple(p.pid for p in held),
                    held_mb=snap.framework_mb(),
                )
            self._abort.wait(0.25)

    def _on_usage(self, msg: _Usage) -> None:
        run = self._run
        if run is None:
            return
        if msg.gpu_util_pct is not None and msg.gpu_util_pct >= GPU_ALIVE_PCT:
            run.progress_mono = time.monotonic()
        if msg.rss_mb is None:
            return
        limit = self.settings.frameworks[run.name].max_rss_mb
        if limit is None or msg.rss_mb <= limit:
            run.rss_over_since = None
            return
        now = time.monotonic()
        if run.rss_over_since is None:
            run.rss_over_since = now
        over = now - run.rss_over_since
        if over < run.watch.rss_limit_s:
            return
        busy = run.busy is not None and run.busy.busy
        if busy and over < run.watch.rss_limit_s + run.watch.busy_wait_max_s:
            return  # let the generation finish first, up to busy_wait_max_s
        reason = f"RSS {msg.rss_mb:.0f} MB above max_rss_mb={limit:g} for {over:.0f} s"
        self.events.write(
            "restart",
            **self._ids(run),
            reason="rss_limit",
            detail=reason,
            rss_mb=round(msg.rss_mb, 1),
            limit_mb=limit,
            requested_by="watch",
        )
        self._failure(run.name, reason, run.stable, (), run)
        self._begin_teardown(run, "rss_limit", "watch")

    def _on_torn_down(self, msg: _TornDown) -> None:
        td = self._teardown
        if td is None or td.run.run_id != msg.run_id:
            return
        self._teardown = None
        self.logs.set_live(None)
        self._persist()
        r = msg.result
        # After the usual crash nothing was left to clean, and that is no news.
        if not td.after_crash or r.swept or r.forced or r.remaining or r.signal:
            self._stop_event(td, msg)
        self._vram_outcome(td, msg.vram)
        if r.remaining:
            log.error("run %s: processes %s survived SIGKILL", td.run.run_id, r.remaining)

    def _stop_event(self, td: _Teardown, msg: _TornDown) -> None:
        r = msg.result
        self.events.write(
            "cleanup" if td.after_crash else "stop",
            **self._ids(td.run),
            reason=td.reason,
            requested_by=td.requested_by,
            duration_ms=round(r.duration_s * 1000, 1),
            signal=r.signal,
            forced=r.forced,
            swept=list(r.swept) or None,
            remaining=list(r.remaining) or None,
            port_free=msg.port_free,
            port_wait_ms=round(msg.port_wait_s * 1000, 1) if msg.port_free is not None else None,
            vram=f"skipped: {msg.vram.skipped}" if msg.vram.skipped else None,
        )

    def _vram_outcome(self, td: _Teardown, vram: _VramWait) -> None:
        if vram.skipped:
            return
        if vram.released:
            if vram.freed_mb:
                self.events.write(
                    "vram_released",
                    **self._ids(td.run),
                    waited_ms=round(vram.waited_s * 1000, 1),
                    freed_mb=round(vram.freed_mb, 1),
                )
            return
        action = td.run.watch.vram_timeout_action
        self.events.write(
            "vram_timeout",
            **self._ids(td.run),
            waited_s=round(vram.waited_s, 1),
            held_pids=list(vram.held_pids),
            held_mb=vram.held_mb,
            action=action,
        )
        if action == "fatal" and not self._closing:
            self._fatal = (
                f"GPU memory of the stopped {td.run.name} ({vram.held_mb or 0:.0f} MB, pids"
                f" {', '.join(map(str, vram.held_pids))}) was not freed within"
                f" {td.run.watch.vram_release_timeout_s:g}s; not starting another framework"
            )
            self._fatal_stderr = ()
            self.events.write("fatal", framework=self._desired, reason=self._fatal)

    # -- helpers -----------------------------------------------------------------------

    @staticmethod
    def _ids(run: _Run) -> dict[str, Any]:
        return {"framework": run.name, "run_id": run.run_id, "pid": run.proc.pid}

    @staticmethod
    def _stderr_tail(run: _Run) -> tuple[str, ...]:
        return tuple(line for line in tail_lines(run.logs.stderr, STDERR_TAIL_LINES) if line)

    def _state(self) -> State:
        if self._run is not None:
            if not self._run.ready:
                return State.STARTING
            return State.UNHEALTHY if self._run.probe_failures else State.RUNNING
        if self._teardown is not None and not self._teardown.after_crash:
            return State.STOPPING
        if self._fatal:
            return State.FATAL
        if self._should_run and self.watching and not self._closing:
            return State.BACKOFF
        return State.STOPPED

    def _reason(self, state: State) -> str | None:
        run = self._run
        if state is State.FATAL:
            return self._fatal
        if state is State.BACKOFF:
            return self._backoff_reason
        if state is State.STOPPING and self._teardown is not None:
            return self._teardown.reason
        if state is State.UNHEALTHY and run is not None:
            return (
                f"{run.probe_failures} of {run.watch.failure_threshold} health probes failed:"
                f" {run.last_probe}"
            )
        if state is State.STARTING and run is not None:
            return "waiting for the ready line or the health URL"
        return None

    def _snapshot(self) -> Status:
        run = self._run
        td = self._teardown
        shown = run or (td.run if td and not td.exit_seen else None)
        state = self._state()
        try:
            app_cmd = self.settings.framework(self._desired).command_line
        except (KeyError, ValueError):
            app_cmd = ""
        errors = tuple(e for e in (self.logs.error, self.events.error, self.statefile.error) if e)
        backoff = None
        if state is State.BACKOFF and self._backoff_until is not None:
            backoff = time.time() + max(0.0, self._backoff_until - time.monotonic())
        return Status(
            framework=self._desired,
            state=state,
            should_run=self._should_run,
            watching=self.watching,
            pid=shown.proc.pid if shown else None,
            run_id=shown.run_id if shown else None,
            run_framework=shown.name if shown else None,
            url=shown.url if shown else None,
            ready=bool(run and run.ready),
            healthy=bool(run and run.ready and not run.probe_failures),
            is_running=shown is not None,
            spawned_at=shown.proc.started_at if shown else None,
            restarts=self._restarts,
            last_exit=self._last_exit,
            app_cmd=app_cmd,
            frameworks=tuple(self.settings.frameworks),
            reason=self._reason(state),
            last_stderr=self._fatal_stderr if state is State.FATAL else (),
            backoff_until=backoff,
            startup_timeout_s=self.settings.watch_for(self._desired).startup_timeout_s,
            probe_failures=run.probe_failures if run else 0,
            busy=bool(run and run.busy and run.busy.busy),
            busy_detail=run.busy.detail if run and run.busy and run.busy.busy else None,
            seq=self._seq,
            errors=errors,
            logs=self._last_logs,
        )

    def _publish(self) -> None:
        status = self._snapshot()
        with self._changed:
            self._status = status
            self._changed.notify_all()
