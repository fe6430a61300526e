"""ComfyUI's queue remembered on disk (issue 16, part 1): the demo impersonating
ComfyUI's /prompt, /queue and /history, a real supervisor, real files."""

from __future__ import annotations

import json
import os
import signal
import stat
import time

import requests
from conftest import free_port, running, wait_event

from watchdog.frameworks.comfy_queue import QueuedPrompt, finished, items_of
from watchdog.runtime.queue_memory import QueueMemory, queue_path, remembered


def comfyui(tmp_path, *flags: str) -> dict:
    """The comfyui preset whose process is the demo answering like ComfyUI."""
    command = ["{python}", "{demo_app}", "--port", "{port}", "--impersonate", "comfyui", *flags]
    return {"preset": "comfyui", "port": free_port(), "cwd": str(tmp_path), "command": command}


def post(url: str, seed: int, client: str = "tab-1") -> str:
    body = {"prompt": {"3": {"class_type": "KSampler", "inputs": {"seed": seed}}},
            "client_id": client}  # fmt: skip
    r = requests.post(f"{url}/prompt", json=body, timeout=10)
    r.raise_for_status()
    return r.json()["prompt_id"]


def test_the_queue_is_remembered_in_order_beside_the_runs_logs(make_settings, supervise, tmp_path):
    settings = make_settings(frameworks={"comfy": comfyui(tmp_path, "--prompt-s", "30")})
    sup = supervise(settings)
    status = sup.wait_for(running, timeout=15)
    ids = [post(status.url, seed) for seed in (1, 2, 3)]
    path = queue_path(settings.logs_dir / "runs", status.run_id)
    deadline = time.monotonic() + 10
    while [i.prompt_id for i in remembered(path)] != ids:
        assert time.monotonic() < deadline, remembered(path)
        time.sleep(0.1)
    items = remembered(path)
    assert [i.running for i in items] == [True, False, False]
    assert items[0].extra_data == {"client_id": "tab-1"}
    assert items[2].prompt["3"]["inputs"]["seed"] == 3
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # It outlives the framework: a kill -9 leaves the file as it was.
    os.kill(status.pid, signal.SIGKILL)
    wait_event(sup, "crash", 10)
    assert [i.prompt_id for i in remembered(path)] == ids


def test_only_a_change_is_written(tmp_path):
    path = tmp_path / "r1.queue.json"
    memory = QueueMemory(path, "r1")
    payload = {"queue_running": [[0, "a", {"1": {}}, {}, []]], "queue_pending": []}
    memory.seen(payload)
    first = path.stat().st_mtime_ns
    time.sleep(0.01)
    memory.seen(payload)
    assert path.stat().st_mtime_ns == first
    memory.seen({"queue_running": [], "queue_pending": []})  # done: nothing to bring back
    assert remembered(path) == []
    assert not list(tmp_path.glob("*.tmp"))


def test_a_full_disk_loses_the_copy_not_the_framework(tmp_path):
    memory = QueueMemory(tmp_path / "gone" / "r1.queue.json", "r1")  # no such folder
    memory.seen({"queue_running": [[0, "a", {}, {}, []]]})
    assert memory.error and "cannot remember the queue" in memory.error


def test_garbage_queues_and_files_are_no_items(tmp_path):
    assert items_of(None) == [] and items_of({"queue_running": "x"}) == []
    assert items_of({"queue_pending": [[1], "x", [2, "b", "not a prompt"], [3, "c", {}]]}) == [
        QueuedPrompt(3.0, "c", {})
    ]
    (tmp_path / "bad.queue.json").write_text("{not json")
    assert remembered(tmp_path / "bad.queue.json") == []
    assert remembered(tmp_path / "missing.queue.json") == []
    assert finished({"p1": {"status": {}}}, "p1") and not finished({}, "p1")


def test_a_resubmitted_prompt_keeps_its_id_and_its_tab(make_settings, supervise, tmp_path):
    settings = make_settings(frameworks={"comfy": comfyui(tmp_path, "--prompt-s", "30")})
    sup = supervise(settings)
    url = sup.wait_for(running, timeout=15).url
    item = QueuedPrompt(7, "keep-me", {"1": {"inputs": {}}}, {"client_id": "tab-9"})
    r = requests.post(f"{url}/prompt", json=item.resubmit_body(), timeout=10)
    assert r.json()["prompt_id"] == "keep-me"
    queue = requests.get(f"{url}/queue", timeout=10).json()
    queued = items_of(queue)
    assert [(i.prompt_id, i.extra_data) for i in queued] == [("keep-me", {"client_id": "tab-9"})]
    json.dumps(queue)
