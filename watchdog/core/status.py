"""The status object every reader sees: an immutable snapshot of the machine.

``to_dict()`` is the API contract (``GET /info``, the ``status`` endpoint).
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .states import State

if TYPE_CHECKING:  # the runtime fills it in; the machine never opens a file
    from ..runtime.logs import RunLogs
    from .idle import IdleView
    from .jobqueue import QueueView


def iso(wall: float) -> str:
    """``1767225600.5`` → ``"2026-01-01T00:00:00.500Z"`` (the journal's timestamp form)."""
    stamp = datetime.fromtimestamp(wall, timezone.utc).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


@dataclass(frozen=True)
class ExitInfo:
    code: int | None
    signal: str | None
    reason: str
    time: str
    run_id: str
    pid: int
    framework: str = ""  # whose exit: the card shows it only beside that framework

    def to_dict(self) -> dict[str, Any]:
        return {
            "framework": self.framework,
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
    note: str | None = None  # only in a command's answer: why it changed nothing
    idle: IdleView | None = None
    queue: QueueView | None = None  # the framework's job queue (ComfyUI, InvokeAI)

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
            "APP_CMD": self.app_cmd,  # the original sd-watchdog's name; scripts read it
            "command": self.app_cmd,
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
            "note": self.note,
            "idle": self.idle.to_dict(now) if self.idle is not None else None,
            "queue": self.queue.to_dict() if self.queue is not None else None,
        }
