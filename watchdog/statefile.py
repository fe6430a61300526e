"""What the watchdog must remember across its own restarts.

The chosen framework (and whether it should run), and the run that is alive right
now, so that a restarted watchdog adopts it instead of starting a second copy.
Written atomically (temp file + rename): a crash mid-write leaves the old file. A
missing or unreadable file means "no memory": the settings' default applies.

    >>> store = StateFile(Path("logs/state.json"))     # doctest: +SKIP
    >>> store.save(Desired("comfyui", should_run=True), run=None)
    >>> store.load()
    Remembered(desired=Desired(framework='comfyui', should_run=True), run=None)
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Desired:
    framework: str
    should_run: bool


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
    desired: Desired
    run: RunRecord | None


class StateFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.error: str | None = None

    def load(self) -> Remembered | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            d = data["desired"]
            desired = Desired(str(d["framework"]), bool(d["should_run"]))
            run = RunRecord(**data["run"]) if data.get("run") else None
            return Remembered(desired, run)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.error = f"{self.path} unreadable ({exc.__class__.__name__}); using defaults"
            log.warning("%s", self.error)
            return None

    def save(self, desired: Desired, run: RunRecord | None) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        payload = {"version": 2, "desired": asdict(desired), "run": asdict(run) if run else None}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # No fsync: this is written on every spawn (the respawn path), and after a
            # power loss there is no running framework to adopt anyway.
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(payload, fh)
            os.replace(tmp, self.path)
            self.error = None
        except OSError as exc:
            self.error = f"cannot save {self.path}: {exc.strerror or exc}"
            log.error("%s", self.error)
