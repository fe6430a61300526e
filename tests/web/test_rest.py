"""REST under /api/v1: one request per action, the same checks as every other door."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
import requests
from conftest import (
    PASSWORD,
    STATUS_KEYS,
    USER,
    demo,
    events,
    invokeai_db,
    invokeai_demo,
    invokeai_enqueue,
    running,
    wait_event,
)


@pytest.fixture
def web(make_settings, serve):
    web = serve(make_settings(frameworks={"a": demo(), "b": demo()}))
    web.sup.wait_for(running, timeout=10)
    return web


def test_status_and_frameworks(web):
    status = requests.get(f"{web.url}api/v1/status", timeout=10).json()
    assert status.keys() >= STATUS_KEYS and status["state"] == "RUNNING"
    names = [f["name"] for f in requests.get(f"{web.url}api/v1/frameworks", timeout=10).json()]
    assert names == ["a", "b"]


def test_a_switch_as_curl_sends_it_no_content_type_needed(web):
    # curl -X POST …/api/v1/switch -d '{"framework": "b"}' sends a form content type.
    r = requests.post(
        f"{web.url}api/v1/switch",
        data='{"framework": "b"}',
        headers={"content-type": "application/x-www-form-urlencoded"},
        timeout=40,
    )
    assert r.status_code == 200 and r.json()["framework"] == "b"
    ready = wait_event(web.sup, "ready", 10, count=2)[-1]
    assert ready["framework"] == "b"
    assert events(web.sup, "switch")[-1]["requested_by"] == "http"


def test_stop_restart_start_with_and_without_a_body(web):
    assert requests.post(f"{web.url}api/v1/stop", timeout=40).json()["should_run"] is False
    web.sup.wait_for(lambda s: s.state.value == "STOPPED", timeout=10)
    assert requests.post(f"{web.url}api/v1/start", json={}, timeout=40).status_code == 200
    web.sup.wait_for(running, timeout=10)
    r = requests.post(f"{web.url}api/v1/restart", json={"force": False}, timeout=40)
    assert r.status_code == 200


@pytest.mark.parametrize(
    "method, path, body, status",
    [
        ("POST", "switch", None, 400),
        ("POST", "switch", '{"framework": 5}', 400),
        ("POST", "switch", '{"framework": "nope"}', 404),
        ("POST", "stop", '{"force": "yes"}', 400),
        ("POST", "stop", '{"clear_queue": "yes"}', 400),
        ("POST", "restart", '{"clear_queue": 1}', 400),
        ("POST", "stop", '{"rm": "-rf /"}', 400),
        ("POST", "stop", "[1, 2]", 400),
        ("POST", "stop", "not json", 400),
        ("POST", "stop", "[" * 20_000, 400),
        ("POST", "stop", "x" * 70_000, 413),
        ("GET", "logs?lines=0", None, 400),
        ("GET", "logs?lines=abc", None, 400),
        ("GET", "logs?stream=../../etc/passwd", None, 400),
        ("GET", "events?limit=100000", None, 400),
        ("GET", "events?framework=nope", None, 404),
        ("GET", "history?minutes=-1", None, 400),
        ("GET", "stop", None, 405),
        ("POST", "status", None, 405),
    ],
)
def test_bad_requests_are_a_clear_4xx_and_change_nothing(web, method, path, body, status):
    before = web.sup.status()
    r = requests.request(method, f"{web.url}api/v1/{path}", data=body, timeout=40)
    assert r.status_code == status, r.text
    if status != 405:
        assert isinstance(r.json()["error"], str) and r.json()["error"]
    after = web.sup.status()
    assert (after.state, after.pid, after.framework) == (before.state, before.pid, before.framework)


def test_clear_queue_over_rest_empties_invokeais_queue(make_settings, serve, tmp_path):
    entry = invokeai_demo(tmp_path, 30)
    web = serve(make_settings(frameworks={"invoke": entry}))
    url = web.sup.wait_for(running, timeout=15).url
    invokeai_enqueue(url, 2)
    web.sup.wait_for(lambda s: s.busy, timeout=10)
    r = requests.post(f"{web.url}api/v1/stop", json={"clear_queue": True}, timeout=40)
    assert r.status_code == 200 and r.json()["should_run"] is False
    cleared = wait_event(web.sup, "queue_cleared", 15)[-1]
    assert cleared["detail"].endswith("2 deleted") and cleared["requested_by"] == "http"
    assert invokeai_db(tmp_path) == []


def test_openapi_describes_every_route(web):
    spec = requests.get(f"{web.url}api/v1/openapi.json", timeout=10).json()
    assert set(spec["paths"]) == {
        "/status", "/frameworks", "/start", "/stop", "/restart", "/switch", "/keep-awake",
        "/logs", "/events", "/gpu", "/history",
    }  # fmt: skip
    body = spec["paths"]["/switch"]["post"]["requestBody"]["content"]["application/json"]
    fields = {"framework", "force", "slot", "requeue", "clear_queue"}
    assert set(body["schema"]["properties"]) == fields


def test_behind_the_pages_credentials(make_settings, serve):
    web = serve(make_settings(), password=True)
    web.sup.wait_for(running, timeout=10)
    pid = web.sup.status().pid
    for method, path in (("GET", "status"), ("POST", "stop"), ("GET", "openapi.json")):
        r = requests.request(method, f"{web.url}api/v1/{path}", timeout=10)
        assert r.status_code == 401, path
    assert web.sup.status().pid == pid, "nothing changed"
    ok = requests.get(f"{web.url}api/v1/status", auth=(USER, PASSWORD), timeout=10)
    assert ok.status_code == 200 and ok.json()["pid"] == pid
    token = requests.get(
        f"{web.url}api/v1/status", headers={"Authorization": f"Bearer {web.token}"}, timeout=10
    )
    assert token.status_code == 200


@pytest.mark.parametrize(
    "method, path, body, status",
    [
        ("GET", "read-current-stdout-log?lines=abc", None, 400),
        ("GET", "read-current-stderr-log?lines=0", None, 400),
        ("GET", "download-current-log?stream=both", None, 400),
        ("GET", "api/v1/logs?lines=abc", None, 400),
        ("GET", "api/v1/history?minutes=-1", None, 400),
        ("POST", "gradio_api/call/no_such_endpoint", {"data": []}, 404),
        ("POST", "gradio_api/run/no_such_endpoint", {"data": []}, 404),
        ("GET", "gradio_api/call/no_such_endpoint/abc", None, 404),
    ],
)
def test_every_route_refuses_in_one_shape(web, method, path, body, status):
    r = requests.request(method, f"{web.url}{path}", json=body, timeout=10)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert isinstance(error, str) and 5 < len(error) <= 300, error


def test_history_and_gpu_times_are_iso_8601(web):
    web.sup.wait_for(running, timeout=10)
    deadline = time.monotonic() + 10
    rows = []
    while not rows and time.monotonic() < deadline:
        rows = requests.get(f"{web.url}api/v1/history?minutes=5", timeout=10).json()
        time.sleep(0.3)
    assert rows and rows[0]["ts"].endswith("Z")
    datetime.fromisoformat(rows[0]["ts"].replace("Z", "+00:00"))
    gpu = requests.get(f"{web.url}api/v1/gpu", timeout=10).json()
    assert gpu["taken_at"] is None or str(gpu["taken_at"]).endswith("Z")
