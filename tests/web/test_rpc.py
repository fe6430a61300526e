"""The Gradio API through gradio_client, and the plain routes through requests,
against the real server on an ephemeral port driving demo frameworks."""

from __future__ import annotations

import time

import pytest
import requests
from conftest import (
    STATUS_KEYS,
    demo,
    events,
    invokeai_db,
    invokeai_demo,
    invokeai_enqueue,
    running,
)
from gradio_client import Client

from watchdog.web.rpc import API_NAMES


@pytest.fixture
def web(serve, make_settings):
    return serve(make_settings(frameworks={"a": demo(), "b": demo()}, default="a"))


@pytest.fixture
def client(web) -> Client:
    web.sup.wait_for(running, timeout=10)
    return Client(web.url, verbose=False)


def test_api_has_exactly_the_contract_endpoints(client):
    api = client.view_api(print_info=False, return_format="dict")
    assert sorted(api["named_endpoints"]) == sorted(f"/{n}" for n in API_NAMES)
    assert not api["unnamed_endpoints"], "timer / UI events must not be part of the API"
    returns = {name: e["returns"][0]["type"] for name, e in api["named_endpoints"].items()}
    assert returns["/logs"] == {"type": "string"}
    assert returns["/status"]["type"] == "object" and returns["/events"]["type"] == "array"


def test_status_and_frameworks(client, web):
    status = client.predict(api_name="/status")
    assert status["state"] == "RUNNING" and status["framework"] == "a"
    assert status["pid"] == web.sup.status().pid
    names = [f["name"] for f in client.predict(api_name="/frameworks")]
    assert names == ["a", "b"]
    first = client.predict(api_name="/frameworks")[0]
    assert set(first) == {"name", "preset", "url", "command", "installed", "missing"}
    assert first["preset"] == "demo" and first["installed"] is True and first["missing"] is None


def test_switch_then_watch_status_then_read_new_logs(client, web):
    b_url = web.sup.settings.framework("b").url
    answer = client.predict("b", False, api_name="/switch")
    assert answer["framework"] == "b"
    deadline = time.monotonic() + 15
    while True:
        status = client.predict(api_name="/status")
        if status["state"] == "RUNNING" and status["framework"] == "b":
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    assert status["url"] == b_url
    log = client.predict("stdout", 50, api_name="/logs")
    assert f"Running on local URL:  {b_url}" in log
    both = client.predict("both", 5, api_name="/logs")
    # Both streams in the order they were written: no headings, the ready line last.
    assert "──" not in both and both.splitlines()[-1] == f"Running on local URL:  {b_url}"
    assert client.predict(api_name="/logs") == client.predict("both", 200, api_name="/logs")
    newest = client.predict(20, "b", api_name="/events")
    assert newest[0]["framework"] == "b" and {e["event"] for e in newest} >= {"spawn", "ready"}
    assert events(web.sup, "switch")[-1]["requested_by"] == "api"


def test_stop_start_restart(client, web):
    assert client.predict(api_name="/stop")["state"] in ("STOPPING", "STOPPED")
    web.sup.wait_for(lambda s: s.state.value == "STOPPED", timeout=10)
    assert client.predict("", api_name="/start")["framework"] == "a"
    first = web.sup.wait_for(running, timeout=10)
    client.predict(api_name="/restart")
    web.sup.wait_for(lambda s: running(s) and s.pid != first.pid, timeout=10)
    assert client.predict("b", api_name="/start")["framework"] == "b"


def test_gpu_and_history_answer(client, web):
    web.sup.wait_for(running, timeout=10)
    snap = client.predict(api_name="/gpu")  # this machine has no NVIDIA GPU
    assert snap["available"] is False and snap["message"] == "No NVIDIA GPU detected"
    assert snap["devices"] == [] and snap["driver"] == "n/a"
    deadline = time.monotonic() + 10
    while (
        not (rows := client.predict(60, api_name="/history"))
        or rows[-1]["framework_rss_mb"] is None
    ):
        assert time.monotonic() < deadline, rows
        time.sleep(0.2)
    assert rows[-1]["framework_rss_mb"] > 5 and rows[-1]["gpu_util_pct"] is None
    assert rows[-1]["host_ram_total_mb"] > 0


