"""The idle policy as pure functions of a clock: what is due once nobody uses the
framework.

Use is a request through the door, a person's command (page, REST, CLI, Gradio API),
a generation running (the busy probe), the GPU at work, or a start under way. The
machine tells the clock of each (``IdleClock.use``) and asks ``due`` after every
step; ``deadline`` is when to ask again, so an idle watchdog needs no polling.

    >>> idle = IdleSettings(after_min=30)
    >>> clock = IdleClock(since=0.0)
    >>> due(clock, idle, serving=True, now=1799.0) is None
    True
    >>> due(clock, idle, serving=True, now=1800.0)
    'sleep'
    >>> idle = IdleSettings(after_min=30, action="command", command="sudo poweroff")
    >>> due(clock, idle, serving=False, now=1800.0)   # a warning first, then the grace
    'warn'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..settings import IdleSettings
from .status import iso

Due = Literal["sleep", "warn", "command"]


@dataclass
class IdleClock:
    since: float = 0.0  # monotonic: the last use
    since_wall: float = 0.0
    last_use: str = "start"  # door, ui, api, cli, http, generation, gpu, start
    warned: float | None = None  # ``command``: when the warning went out (grace began)
    acted: bool = False  # slept, or ran the command, for this stretch of idleness

    def use(self, now: float, wall: float, by: str) -> bool:
        """Someone used it: the clock starts over. True when this cancelled the idle
        command's grace."""
        cancelled = self.warned is not None and not self.acted
        self.since, self.since_wall, self.last_use = now, wall, by
        self.warned, self.acted = None, False
        return cancelled


def deadline(clock: IdleClock, idle: IdleSettings, serving: bool) -> float | None:
    """When the next idle action is due (monotonic); None when none will be.

    ``stop`` only puts a serving framework to sleep; ``command`` is about the machine,
    so it counts whether or not a framework runs (a FATAL one costs as much per hour).
    """
    if idle.after_min <= 0 or clock.acted:
        return None
    after = clock.since + idle.after_min * 60
    if idle.action == "stop":
        return after if serving else None
    return after if clock.warned is None else clock.warned + idle.grace_min * 60


def due(clock: IdleClock, idle: IdleSettings, serving: bool, now: float) -> Due | None:
    when = deadline(clock, idle, serving)
    if when is None or now < when:
        return None
    if idle.action == "stop":
        return "sleep"
    return "warn" if clock.warned is None and idle.grace_min > 0 else "command"


def minutes(value: float) -> str:
    """``30.0`` → ``"30 min"``, ``0.05`` → ``"3 s"``: how a person says it."""
    return f"{value:g} min" if value >= 1 else f"{value * 60:.0f} s"


@dataclass(frozen=True)
class IdleView:
    """The idle policy as the status shows it; times are wall clock."""

    after_min: float
    action: str
    since_wall: float
    last_use: str
    next: str | None  # "sleep" or "command": what comes if nobody uses it
    next_wall: float | None
    grace: bool  # the warning went out: the command runs at next_wall
    sleeping: bool

    def to_dict(self, now: float) -> dict[str, Any]:
        """``{"after_min": 30, "idle_s": 720, "next": "sleep", "next_in_s": 1080, …}``"""
        return {
            "enabled": self.after_min > 0,
            "after_min": self.after_min,
            "action": self.action,
            "idle_s": round(max(0.0, now - self.since_wall)),
            "since": iso(self.since_wall),
            "last_use": self.last_use,
            "next": self.next,
            "next_in_s": None if self.next_wall is None else round(max(0.0, self.next_wall - now)),
            "grace": self.grace,
            "sleeping": self.sleeping,
        }


def view(
    clock: IdleClock, idle: IdleSettings, serving: bool, sleeping: bool, now: float, wall: float
) -> IdleView:
    when = deadline(clock, idle, serving)
    nxt = None if when is None else ("sleep" if idle.action == "stop" else "command")
    next_wall = None if when is None else wall + (when - now)
    if nxt == "command" and clock.warned is None:
        next_wall = None if next_wall is None else next_wall + idle.grace_min * 60
    return IdleView(
        idle.after_min, idle.action, clock.since_wall, clock.last_use, nxt, next_wall,
        grace=clock.warned is not None and not clock.acted, sleeping=sleeping,
    )  # fmt: skip
