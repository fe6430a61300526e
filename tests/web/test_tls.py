"""TLS end to end: the page and the door of a real ``app.py``, with a certificate from a
throwaway CA (``trustme``), and with the self-signed one made on first start."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import socket
import ssl
import stat
import time
from pathlib import Path

import psutil
import pytest
import requests
import trustme
from conftest import PASSWORD, USER, demo, free_port, run_app, set_password
from websockets.asyncio.client import connect

AUTH = (USER, PASSWORD)


def wait_https(url: str, verify: str | bool, proc, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}health", verify=verify, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        assert proc.poll() is None, "the watchdog died while starting"
        time.sleep(0.2)
    raise AssertionError("the page never came up over TLS")


def wait_ready(url: str, verify: str | bool, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = requests.get(f"{url}info", auth=AUTH, verify=verify, timeout=5).json()
        if info["state"] == "RUNNING":
            return info
        time.sleep(0.2)
    raise AssertionError(f"never RUNNING: {info}")


def test_page_and_door_over_tls_with_the_users_certificate(app, write_settings, tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    verify = str(tmp_path / "ca.pem")
    settings = write_settings(
        frameworks={"demo": demo()}, server={"tls": {"cert": "cert.pem", "key": "key.pem"}}
    )
    set_password(settings)
    port = free_port()
    a = app(settings, port)
    url = f"https://127.0.0.1:{port}/"
    wait_https(url, verify, a.proc)
    info = wait_ready(url, verify)
    door = info["door_url"]
    assert door.startswith("https://127.0.0.1:")
    r = requests.get(f"{door}echo-headers", auth=AUTH, verify=verify, timeout=10)
    assert r.status_code == 200 and r.json()["headers"]["x-forwarded-proto"] == "https"
    with pytest.raises(requests.ConnectionError):  # plain HTTP on the TLS port: nothing
        requests.get(f"http://127.0.0.1:{port}/info", auth=AUTH, timeout=5)
    signed_in = requests.post(
        f"{door}__sdw/login",
        data={"username": USER, "password": PASSWORD, "next": "/"},
        verify=verify,
        allow_redirects=False,
        timeout=10,
    )
    assert "Secure" in signed_in.headers["set-cookie"]

    context = ssl.create_default_context(cafile=verify)
    basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    async def echo() -> str:
        wss = door.replace("https://", "wss://") + "ws"
        async with connect(wss, ssl=context, additional_headers={"Authorization": basic}) as ws:
            await ws.send("over tls")
            return await ws.recv()

    assert asyncio.run(echo()) == "over tls"


def test_self_signed_certificate_made_once_kept_and_its_fingerprint_printed(
    app, write_settings, tmp_path
):
    settings = write_settings(frameworks={"demo": demo()}, server={"tls": "self-signed"})
    set_password(settings)
    port = free_port()
    a = app(settings, port)
    url = f"https://127.0.0.1:{port}/"
    wait_https(url, False, a.proc)
    cert, key = tmp_path / "tls-cert.pem", tmp_path / "tls-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    der = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(("127.0.0.1", port)))
    served = hashlib.sha256(der).hexdigest().upper()
    log = "".join(p.read_text() for p in Path(tmp_path).glob("app-*.log"))
    printed = re.search(r"SHA256 ([0-9A-F:]{95})", log)
    assert printed and printed.group(1).replace(":", "") == served
    with pytest.raises(requests.exceptions.SSLError):  # not trusted: the browser warns
        requests.get(f"{url}health", timeout=5)
    made = cert.read_bytes()
    a.close()
    b = app(settings, port)
    wait_https(url, False, b.proc)
    assert cert.read_bytes() == made, "kept, not made again: the fingerprint stays the same"


def test_public_host_without_tls_warns_and_names_the_addresses_it_serves(
    app, write_settings, tmp_path
):
    settings = write_settings(frameworks={"demo": demo()})
    set_password(settings)
    port = free_port()
    a = app(settings, port, "--public-host")
    a.wait_page()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        log = "".join(p.read_text() for p in Path(tmp_path).glob("app-*.log"))
        if "without TLS" in log:
            break
        time.sleep(0.2)
    assert "clear text" in log
    assert f"control page: http://127.0.0.1:{port}/" in log
    ours = [
        e.address
        for entries in psutil.net_if_addrs().values()
        for e in entries
        if e.family == socket.AF_INET and not e.address.startswith("127.")
    ]
    for address in ours:  # not only loopback: where a browser really finds it
        assert f"control page: http://{address}:{port}/" in log


def test_missing_certificate_files_or_a_wrong_tls_value_say_so(write_settings):
    settings = write_settings(server={"tls": {"cert": "nope.pem", "key": "nope.key"}})
    done = run_app("--settings", str(settings), "--port", str(free_port()))
    assert done.returncode == 5 and "TLS: server.tls names" in done.stderr
    assert "nope.pem" in done.stderr
    settings = write_settings(server={"tls": "yes please"})
    done = run_app("--settings", str(settings))
    assert done.returncode == 2 and "server.tls" in done.stderr
