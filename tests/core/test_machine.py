"""Histories replayed against the machine: what a person and the world do, in order."""

from __future__ import annotations

import pytest
from conftest import demo
from replay import T0, Replay

from watchdog.core.errors import BusyRefused
from watchdog.core.messages import (
    AdoptedRun,
    Boot,
    Done,
    Exited,
    Persist,
    Probe,
    Ready,
    Reply,
    Shutdown,
    Spawn,
    StartupOutput,
    Sweep,
    Swept,
    Teardown,
    TornDown,
    Usage,
    Wanted,
)
from watchdog.core.states import State
from watchdog.frameworks.busy import Busy

S = State


@pytest.fixture
def settings(make_settings):
    return make_settings(frameworks={"a": demo(), "b": demo()})


def test_boot_sweeps_leftovers_then_spawns_the_default(settings):
    r = Replay(settings, boot=False)
    assert isinstance(r.feed(Boot(None))[-2], Sweep)  # nothing spawns before the sweep
    assert not r.of(Spawn)
    r.feed(Swept())
    assert r.of(Spawn) == [Spawn("a")]
    r.ready()
    assert r.state is S.RUNNING
    assert r.events() == ["watchdog_start", "spawn", "ready"]


def crash_loop(r: Replay, times: int = 6) -> None:
    for _ in range(times):
        r.spawned()
        r.crash()
        r.wait(1.0)


def test_crash_loop_backs_off_with_doubling_delays_then_goes_fatal(settings):
    # FAST_WATCH: backoff 0.1 s doubling up to 1 s, max_restarts 5 in 60 s.
    r = Replay(settings)
    crash_loop(r)
    delays = [j.fields["delay_s"] for j in r.journal("backoff")]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0]
    assert r.state is S.FATAL
    fatal = r.journal("fatal")[-1].fields
    assert "6 failures within 60s (max_restarts=5)" in fatal["reason"]
    assert fatal["last_stderr"] == ("RuntimeError: boom",)
    r.wait(60)
    assert len(r.of(Spawn)) == 6, "FATAL really stops trying"


def test_fatal_is_cleared_by_a_start(settings):
    r = Replay(settings)
    crash_loop(r)
    assert r.state is S.FATAL
    r.command("start", requested_by="ui")
    r.spawned()
    assert r.state is S.STARTING and r.m.policy.reason is None
    assert r.journal("spawn")[-1].fields["requested_by"] == "ui"


def test_crash_after_a_stable_run_restarts_at_once(settings):
    r = Replay(settings)
    r.stable()
    r.crash()
    assert [j.fields["delay_s"] for j in r.journal("backoff")] == [0]
    assert r.of(Spawn)[-1] == Spawn("a") and len(r.of(Spawn)) == 2


def test_no_respawn_before_the_dead_trees_cleanup_is_done(settings):
    r = Replay(settings)
    r.stable()
    run_id = r.m.run.run_id
    r.feed(Exited(run_id, -9))
    assert len(r.of(Spawn)) == 1 and r.state is S.BACKOFF
    assert r.of(Teardown)[-1].after_crash
    r.feed(TornDown(run_id))
    assert len(r.of(Spawn)) == 2


def test_stop_during_starting_tears_down_and_ends_stopped(settings):
    r = Replay(settings)
    r.spawned()
    out = r.command("stop")
    kinds = [type(e) for e in out]
    # The wanted state is on disk before the first signal.
    assert kinds.index(Persist) < kinds.index(Teardown)
    assert out[[type(e) for e in out].index(Persist)].wanted.should_run is False
    assert r.state is S.STOPPING
    r.torn_down()
    assert r.state is S.STOPPED and len(r.of(Spawn)) == 1


def test_stop_during_backoff_cancels_the_retry(settings):
    r = Replay(settings)
    r.spawned()
    r.crash()
    assert r.state is S.BACKOFF
    r.command("stop")
    assert r.state is S.STOPPED
    r.wait(10)
    assert len(r.of(Spawn)) == 1


def test_switch_while_stopping_changes_its_mind(settings):
    r = Replay(settings)
    r.ready()
    r.command("switch", "b")
    assert r.state is S.STOPPING
    r.command("switch", "a")
    r.command("switch", "b")
    r.torn_down()
    assert [s.framework for s in r.of(Spawn)] == ["a", "b"]


