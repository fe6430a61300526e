"""The restart policy on its own: delays, the failure window, giving up."""

from __future__ import annotations

from watchdog.core.policy import GiveUp, RestartPolicy, Retry
from watchdog.settings import WatchSettings

W = WatchSettings(backoff_initial_s=1, backoff_max_s=8, max_restarts=5, restart_window_s=100)


def test_delays_double_up_to_the_cap():
    p = RestartPolicy()
    delays = [p.on_failure(W, now=t, stable=False, reason="crash") for t in range(5)]
    assert [d.delay_s for d in delays if isinstance(d, Retry)] == [1, 2, 4, 8, 8]
    assert p.backoff_until == 4 + 8


def test_more_than_max_restarts_in_the_window_gives_up():
    p = RestartPolicy()
    for t in range(5):
        assert isinstance(p.on_failure(W, now=t, stable=False, reason="crash"), Retry)
    out = p.on_failure(W, now=5, stable=False, reason="crash: killed by SIGSEGV")
    assert isinstance(out, GiveUp) and out.failures == 6
    assert out.why().startswith("crash: killed by SIGSEGV — 6 failures within 100s")


def test_failures_outside_the_window_are_forgotten():
    p = RestartPolicy()
    for t in range(5):
        p.on_failure(W, now=t, stable=False, reason="crash")
    assert isinstance(p.on_failure(W, now=200, stable=False, reason="crash"), Retry)


def test_a_stable_run_restarts_at_once_and_resets_the_delays():
    p = RestartPolicy()
    p.on_failure(W, now=0, stable=False, reason="crash")
    p.on_failure(W, now=1, stable=False, reason="crash")
    assert p.on_failure(W, now=2, stable=True, reason="crash").delay_s == 0
    assert p.on_failure(W, now=3, stable=False, reason="crash").delay_s == 1


def test_reset_forgets_everything_and_allows_a_spawn():
    p = RestartPolicy()
    p.give_up("too many", ("last line",))
    assert not p.may_spawn(now=0)
    p.reset()
    assert p.may_spawn(now=0) and p.reason is None and p.last_stderr == ()
