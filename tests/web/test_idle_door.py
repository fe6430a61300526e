"""The idle policy against real processes: a real demo framework, the real front and
door over the control socket, the fake NVML for the GPU, real HTTP on 127.0.0.1.

Idle times are seconds here (``after_min`` 0.05 is 3 s); the replays in
``tests/core/test_idle.py`` cover the minutes.
"""

from __future__ import annotations

import time

import pytest
import requests
from conftest import PASSWORD, USER, demo, events, pid_alive, running, wait_event
from fakes.receiver import Receiver

from watchdog.core.messages import Wanted
from watchdog.monitor import gpu
from watchdog.runtime.statefile import StateFile
from watchdog.web.activity import ActivityReporter, interval_for

AUTH = (USER, PASSWORD)


def sleeping(status) -> bool:
    return status.state.value == "SLEEPING"


def retrying_get(url: str, limit_s: float = 60) -> tuple[requests.Response, list[int]]:
    """An API client that honours 503 + Retry-After, as the door asks it to."""
    codes: list[int] = []
    deadline = time.monotonic() + limit_s
    while True:
        r = requests.get(url, auth=AUTH, timeout=10)
        codes.append(r.status_code)
        if r.status_code != 503 or time.monotonic() > deadline:
            return r, codes
        time.sleep(min(float(r.headers.get("retry-after", "1")), 3.0))


def test_idle_stop_frees_process_and_vram_then_a_door_request_wakes_it(
    make_settings, serve, fake_nvml
):
    settings = make_settings(idle={"after_min": 0.05})  # 3 s
    web = serve(settings, password=True, door=True, reader=gpu.make_reader())
    pid = web.sup.wait_for(running, timeout=15).pid
    assert pid in fake_nvml._framework_pids(), "the demo holds (fake) VRAM while it runs"

    status = web.sup.wait_for(sleeping, timeout=30)
    assert not pid_alive(pid) and status.pid is None
    assert fake_nvml._framework_pids() == [], "its (fake) VRAM is free"
    deadline = time.monotonic() + 10
    while True:  # and the GPU panel, from the sampler's next reading, says so
        procs = requests.get(f"{web.url}api/v1/gpu", auth=AUTH, timeout=10).json()["processes"]
        if not any(p["in_framework"] for p in procs) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not any(p["in_framework"] for p in procs), procs
    idle = events(web.sup, "idle")[-1]
    assert idle["action"] == "stop" and idle["reason"].startswith("nobody used it for 3 s")
    stopping = events(web.sup, "stopping")[-1]
    assert stopping["requested_by"] == "idle"
    info = requests.get(f"{web.url}info", auth=AUTH, timeout=10).json()
    assert info["state"] == "SLEEPING" and info["idle"]["sleeping"] is True
    assert "wakes it" in info["reason"]

    # A browser gets the waking page; that request alone wakes it.
    page = requests.get(web.door, auth=AUTH, headers={"Accept": "text/html"}, timeout=10)
    assert page.status_code == 503 and "waking up" in page.text
    assert page.headers["retry-after"]
    # An API client that retries on 503 loses nothing: it gets through.
    final, codes = retrying_get(f"{web.door}echo-headers")
    assert final.status_code == 200, codes
    woken = web.sup.status()
    assert woken.state.value == "RUNNING" and woken.pid != pid
    assert events(web.sup, "wake")[-1]["requested_by"] == "door"
    assert events(web.sup, "spawn")[-1]["requested_by"] == "door"


def test_a_stranger_neither_wakes_it_nor_keeps_it_awake(make_settings, serve):
    web = serve(make_settings(idle={"after_min": 0.05}), password=True, door=True)
    web.sup.wait_for(running, timeout=15)
    deadline = time.monotonic() + 30
    while not sleeping(web.sup.status()):  # knocking without the password all along
        assert requests.get(web.door, timeout=10).status_code == 401
        assert time.monotonic() < deadline, "a stranger's requests kept it awake"
        time.sleep(0.3)
    for _ in range(20):
        assert requests.get(f"{web.door}x", timeout=10).status_code == 401
    time.sleep(1.5)  # more than the door's report interval
    assert sleeping(web.sup.status()) and not events(web.sup, "wake")


def test_a_running_generation_defers_sleep(make_settings, serve):
    settings = make_settings(
        frameworks={"demo": demo(None, "--busy-for", "6")},
        idle={"after_min": 0.03},  # 1.8 s
    )
    web = serve(settings, password=True, door=True)
    ready_at = time.monotonic()
    web.sup.wait_for(running, timeout=15)
    web.sup.wait_for(lambda s: s.busy, timeout=10)
    time.sleep(max(0.0, ready_at + 4.5 - time.monotonic()))
    assert web.sup.status().state.value == "RUNNING", "asleep in the middle of a generation"
    web.sup.wait_for(sleeping, timeout=30)
    slept = events(web.sup, "idle")[-1]
    assert slept["last_use"] == "generation"


def test_a_page_action_or_keep_awake_defers_sleep(make_settings, serve):
    web = serve(make_settings(idle={"after_min": 0.05}), password=True, door=True)
    web.sup.wait_for(running, timeout=15)
    began = time.monotonic()
    while time.monotonic() - began < 7:  # more than twice the idle time
        r = requests.post(f"{web.url}api/v1/keep-awake", auth=AUTH, json={}, timeout=10)
        assert r.status_code == 200 and r.json()["idle"]["idle_s"] == 0
        time.sleep(1)
    assert web.sup.status().state.value == "RUNNING"
    assert events(web.sup, "keep_awake")[-1]["requested_by"] == "http"
    web.sup.wait_for(sleeping, timeout=30)