@pytest.mark.parametrize(
    ("args", "api", "message"),
    [
        (("nope", False), "/switch", "unknown framework 'nope'"),
        (("", False), "/switch", "a framework name is required"),
        ((123, False), "/switch", "framework must be a name"),
        (("b", "yes"), "/switch", "force must be true or false"),
        (("../../etc",), "/start", "unknown framework"),
        (("stdout", 0), "/logs", "lines must be from 1 to 10000"),
        (("stdout", -5), "/logs", "lines must be from 1 to 10000"),
        (("stdout", 10**9), "/logs", "lines must be from 1 to 10000"),
        (("stdout", "abc"), "/logs", "lines must be a whole number"),
        (("stdout", 2.5), "/logs", "lines must be a whole number"),
        (("stdout", True), "/logs", "lines must be a whole number"),
        (("stdin", 10), "/logs", "stream must be one of stdout, stderr, both"),
        ((0, None), "/events", "limit must be from 1 to 1000"),
        ((10, "ghost"), "/events", "unknown framework 'ghost'"),
        ((0,), "/history", "minutes must be from 1 to 10080"),
        (("x",), "/history", "minutes must be a whole number"),
    ],
)
def test_bad_input_is_a_clear_error_and_changes_nothing(client, web, args, api, message):
    before = web.sup.status()
    with pytest.raises(Exception, match=message):
        client.predict(*args, api_name=api)
    after = web.sup.status()
    assert after.seq == before.seq and after.pid == before.pid and after.framework == "a"


def test_same_calls_over_plain_gradio_http(web):
    web.sup.wait_for(running, timeout=10)
    call = requests.post(f"{web.url}gradio_api/call/logs", json={"data": ["stdout", 5]}, timeout=10)
    event_id = call.json()["event_id"]
    stream = requests.get(f"{web.url}gradio_api/call/logs/{event_id}", timeout=10).text
    assert "event: complete" in stream and "Running on local URL" in stream


def _plain_call(web, name: str, body: str) -> str:
    call = requests.post(f"{web.url}gradio_api/call/{name}", data=body, timeout=10)
    assert call.status_code == 200, call.text
    return requests.get(
        f"{web.url}gradio_api/call/{name}/{call.json()['event_id']}", timeout=40
    ).text


@pytest.mark.parametrize("name", API_NAMES)
def test_an_empty_data_list_is_a_valid_call_of_every_endpoint(web, name):
    web.sup.wait_for(running, timeout=10)
    stream = _plain_call(web, name, '{"data": []}')
    if name == "switch":  # the one argument with no sensible default
        assert "event: error" in stream and "a framework name is required" in stream
    else:
        assert "event: complete" in stream, stream[:300]
    if name in ("stop", "restart"):
        assert (
            events(web.sup, name if name == "restart" else "stopping")[-1]["requested_by"] == "api"
        )


def test_a_partial_data_list_gets_the_other_defaults(web):
    web.sup.wait_for(running, timeout=10)
    stream = _plain_call(web, "logs", '{"data": ["stdout"]}')  # lines defaults to 200
    assert "event: complete" in stream and "Running on local URL" in stream


# -- plain routes -------------------------------------------------------------------


def test_health_and_info(web):
    status = web.sup.wait_for(running, timeout=10)
    assert requests.get(f"{web.url}health", timeout=5).json() == {"status": "ok"}
    info = requests.get(f"{web.url}info", timeout=5).json()
    assert info["pid"] == status.pid and info["state"] == "RUNNING"
    assert info.keys() >= STATUS_KEYS


