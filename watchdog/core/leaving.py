"""The machine's view of a tree on its way out, and what its teardown's answer means."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .messages import TornDown
from .policy import GiveUp, Retry
from .run import RunView
from .states import State


@dataclass(frozen=True)
class Afterwards:
    """What follows a finished teardown: the state to enter (None: stay, and let the
    machine spawn what is wanted), and FATAL's reason."""

    enter: State | None
    fatal: str | None = None


@dataclass
class Leaving:
    """A teardown in flight. ``then``: a verdict's outcome, applied once it is gone."""

    run: RunView
    reason: str
    requested_by: str
    after_crash: bool  # the leader died by itself: this only clears what is left
    exit_seen: bool
    then: Retry | GiveUp | None = None

    def afterwards(
        self, msg: TornDown, state: State, closing: bool, should_run: bool, may_spawn: bool
    ) -> Afterwards:
        fatal = None if closing else self.vram_fatal(msg)
        if isinstance(self.then, GiveUp) and not closing:
            fatal = fatal or self.then.why()
        if fatal:
            return Afterwards(State.FATAL, fatal)  # STOPPING/BACKOFF -> FATAL
        if state is not State.STOPPING:
            return Afterwards(None)  # a crash's cleanup: BACKOFF or FATAL already
        if isinstance(self.then, Retry) and should_run and not closing:
            return Afterwards(State.BACKOFF)  # after a hang, stall, timeout, RSS limit
        return Afterwards(None if may_spawn else State.STOPPED)  # a switch, or a stop

    def quiet(self, msg: TornDown) -> bool:
        """The usual crash cleanup found nothing left: no news worth an event."""
        return self.after_crash and not (msg.swept or msg.forced or msg.remaining or msg.signal)

    def vram_fatal(self, msg: TornDown) -> str | None:
        """Why not to start anything else: the GPU memory was never freed, and the
        settings say that is fatal (``vram_timeout_action``)."""
        vram, watch = msg.vram, self.run.watch
        if vram.skipped or vram.released or watch.vram_timeout_action != "fatal":
            return None
        return (
            f"GPU memory of the stopped {self.run.framework} ({vram.held_mb or 0:.0f} MB, pids"
            f" {', '.join(map(str, vram.held_pids))}) was not freed within"
            f" {watch.vram_release_timeout_s:g}s; not starting another framework"
        )

    def vram_event(self, msg: TornDown) -> tuple[str, dict[str, Any]] | None:
        vram = msg.vram
        if vram.skipped or (vram.released and not vram.freed_mb):
            return None
        if vram.released:
            freed = round(vram.freed_mb or 0.0, 1)
            return "vram_released", {"waited_ms": round(vram.waited_s * 1000, 1), "freed_mb": freed}
        return "vram_timeout", {
            "waited_s": round(vram.waited_s, 1),
            "held_pids": list(vram.held_pids),
            "held_mb": vram.held_mb,
            "action": self.run.watch.vram_timeout_action,
        }

    def stop_details(self, msg: TornDown) -> dict[str, Any]:
        """The fields of the ``stop`` or ``cleanup`` event."""
        return {
            **self.run.ids(),
            "reason": self.reason,
            "requested_by": self.requested_by,
            "duration_ms": round(msg.duration_s * 1000, 1),
            "signal": msg.signal,
            "forced": msg.forced,
            "swept": list(msg.swept) or None,
            "remaining": list(msg.remaining) or None,
            "port_free": msg.port_free,
            "port_wait_ms": round(msg.port_wait_s * 1000, 1) if msg.port_free is not None else None,
            "vram": f"skipped: {msg.vram.skipped}" if msg.vram.skipped else None,
        }
