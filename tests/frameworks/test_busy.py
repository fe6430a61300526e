"""Busy detection per framework, busy-aware actions, long job versus stall."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import demo, events, free_port, running, ts, wait_event

from watchdog.core.errors import BusyRefused
from watchdog.core.states import State
from watchdog.frameworks.busy import parse_busy
from watchdog.runtime.logs import tail_lines

# Real payload shapes (shared/frameworks.md), idle and busy.
PAYLOADS = {
    "automatic1111": (
        {
            "progress": 0.0,
            "eta_relative": 0.0,
            "state": {
                "skipped": False,
                "interrupted": False,
                "job": "",
                "job_count": 0,
                "job_timestamp": "20261126",
                "job_no": 0,
                "sampling_step": 0,
                "sampling_steps": 20,
            },
            "current_image": None,
            "textinfo": None,
        },
        {
            "progress": 0.35,
            "eta_relative": 4.1,
            "state": {
                "skipped": False,
                "interrupted": False,
                "job": "task(abc)",
                "job_count": 1,
                "job_timestamp": "20261126",
                "job_no": 0,
                "sampling_step": 7,
                "sampling_steps": 20,
            },
            "current_image": None,
            "textinfo": None,
        },
    ),
    "comfyui": (
        {"queue_running": [], "queue_pending": []},
        {
            "queue_running": [[3, "9f1c-prompt", {"3": {}}, {}, ["9"]]],
            "queue_pending": [[4, "a2b3", {}, {}, []]],
        },
    ),
    "invokeai": (
        {
            "queue": {
                "queue_id": "default",
                "item_id": None,
                "batch_id": None,
                "session_id": None,
                "pending": 0,
                "in_progress": 0,
                "completed": 12,
                "failed": 0,
                "canceled": 0,
                "total": 12,
            },
            "processor": {"is_started": True, "is_processing": False},
        },
        {
            "queue": {
                "queue_id": "default",
                "item_id": 13,
                "batch_id": "b",
                "session_id": "s",
                "pending": 2,
                "in_progress": 1,
                "completed": 12,
                "failed": 0,
                "canceled": 0,
                "total": 15,
            },
            "processor": {"is_started": True, "is_processing": True},
        },
    ),
    "sdnext": (
        {
            "status": "idle",
            "task": "",
            "timestamp": None,
            "current": "",
            "id": 0,
            "job": 0,
            "jobs": 0,
            "total": 0,
            "step": 0,
            "steps": 0,
            "queued": 0,
            "uptime": 81,
            "elapsed": None,
            "eta": None,
            "progress": None,
        },
        {
            "status": "running",
            "task": "txt2img",
            "timestamp": "x",
            "current": "",
            "id": 1,
            "job": 1,
            "jobs": 1,
            "total": 1,
            "step": 9,
            "steps": 30,
            "queued": 0,
            "uptime": 99,
            "elapsed": 3.2,
            "eta": 7.5,
            "progress": 0.3,
        },
    ),
}


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_real_payloads_parse(kind):
    idle, busy = PAYLOADS[kind]
    assert parse_busy(kind, idle).busy is False
    parsed = parse_busy(kind, busy)
    assert parsed.busy is True and parsed.fingerprint and parsed.detail
    with pytest.raises(ValueError):
        parse_busy(kind, ["not", "an", "object"])


def test_fingerprint_moves_with_progress():
    _, busy = PAYLOADS["automatic1111"]
    later = {**busy, "progress": 0.4, "state": {**busy["state"], "sampling_step": 8}}
    assert (
        parse_busy("automatic1111", busy).fingerprint
        != parse_busy("automatic1111", later).fingerprint
    )


def impersonating(preset: str, port: int, tmp_path: Path, *flags: str) -> dict:
    """An entry for ``preset`` whose process is the demo answering like that framework."""
    return {
        "preset": preset,
        "port": port,
        "cwd": str(tmp_path),
        "command": ["{python}", "{demo_app}", "--port", "{port}", "--impersonate", preset, *flags],
    }


@pytest.mark.parametrize(
    "preset", ["automatic1111", "forge", "comfyui", "invokeai", "sdnext", "fooocus"]
)
def test_each_preset_end_to_end(preset, make_settings, supervise, tmp_path):
    persona = "automatic1111" if preset == "forge" else preset
    entry = impersonating(persona, free_port(), tmp_path, "--busy-for", "30")
    entry["preset"] = preset
    sup = supervise(make_settings(frameworks={"fw": entry}, watch={"stop_timeout_s": 5}))
    status = sup.wait_for(running, timeout=15)
    ready = wait_event(sup, "ready", 2)[-1]
    assert ready["via"] == "ready line" and ready["url"] == status.url
    if preset == "fooocus":  # no busy endpoint: a plain stop works
        time.sleep(0.5)
        assert not sup.status().busy
        sup.stop()
        sup.wait_for(lambda s: s.state is State.STOPPED, timeout=10)
        return
    busy = sup.wait_for(lambda s: s.busy, timeout=5)
    # Busy at the first look, before anyone asked: jobs it resumed at start, and said.
    assert busy.busy_detail.endswith("(jobs resumed at start)")
    resumed = wait_event(sup, "jobs_resumed", 5)[-1]
    assert resumed["run_id"] == status.run_id and "pending at start" in resumed["reason"]
    with pytest.raises(BusyRefused, match=r"running on fw .*resumed at start.*force to interrupt"):
        sup.stop()
    assert sup.status().state is State.RUNNING and sup.status().pid == status.pid
    sup.stop(force=True)
    sup.wait_for(lambda s: s.state is State.STOPPED, timeout=15)
    if preset == "invokeai":  # its queue is in its database: a forced stop leaves it be
        assert not events(sup, "interrupt") and not events(sup, "queue_cleared")
        return
    interrupt = events(sup, "interrupt")[-1]
    assert interrupt["ok"] is True
    log = Path(events(sup, "spawn")[-1]["stdout"])
    assert any("interrupted by the interrupt endpoint" in line for line in tail_lines(log, 20))


def test_long_job_with_slow_probes_is_not_a_hang(make_settings, supervise, tmp_path):
    # Health answers in 1 s while busy; the timeout is 0.3 s: 3 failures would be a hang.
    sup = supervise(
        make_settings(
            frameworks={"a": demo(None, "--busy-for", "4", "--slow-ping", "1", "--progress-bars")},
            watch={"stall_timeout_s": 2},
        )
    )
    first = sup.wait_for(running, timeout=10)
    sup.wait_for(lambda s: s.busy, timeout=5)
    time.sleep(4.5)  # the whole job, then some
    assert not events(sup, "hang") and not events(sup, "stalled")
    assert sup.status().pid == first.pid and not sup.status().busy


def test_busy_with_frozen_progress_is_a_stall(make_settings, supervise):
    sup = supervise(
        make_settings(
            frameworks={"a": demo(None, "--busy-for", "60", "--busy-frozen")},
            watch={"stall_timeout_s": 1.5, "stop_timeout_s": 2},
        )
    )
    first = sup.wait_for(running, timeout=10)
    stalled = wait_event(sup, "stalled", 10)[-1]
    assert stalled["pid"] == first.pid and "no progress and no output" in stalled["reason"]
    sup.wait_for(lambda s: s.pid not in (None, first.pid), timeout=10)


def test_a1111_restart_request_is_not_a_crash(make_settings, supervise, tmp_path):
    entry = impersonating(
        "automatic1111",
        free_port(),
        tmp_path,
        "--crash-after",
        "0.5",
        "--crash-with",
        "restart-request",
    )
    sup = supervise(make_settings(frameworks={"a1111": entry}, watch={"max_restarts": 1}))
    first = sup.wait_for(running, timeout=10)
    restart = wait_event(sup, "restart", 10)[0]
    assert restart["requested_by"] == "framework" and restart["pid"] == first.pid
    sup.wait_for(lambda s: running(s) and s.pid != first.pid, timeout=10)
    assert not events(sup, "crash") and not events(sup, "backoff")
    # and it keeps asking: still never counted towards FATAL
    wait_event(sup, "restart", 10, count=3)
    assert sup.status().state is not State.FATAL


def test_comfyui_manager_restart_is_immediate_and_never_counted(make_settings, supervise, tmp_path):
    """Its Restart button: ``$__COMFY_CLI_SESSION__.reboot`` created, then exit 0."""
    entry = impersonating(
        "comfyui", free_port(), tmp_path, "--crash-after", "0.5", "--crash-with", "restart-request"
    )
    sup = supervise(make_settings(frameworks={"comfy": entry}, watch={"max_restarts": 1}))
    first = sup.wait_for(running, timeout=10)
    restart = wait_event(sup, "restart", 10)[0]
    assert restart["requested_by"] == "framework" and restart["pid"] == first.pid
    second = sup.wait_for(lambda s: running(s) and s.pid != first.pid, timeout=10)
    exit_ev = [e for e in events(sup, "exit") if e["pid"] == first.pid][-1]
    spawn = [e for e in events(sup, "spawn") if e["pid"] == second.pid][-1]
    assert ts(spawn) - ts(exit_ev) < 0.5, "relaunched at once, no backoff"
    assert not events(sup, "crash") and not events(sup, "backoff")
    wait_event(sup, "restart", 10, count=3)  # asked again and again: never FATAL
    assert sup.status().state is not State.FATAL
    runs = sup.settings.logs_dir / "runs"
    assert not list(runs.glob("*.reboot")), "each marker is taken once"


def test_an_exit_0_without_the_marker_is_a_crash(make_settings, supervise, tmp_path):
    entry = impersonating(
        "comfyui", free_port(), tmp_path, "--crash-after", "0.5", "--exit-code", "0"
    )
    sup = supervise(make_settings(frameworks={"comfy": entry}, watch={"max_restarts": 1}))
    sup.wait_for(running, timeout=10)
    assert wait_event(sup, "crash", 10)[0]["exit_code"] == 0


def test_a_busy_gpu_counts_as_progress(fake_nvml, make_settings):
    from watchdog.runtime.service import Service

    settings = make_settings(
        frameworks={"a": demo(None, "--busy-for", "60", "--busy-frozen")},
        watch={"stall_timeout_s": 1.5, "stop_timeout_s": 2},
        metrics={"interval_s": 0.2},
    )
    service = Service(settings)  # reads the fake GPU: 37 % busy
    try:
        service.start()
        sup = service.supervisor
        first = sup.wait_for(lambda s: running(s) and s.busy, timeout=10)
        time.sleep(3)
        assert not events(sup, "stalled"), "the GPU works on the job: not stuck"
        fake_nvml.CONFIG["devices"][0]["util"] = 0
        stalled = wait_event(sup, "stalled", 10)[-1]
        assert stalled["pid"] == first.pid
    finally:
        service.stop()
