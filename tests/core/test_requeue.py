"""When a lost ComfyUI queue is owed and to whom: replayed against the machine."""

from __future__ import annotations

import pytest
from conftest import demo
from replay import Replay

from watchdog.core.messages import AdoptedRun, Boot, Persist, Requeue, Swept, Wanted


@pytest.fixture
def comfy(make_settings, tmp_path):
    entry = {"preset": "comfyui", "port": 8188, "cwd": str(tmp_path)}
    return make_settings(frameworks={"c": entry, "d": demo()})


def test_a_crash_owes_the_queue_to_the_next_ready_run(comfy):
    r = Replay(comfy)
    lost = r.stable()
    r.crash()
    assert [p.requeue_from for p in r.of(Persist)][-1] == lost, "on disk before the respawn"
    new = r.ready()
    assert r.of(Requeue) == [Requeue(new, "c", "http://127.0.0.1:7860", lost, True)]
    assert r.m.requeue_from is None and r.of(Persist)[-1].requeue_from is None


def test_a_hang_restart_owes_it_too(comfy):
    r = Replay(comfy)
    lost = r.ready()
    r.fail_probe(3)
    r.torn_down()
    r.wait(5)
    r.ready()
    assert [q.from_run for q in r.of(Requeue)] == [lost]


def test_a_persons_stop_does_not_requeue_unless_asked(comfy):
    r = Replay(comfy)
    r.ready()
    r.command("stop", requested_by="ui")
    r.torn_down()
    r.command("start", requested_by="ui")
    r.ready()
    assert r.of(Requeue) == []
    asked = r.m.run.run_id
    r.command("stop", requested_by="ui", requeue=True)
    r.torn_down()
    r.command("start", requested_by="ui")
    r.ready()
    assert [(q.from_run, q.unasked) for q in r.of(Requeue)] == [(asked, False)]


def test_a_stop_after_a_crash_drops_what_was_owed(comfy):
    r = Replay(comfy)
    r.stable()
    r.crash()
    r.command("stop", requested_by="ui")
    r.command("start", requested_by="ui")
    r.ready()
    assert r.of(Requeue) == []


def test_a_switch_to_another_framework_owes_nothing(comfy):
    r = Replay(comfy)
    r.stable()
    r.crash()
    r.command("switch", "d", requested_by="ui")
    r.ready()
    assert r.of(Requeue) == [] and r.m.requeue_from is None


def test_a_framework_without_a_remembered_queue_owes_nothing(make_settings):
    r = Replay(make_settings(frameworks={"d": demo()}))
    r.stable()
    r.crash()
    r.ready()
    assert r.of(Requeue) == [] and r.m.requeue_from is None


def test_a_run_that_died_while_no_watchdog_was_there_is_owed_at_boot(comfy):
    r = Replay(comfy, boot=False)
    lost = {"framework": "c", "run_id": "r0", "pid": 99, "reason": "not running"}
    r.feed(Boot(Wanted("c", True), not_adopted=lost), Swept())
    r.ready()
    assert [q.from_run for q in r.of(Requeue)] == ["r0"]


def test_what_was_owed_survives_a_restart_of_the_watchdog(comfy):
    r = Replay(comfy, boot=False)
    adopted = AdoptedRun("c", "r7", 77, r.now, r.now, "http://127.0.0.1:7860")
    r.feed(Boot(Wanted("c", True), adopted=adopted, requeue_from="r6"), Swept())
    assert r.m.requeue_from == "r6"
    from watchdog.core.messages import Ready

    r.feed(Ready("r7", "health URL", "http://127.0.0.1:7860"))
    assert [q.from_run for q in r.of(Requeue)] == ["r6"]
