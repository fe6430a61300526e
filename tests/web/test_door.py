"""The door: the framework's own UI, reached only through our login.

Real demo servers, the real front (page + door) over the real control socket, real
HTTP and WebSockets on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import socket
import time
from collections.abc import Iterator

import psutil
import pytest
import requests
from conftest import (
    PASSWORD,
    USER,
    demo,
    free_port,
    running,
    set_password,
    wait_journal,
)
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

AUTH = (USER, PASSWORD)
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


@pytest.fixture
def door(serve, make_settings):
    settings = make_settings(frameworks={"a": demo(), "b": demo()}, default="a")
    web = serve(settings, password=True, door=True)
    web.sup.wait_for(running, timeout=15)
    return web


def other_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    for entries in psutil.net_if_addrs().values():
        for entry in entries:
            if entry.family == socket.AF_INET and not entry.address.startswith("127."):
                return entry.address
    return None


def test_the_framework_is_reached_only_through_the_door(door):
    status = door.sup.status()
    port = int(status.url.rsplit(":", 1)[1])
    listening = {
        c.laddr.ip for c in psutil.Process(status.pid).net_connections() if c.status == "LISTEN"
    }
    assert listening == {"127.0.0.1"}
    address = other_address()
    if address:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((address, port), timeout=5).close()
    r = requests.get(door.door, auth=AUTH, timeout=10)
    assert r.status_code == 200 and f"port {port}" in r.text
    info = requests.get(f"{door.url}info", auth=AUTH, timeout=10).json()
    assert info["door_url"] == door.door


def test_no_credentials_refused_each_kind_let_in_and_none_passed_on(door):
    url = f"{door.door}echo-headers"
    bare = requests.get(url, timeout=10)
    assert bare.status_code == 401 and "www-authenticate" in bare.headers
    health = requests.get(f"{door.door}__sdw/health", timeout=10)  # the core's probe
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    browser = requests.get(door.door, headers={"Accept": "text/html"}, timeout=10)
    assert browser.status_code == 401 and "sdw-signin" in browser.text
    assert "www-authenticate" not in browser.headers  # the form, not the pop-up
    assert "demo framework" not in browser.text

    basic = requests.get(url, auth=AUTH, timeout=10)
    bearer = requests.get(url, headers={"Authorization": f"Bearer {door.token}"}, timeout=10)
    signed_in = requests.Session()
    form = {"username": USER, "password": PASSWORD, "next": "/echo-headers?x=1"}
    moved = signed_in.post(f"{door.door}__sdw/login", data=form, allow_redirects=False)
    assert moved.status_code == 303 and moved.headers["location"] == "/echo-headers?x=1"
    assert "HttpOnly" in moved.headers["set-cookie"] and "SameSite" in moved.headers["set-cookie"]
    signed_in.cookies.set("theirs", "kept")
    cookie = signed_in.get(url, timeout=10)
    page_session = requests.Session()  # signed in on the page: the door is open too
    signed = page_session.post(f"{door.url}login", data=form, allow_redirects=False, timeout=10)
    assert signed.status_code == 303
    assert page_session.get(url, timeout=10).status_code == 200
    for r in (basic, bearer, cookie):
        assert r.status_code == 200, r.text
        seen = {k.lower(): v for k, v in r.json()["headers"].items()}
        assert "authorization" not in seen and "x-sdw-user" not in seen
        assert "sdw_session" not in seen.get("cookie", "")
        assert seen["x-forwarded-for"] == "127.0.0.1"
        assert seen["host"] == door.door.split("/")[2]  # kept: frameworks compare it
    assert {k.lower(): v for k, v in cookie.json()["headers"].items()}["cookie"] == "theirs=kept"


def test_websocket_echo_and_sse_stream_through_the_door(door):
    ws_url = door.door.replace("http://", "ws://") + "ws"

    async def talk() -> None:
        async with connect(ws_url, additional_headers={"Authorization": BASIC}, proxy=None) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x01" * 300_000)
            assert await ws.recv() == b"\x01" * 300_000
        with pytest.raises(InvalidStatus):
            async with connect(ws_url, proxy=None):
                pass

    asyncio.run(talk())

    r = requests.get(f"{door.door}stream?events=4&interval=0.5", auth=AUTH, stream=True, timeout=30)
    assert r.headers["content-type"].startswith("text/event-stream")
    arrived = [time.monotonic() for line in r.iter_lines() if line.startswith(b"data:")]
    assert len(arrived) == 4
    assert arrived[-1] - arrived[0] > 1.0, "each event passed as it came, not at the end"


def test_a_quiet_stream_is_not_cut(door):
    """No read timeout once the framework answered (RunPod's proxy cuts at 100 s)."""
    url = f"{door.door}stream?events=2&interval=6"
    r = requests.get(url, auth=AUTH, stream=True, timeout=30)
    assert sum(1 for line in r.iter_lines() if line.startswith(b"data:")) == 2


def test_starting_page_and_503_while_the_framework_starts(serve, make_settings):
    slow = demo(None, "--startup-delay", "8")
    web = serve(make_settings(frameworks={"slow": slow}), password=True, door=True)
    web.sup.wait_for(lambda s: s.state.value == "STARTING", timeout=10)
    page = requests.get(web.door, auth=AUTH, headers={"Accept": "text/html"}, timeout=10)
    assert page.status_code == 503 and "http-equiv='refresh'" in page.text
    assert "slow is starting" in page.text and "of up to" in page.text
    api = requests.get(f"{web.door}sdapi/v1/progress", auth=AUTH, timeout=10)
    assert api.status_code == 503 and int(api.headers["retry-after"]) > 0
    web.sup.wait_for(running, timeout=30)
    time.sleep(1.1)  # the door looks again at most a second later
    assert requests.get(f"{web.door}sdapi/v1/progress", auth=AUTH, timeout=10).status_code == 200


def test_after_a_switch_the_same_url_shows_the_new_framework(door):
    first = requests.get(door.door, auth=AUTH, timeout=10).text
    a_port = door.sup.status().url.rsplit(":", 1)[1]
    assert f"port {a_port}" in first
    door.service.supervisor.switch("b", requested_by="api")
    b = door.sup.wait_for(lambda s: running(s) and s.framework == "b", timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = requests.get(door.door, auth=AUTH, timeout=10)
        if r.status_code == 200 and f"port {b.url.rsplit(':', 1)[1]}" in r.text:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"the door never showed b: {r.status_code} {r.text[:200]}")


def raw(door_url: str, request: bytes) -> bytes:
    host, port = door_url.split("/")[2].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_the_door_leads_nowhere_but_the_current_framework(door):
    """Host tricks, absolute URLs and dot segments: only the framework ever answers."""
    creds = f"Authorization: {BASIC}\r\nConnection: close\r\n".encode()
    absolute = raw(
        door.door,
        b"GET http://169.254.169.254/latest/ HTTP/1.1\r\nHost: 127.0.0.1\r\n" + creds + b"\r\n",
    )
    assert absolute.startswith(b"HTTP/1.1 400")
    evil_host = raw(
        door.door, b"GET /echo-headers HTTP/1.1\r\nHost: evil.example\r\n" + creds + b"\r\n"
    )
    assert evil_host.startswith(b"HTTP/1.1 421")
    dots = raw(
        door.door, b"GET /../../../etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\n" + creds + b"\r\n"
    )
    assert b"root:" not in dots and b" 404 " in dots.split(b"\r\n")[0]  # the framework's 404
    connect_ = raw(
        door.door, b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1\r\n" + creds + b"\r\n"
    )
    assert not connect_.startswith(b"HTTP/1.1 200")


def test_a_framework_url_off_this_machine_is_never_a_target(serve, make_settings):
    """A framework that serves, and is healthy, at an address that is not loopback (a
    user's own command can say so): the door does not open it."""
    address = other_address()
    if address is None:
        pytest.skip("this machine has no address but loopback")
    port = free_port()
    far = demo(port, "--host", "0.0.0.0", url=f"http://{address}:{port}", ready_pattern="")
    web = serve(make_settings(frameworks={"far": far}), password=True, door=True)
    status = web.sup.wait_for(running, timeout=15)
    assert status.url == f"http://{address}:{port}"
    r = requests.get(f"{web.door}echo-headers", auth=AUTH, timeout=15)
    assert r.status_code == 503 and "not on this machine" in r.text


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def test_200_mb_up_and_down_through_the_door_with_flat_memory(app, write_settings):
    """Through a real front process: its memory stays flat while 200 MB pass each way."""
    settings = write_settings(frameworks={"demo": demo()})
    set_password(settings)
    a = app(settings, free_port())
    a.wait_page()
    front = wait_journal(a.logs, "front_ready")[-1]["pid"]
    deadline = time.monotonic() + 30
    while True:
        info = requests.get(f"http://127.0.0.1:{a.port}/info", auth=AUTH, timeout=10).json()
        if info["state"] == "RUNNING" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    door = info["door_url"]
    requests.get(f"{door}download?mb=1", auth=AUTH, timeout=30).raise_for_status()  # warm
    before = rss_mb(front)
    peak = before
    got = 0
    with requests.get(f"{door}download?mb=200", auth=AUTH, stream=True, timeout=120) as r:
        for chunk in r.iter_content(1 << 20):
            got += len(chunk)
            peak = max(peak, rss_mb(front)) if got % (16 << 20) < (1 << 20) else peak
    assert got == 200 << 20
    block = bytes(range(256)) * 4096  # 1 MiB

    def body() -> Iterator[bytes]:
        nonlocal peak
        for i in range(200):
            if i % 16 == 0:
                peak = max(peak, rss_mb(front))
            yield block

    up = requests.post(f"{door}upload", data=body(), auth=AUTH, timeout=120).json()
    assert up["size"] == 200 << 20
    assert up["sha256"] == hashlib.sha256(block * 200).hexdigest()
    assert peak - before < 60, f"the front grew from {before:.0f} to {peak:.0f} MB"


@pytest.mark.parametrize(
    ("trusted", "seen_for", "seen_proto"),
    [((), "127.0.0.1", "http"), (("127.0.0.1",), "198.51.100.9", "https")],
)
def test_forwarded_headers_are_believed_only_from_a_trusted_proxy(
    serve, make_settings, trusted, seen_for, seen_proto
):
    """Behind Caddy (trusted), the framework learns the user's address and https; from
    anyone else, what they claim is replaced by what the door saw."""
    claims = {"X-Forwarded-For": "198.51.100.9", "X-Forwarded-Proto": "https"}
    web = serve(
        make_settings(frameworks={"demo": demo()}),
        password=True,
        door=True,
        config={"trusted_proxies": trusted},
    )
    web.sup.wait_for(running, timeout=15)
    r = requests.get(f"{web.door}echo-headers", auth=AUTH, headers=claims, timeout=10)
    seen = {k.lower(): v for k, v in r.json()["headers"].items()}
    assert (seen["x-forwarded-for"], seen["x-forwarded-proto"]) == (seen_for, seen_proto)