def test_a_failed_teardown_ends_fatal_not_stopping_forever(settings):
    r = Replay(settings)
    r.ready()
    r.command("restart")
    r.torn_down(error="OSError: [Errno 24] Too many open files")
    assert r.state is S.FATAL
    assert "Too many open files" in r.m.policy.reason
    assert r.events()[-2:] == ["teardown_failed", "fatal"]
    # A start sweeps what may be left before it spawns.
    r.command("start")
    assert isinstance(r.effects[-1], Sweep)
    r.feed(Swept(pids=(4242,)))
    assert r.of(Spawn)[-1] == Spawn("a")


def test_a_failed_crash_cleanup_ends_fatal(settings):
    r = Replay(settings)
    r.ready()
    run_id = r.m.run.run_id
    r.feed(Exited(run_id, 1), TornDown(run_id, error="RuntimeError: injected"))
    assert r.state is S.FATAL and len(r.of(Spawn)) == 1


def test_busy_framework_refuses_a_stop_unless_forced(settings):
    r = Replay(settings)
    run_id = r.ready()
    r.feed(Probe(run_id, True, "HTTP 200", Busy(True, "3/20", "step 3/20")))
    out = r.command("stop")
    assert isinstance(out[0], Reply) and isinstance(out[0].error, BusyRefused)
    assert r.state is S.RUNNING
    out = r.command("stop", force=True)
    assert r.of(Teardown)[-1].interrupt
    assert r.state is S.STOPPING


def test_hang_restarts_after_the_threshold(settings):
    r = Replay(settings)
    r.ready()
    r.fail_probe(2)
    assert r.state is S.UNHEALTHY and not r.of(Teardown)
    r.fail_probe()
    assert r.state is S.STOPPING and r.of(Teardown)[-1].reason == "hang"
    r.torn_down()
    r.wait(1)
    assert len(r.of(Spawn)) == 2


def test_startup_timeout_is_a_failed_start(make_settings):
    r = Replay(make_settings(watch={"startup_timeout_s": 5}))
    r.spawned()
    assert r.m.next_deadline() == T0 + 5
    r.wait(5)
    assert r.events()[-2:] == ["startup_timeout", "stopping"]
    assert r.journal("startup_timeout")[-1].tails == 3


def test_output_while_starting_is_progress_until_it_stops(make_settings):
    """A first start that installs for many minutes: every new output moves the
    startup deadline; silence for startup_timeout_s is the timeout."""
    r = Replay(make_settings(watch={"startup_timeout_s": 5, "startup_max_s": 60}))
    run_id = r.spawned()
    for written in (100, 200, 300, 400):  # 16 s of "Installing torch…", past 5 s
        r.wait(4)
        r.feed(StartupOutput(run_id, written))
    assert r.state is S.STARTING and r.m.next_deadline() == r.now + 5
    r.feed(StartupOutput(run_id, 400))  # the same size: no progress
    r.wait(5)
    assert r.events()[-2:] == ["startup_timeout", "stopping"]
    reason = r.journal("startup_timeout")[-1].fields["reason"]
    assert reason == "not ready within startup_timeout_s=5 of its last output"


def test_output_never_extends_a_start_past_startup_max_s(make_settings):
    r = Replay(make_settings(watch={"startup_timeout_s": 5, "startup_max_s": 12}))
    run_id = r.spawned()
    for written in (100, 200):
        r.wait(4)
        r.feed(StartupOutput(run_id, written))
    assert r.m.next_deadline() == T0 + 12  # not 8 + 5: the cap comes first
    r.wait(4)
    assert r.events()[-2:] == ["startup_timeout", "stopping"]
    assert r.journal("startup_timeout")[-1].fields["reason"] == (
        "not ready within startup_max_s=12"
    )


def test_rss_over_the_limit_restarts_after_rss_limit_s(make_settings):
    r = Replay(make_settings(frameworks={"a": demo(max_rss_mb=100)}, watch={"rss_limit_s": 10}))
    r.ready()
    r.feed(Usage(150))
    r.now += 9
    r.feed(Usage(150))
    assert r.state is S.RUNNING
    r.now += 2
    r.feed(Usage(150))
    assert r.state is S.STOPPING and r.of(Teardown)[-1].reason == "rss_limit"


# -- the watchdog's own restart: what was asked is finished, never undone -----------


def _adopted(r: Replay, framework: str = "a") -> AdoptedRun:
    return AdoptedRun(framework, "old", 4242, r.now - 100, r.now - 100, "http://127.0.0.1:1")


