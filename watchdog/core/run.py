"""The machine's record of one run: what it knows of a live framework process."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..frameworks.busy import Busy
from ..settings import WatchSettings
from .messages import AdoptedRun, Spawned


@dataclass
class RunView:
    framework: str
    run_id: str
    pid: int
    watch: WatchSettings
    started_mono: float
    started_at: float  # wall clock, for the page
    url: str | None
    configured_url: str | None
    waiting_since: float = 0.0  # when the wait for ready began (adopted: at adoption)
    ready_mono: float | None = None
    probe_failures: int = 0
    last_probe: str = ""
    busy: Busy | None = None
    # Busy at the first look after ready: jobs it found pending (InvokeAI resumes its
    # queue at start). Said in the status until they are done.
    busy_seen: bool = False
    resumed_jobs: bool = False
    progress_mono: float = 0.0  # the last sign of life while busy
    progress_mark: tuple[str, int] = ("", -1)  # busy fingerprint, bytes of output
    # Since when a memory limit ("rss", "vram") has been passed; those whose wait for
    # the queue to drain was journaled.
    over_since: dict[str, float] = field(default_factory=dict)
    limit_wait_said: set[str] = field(default_factory=set)
    # While starting: the last time its output grew, and how much there was then.
    output_mono: float = 0.0
    output_bytes: int = -1

    @classmethod
    def spawned(cls, msg: Spawned, watch: WatchSettings, now: float) -> RunView:
        return cls(
            msg.framework, msg.run_id, msg.pid, watch, msg.started_mono, msg.started_at,
            url=msg.url, configured_url=msg.url, waiting_since=msg.started_mono,
            progress_mono=now,
        )  # fmt: skip

    @classmethod
    def adopted(
        cls, a: AdoptedRun, watch: WatchSettings, configured_url: str | None, now: float
    ) -> RunView:
        """A run a previous watchdog started: it is waited for as if it were starting
        (it must answer before it counts as running), from now on. A job it runs was
        asked for before, not resumed at its start."""
        return cls(
            a.framework, a.run_id, a.pid, watch, a.started_mono, a.started_at, url=a.url,
            configured_url=configured_url, waiting_since=now, progress_mono=now,
            busy_seen=True,
        )  # fmt: skip

    @property
    def ready(self) -> bool:
        return self.ready_mono is not None

    @property
    def is_busy(self) -> bool:
        return self.busy is not None and self.busy.busy

    @property
    def busy_text(self) -> str:
        """``"3 pending (jobs resumed at start)"``"""
        detail = self.busy.detail if self.busy is not None else "busy"
        return f"{detail} (jobs resumed at start)" if self.resumed_jobs else detail

    def uptime(self, now: float) -> float:
        return now - self.started_mono

    def stable(self, now: float) -> bool:
        """Served long enough that its failure is news, not a crash loop.

        Counted from ready, not from spawn: a framework that loads for ten minutes
        and dies on its first request is not stable.
        """
        return self.ready_mono is not None and now - self.ready_mono >= self.watch.stable_uptime_s

    def ids(self) -> dict[str, object]:
        return {"framework": self.framework, "run_id": self.run_id, "pid": self.pid}
