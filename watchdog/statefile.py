"""What the watchdog must remember across its own restarts: the chosen framework.

Written atomically (temp file + rename), so a crash mid-write leaves the old file.
A missing or unreadable file means "no memory": the settings' default applies.

    >>> store = StateFile(Path("logs/state.json"))     # doctest: +SKIP
    >>> store.save(Desired("comfyui", should_run=True))
    >>> store.load()
    Desired(framework='comfyui', should_run=True)
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


class StateFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.error: str | None = None

    def load(self) -> Desired | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            desired = data["desired"]
            return Desired(str(desired["framework"]), bool(desired["should_run"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.error = f"{self.path} unreadable ({exc.__class__.__name__}); using defaults"
            log.warning("%s", self.error)
            return None

    def save(self, desired: Desired) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump({"version": 1, "desired": asdict(desired)}, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            self.error = None
        except OSError as exc:
            self.error = f"cannot save {self.path}: {exc.strerror or exc}"
            log.error("%s", self.error)
