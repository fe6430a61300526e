"""The idle policy, replayed against the machine: sleep and wake, the command after a
grace, and what counts as use (no process, thread or clock)."""

from __future__ import annotations

import pytest
from conftest import demo
from replay import Replay

from watchdog.core.messages import (
    Activity,
    Boot,
    IdleCommandDone,
    Persist,
    Probe,
    Ready,
    Reply,
    RunIdleCommand,
    Spawn,
    Swept,
    Teardown,
    Wanted,
)
from watchdog.core.snapshot import snapshot
from watchdog.core.states import State
from watchdog.frameworks.busy import Busy

S = State
AFTER_S = 600


@pytest.fixture
def sleepy(make_settings):
    return make_settings(frameworks={"a": demo(), "b": demo()}, idle={"after_min": AFTER_S / 60})


@pytest.fixture
def poweroff(make_settings):
    idle = {"after_min": AFTER_S / 60, "action": "command", "command": "true", "grace_min": 5}
    return make_settings(frameworks={"a": demo()}, idle=idle)


def asleep(r: Replay) -> None:
    r.ready()
    r.wait(AFTER_S)
    r.torn_down()


def test_running_to_sleeping_after_idle_frees_the_framework(sleepy):
    r = Replay(sleepy)
    r.ready()
    r.wait(AFTER_S - 1)
    assert r.state is S.RUNNING and not r.of(Teardown)
    out = r.wait(1)
    teardown = next(e for e in out if isinstance(e, Teardown))
    assert teardown.requested_by == "idle" and "idle for 10 min" in teardown.reason
    persisted = next(e for e in out if isinstance(e, Persist))
    assert persisted.wanted == Wanted("a", False, sleeping=True)  # before the first signal
    assert r.journal("idle")[-1].fields["reason"].startswith("nobody used it for 10 min")
    r.torn_down()
    assert r.state is S.SLEEPING and r.events()[-1] == "sleep"
    r.wait(AFTER_S * 10)
    assert len(r.of(Spawn)) == 1, "asleep means asleep: no restart, no backoff"


def test_sleeping_to_starting_on_a_request_through_the_door(sleepy):
    r = Replay(sleepy)
    asleep(r)
    r.feed(Activity("door"))
    assert r.events()[-1] == "wake"
    run_id = r.spawned()
    assert r.state is S.STARTING
    assert r.journal("spawn")[-1].fields["requested_by"] == "door"
    assert r.m.wanted == Wanted("a", True)
    r.feed(Ready(run_id, "ready line", "http://127.0.0.1:7860"))
    assert r.state is S.RUNNING and r.m.next_deadline() == r.now + AFTER_S


def test_a_running_generation_defers_sleep(sleepy):
    r = Replay(sleepy)
    run_id = r.ready()
    for step in range(40):  # 40 minutes of one long batch, making progress
        r.wait(60)
        r.feed(Probe(run_id, True, "HTTP 200", busy=Busy(True, f"step {step}", "1 running")))
    assert r.state is S.RUNNING
    r.feed(Probe(run_id, True, "HTTP 200", busy=Busy(False, "", "idle")))
    r.wait(AFTER_S - 5)
    assert r.state is S.RUNNING, "idle counts from the end of the generation"
    r.wait(10)
    assert r.state is S.STOPPING


def test_a_page_action_or_keep_awake_defers_sleep(sleepy):
    r = Replay(sleepy)
    r.ready()
    r.wait(AFTER_S - 10)
    r.command("start", requested_by="ui")  # "already running": still a person's action
    r.wait(AFTER_S - 10)
    r.command("keep_awake", requested_by="ui")
    r.wait(AFTER_S - 10)
    assert r.state is S.RUNNING
    assert r.journal("keep_awake")[-1].fields["requested_by"] == "ui"
    r.wait(10)
    assert r.state is S.STOPPING


def test_the_timer_is_the_idle_deadline_no_polling(sleepy):
    r = Replay(sleepy)
    r.ready()
    assert r.m.next_deadline() == r.now + AFTER_S
    view = snapshot(r.m, r.now, r.now).idle
    assert view is not None and view.next == "sleep" and view.next_wall == r.now + AFTER_S
    assert view.to_dict(r.now + 60)["next_in_s"] == AFTER_S - 60


