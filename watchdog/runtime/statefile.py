"""What the watchdog must remember across its own restarts.

What a person asked for (the framework, whether it should run, a restart in flight),
saved before it is acted on, and the run that is alive right now: a restarted watchdog
adopts that run instead of starting a second copy, and finishes what was asked.
Written atomically (temp file + rename): a crash mid-write leaves the old file. A
missing or unreadable file means "no memory": the settings' default applies.

    >>> store = StateFile(Path("logs/state.json"))     # doctest: +SKIP
    >>> store.save(Wanted("comfyui", should_run=True), run=None)
    >>> store.load()
    Remembered(wanted=Wanted(framework='comfyui', should_run=True, …), run=None)
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ..core.messages import Wanted
from .private import opener

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunRecord:
    """A live run, as a later watchdog needs it to adopt it safely."""

    framework: str
    run_id: str
    pid: int
    start_ticks: int  # the kernel's start time of pid: tells a reused pid apart
    started_at: float
    command: str
    stdout: str
    stderr: str
    url: str | None


@dataclass(frozen=True)
class Remembered:
    wanted: Wanted
    run: RunRecord | None
    requeue_from: str | None = None


class StateFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.error: str | None = None

    def load(self) -> Remembered | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            w = data.get("wanted") or data["desired"]  # "desired": version 2
            restart = w.get("restart_run")
            wanted = Wanted(
                str(w["framework"]),
                bool(w["should_run"]),
                restart and str(restart),
                sleeping=w.get("sleeping") is True,
            )
            run = RunRecord(**data["run"]) if data.get("run") else None
            requeue = data.get("requeue_from")
            return Remembered(wanted, run, requeue if isinstance(requeue, str) else None)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.error = f"{self.path} unreadable ({exc.__class__.__name__}); using defaults"
            log.warning("%s", self.error)
            return None

    def save(self, wanted: Wanted, run: RunRecord | None, requeue_from: str | None = None) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        payload = {"version": 3, "wanted": asdict(wanted), "run": asdict(run) if run else None,
                   "requeue_from": requeue_from}  # fmt: skip
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # No fsync: this is written on every spawn (the respawn path), and after a
            # power loss there is no running framework to adopt anyway.
            with open(tmp, "w", encoding="utf-8", opener=opener) as fh:
                json.dump(payload, fh)
            os.replace(tmp, self.path)
            self.error = None
        except OSError as exc:
            self.error = f"cannot save {self.path}: {exc.strerror or exc}"
            log.error("%s", self.error)