def test_the_command_warns_runs_once_after_the_grace_and_says_how_it_went(
    make_settings, serve, tmp_path
):
    ran = tmp_path / "ran.txt"
    command = f"echo \"$SDW_FRAMEWORK idle $SDW_IDLE_MIN\" >> '{ran}'; echo 'pod stopping'"
    with Receiver() as receiver:
        settings = make_settings(
            idle={"after_min": 0.03, "action": "command", "command": command, "grace_min": 0.03},
            notify={"urls": [receiver.url()]},
        )
        web = serve(settings, password=True, door=True)
        web.sup.wait_for(running, timeout=15)
        done = wait_event(web.sup, "idle_command_exit", 30)[-1]
        warning = receiver.wait(1, timeout=10)[0]
    assert warning["title"].startswith("demo is idle on ")
    assert "the idle command runs in 2 s unless someone uses it" in warning["message"]
    assert command not in warning["message"], "the command may hold a key: never sent"
    assert done["exit_code"] == 0 and done["output"] == "pod stopping"
    order = [e["event"] for e in events(web.sup)]
    assert order.index("idle") < order.index("idle_command") < order.index("idle_command_exit")
    time.sleep(4)  # more than idle time and grace again: it ran once
    assert ran.read_text() == "demo idle 0.03\n"
    assert web.sup.status().state.value == "RUNNING", "the command leaves the framework alone"


def test_keep_awake_cancels_the_command_in_its_grace(make_settings, serve, tmp_path):
    ran = tmp_path / "ran.txt"
    idle = {"after_min": 0.03, "action": "command", "command": f"touch '{ran}'", "grace_min": 0.1}
    web = serve(make_settings(idle=idle), password=True, door=True)
    web.sup.wait_for(running, timeout=15)
    wait_event(web.sup, "idle", 15)
    info = requests.get(f"{web.url}info", auth=AUTH, timeout=10).json()["idle"]
    assert info["grace"] is True and info["next"] == "command" and info["next_in_s"] <= 6
    r = requests.post(f"{web.url}api/v1/keep-awake", auth=AUTH, json={}, timeout=10)
    assert r.status_code == 200
    assert events(web.sup, "keep_awake")[-1]["cancelled"] == "the idle command"
    time.sleep(7)  # past the grace
    assert not ran.exists() and not events(web.sup, "idle_command")


def test_a_failing_command_is_journaled_with_its_code_and_output(make_settings, serve):
    idle = {"after_min": 0.02, "action": "command", "command": "echo nope >&2; exit 3",
            "grace_min": 0}  # fmt: skip
    web = serve(make_settings(idle=idle))
    failed = wait_event(web.sup, "idle_command_failed", 30)[-1]
    assert failed["exit_code"] == 3 and failed["output"] == "nope"
    assert failed["reason"] == "the idle command exited with code 3"


def test_sleeping_is_remembered_across_a_watchdog_restart(make_settings, supervise):
    settings = make_settings(idle={"after_min": 0.05})
    StateFile(settings.logs_dir / "state.json").save(Wanted("demo", False, sleeping=True), None)
    sup = supervise(settings)
    assert sleeping(sup.wait_for(sleeping, timeout=10))
    assert events(sup, "sleep")[-1]["requested_by"] == "boot"
    sup.report_activity("door")
    sup.wait_for(running, timeout=15)


@pytest.mark.parametrize(
    "idle, message",
    [
        ({"after_min": 5, "action": "command"}, 'idle: command: required when action is "command"'),
        ({"after_min": 5, "action": "halt"}, "idle.action: Input should be 'stop' or 'command'"),
        ({"after_min": -1}, "idle.after_min: Input should be greater than or equal to 0"),
    ],
)
def test_wrong_idle_settings_say_which_key(write_settings, idle, message):
    from watchdog.settings import SettingsError, load_settings

    with pytest.raises(SettingsError) as caught:
        load_settings(write_settings(idle=idle))
    assert message in str(caught.value)


def test_the_idle_command_is_never_echoed_in_a_settings_error(write_settings):
    from watchdog.settings import SettingsError, load_settings

    secret = "curl -H 'Authorization: Bearer s3cr3t' https://api.example/stop"
    with pytest.raises(SettingsError) as caught:
        load_settings(write_settings(idle={"after_min": "soon", "command": secret}))
    assert "s3cr3t" not in str(caught.value)
    with pytest.raises(SettingsError) as caught:
        load_settings(write_settings(idle={"after_min": 5, "command": 7, "extra": secret}))
    assert "s3cr3t" not in str(caught.value)


def test_door_requests_count_as_use(make_settings, serve):
    web = serve(make_settings(idle={"after_min": 1}), password=True, door=True)
    web.sup.wait_for(running, timeout=15)
    assert requests.get(f"{web.door}echo-headers", auth=AUTH, timeout=10).status_code == 200
    deadline = time.monotonic() + 10
    while web.sup.status().idle.last_use != "door":
        assert time.monotonic() < deadline, web.sup.status().idle
        time.sleep(0.05)


def test_a_crowd_of_requests_is_one_report_per_interval():
    sent = []
    reporter = ActivityReporter(lambda: sent.append(time.monotonic()))
    began = time.monotonic()
    while time.monotonic() - began < 2.5:
        for _ in range(1000):
            reporter.seen(after_s=10)  # a 1 s interval
        time.sleep(0.01)
    time.sleep(0.2)
    assert 2 <= len(sent) <= 4, len(sent)
    for _ in range(1000):  # a sleeping framework: told at once, but not 1,000 times
        reporter.seen(urgent=True, after_s=10)
    time.sleep(0.2)
    assert len(sent) <= 6
    assert interval_for(None) == 30 and interval_for(6) == 1 and interval_for(1800) == 30
