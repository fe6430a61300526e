"""When a lost ComfyUI queue is owed and to whom: replayed against the machine."""

from __future__ import annotations

import json

import pytest
from conftest import demo
from replay import Replay

from watchdog.core.messages import (
    AdoptedRun,
    Boot,
    Persist,
    Probe,
    Requeue,
    RequeueDone,
    Swept,
    Teardown,
    Wanted,
)
from watchdog.core.snapshot import snapshot
from watchdog.frameworks.busy import Busy


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


# -- what the page says of the queue (the status's ``queue`` block) ---------------------


def queue_of(r: Replay) -> dict:
    return snapshot(r.m, r.now, r.now).to_dict()["queue"]


def busy(running: int, pending: int) -> Busy:
    detail = f"running {running}, {pending} queued"
    return Busy(True, f"{running}|{pending}", detail, running, pending)


def test_the_page_says_what_a_crash_owes_then_what_the_requeue_set_aside(comfy):
    r = Replay(comfy)
    lost = r.stable()
    r.feed(Probe(lost, True, "HTTP 200", busy(1, 2), 0))
    r.crash()
    owed = queue_of(r)
    assert owed["owed"] == {"from_run_id": lost, "count": 3}
    assert owed["text"] == f"3 prompts lost with run {lost} go back into ComfyUI's queue once ready"
    new = r.ready()
    r.feed(RequeueDone(new, lost, ("p2", "p3"), (("p1", "set aside: …"),), ("p1",)))
    said = queue_of(r)
    assert said["owed"] is None and said["last_requeue"]["set_aside"] == ["p1"]
    assert said["last_requeue"]["requeued"] == ["p2", "p3"]
    assert said["last_requeue"]["requeued_count"] == 2
    assert (
        "Requeued 2 prompts at" in said["text"] and "set aside p1: running at two" in said["text"]
    )


def test_a_switch_away_shows_nothing_of_the_old_queue(comfy):
    r = Replay(comfy)
    lost = r.stable()
    r.crash()
    r.feed(RequeueDone(r.ready(), lost, ("p1",)))
    r.command("switch", "d", requested_by="ui")
    assert queue_of(r) is None, "the demo keeps no queue"


def test_clear_queue_needs_no_force_drops_what_is_owed_and_wins_over_requeue(comfy):
    r = Replay(comfy)
    run = r.stable()
    r.feed(Probe(run, True, "HTTP 200", busy(1, 4), 0))
    r.command("stop", requested_by="ui", clear_queue=True, requeue=True)
    teardown = r.of(Teardown)[-1]
    assert teardown.clear_queue and teardown.interrupt, "the running job ends too"
    assert r.m.requeue_from is None and queue_of(r)["owed"] is None


def test_a_forced_stop_alone_never_clears(comfy):
    r = Replay(comfy)
    run = r.stable()
    r.feed(Probe(run, True, "HTTP 200", busy(1, 4), 0))
    r.command("stop", requested_by="ui", force=True)
    assert not r.of(Teardown)[-1].clear_queue


def test_a_huge_batch_or_a_giant_prompt_id_keeps_the_status_small(comfy):
    r = Replay(comfy)
    lost = r.stable()
    r.crash()
    many = tuple(f"prompt-{n:05d}" for n in range(5000))
    giant = "x" * 1_000_000  # a prompt id is whatever the sender chose
    r.feed(RequeueDone(r.ready(), lost, many, ((giant, "set aside"),), (giant,)))
    said = queue_of(r)
    assert said["last_requeue"]["requeued_count"] == 5000
    assert len(said["last_requeue"]["requeued"]) == 20
    assert len(json.dumps(said)) < 4000, "the journal has them all, the status a few"
