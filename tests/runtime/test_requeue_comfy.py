"""No job lost to a crash (issue 16): the demo as ComfyUI (its /prompt, /queue,
/history), a real supervisor, kill -9, and the queue submitted again."""

from __future__ import annotations

import os
import signal
import time

import requests
from conftest import events, free_port, running, wait_event

from watchdog.frameworks.comfy_queue import items_of
from watchdog.runtime.queue_memory import queue_path, remembered


def comfyui(tmp_path, seconds: float = 30) -> dict:
    command = ["{python}", "{demo_app}", "--port", "{port}", "--impersonate", "comfyui",
               "--prompt-s", str(seconds)]  # fmt: skip
    return {"preset": "comfyui", "port": free_port(), "cwd": str(tmp_path), "command": command}


def post(url: str, seed: int) -> str:
    body = {"prompt": {"3": {"inputs": {"seed": seed}}}, "client_id": "tab-1"}
    return requests.post(f"{url}/prompt", json=body, timeout=10).json()["prompt_id"]


def remembered_ids(sup, run_id: str, want: list[str], timeout: float = 10) -> None:
    path = queue_path(sup.settings.logs_dir / "runs", run_id)
    deadline = time.monotonic() + timeout
    while [i.prompt_id for i in remembered(path)] != want:
        assert time.monotonic() < deadline, remembered(path)
        time.sleep(0.05)


def queue_of(url: str) -> list[tuple[str, bool]]:
    return [
        (i.prompt_id, i.running) for i in items_of(requests.get(f"{url}/queue", timeout=10).json())
    ]


def new_run(sup, old_pid: int):
    return sup.wait_for(lambda s: s.state.value == "RUNNING" and s.pid != old_pid, 30)


def test_three_prompts_come_back_in_order_after_kill_9_and_a_suspect_is_set_aside(
    make_settings, supervise, tmp_path
):
    sup = supervise(make_settings(frameworks={"comfy": comfyui(tmp_path)}))
    first = sup.wait_for(running, timeout=15)
    ids = [post(first.url, seed) for seed in (1, 2, 3)]
    remembered_ids(sup, first.run_id, ids)
    os.kill(first.pid, signal.SIGKILL)
    again = new_run(sup, first.pid)
    requeued = wait_event(sup, "requeued", 15)[-1]
    assert requeued["prompt_ids"] == ids and requeued["from_run_id"] == first.run_id
    assert queue_of(again.url) == [(ids[0], True), (ids[1], False), (ids[2], False)]

    # The first prompt runs again and the framework dies again: twice in a row, so it
    # is set aside (it may be what kills it); the other two come back.
    remembered_ids(sup, again.run_id, ids)
    os.kill(again.pid, signal.SIGKILL)
    third = new_run(sup, again.pid)
    wait_event(sup, "requeued", 15, count=2)
    skipped = wait_event(sup, "requeue_skipped", 5)[-1]
    assert skipped["prompt_id"] == ids[0] and "set aside" in skipped["reason"]
    assert skipped["prompt"] == {"3": {"inputs": {"seed": 1}}}, "set aside, not lost"
    assert events(sup, "requeued")[-1]["prompt_ids"] == ids[1:]
    assert [pid for pid, _ in queue_of(third.url)] == ids[1:]


def test_a_finished_prompt_is_not_submitted_again(make_settings, supervise, tmp_path):
    sup = supervise(make_settings(frameworks={"comfy": comfyui(tmp_path, seconds=1.0)}))
    first = sup.wait_for(running, timeout=15)
    ids = [post(first.url, seed) for seed in (1, 2, 3)]
    remembered_ids(sup, first.run_id, ids[1:], timeout=10)  # the first one is done
    os.kill(first.pid, signal.SIGKILL)
    new_run(sup, first.pid)
    requeued = wait_event(sup, "requeued", 15)[-1]
    assert ids[0] not in requeued["prompt_ids"]


def test_a_persons_stop_does_not_requeue_but_a_stop_with_requeue_does(
    make_settings, supervise, tmp_path
):
    sup = supervise(make_settings(frameworks={"comfy": comfyui(tmp_path)}))
    first = sup.wait_for(running, timeout=15)
    ids = [post(first.url, seed) for seed in (1, 2)]
    remembered_ids(sup, first.run_id, ids)
    sup.stop(requested_by="ui", force=True)
    sup.wait_for(lambda s: s.state.value == "STOPPED", 20)
    sup.start(requested_by="ui")
    second = new_run(sup, first.pid)
    time.sleep(1)
    assert not events(sup, "requeued") and queue_of(second.url) == []

    ids = [post(second.url, seed) for seed in (3, 4)]
    remembered_ids(sup, second.run_id, ids)
    sup.stop(requested_by="ui", force=True, requeue=True)
    sup.wait_for(lambda s: s.state.value == "STOPPED", 20)
    sup.start(requested_by="ui")
    third = new_run(sup, second.pid)
    assert wait_event(sup, "requeued", 15)[-1]["prompt_ids"] == ids
    assert [pid for pid, _ in queue_of(third.url)] == ids


def test_a_crash_while_the_watchdog_was_down_still_requeues(make_settings, supervise, tmp_path):
    settings = make_settings(frameworks={"comfy": comfyui(tmp_path)})
    first_watchdog = supervise(settings)
    first = first_watchdog.wait_for(running, timeout=15)
    ids = [post(first.url, seed) for seed in (1, 2, 3)]
    remembered_ids(first_watchdog, first.run_id, ids)
    first_watchdog.shutdown(leave_running=True)  # the watchdog goes away…
    os.kill(first.pid, signal.SIGKILL)  # …and the framework dies while it is gone
    second_watchdog = supervise(settings)
    again = new_run(second_watchdog, first.pid)
    requeued = wait_event(second_watchdog, "requeued", 15)[-1]
    assert requeued["prompt_ids"] == ids and requeued["from_run_id"] == first.run_id
    assert [pid for pid, _ in queue_of(again.url)] == ids
