"""Two GPU slots on one machine: real demo frameworks, the fake NVML with two devices,
the core's API over its real control socket and the CLI."""

from __future__ import annotations

import copy
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import (
    STATUS_KEYS,
    demo,
    events,
    free_port,
    journal,
    pid_alive,
    run_app,
    wait_event,
    wait_journal,
)

from watchdog.control.api import ControlApi, Refused
from watchdog.control.server import ControlSocket
from watchdog.monitor import gpu
from watchdog.runtime.service import Service

SLOTS = {
    "gpu0": {"gpus": "0", "default_framework": "a"},
    "gpu1": {"gpus": "1", "default_framework": "b", "port_offset": 100},
}


@pytest.fixture
def two_gpus(fake_nvml):
    second = copy.deepcopy(fake_nvml.CONFIG["devices"][0])
    second.update(name="NVIDIA H200", uuid="GPU-bbbb")
    fake_nvml.CONFIG["devices"].append(second)
    return fake_nvml


def serving(svc: Service, slot: str, framework: str | None = None, timeout: float = 20) -> dict:
    sup = svc.supervisors[slot]
    status = sup.wait_for(
        lambda s: s.state.value == "RUNNING" and framework in (None, s.framework), timeout
    )
    return status.to_dict()


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(v.decode(errors="replace").split("=", 1) for v in raw if b"=" in v)


def test_each_slot_runs_its_own_framework_on_its_own_gpus(make_settings, service, two_gpus):
    svc = service(make_settings(frameworks={"a": demo(), "b": demo()}, slots=SLOTS),
                  gpu.make_reader())  # fmt: skip
    one, two = serving(svc, "gpu0", "a"), serving(svc, "gpu1", "b")
    assert environ(one["pid"])["CUDA_VISIBLE_DEVICES"] == "0"
    assert environ(two["pid"])["CUDA_VISIBLE_DEVICES"] == "1"
    a_port = svc.settings.frameworks["a"].port
    b_port = svc.settings.frameworks["b"].port
    assert one["url"] == f"http://127.0.0.1:{a_port}"
    assert two["url"] == f"http://127.0.0.1:{b_port + 100}", "port_offset moves every port"
    api = ControlApi(svc)
    assert api.status()["slot"] == "gpu0" and api.status()["slots"] == ["gpu0", "gpu1"]
    assert api.status(slot="gpu1")["framework"] == "b"
    spawns = {e["slot"]: e["framework"] for e in events(svc.supervisor, "spawn")}
    assert spawns == {"gpu0": "a"}, "a slot's journal view is its own"
    every = {(e["slot"], e["framework"]) for e in api.events(100) if e["event"] == "spawn"}
    assert every == {("gpu0", "a"), ("gpu1", "b")}
    assert [e["slot"] for e in api.events(100, slot="gpu1")] == ["gpu1"] * len(
        api.events(100, slot="gpu1")
    )
    deadline = time.monotonic() + 10
    while True:  # the GPU panel: each framework's memory on its slot's GPU
        procs = {p["pid"]: p["gpu_index"] for p in api.gpu()["processes"]}
        if procs.get(one["pid"]) == 0 and procs.get(two["pid"]) == 1:
            break
        assert time.monotonic() < deadline, procs
        time.sleep(0.1)
    assert (svc.settings.logs_dir / "slots" / "gpu1" / "state.json").exists()


def test_a_crash_switch_or_fatal_on_one_slot_never_touches_the_other(
    make_settings, service, two_gpus
):
    frameworks = {"a": demo(), "b": demo(), "broken": demo(None, "--crash-after", "0")}
    svc = service(make_settings(frameworks=frameworks, slots=SLOTS, watch={"max_restarts": 2}),
                  gpu.make_reader())  # fmt: skip
    one, two = serving(svc, "gpu0"), serving(svc, "gpu1")
    os.kill(one["pid"], signal.SIGKILL)
    wait_event(svc.supervisors["gpu0"], "crash", 10)
    again = (
        svc.supervisors["gpu0"]
        .wait_for(lambda s: s.state.value == "RUNNING" and s.pid != one["pid"], 20)
        .to_dict()
    )
    assert again["restarts"] == 1
    assert svc.supervisors["gpu1"].status().pid == two["pid"], "the other slot never knew"
    assert svc.supervisors["gpu1"].status().restarts == 0

    api = ControlApi(svc)
    api.switch("a", slot="gpu1")  # the same framework on two slots, on two ports
    moved = serving(svc, "gpu1", "a")
    assert moved["url"] != again["url"] and not pid_alive(two["pid"])
    released = events(svc.supervisors["gpu1"], "vram_released")[-1]
    assert released["freed_mb"] == 4096, "the wait looked at GPU 1, where b was"
    assert svc.supervisors["gpu0"].status().pid == again["pid"]

    api.switch("broken", slot="gpu1")
    svc.supervisors["gpu1"].wait_for(lambda s: s.state.value == "FATAL", 30)
    assert svc.supervisors["gpu0"].status().state.value == "RUNNING"
    assert svc.supervisors["gpu0"].status().pid == again["pid"]
    assert not events(svc.supervisors["gpu0"], "fatal")


