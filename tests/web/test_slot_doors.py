"""Each GPU slot has its own door: the real ``app.py`` (core and front processes), two
slots of real demo frameworks, real HTTP on 127.0.0.1."""

from __future__ import annotations

import time

import requests
from conftest import PASSWORD, USER, demo, free_port, set_password

AUTH = (USER, PASSWORD)


def test_each_slot_has_its_own_door_behind_the_login(write_settings, app):
    frameworks = {"a": demo(), "b": demo()}
    slots = {
        "gpu0": {"gpus": "0", "default_framework": "a"},
        "gpu1": {"gpus": "1", "default_framework": "a", "port_offset": 50},
    }
    path = write_settings(frameworks=frameworks, slots=slots)
    set_password(path)
    watchdog = app(path, free_port())
    watchdog.wait_page()
    page = f"http://127.0.0.1:{watchdog.port}/"
    doors, ports = {}, {}
    deadline = time.monotonic() + 60
    for slot in slots:
        while True:
            info = requests.get(f"{page}api/v1/status", params={"slot": slot}, auth=AUTH,
                                timeout=10).json()  # fmt: skip
            if info["state"] == "RUNNING":
                break
            assert time.monotonic() < deadline, info
            time.sleep(0.2)
        assert info["slot"] == slot and info["framework"] == "a"
        doors[slot], ports[slot] = info["door_url"], info["url"].rsplit(":", 1)[1]
    assert doors["gpu0"] != doors["gpu1"] and ports["gpu0"] != ports["gpu1"]
    for slot, door in doors.items():
        assert requests.get(door, timeout=10).status_code == 401
        r = requests.get(door, auth=AUTH, timeout=10)
        assert r.status_code == 200 and f"on port {ports[slot]}" in r.text, (slot, r.text[:300])
    # A switch on one slot: its door shows the new framework, the other's is untouched.
    requests.post(f"{page}api/v1/switch", json={"framework": "b", "slot": "gpu1"}, auth=AUTH,
                  timeout=40).raise_for_status()  # fmt: skip
    b_port = str(frameworks["b"]["port"] + 50)
    deadline = time.monotonic() + 60
    while True:
        r = requests.get(doors["gpu1"], auth=AUTH, timeout=10)
        if r.status_code == 200 and f"on port {b_port}" in r.text:
            break
        assert time.monotonic() < deadline, r.text[:300]
        time.sleep(0.3)
    r = requests.get(doors["gpu0"], auth=AUTH, timeout=10)
    assert r.status_code == 200 and f"on port {ports['gpu0']}" in r.text
    shown = watchdog.cli("status")
    assert "[gpu0] a: RUNNING" in shown.stdout and "[gpu1] b: RUNNING" in shown.stdout


def gradio(web, name: str, *data: object) -> str:
    call = requests.post(f"{web.url}gradio_api/call/{name}", json={"data": list(data)},
                         timeout=10)  # fmt: skip
    call.raise_for_status()
    return requests.get(f"{web.url}gradio_api/call/{name}/{call.json()['event_id']}",
                        timeout=40).text  # fmt: skip


def test_the_gradio_api_with_and_without_a_slot(serve, make_settings):
    slots = {
        "gpu0": {"gpus": "0", "default_framework": "a"},
        "gpu1": {"gpus": "1", "default_framework": "b", "port_offset": 100},
    }
    web = serve(make_settings(frameworks={"a": demo(), "b": demo()}, slots=slots))
    sups = web.service.supervisors
    pids = {s: sups[s].wait_for(lambda st: st.state.value == "RUNNING", 15).pid for s in slots}
    assert '"slot": "gpu0"' in gradio(web, "status")  # none named: the first
    assert '"slot": "gpu1"' in gradio(web, "status", "gpu1")
    assert '"framework": "b"' in gradio(web, "status", "gpu1")
    gradio(web, "restart", False, "gpu1")
    sups["gpu1"].wait_for(lambda st: st.state.value == "RUNNING" and st.pid != pids["gpu1"], 20)
    assert sups["gpu0"].status().pid == pids["gpu0"]
    wrong = gradio(web, "stop", False, "gpu9")
    assert "event: error" in wrong and "unknown slot" in wrong
    assert sups["gpu0"].status().should_run and sups["gpu1"].status().should_run
    logs = gradio(web, "logs", "stdout", 5, "gpu1")
    assert str(sups["gpu1"].status().pid) in logs
    # The plain routes too: /info and the current log, of the slot named.
    info = requests.get(f"{web.url}info", params={"slot": "gpu1"}, timeout=10).json()
    assert info["slot"] == "gpu1" and info["pid"] == sups["gpu1"].status().pid
    text = requests.get(f"{web.url}read-current-stdout-log", params={"slot": "gpu1"},
                        timeout=10).text  # fmt: skip
    assert f"pid {info['pid']}" in text
    unknown = requests.get(f"{web.url}info", params={"slot": "nope"}, timeout=10)
    assert unknown.status_code == 404 and "unknown slot" in unknown.json()["error"]