def test_sleeping_to_stopped_on_a_stop_then_the_door_does_not_wake_it(sleepy):
    r = Replay(sleepy)
    asleep(r)
    r.command("stop", requested_by="ui")
    assert r.state is S.STOPPED and r.m.wanted == Wanted("a", False)
    r.feed(Activity("door"))
    assert r.state is S.STOPPED and len(r.of(Spawn)) == 1


def test_a_start_or_switch_wakes_it_too(sleepy):
    r = Replay(sleepy)
    asleep(r)
    r.command("switch", "b", requested_by="api")
    r.spawned()
    assert r.state is S.STARTING and r.m.run is not None and r.m.run.framework == "b"


def test_a_request_during_the_idle_stop_starts_it_again_once_gone(sleepy):
    r = Replay(sleepy)
    r.ready()
    r.wait(AFTER_S)
    assert r.state is S.STOPPING
    r.feed(Activity("door"))
    r.torn_down()
    assert r.of(Spawn)[-1] == Spawn("a") and len(r.of(Spawn)) == 2


def test_a_restarted_watchdog_keeps_it_asleep_unless_the_policy_is_off(sleepy, make_settings):
    r = Replay(sleepy, boot=False)
    r.feed(Boot(Wanted("a", False, sleeping=True)), Swept())
    assert r.state is S.SLEEPING and not r.of(Spawn)
    off = Replay(make_settings(frameworks={"a": demo()}), boot=False)
    off.feed(Boot(Wanted("a", False, sleeping=True)), Swept())
    assert off.of(Spawn) == [Spawn("a")]


def test_command_runs_once_after_the_warning_and_the_grace(poweroff):
    r = Replay(poweroff)
    r.ready()
    r.wait(AFTER_S)
    warning = r.journal("idle")[-1].fields
    assert warning["action"] == "command" and "runs in 5 min" in warning["reason"]
    assert r.state is S.RUNNING, "the command action leaves the framework alone"
    r.wait(5 * 60 - 1)
    assert not r.of(RunIdleCommand)
    r.wait(1)
    assert r.of(RunIdleCommand) == [RunIdleCommand("a", 10.0)]
    r.feed(IdleCommandDone(0, "bye", 0.01))
    assert r.journal("idle_command_exit")[-1].fields["output"] == "bye"
    r.wait(AFTER_S * 10)
    assert len(r.of(RunIdleCommand)) == 1 and r.m.next_deadline() is None


def test_keep_awake_during_the_grace_cancels_the_command(poweroff):
    r = Replay(poweroff)
    r.ready()
    r.wait(AFTER_S + 60)
    r.command("keep_awake", requested_by="ui")
    assert r.journal("keep_awake")[-1].fields["cancelled"] == "the idle command"
    r.wait(5 * 60)
    assert not r.of(RunIdleCommand)
    r.wait(AFTER_S - 5 * 60)
    assert len(r.journal("idle")) == 2, "a new stretch of idleness warns again"


def test_a_door_request_during_the_grace_cancels_it_and_says_so(poweroff):
    r = Replay(poweroff)
    r.ready()
    r.wait(AFTER_S + 60)
    r.feed(Activity("door"))
    assert r.journal("idle_cancelled")[-1].fields["by"] == "door"
    r.wait(5 * 60)
    assert not r.of(RunIdleCommand)


def test_a_failed_command_is_journaled_as_such(poweroff):
    r = Replay(poweroff)
    r.feed(IdleCommandDone(1, "sudo: a password is required", 0.02))
    failed = r.journal("idle_command_failed")[-1].fields
    assert failed["exit_code"] == 1 and "exited with code 1" in failed["reason"]
    r.feed(IdleCommandDone(None, "", 300.0, error="was still running after 300 s"))
    assert "still running" in r.journal("idle_command_failed")[-1].fields["reason"]


def test_the_command_counts_a_machine_with_nothing_running_as_idle(poweroff):
    r = Replay(poweroff)
    r.ready()
    r.command("stop", requested_by="ui")
    r.torn_down()
    r.wait(AFTER_S)
    r.wait(5 * 60)
    assert len(r.of(RunIdleCommand)) == 1


def test_keep_awake_with_the_policy_off_says_so(make_settings):
    r = Replay(make_settings(frameworks={"a": demo()}))
    r.ready()
    out = r.command("keep_awake", requested_by="ui")
    assert Reply(note="the idle policy is off (idle.after_min is 0)") in out
    assert r.m.next_deadline() is None