def test_interrupted_stop_is_finished_after_a_restart_of_the_watchdog(settings):
    r = Replay(settings, boot=False)
    r.feed(Boot(Wanted("a", False), _adopted(r)), Swept())
    assert r.state is S.STOPPING and r.of(Teardown)[-1].run_id == "old"
    r.torn_down()
    r.wait(30)
    assert r.state is S.STOPPED and not r.of(Spawn)


def test_interrupted_switch_is_finished_after_a_restart_of_the_watchdog(settings):
    r = Replay(settings, boot=False)
    r.feed(Boot(Wanted("b", True), _adopted(r, "a")), Swept())
    assert r.of(Teardown)[-1].run_id == "old"
    r.torn_down()
    assert r.of(Spawn) == [Spawn("b")]


def test_interrupted_restart_is_finished_after_a_restart_of_the_watchdog(settings):
    r = Replay(settings, boot=False)
    r.feed(Boot(Wanted("a", True, restart_run="old"), _adopted(r)), Swept())
    assert r.of(Teardown)[-1].reason == "restart requested"
    r.torn_down()
    r.spawned()
    assert r.m.wanted == Wanted("a", True)


def test_adopted_run_that_lived_long_is_not_a_startup_timeout(make_settings):
    r = Replay(make_settings(watch={"startup_timeout_s": 5}), boot=False)
    r.feed(Boot(Wanted("demo", True), _adopted(r, "demo")), Swept())
    assert r.state is S.STARTING and not r.of(Teardown)


def test_shutdown_stops_the_tree_then_says_done(settings):
    r = Replay(settings)
    r.ready()
    r.feed(Shutdown())
    assert r.state is S.STOPPING and not r.of(Done)
    r.torn_down()
    assert r.state is S.STOPPED and r.of(Done)
    assert r.m.wanted.should_run, "the choice survives a shutdown by signal"


def test_commands_after_shutdown_are_refused(settings):
    r = Replay(settings)
    r.feed(Shutdown())
    out = r.command("start")
    assert isinstance(out[0], Reply) and out[0].error is not None


def test_a_second_restart_while_the_first_is_under_way_joins_it(settings):
    # A double click on Restart: the second arrives while the old run is stopping.
    r = Replay(settings)
    r.ready()
    r.command("restart", requested_by="ui")
    out = r.command("restart", requested_by="ui")
    assert out == [Reply(note="a restart of a is already under way")]
    r.torn_down()
    r.spawned()
    assert len(r.journal("restart")) == 1 and len(r.of(Teardown)) == 1
    assert len(r.of(Spawn)) == 2, "one restart, not two"
    r.command("restart")  # once it is done, a restart is a restart again
    assert len(r.journal("restart")) == 2


def test_start_or_switch_to_what_runs_and_stop_of_what_is_stopped_say_so(settings):
    r = Replay(settings)
    run_id = r.spawned()
    assert r.command("switch", "a") == [Reply(note="a is already starting")]
    r.feed(Ready(run_id, "ready line", "http://127.0.0.1:7860"))
    assert r.command("start") == [Reply(note="a is already running")]
    r.command("stop")
    assert r.command("stop") == [Reply(note="a is already stopping")]
    r.torn_down()
    assert r.command("stop") == [Reply(note="a is already stopped")]
    assert r.state is S.STOPPED and not r.journal("switch")


def test_busy_at_the_first_look_after_ready_is_jobs_resumed_and_said_once(settings):
    r = Replay(settings)
    run_id = r.ready()
    job = Busy(True, "1|0", "1 pending")
    r.feed(
        Probe(run_id, True, "ok", job), Probe(run_id, True, "ok", Busy(True, "1|1", "1 pending"))
    )
    assert [j.fields["detail"] for j in r.journal("jobs_resumed")] == ["1 pending"]
    assert r.m.run.busy_text == "1 pending (jobs resumed at start)"
    r.feed(Probe(run_id, True, "ok", Busy(False, "", "idle")), Probe(run_id, True, "ok", job))
    assert len(r.journal("jobs_resumed")) == 1, "a later job was asked for, not resumed"
    assert r.m.run.busy_text == "1 pending"


def test_idle_at_the_first_look_resumes_nothing(settings):
    r = Replay(settings)
    run_id = r.ready()
    r.feed(Probe(run_id, True, "ok", Busy(False, "", "idle")))
    r.feed(Probe(run_id, True, "ok", Busy(True, "1|0", "1 pending")))
    assert not r.journal("jobs_resumed")
