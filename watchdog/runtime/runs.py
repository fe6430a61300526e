"""A run in the runtime: its process, its log files and its prober, and how one is
begun (spawned) or taken over (adopted). Each answer is a message for the machine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..core.messages import AdoptedRun, Exited, Message, Spawned, SpawnFailed
from ..frameworks.presets import FrameworkSpec
from ..settings import Settings, WatchSettings
from .logs import RunLogs, tail_lines
from .logstore import LogStore
from .oom import killed_by_oom, oom_kills
from .ports import local_port, port_holder, port_in_use
from .probes import Prober
from .process import ManagedProcess, SpawnError
from .queue_memory import QueueMemory, queue_path
from .statefile import RunRecord

STDERR_TAIL_LINES = 20

Post = Callable[[Message], None]


@dataclass
class Run:
    framework: str
    spec: FrameworkSpec
    watch: WatchSettings
    proc: ManagedProcess
    logs: RunLogs
    prober: Prober
    # The kernel's OOM-kill count when the run began (None: adopted, or unreadable).
    oom_kills_at_start: int | None = None

    @property
    def run_id(self) -> str:
        return self.proc.run_id

    def ids(self) -> dict[str, object]:
        return {"framework": self.framework, "run_id": self.run_id, "pid": self.proc.pid}

    def record(self, url: str | None) -> RunRecord:
        """What a later watchdog needs to adopt this run safely."""
        return RunRecord(
            framework=self.framework,
            run_id=self.run_id,
            pid=self.proc.pid,
            start_ticks=self.proc.start_ticks,
            started_at=self.proc.started_at,
            command=self.spec.command_line,
            stdout=str(self.logs.stdout),
            stderr=str(self.logs.stderr),
            url=url,
        )

    @property
    def session(self) -> Path | None:
        return session_file(self.spec, self.logs)

    def stderr_tail(self) -> tuple[str, ...]:
        return tuple(line for line in tail_lines(self.logs.stderr, STDERR_TAIL_LINES) if line)


def session_file(spec: FrameworkSpec, logs: RunLogs) -> Path | None:
    """Where the framework may ask for a relaunch (``<session>.reboot``): beside the
    run's logs, so an adopted run has the same one."""
    if spec.session_env is None:
        return None
    return logs.stderr.with_name(f"{logs.run_id}.session")


class RunIds:
    """Run ids that sort in time and never repeat: ``20261127-083000-123-comfyui``."""

    def __init__(self) -> None:
        self.last = ""

    def new(self, name: str) -> str:
        now = datetime.now(timezone.utc)
        run_id = f"{now:%Y%m%d-%H%M%S}-{now.microsecond // 1000:03d}-{name}"
        if run_id <= self.last:  # two spawns in one millisecond
            run_id = f"{self.last}x"
        self.last = run_id
        return run_id


class _Box:
    """The Run, for a waiter that may fire before ``spawn`` has returned it."""

    def __init__(self) -> None:
        self._run: Run | None = None
        self._set = threading.Event()

    def put(self, run: Run) -> None:
        self._run = run
        self._set.set()

    def on_exit(self, post: Post) -> Callable[[int | None], None]:
        """The waiter's callback: the exit with what the machine needs to judge it
        (read here, on the waiter thread, so the control thread never opens a file)."""

        def exited(returncode: int | None) -> None:
            self._set.wait(5)
            r = self._run
            if r is None:
                return
            try:
                tail, asked = r.stderr_tail(), asked_to_restart(r, returncode)
                oom = returncode == -9 and killed_by_oom(r.proc.pid, r.oom_kills_at_start)
            except Exception:  # the exit itself must reach the machine, whatever else
                tail, asked, oom = (), False, False
            post(Exited(r.run_id, returncode, tail, asked, oom))

        return exited


def asked_to_restart(run: Run, returncode: int | None = None) -> bool:
    """A1111's "Apply and restart UI" writes tmp/restart, then exits; ComfyUI-Manager's
    Restart creates ``$__COMFY_CLI_SESSION__.reboot``, then exits 0 (the marker is
    taken: it asks for one relaunch)."""
    if run.session is not None and returncode == 0:
        marker = run.session.with_name(run.session.name + ".reboot")
        try:
            marker.unlink()
            return True
        except OSError:
            pass
    path = run.spec.restart_file
    try:
        return path is not None and path.stat().st_mtime >= run.proc.started_at - 1
    except OSError:
        return False


def spawn_run(
    settings: Settings, name: str, store: LogStore, ids: RunIds, home: str, post: Post
) -> tuple[Run | None, Spawned | SpawnFailed]:
    """Start ``name``; the new Run and ``Spawned``, or None and ``SpawnFailed``."""
    spec = settings.framework(name)
    port = local_port(spec.url)
    if port is not None and port_in_use(port):
        holder = port_holder(port)
        reason = f"port {port} is already in use by {holder or 'another program'}"
        return None, SpawnFailed(name, reason, "port_busy", {"port": port, "holder": holder})
    run_id = ids.new(name)
    run_logs = store.new_run(run_id)
    kills = oom_kills()
    box = _Box()
    out, err = store.open_for_child(run_logs)
    session = session_file(spec, run_logs)
    try:
        extra = {spec.session_env: str(session)} if spec.session_env and session else None
        proc = ManagedProcess.spawn(spec, run_id, home, out, err, box.on_exit(post), extra)
    except (SpawnError, OSError, ValueError) as exc:
        reason = str(exc) if isinstance(exc, SpawnError) else f"cannot start: {exc}"
        return None, SpawnFailed(name, reason, "spawn_failed", {"run_id": run_id})
    finally:
        out.close()
        err.close()
    run = _run(settings, name, proc, run_logs, post)
    run.oom_kills_at_start = kills
    box.put(run)
    details = {
        "command": spec.command_line,
        "cwd": str(spec.cwd) if spec.cwd else None,
        "stdout": str(run_logs.stdout),
        "stderr": str(run_logs.stderr),
    }
    spawned = Spawned(run_id, name, proc.pid, proc.started_mono, proc.started_at, spec.url, details)
    return run, spawned


def adopt_run(
    settings: Settings, record: RunRecord, post: Post
) -> tuple[Run | None, AdoptedRun | str]:
    """Take over the recorded run; None and the reason when it cannot be."""
    if record.framework not in settings.frameworks:
        return None, "framework no longer in settings"
    box = _Box()
    proc = ManagedProcess.adopt(
        record.run_id, record.pid, record.start_ticks, record.started_at, box.on_exit(post)
    )
    if proc is None:
        return None, "that run is gone (its pid is free or belongs to another process)"
    run_logs = RunLogs(record.run_id, Path(record.stdout), Path(record.stderr))
    run = _run(settings, record.framework, proc, run_logs, post)
    box.put(run)
    mono = time.monotonic() - (time.time() - record.started_at)
    return run, AdoptedRun(
        record.framework, record.run_id, record.pid, mono, record.started_at, record.url
    )


def _run(settings: Settings, name: str, proc: ManagedProcess, logs: RunLogs, post: Post) -> Run:
    spec = settings.framework(name)
    watch = settings.watch_for(name)
    memory = None
    if spec.busy_kind == "comfyui":  # its queue dies with it: keep a copy on disk
        memory = QueueMemory(queue_path(logs.stdout.parent, proc.run_id), proc.run_id)
    prober = Prober(
        proc.run_id,
        spec,
        watch.health_interval_s,
        watch.health_timeout_s,
        [logs.stdout, logs.stderr],
        post,
        memory.seen if memory is not None else None,
    )
    return Run(name, spec, watch, proc, logs, prober)
