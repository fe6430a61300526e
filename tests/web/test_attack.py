"""What a careful operator tries before trusting a GPU VM to this tool."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from urllib.parse import quote

import pytest
import requests
from conftest import PASSWORD, ROOT, USER, demo, events, free_port, running, set_password
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchdog.web.rpc import API_NAMES

SECRET = "hf_sekrit_value_123"


@pytest.fixture
def guarded(serve, make_settings, tmp_path):
    settings_ = make_settings(
        frameworks={"a": demo(None, env={"HF_TOKEN": SECRET}), "b": demo()}, default="a"
    )
    web = serve(settings_, password=True, max_failures=5, lockout_s=2)
    web.sup.wait_for(running, timeout=10)
    (settings_.base_dir / "auth.json").write_text('{"user": "x", "secret": "auth-file-content"}')
    return web


def call(web, name: str, data: list, auth=(USER, PASSWORD)) -> str:
    """One Gradio API call over plain HTTP; the SSE text of its result."""
    # allow_nan: NaN and Infinity tokens are junk a client may well send.
    body = json.dumps({"data": data}, allow_nan=True)
    r = requests.post(
        f"{web.url}gradio_api/call/{name}",
        data=body,
        auth=auth,
        timeout=10,
        headers={"content-type": "application/json"},
    )
    if r.status_code != 200:
        return f"HTTP {r.status_code}: {r.text[:200]}"
    event_id = r.json()["event_id"]
    return requests.get(f"{web.url}gradio_api/call/{name}/{event_id}", auth=auth, timeout=20).text


def test_file_routes_serve_nothing_of_ours(guarded):
    logs = guarded.sup.settings.logs_dir
    targets = [
        "/etc/passwd",
        str(guarded.sup.settings.base_dir / "settings.json"),
        str(guarded.sup.settings.base_dir / "auth.json"),
        str(logs / "state.json"),
        str(logs / "events.jsonl"),
        "../../../../etc/passwd",
        "..%2f..%2f..%2fetc%2fpasswd",
    ]
    auth = (USER, PASSWORD)  # even the owner: these routes must not read our files
    for target in targets:
        for route in ("gradio_api/file=", "gradio_api/file/", "file=", "gradio_api/proxy="):
            url = f"{guarded.url}{route}{quote(target, safe='/%')}"
            r = requests.get(url, auth=auth, timeout=10)
            assert r.status_code != 200 or (
                "root:" not in r.text
                and "auth-file-content" not in r.text
                and '"desired"' not in r.text
                and "frameworks" not in r.text
            ), (url, r.status_code, r.text[:100])
    for stream in ("../../etc/passwd", "/etc/passwd", "stdout/../../x"):
        r = requests.get(
            f"{guarded.url}download-current-log", params={"stream": stream}, auth=auth, timeout=10
        )
        assert r.status_code == 400 and "root:" not in r.text


def test_proxy_route_is_not_an_open_relay(guarded):
    framework = guarded.sup.status().url
    r = requests.get(
        f"{guarded.url}gradio_api/proxy={framework}/internal/ping",
        auth=(USER, PASSWORD),
        timeout=10,
    )
    assert r.status_code != 200 or r.text != "{}"


junk = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=50)
    | st.text(min_size=5000, max_size=20000),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=5,
)
not_a_bool = junk.filter(lambda v: not isinstance(v, bool))
not_a_name = st.text(min_size=1, max_size=300).filter(lambda t: t not in ("a", "b"))
# Arguments that can never be a valid call: nothing may change.
BAD_ARGS = {
    "status": st.lists(junk, min_size=0, max_size=0),
    "frameworks": st.lists(junk, min_size=0, max_size=0),
    "start": st.tuples(not_a_name | junk.filter(lambda v: not isinstance(v, str)), junk),
    "stop": st.tuples(not_a_bool),
    "restart": st.tuples(not_a_bool),
    "switch": st.tuples(not_a_name, junk) | st.tuples(junk, not_a_bool),
    "keep_awake": st.lists(junk, min_size=0, max_size=0),  # no arguments; idle is off here
    "logs": st.tuples(junk, junk),
    "events": st.tuples(junk, not_a_name),
    "gpu": st.lists(junk, min_size=0, max_size=0),
    "history": st.tuples(
        junk.filter(lambda v: not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 10080)
    ),
}


@pytest.mark.parametrize("name", API_NAMES)
def test_fuzzed_api_arguments_change_nothing(guarded, name, caplog):
    sup = guarded.sup
    before = sup.status()
    seen = {"errors": 0}

    @settings(
        max_examples=12,
        deadline=None,
        database=None,
        derandomize=True,  # the same examples every run: CI stays repeatable
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(args=BAD_ARGS[name])
    def attempt(args):
        text = call(guarded, name, list(args))
        if "event: error" in text or text.startswith("HTTP 4"):
            seen["errors"] += 1
        assert "Traceback" not in text and SECRET not in text

    with caplog.at_level(logging.ERROR):
        attempt()
    after = sup.status()
    assert after.seq == before.seq and after.pid == before.pid and after.framework == "a"
    if name not in ("status", "frameworks", "gpu", "keep_awake"):
        assert seen["errors"] > 0
    tracebacks = [r for r in caplog.records if r.exc_info and r.name.startswith("watchdog")]
    assert not tracebacks, "bad input never becomes a traceback in our log"


def test_junk_bodies_are_refused_cleanly(guarded):
    for body in (b"not json", b"{}", b'{"data": 5}', b"\xff\xfe", b"[" * 10000):
        r = requests.post(
            f"{guarded.url}gradio_api/call/stop",
            data=body,
            headers={"content-type": "application/json"},
            auth=(USER, PASSWORD),
            timeout=10,
        )
        assert r.status_code in (200, 400, 422), r.status_code
        if r.status_code == 200:
            result = requests.get(
                f"{guarded.url}gradio_api/call/stop/{r.json()['event_id']}",
                auth=(USER, PASSWORD),
                timeout=10,
            ).text
            assert "event: error" in result
    assert guarded.sup.status().state.value == "RUNNING"


def test_brute_force_is_locked_out_and_the_owner_gets_back_in(guarded):
    url = f"{guarded.url}info"
    codes: list[int] = []
    lock = threading.Lock()

    def guess(i: int) -> None:
        r = requests.get(url, auth=(USER, f"guess-{i}"), timeout=30)
        with lock:
            codes.append(r.status_code)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(100)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(codes) == 100 and set(codes) <= {401, 429}
    windows = 1 + int((time.monotonic() - t0) / 2)
    assert codes.count(401) <= 5 * windows, "max_failed_logins checks per lockout window"
    guarded.auth.refusals.flush()
    time.sleep(0.5)  # the relay writes on its own thread
    failed = events(guarded.sup, "auth_failed")
    assert 1 <= len(failed) <= 4, "refusals are journaled as counts, not one by one"
    assert sum(e.get("count", 1) for e in failed) >= 99
    assert all("guess-" not in json.dumps(e) for e in failed), "passwords are never logged"
    locked = requests.get(url, auth=(USER, PASSWORD), timeout=10)
    assert locked.status_code == 429, "locked out: even the right password waits"
    time.sleep(max(0.0, 2.2 - (time.monotonic() - t0)) + 2.2)
    assert requests.get(url, auth=(USER, PASSWORD), timeout=10).status_code == 200


def test_no_state_change_by_get(guarded):
    before = guarded.sup.status()
    for name in API_NAMES:
        for path in (f"gradio_api/call/{name}", f"gradio_api/run/{name}", f"call/{name}"):
            requests.get(f"{guarded.url}{path}", auth=(USER, PASSWORD), timeout=10)
    for path in ("info?stop=1", "health?action=stop", "read-current-stdout-log?stop=true"):
        requests.get(f"{guarded.url}{path}", auth=(USER, PASSWORD), timeout=10)
    time.sleep(0.5)
    after = guarded.sup.status()
    assert after.seq == before.seq and after.pid == before.pid


def test_secrets_never_reach_the_watchdogs_own_log(write_settings):
    settings = write_settings(frameworks={"demo": demo(None, env={"HF_TOKEN": SECRET})})
    set_password(settings)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "app.py"),
            "--settings",
            str(settings),
            "--port",
            str(port),
            "--log-level",
            "DEBUG",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                r = requests.get(f"http://127.0.0.1:{port}/info", auth=(USER, PASSWORD), timeout=5)
                if r.json().get("state") == "RUNNING":
                    break
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.2)
        assert SECRET not in r.text
        requests.get(f"http://127.0.0.1:{port}/info", auth=(USER, "wrong"), timeout=10)
        web = type("W", (), {"url": f"http://127.0.0.1:{port}/"})
        for name, data in (
            ("switch", ["x" * 5000, False]),
            ("logs", ["<b>", "lots"]),
            ("stop", [{"force": 1}]),
            ("events", [None, "\n\nevil"]),
        ):
            assert "event: error" in call(web, name, data)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert SECRET not in out and PASSWORD not in out
    assert "Traceback" not in out, "bad input is one line in the log, never a traceback"
    refused = [line for line in out.splitlines() if "API call refused" in line]
    assert len(refused) == 4 and all(len(line) < 500 for line in refused)
    journal = (settings.parent / "logs" / "events.jsonl").read_text()
    assert SECRET not in journal and PASSWORD not in journal and "auth_failed" in journal
    assert os.path.exists(settings.parent / "auth.json")
