"""Replaying message histories against the pure machine (honcho's test_manager shape).

No process, thread or socket: a :class:`Replay` holds a machine and a clock, feeds it
messages and keeps every effect, so a test reads as the history it replays.
"""

from __future__ import annotations

from typing import Any

from watchdog.core.machine import Machine
from watchdog.core.messages import (
    Boot,
    Command,
    Effect,
    Exited,
    Journal,
    Probe,
    Ready,
    Spawn,
    Spawned,
    SpawnFailed,
    Sweep,
    Swept,
    Tick,
    TornDown,
)
from watchdog.core.states import State
from watchdog.settings import Settings

T0 = 1_000.0


class Replay:
    def __init__(self, settings: Settings, *, boot: bool = True) -> None:
        self.m = Machine(settings)
        self.now = T0
        self.effects: list[Effect] = []
        self.runs = 0
        if boot:
            self.feed(Boot(None), Swept())

    def reboot(self, *msgs: Any) -> None:
        """A new watchdog on the same settings, fed ``msgs`` (a boot of its own)."""
        self.__init__(self.m.settings, boot=False)  # type: ignore[misc]
        self.feed(*msgs)

    # -- feeding -----------------------------------------------------------------

    def feed(self, *msgs: Any) -> list[Effect]:
        out: list[Effect] = []
        for msg in msgs:
            step = self.m.step(msg, self.now, self.now)
            out += step
            self.effects += step
        return out

    def wait(self, seconds: float) -> list[Effect]:
        self.now += seconds
        return self.feed(Tick())

    def _sweep_first(self) -> None:
        """A pending Sweep (leftovers before a spawn) is answered: nothing found."""
        if self.effects and isinstance(self.effects[-1], Sweep):
            self.feed(Swept())

    def spawned(self, name: str | None = None) -> str:
        """Answer the pending Spawn as the runtime would; returns the new run id."""
        self._sweep_first()
        spawn = [e for e in self.effects if isinstance(e, Spawn)][-1]
        self.runs += 1
        run_id = f"r{self.runs}"
        self.feed(Spawned(run_id, name or spawn.framework, 100 + self.runs, self.now, self.now,
                          "http://127.0.0.1:7860"))  # fmt: skip
        return run_id

    def ready(self) -> str:
        run_id = self.spawned()
        self.feed(Ready(run_id, "ready line", "http://127.0.0.1:7860"))
        return run_id

    def stable(self) -> str:
        run_id = self.ready()
        self.wait(self.m.run.watch.stable_uptime_s if self.m.run else 0)
        return run_id

    def crash(self, code: int = 1) -> None:
        assert self.m.run is not None
        run_id = self.m.run.run_id
        self.feed(Exited(run_id, code, ("RuntimeError: boom",)))
        self.feed(TornDown(run_id))

    def fail_probe(self, times: int = 1) -> None:
        assert self.m.run is not None
        for _ in range(times):
            self.feed(Probe(self.m.run.run_id, False, "no answer within 0.3s"))

    def torn_down(self, **fields: Any) -> list[Effect]:
        assert self.m.leaving is not None
        return self.feed(TornDown(self.m.leaving.run.run_id, **fields))

    def spawn_failed(self, reason: str = "command not found: nope") -> None:
        self._sweep_first()
        assert isinstance(self.effects[-1], Spawn), self.effects[-1]
        self.feed(SpawnFailed(self.effects[-1].framework, reason))

    def command(self, kind: str, name: str | None = None, **kw: Any) -> list[Effect]:
        return self.feed(Command(kind, name, **kw))

    # -- reading -----------------------------------------------------------------

    @property
    def state(self) -> State:
        return self.m.state

    def journal(self, event: str | None = None) -> list[Journal]:
        found = [e for e in self.effects if isinstance(e, Journal)]
        return [e for e in found if event is None or e.event == event]

    def events(self) -> list[str]:
        return [e.event for e in self.journal()]

    def edges(self) -> set[tuple[str, str]]:
        return {
            (j.fields["previous"], j.fields["state"]) for j in self.journal() if "state" in j.fields
        }

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.effects if isinstance(e, kind)]
