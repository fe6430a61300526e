"""Every row of the transition table, taken by a replayed history (no processes).

``HISTORIES`` maps each edge of ``states.TRANSITIONS`` to the shortest history that
takes it; the first test makes sure no row of the table is left without one.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from replay import Replay

from watchdog.core.messages import Activity, Boot, Shutdown, Swept, Wanted
from watchdog.core.states import TRANSITIONS, State

S = State


def _booted(r: Replay) -> None:
    r.spawned()


def _fatal_after_crashes(r: Replay) -> None:
    for _ in range(2):  # max_restarts=1: the second failure gives up
        r.spawned()
        r.crash()
        r.wait(5)


IDLE_S = 600  # test_edge's idle.after_min: 10


def _asleep(r: Replay, **torn_down: object) -> None:
    r.ready()
    r.wait(IDLE_S)
    r.torn_down(**torn_down)


def _woken(r: Replay, **torn_down: object) -> None:
    _asleep(r, **torn_down)
    r.feed(Activity("door"))


HISTORIES: dict[tuple[State, State], Callable[[Replay], None]] = {
    (S.STOPPED, S.STARTING): _booted,
    (S.STOPPED, S.BACKOFF): lambda r: r.spawn_failed(),
    (S.STOPPED, S.FATAL): lambda r: r.reboot(Boot(None), Swept(error="EMFILE: too many files")),
    (S.STARTING, S.RUNNING): lambda r: r.ready(),
    (S.STARTING, S.BACKOFF): lambda r: (r.spawned(), r.crash()),
    (S.STARTING, S.FATAL): _fatal_after_crashes,
    (S.STARTING, S.STOPPING): lambda r: (r.spawned(), r.command("stop")),
    (S.STARTING, S.STOPPED): lambda r: (r.spawned(), r.feed(Shutdown(leave_running=True))),
    (S.RUNNING, S.UNHEALTHY): lambda r: (r.ready(), r.fail_probe()),
    (S.RUNNING, S.BACKOFF): lambda r: (r.ready(), r.crash()),
    (S.RUNNING, S.FATAL): lambda r: (r.ready(), r.crash(), r.wait(5), r.ready(), r.crash()),
    (S.RUNNING, S.STOPPING): lambda r: (r.ready(), r.command("stop")),
    (S.RUNNING, S.STOPPED): lambda r: (r.ready(), r.feed(Shutdown(leave_running=True))),
    (S.UNHEALTHY, S.RUNNING): lambda r: (r.ready(), r.fail_probe(), r.feed(_ok(r))),
    (S.UNHEALTHY, S.BACKOFF): lambda r: (r.ready(), r.fail_probe(), r.crash()),
    (S.UNHEALTHY, S.FATAL): lambda r: (
        r.ready(),
        r.crash(),
        r.wait(5),
        r.ready(),
        r.fail_probe(),
        r.crash(),
    ),
    (S.UNHEALTHY, S.STOPPING): lambda r: (r.ready(), r.fail_probe(3)),
    (S.UNHEALTHY, S.STOPPED): lambda r: (
        r.ready(),
        r.fail_probe(),
        r.feed(Shutdown(leave_running=True)),
    ),
    (S.BACKOFF, S.STARTING): lambda r: (r.ready(), r.crash(), r.wait(5), r.spawned()),
    (S.BACKOFF, S.BACKOFF): lambda r: (r.spawn_failed(), r.command("start"), r.spawn_failed()),
    (S.BACKOFF, S.FATAL): lambda r: (r.spawn_failed(), r.wait(5), r.spawn_failed()),
    (S.BACKOFF, S.STOPPED): lambda r: (r.spawn_failed(), r.command("stop")),
    (S.STOPPING, S.STOPPED): lambda r: (r.ready(), r.command("stop"), r.torn_down()),
    (S.STOPPING, S.STARTING): lambda r: (
        r.ready(),
        r.command("switch", "b"),
        r.torn_down(),
        r.spawned(),
    ),
    (S.STOPPING, S.BACKOFF): lambda r: (r.ready(), r.fail_probe(3), r.torn_down()),
    (S.STOPPING, S.FATAL): lambda r: (r.ready(), r.command("stop"), r.torn_down(error="EMFILE")),
    (S.FATAL, S.STARTING): lambda r: (_fatal_after_crashes(r), r.command("start"), r.spawned()),
    (S.FATAL, S.BACKOFF): lambda r: (
        _fatal_after_crashes(r),
        r.command("start"),
        r.spawn_failed(),
    ),
    (S.FATAL, S.STOPPED): lambda r: (_fatal_after_crashes(r), r.command("stop")),
    (S.FATAL, S.FATAL): lambda r: (
        r.ready(),
        r.command("stop"),
        r.torn_down(error="EMFILE"),
        r.command("start"),
        r.feed(Swept(error="EMFILE")),
    ),
    (S.STOPPED, S.SLEEPING): lambda r: r.reboot(Boot(Wanted("a", False, sleeping=True)), Swept()),
    (S.STOPPING, S.SLEEPING): _asleep,
    (S.SLEEPING, S.STARTING): lambda r: (_woken(r), r.spawned()),
    (S.SLEEPING, S.BACKOFF): lambda r: (_woken(r), r.spawn_failed()),
    (S.SLEEPING, S.FATAL): lambda r: (_woken(r, remaining=(4242,)), r.feed(Swept(error="EMFILE"))),
    (S.SLEEPING, S.STOPPED): lambda r: (_asleep(r), r.command("stop")),
}


def _ok(r: Replay):
    from watchdog.core.messages import Probe

    assert r.m.run is not None
    return Probe(r.m.run.run_id, True, "HTTP 200")


def test_every_row_of_the_table_has_a_history():
    assert set(HISTORIES) == set(TRANSITIONS)


@pytest.mark.parametrize("edge", list(TRANSITIONS), ids=lambda e: f"{e[0].value}->{e[1].value}")
def test_edge(edge, make_settings):
    from conftest import demo

    settings = make_settings(
        frameworks={"a": demo(), "b": demo()},
        watch={"max_restarts": 1, "backoff_initial_s": 1},
        idle={"after_min": IDLE_S / 60},
    )
    r = Replay(settings)
    HISTORIES[edge](r)
    taken = {(S(a), S(b)) for a, b in r.edges()}
    assert edge in taken, f"history for {edge} took {sorted(taken)}; journal {r.events()}"
    assert r.state is edge[1] or edge[1] is S.STARTING or edge[1] is S.STOPPED
