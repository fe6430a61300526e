"""Idle and slow connections to the page cannot pile up: each must send a request head
in time, or it is closed."""

from __future__ import annotations

import socket
import time

import pytest
import requests
from conftest import running

from watchdog.web import bounded
from watchdog.web.server import MAX_CONNECTIONS


@pytest.fixture
def web(make_settings, serve, monkeypatch):
    monkeypatch.setattr(bounded, "HEAD_TIMEOUT_S", 1.0)
    web = serve(make_settings())
    web.sup.wait_for(running, timeout=10)
    return web


def _port(web) -> int:
    return int(web.url.rsplit(":", 1)[1].strip("/"))


def _closed_by_server(s: socket.socket, within: float) -> bool:
    s.settimeout(within)
    try:
        return s.recv(1) == b""
    except (TimeoutError, ConnectionResetError):
        return False


def test_idle_connections_are_closed_and_the_page_keeps_answering(web):
    idle = [socket.create_connection(("127.0.0.1", _port(web))) for _ in range(200)]
    try:
        assert requests.get(f"{web.url}info", timeout=10).json()["state"] == "RUNNING"
        time.sleep(1.5)
        assert all(_closed_by_server(s, 3) for s in idle)
    finally:
        for s in idle:
            s.close()
    assert requests.get(f"{web.url}health", timeout=10).status_code == 200


def test_beyond_the_connection_limit_it_is_503_not_a_hang_and_it_comes_back(web):
    flood = [
        socket.create_connection(("127.0.0.1", _port(web))) for _ in range(MAX_CONNECTIONS + 40)
    ]
    try:
        r = requests.get(f"{web.url}info", timeout=10)
        assert r.status_code == 503
    finally:
        for s in flood:
            s.close()
    deadline = time.monotonic() + 10
    while requests.get(f"{web.url}info", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "the page never came back"
        time.sleep(0.2)


def test_a_head_sent_a_byte_at_a_time_is_cut_off(web):
    s = socket.create_connection(("127.0.0.1", _port(web)))
    try:
        deadline = time.monotonic() + 5
        closed = False
        for ch in b"GET /info HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
            try:
                s.sendall(bytes([ch]))
            except OSError:
                closed = True
                break
            time.sleep(0.1)
            if time.monotonic() > deadline:
                break
        assert closed or _closed_by_server(s, 2)
    finally:
        s.close()


def test_keep_alive_still_works_for_a_real_client(web):
    with requests.Session() as session:
        for _ in range(3):
            assert session.get(f"{web.url}info", timeout=10).status_code == 200
            time.sleep(0.3)