def test_unknown_or_garbage_slot_is_refused_and_changes_nothing(make_settings, service):
    svc = service(make_settings(frameworks={"a": demo(), "b": demo()}, slots=SLOTS))
    serving(svc, "gpu0")
    api = ControlApi(svc)
    for bad, status in (("gpu9", 404), (7, 400), (["gpu0"], 400)):
        with pytest.raises(Refused) as caught:
            api.stop(slot=bad)
        assert caught.value.status == status
    with pytest.raises(Refused, match="slots: gpu0, gpu1"):
        api.status(slot="x")
    assert svc.supervisors["gpu0"].status().should_run


def test_old_settings_give_the_same_status_object_as_before(make_settings, service):
    svc = service(make_settings())
    info = ControlApi(svc).status()
    assert set(info) >= STATUS_KEYS and "slot" not in info and "slots" not in info
    assert ControlApi(svc).events(10)[0].get("slot") is None
    with pytest.raises(Refused, match="this watchdog has no slots"):
        ControlApi(svc).status(slot="gpu0")


def test_the_cli_names_a_slot_or_shows_every_slot(write_settings, make_settings, tmp_path):
    path = write_settings(frameworks={"a": demo(), "b": demo()}, slots=SLOTS)
    from watchdog.settings import load_settings

    settings = load_settings(path)
    svc = Service(settings)
    control = ControlSocket(settings.logs_dir / "control.sock", ControlApi(svc))
    try:
        svc.start()
        control.start()
        serving(svc, "gpu0"), serving(svc, "gpu1")
        shown = run_app("--settings", str(path), "status")
        assert shown.returncode == 0
        assert "[gpu0] a: RUNNING" in shown.stdout and "[gpu1] b: RUNNING" in shown.stdout
        before = svc.supervisors["gpu0"].status().pid
        done = run_app("--settings", str(path), "restart", "--slot", "gpu1")
        assert done.returncode == 0 and done.stdout.startswith("[gpu1] b:")
        wait_event(svc.supervisors["gpu1"], "restart", 10)
        serving(svc, "gpu1", "b")
        assert svc.supervisors["gpu0"].status().pid == before
        wrong = run_app("--settings", str(path), "stop", "--slot", "gpu7")
        assert wrong.returncode == 6 and "unknown slot 'gpu7'" in wrong.stderr
    finally:
        control.stop()
        svc.stop()


@pytest.mark.parametrize(
    "slots, message",
    [
        ({"x": {"gpus": "0"}, "y": {"gpus": "0", "port_offset": 1}}, "GPU 0 is in x already"),
        ({"x": {"gpus": "0"}, "y": {"gpus": "1"}}, "slots.y.port_offset: 0 is x's too"),
        ({"x": {"gpus": "first"}}, "slots.x.gpus: String should match pattern"),
        ({"x": {"gpus": "0", "default_framework": "dmeo"}}, "did you mean 'demo'"),
    ],
)
def test_wrong_slots_say_which_key(write_settings, slots, message):
    from watchdog.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        load_settings(write_settings(slots=slots))


def test_the_idle_command_with_slots_is_refused_plainly(write_settings):
    from watchdog.settings import SettingsError, load_settings

    idle = {"after_min": 30, "action": "command", "command": "sudo poweroff"}
    with pytest.raises(SettingsError, match='"command" does not work with slots yet'):
        load_settings(write_settings(slots={"x": {"gpus": "0"}}, idle=idle))


def test_one_slots_sweep_never_stops_another_slots_framework(write_settings, app):
    # The real app.py (a child subreaper): gpu1 fails to spawn again and again, and
    # sweeps leftovers before each try; gpu0's framework is our child too, but no orphan.
    frameworks = {"a": demo(), "nope": {"command": "no-such-program-here", "port": free_port()}}
    slots = {
        "gpu0": {"gpus": "0", "default_framework": "a"},
        "gpu1": {"gpus": "1", "default_framework": "nope", "port_offset": 100},
    }
    path = write_settings(frameworks=frameworks, slots=slots, watch={"max_restarts": 20})
    watchdog = app(path)
    ready = wait_journal(watchdog.logs, "ready")[0]
    assert ready["slot"] == "gpu0"
    failed = wait_journal(watchdog.logs, "spawn_failed", count=4, timeout=30)
    assert {e["slot"] for e in failed} == {"gpu1"}
    time.sleep(0.5)
    assert pid_alive(ready["pid"]), "gpu1's sweep stopped gpu0's framework"
    everything = journal(watchdog.logs)
    assert not [
        e for e in everything if e["event"] in ("crash", "exit") and e.get("slot") == "gpu0"
    ]
    swept = [p for e in everything if e["event"] == "cleanup" for p in e.get("pids") or []]
    assert ready["pid"] not in swept