def test_log_routes_and_line_bounds(web):
    web.sup.wait_for(running, timeout=10)
    r = requests.get(f"{web.url}read-current-stdout-log", params={"lines": 1}, timeout=5)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert r.text.startswith("Running on local URL")
    assert requests.get(f"{web.url}read-current-stderr-log", timeout=5).status_code == 200
    for bad in (0, -1, 10001):
        r = requests.get(f"{web.url}read-current-stdout-log", params={"lines": bad}, timeout=5)
        assert r.status_code == 400 and "from 1 to 10000" in r.json()["error"]
    r = requests.get(f"{web.url}read-current-stdout-log", params={"lines": "lots"}, timeout=5)
    assert r.status_code == 400 and "whole number" in r.json()["error"]
    r = requests.get(f"{web.url}read-current-stdout-log", params={"path": "/etc/passwd"}, timeout=5)
    assert "root:" not in r.text
    full = requests.get(f"{web.url}download-current-log", params={"stream": "stdout"}, timeout=5)
    assert full.status_code == 200 and "loading model weights" in full.text
    assert "attachment" in full.headers["content-disposition"]
    bad = requests.get(f"{web.url}download-current-log", params={"stream": "../x"}, timeout=5)
    assert bad.status_code == 400


def test_plain_routes_change_nothing_and_refuse_other_methods(web):
    before = web.sup.wait_for(running, timeout=10)
    for path in ("info", "read-current-stdout-log", "health"):
        assert requests.post(f"{web.url}{path}", timeout=5).status_code in (404, 405)
    assert web.sup.status().seq == before.seq


def test_busy_refusal_and_force_over_the_api(serve, make_settings):
    web = serve(
        make_settings(frameworks={"a": demo(None, "--busy-for", "30"), "b": demo()}, default="a")
    )
    web.sup.wait_for(lambda s: running(s) and s.busy, timeout=10)
    client = Client(web.url, verbose=False)
    for args, api in (((), "/stop"), ((), "/restart"), (("b", False), "/switch")):
        with pytest.raises(Exception, match="a generation is running on a"):
            client.predict(*args, api_name=api)
    assert web.sup.status().framework == "a" and web.sup.status().busy
    assert client.predict("b", True, api_name="/switch")["framework"] == "b"
    web.sup.wait_for(lambda s: running(s) and s.framework == "b", timeout=15)
    assert events(web.sup, "interrupt")[-1]["ok"] is True


def test_the_argument_filler_refuses_huge_bodies_and_leaves_junk_to_gradio(web):
    huge = requests.post(
        f"{web.url}gradio_api/call/status", data=b"x" * (1024 * 1024 + 10), timeout=20
    )
    assert huge.status_code == 413
    junk = requests.post(f"{web.url}gradio_api/call/status", data=b"{not json", timeout=20)
    assert 400 <= junk.status_code < 500
    assert web.sup.status().state.value in ("STARTING", "RUNNING")


def test_clear_queue_over_gradio_and_a_forced_stop_that_leaves_it(serve, make_settings, tmp_path):
    entry = invokeai_demo(tmp_path, 60)
    web = serve(make_settings(frameworks={"invoke": entry}))
    url = web.sup.wait_for(running, timeout=15).url
    invokeai_enqueue(url, 2)
    web.sup.wait_for(lambda s: s.busy, timeout=10)
    client = Client(web.url, verbose=False)
    # force, slot, requeue, clear_queue
    answer = client.predict(True, None, False, False, api_name="/restart")
    assert answer["framework"] == "invoke"
    again = web.sup.wait_for(lambda s: s.busy and s.pid != answer["pid"], timeout=20)
    assert not events(web.sup, "queue_cleared"), "a forced restart leaves InvokeAI's queue"
    client.predict(False, None, False, True, api_name="/stop")
    web.sup.wait_for(lambda s: s.state.value == "STOPPED" and s.pid is None, timeout=20)
    cleared = events(web.sup, "queue_cleared")[-1]
    assert cleared["pid"] == again.pid and cleared["detail"].endswith("2 deleted")
    assert invokeai_db(tmp_path) == []
