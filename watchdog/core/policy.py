"""When a failed run is tried again, and when the watchdog gives up.

A small object of its own (circus keeps such policies outside the watcher), fed the
time of each failure; it never sleeps, it only says until when to wait, or that it is
time to give up (FATAL) until a person starts the framework again.

    >>> p = RestartPolicy()
    >>> w = WatchSettings(backoff_initial_s=1, backoff_max_s=4, max_restarts=5)
    >>> [p.on_failure(w, now=t, stable=False, reason="crash").delay_s for t in (0, 1, 2, 3)]
    [1.0, 2.0, 4.0, 4.0]
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..settings import WatchSettings


@dataclass(frozen=True)
class Retry:
    delay_s: float
    attempt: int  # failures in a row without a stable run
    failures_in_window: int


@dataclass(frozen=True)
class GiveUp:
    failures: int
    window_s: float
    max_restarts: int
    reason: str

    def why(self) -> str:
        return (
            f"{self.reason} — {self.failures} failures within {self.window_s:g}s"
            f" (max_restarts={self.max_restarts}); not restarting until started again"
        )


@dataclass
class RestartPolicy:
    failures: list[float] = field(default_factory=list)  # monotonic times, in the window
    consecutive: int = 0
    backoff_until: float | None = None  # no spawn before (monotonic)
    reason: str | None = None  # why the last run failed, or why we gave up
    gave_up: bool = False  # FATAL: nothing is tried until a person starts it again
    last_stderr: tuple[str, ...] = ()  # shown with FATAL

    def on_failure(
        self, watch: WatchSettings, now: float, stable: bool, reason: str
    ) -> Retry | GiveUp:
        """Count a failure; ``stable``: it had served long enough that this is news, not
        a crash loop, so the delays start over (a restart at once)."""
        self.reason = reason
        self.failures = [t for t in self.failures if now - t <= watch.restart_window_s]
        self.failures.append(now)
        if len(self.failures) > watch.max_restarts:
            return GiveUp(len(self.failures), watch.restart_window_s, watch.max_restarts, reason)
        if stable:
            self.consecutive = 0
            delay = 0.0
        else:
            self.consecutive += 1
            delay = min(watch.backoff_initial_s * 2 ** (self.consecutive - 1), watch.backoff_max_s)
        self.backoff_until = now + delay
        return Retry(float(delay), self.consecutive, len(self.failures))

    def retry_now(self, now: float, reason: str) -> None:
        """The framework asked to be restarted: no failure, no waiting."""
        self.backoff_until, self.reason = now, reason

    def give_up(self, why: str, last_stderr: tuple[str, ...]) -> None:
        self.gave_up, self.reason, self.last_stderr, self.backoff_until = (
            True,
            why,
            last_stderr,
            None,
        )

    def may_spawn(self, now: float) -> bool:
        return not self.gave_up and (self.backoff_until is None or now >= self.backoff_until)

    def spawned(self) -> None:
        self.backoff_until = None

    def reset(self) -> None:
        """A person's command: what failed before is forgotten."""
        self.failures.clear()
        self.consecutive = 0
        self.backoff_until, self.reason, self.gave_up, self.last_stderr = None, None, False, ()
