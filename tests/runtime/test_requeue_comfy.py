"""No job lost to a crash (issue 16): the demo as ComfyUI (its /prompt, /queue,
/history), a real supervisor, kill -9, and the queue submitted again."""

from __future__ import annotations

import os
import signal
import time

import requests
from conftest import events, free_port, running, wait_event

from watchdog.frameworks.comfy_queue import items_of
from watchdog.monitor import gpu
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


# -- leaks without losses: a VRAM limit waits for the queue, and requeues what is left


def leaky_comfyui(make_settings, service, fake_nvml, tmp_path, seconds: float, wait_s: float):
    """ComfyUI with ``max_vram_mb`` 1000 on the fake NVML, holding 500 MB until the
    test makes it leak; the sampler reads every 0.5 s."""
    fake_nvml.CONFIG["framework_vram_mb"] = 500
    entry = {**comfyui(tmp_path, seconds), "max_vram_mb": 1000}
    watch = {"rss_limit_s": 0.5, "busy_wait_max_s": wait_s}
    svc = service(make_settings(frameworks={"comfy": entry}, watch=watch), gpu.make_reader())
    return svc.supervisor


def test_a_vram_limit_waits_for_the_queue_to_drain(make_settings, service, fake_nvml, tmp_path):
    sup = leaky_comfyui(make_settings, service, fake_nvml, tmp_path, seconds=1.5, wait_s=60)
    first = sup.wait_for(running, timeout=15)
    ids = [post(first.url, seed) for seed in (1, 2)]
    sup.wait_for(lambda s: s.busy, timeout=10)
    fake_nvml.CONFIG["framework_vram_mb"] = 4096  # it leaks while the queue runs
    waiting = wait_event(sup, "limit_wait", 10)[-1]
    assert waiting["limit"] == "max_vram_mb" and waiting["used_mb"] == 4096
    assert "waits up to 60 s for the queue to drain" in waiting["reason"]
    restart = wait_event(sup, "restart", 15)[-1]
    fake_nvml.CONFIG["framework_vram_mb"] = 500  # the new run is not leaking (yet)
    assert restart["reason"] == "vram_limit" and restart["pid"] == first.pid
    assert restart["queued"] == 0, "restarted once the queue had drained, not before"
    assert "VRAM 4096 MB above max_vram_mb=1000" in restart["detail"]
    sup.wait_for(lambda s: s.state.value == "RUNNING" and s.pid != first.pid, 20)
    assert not events(sup, "requeued"), f"nothing of {ids} was left to submit again"


def test_a_vram_limit_past_busy_wait_max_s_requeues_what_is_left(
    make_settings, service, fake_nvml, tmp_path
):
    sup = leaky_comfyui(make_settings, service, fake_nvml, tmp_path, seconds=30, wait_s=1)
    first = sup.wait_for(running, timeout=15)
    ids = [post(first.url, seed) for seed in (1, 2, 3)]
    remembered_ids(sup, first.run_id, ids)
    fake_nvml.CONFIG["framework_vram_mb"] = 4096
    restart = wait_event(sup, "restart", 15)[-1]
    fake_nvml.CONFIG["framework_vram_mb"] = 500
    assert restart["reason"] == "vram_limit" and restart["queued"] == 3
    again = new_run(sup, first.pid)
    requeued = wait_event(sup, "requeued", 15)[-1]
    assert requeued["prompt_ids"] == ids and requeued["from_run_id"] == first.run_id
    assert [pid for pid, _ in queue_of(again.url)] == ids
    queue = sup.wait_for(lambda s: s.queue is not None and s.queue.last is not None, 5)
    assert "Requeued 3 prompts at" in queue.to_dict()["queue"]["text"]
