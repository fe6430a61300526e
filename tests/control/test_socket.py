"""The control socket as an attacker and a script see it: a real core, raw HTTP."""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from pathlib import Path

import pytest
from conftest import STATUS_KEYS, demo, journal, wait_journal

from watchdog.control.client import ApiError, ControlClient
from watchdog.control.server import MAX_IN_FLIGHT, ControlSocket


def raw(path: Path, data: bytes, timeout: float = 10) -> tuple[int, dict]:
    """Send bytes as they are; the status and JSON body of the answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(data)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
                length = int(dict(
                    line.split(": ", 1) for line in head.decode().split("\r\n")[1:]
                ).get("Content-Length", "0"))  # fmt: skip
                if len(body) >= length:
                    break
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body or b"{}")


@pytest.fixture
def core(write_settings, app):
    a = app(write_settings(frameworks={"a": demo(), "b": demo()}))
    wait_journal(a.logs, "ready")
    a.wait_socket()
    return a


def test_the_socket_is_the_owners_only_and_answers_the_status_object(core):
    mode = core.socket.stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    status = ControlClient(core.socket).call("GET", "/status")
    assert status.keys() >= STATUS_KEYS and status["state"] == "RUNNING"


def test_actions_change_state_and_are_journaled_with_who_asked(core):
    client = ControlClient(core.socket)
    assert (
        client.call("POST", "/switch", {"framework": "b", "requested_by": "cli"})["framework"]
        == "b"
    )
    ready = wait_journal(core.logs, "ready", 2)[-1]
    assert ready["framework"] == "b"
    switch = [e for e in journal(core.logs) if e["event"] == "switch"][-1]
    assert switch["requested_by"] == "cli"
    assert client.call("POST", "/stop")["should_run"] is False
    # Newest first; the stop may already have finished, so look a few events back.
    recent = [e["event"] for e in client.call("GET", "/events", limit=5)]
    assert "stopping" in recent and recent.index("stopping") < recent.index("ready")
    assert wait_journal(core.logs, "stop", 2)[-1]["requested_by"] == "api"


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"DELETE /status HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (b"POST /switch HTTP/1.1\r\nContent-Length: 5\r\n\r\n{nope", 400),
        (b"POST /switch HTTP/1.1\r\nContent-Length: 2\r\n\r\n[]", 400),
        (b'POST /switch HTTP/1.1\r\nContent-Length: 17\r\n\r\n{"framework": 12}', 400),
        (b'POST /switch HTTP/1.1\r\nContent-Length: 20\r\n\r\n{"framework": "zzz"}', 404),
        (b'POST /stop HTTP/1.1\r\nContent-Length: 15\r\n\r\n{"force": "yes"}', 400),
        (b'POST /stop HTTP/1.1\r\nContent-Length: 12\r\n\r\n{"rm": "-rf"}', 400),
        (b"POST /stop HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n", 413),
        (b"POST /stop HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 413),
        (b"GET /logs?lines=-5 HTTP/1.1\r\n\r\n", 400),
        (b"GET /logs?lines=abc HTTP/1.1\r\n\r\n", 400),
        (b"GET /logs?stream=../../etc/passwd HTTP/1.1\r\n\r\n", 400),
        (b"GET /events?framework=%00 HTTP/1.1\r\n\r\n", 404),
        (b'POST /stop HTTP/1.1\r\nContent-Length: 26\r\n\r\n{"requested_by": "watch!"}', 400),
        (b"\x00\x01garbage\r\n\r\n", 400),
        (b"POST /stop HTTP/1.1\r\nContent-Length: 20000\r\n\r\n" + b"[" * 20000, 400),
    ],
)
def test_garbage_is_a_clear_4xx_and_changes_nothing(core, request_bytes, status):
    client = ControlClient(core.socket)
    before = client.call("GET", "/status")
    code, body = raw(core.socket, request_bytes)
    assert code == status
    if code != 400 or body:
        assert isinstance(body.get("error"), str) and body["error"]
    after = client.call("GET", "/status")
    assert (after["state"], after["pid"], after["framework"]) == (
        before["state"], before["pid"], before["framework"],
    )  # fmt: skip


def test_idle_connections_beyond_the_limit_get_503_and_supervision_goes_on(core):
    client = ControlClient(core.socket)
    pid = client.call("GET", "/status")["pid"]
    idle = []
    try:
        for _ in range(MAX_IN_FLIGHT + 8):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(core.socket))
            idle.append(s)
        time.sleep(0.3)
        with pytest.raises(ApiError) as refused:
            client.call("GET", "/status")
        assert refused.value.status == 503
        os.kill(pid, 9)  # the framework dies while the socket is flooded
        respawn = wait_journal(core.logs, "spawn", 2, timeout=10)[-1]
        assert respawn["pid"] != pid
    finally:
        for s in idle:
            s.close()
    deadline = time.monotonic() + 15
    while True:
        try:
            assert client.call("GET", "/status")["state"] in ("STARTING", "RUNNING")
            break
        except ApiError:
            assert time.monotonic() < deadline, "the socket never served again"
            time.sleep(0.2)


def test_a_path_too_long_for_a_unix_socket_goes_through_a_link(make_settings, tmp_path):
    from watchdog.control.api import ControlApi
    from watchdog.runtime.service import Service

    deep = tmp_path / ("d" * 60) / ("e" * 60)
    settings = make_settings(logs={"dir": str(deep)})
    service = Service(settings)
    service.start()
    sock = ControlSocket(deep / "control.sock", ControlApi(service))
    try:
        sock.start()
        assert (deep / "control.sock").is_symlink()
        real = Path(os.path.realpath(deep / "control.sock"))
        assert stat.S_IMODE(real.stat().st_mode) == 0o600
        assert stat.S_IMODE(real.parent.stat().st_mode) == 0o700
        assert ControlClient(deep / "control.sock").call("GET", "/status")["framework"] == "demo"
    finally:
        sock.stop()
        service.stop()
    assert not (deep / "control.sock").exists() and not real.exists()


def test_the_socket_is_gone_after_the_core_stops(core):
    core.close()
    assert core.proc.returncode == 0
    assert not core.socket.exists()
