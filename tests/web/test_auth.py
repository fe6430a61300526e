"""Credentials: every route but /health refuses strangers; the owner gets in three ways."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests
from conftest import (
    PASSWORD,
    ROOT,
    USER,
    demo,
    events,
    free_port,
    run_app,
    running,
    set_password,
    wait_event,
)
from gradio_client import Client
from starlette.routing import Mount, Route, WebSocketRoute

from watchdog.web.auth import Credentials, load_credentials


def walk_routes(app, prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    """Every (path, methods) the running ASGI app serves, mounts included."""
    for route in getattr(app, "routes", []):
        if isinstance(route, Mount):
            base = prefix + route.path
            inner = getattr(route, "routes", None) or getattr(route.app, "routes", None)
            if inner:
                yield from walk_routes(route.app, base)
            else:  # static files and the like
                yield base.rstrip("/") + "/anything", {"GET"}
        elif isinstance(route, WebSocketRoute):
            yield prefix + route.path, {"GET"}
        elif isinstance(route, Route):
            yield prefix + route.path, set(route.methods or {"GET"})


def concrete(path: str) -> str:
    path = re.sub(r"{[^}]+:path}", "a/b", path)
    return re.sub(r"{[^}]+}", "x", path).replace("//", "/") or "/"


@pytest.fixture
def guarded(serve, make_settings):
    settings = make_settings(
        frameworks={"demo": demo(None, env={"HF_TOKEN": "hf_sekrit_value_123"})}
    )
    web = serve(settings, password=True, max_failures=3, lockout_s=3)
    web.sup.wait_for(running, timeout=10)
    return web


def test_every_route_but_health_refuses_strangers(guarded):
    app = guarded.app.app  # the FastAPI app behind the gate (and its ASGI layers)
    while not hasattr(app, "routes"):  # NoUploads, DefaultArgs
        app = app.app
    routes = sorted(set((concrete(p), frozenset(m)) for p, m in walk_routes(app)))
    assert len(routes) > 20, "Gradio's routes were found too"
    paths = {p for p, _ in routes}
    assert {"/info", "/health", "/read-current-stdout-log", "/"} <= paths
    assert any(p.startswith("/gradio_api/") for p in paths)
    checked = 0
    for path, methods in routes:
        for method in methods - {"HEAD", "OPTIONS"}:
            r = requests.request(method, guarded.url.rstrip("/") + path, timeout=10)
            if path == "/health":
                assert r.status_code == 200 and r.json() == {"status": "ok"}
            elif path.rstrip("/") in ("/login", "/logout"):  # the gate's own: a form, a way out
                assert r.status_code in (200, 303, 401), (method, path, r.status_code)
                assert "demo" not in r.text and "RUNNING" not in r.text
            else:
                assert r.status_code == 401, (method, path, r.status_code)
                # A browser is asked for a password; the login form answers its client.
                assert "www-authenticate" in r.headers or path.startswith("/login")
            checked += 1
    assert checked > 20
    # No credentials offered is not a failed login: nothing journaled, nobody locked.
    assert not events(guarded.sup, "auth_failed")


def test_owner_gets_in_by_basic_bearer_and_gradio_client(guarded):
    info = requests.get(f"{guarded.url}info", auth=(USER, PASSWORD), timeout=10)
    assert info.status_code == 200 and info.json()["state"] == "RUNNING"
    bearer = {"Authorization": f"Bearer {guarded.token}"}
    log = requests.get(f"{guarded.url}read-current-stdout-log", headers=bearer, timeout=10)
    assert log.status_code == 200 and "Running on local URL" in log.text
    page = requests.get(guarded.url, auth=(USER, PASSWORD), timeout=10)
    assert page.status_code == 200 and "<html" in page.text.lower()
    client = Client(guarded.url, auth=(USER, PASSWORD), verbose=False)
    assert client.predict(api_name="/status")["state"] == "RUNNING"
    assert "Running on local URL" in client.predict("stdout", 5, api_name="/logs")
    with pytest.raises(Exception, match=r"(?i)invalid credentials|could not login"):
        Client(guarded.url, auth=(USER, "wrong password"), verbose=False)


def test_wrong_passwords_are_journaled_then_locked_out_then_forgiven(guarded):
    url = f"{guarded.url}info"
    for _ in range(3):
        assert requests.get(url, auth=(USER, "guess"), timeout=10).status_code == 401
    locked = requests.get(url, auth=(USER, PASSWORD), timeout=10)
    assert locked.status_code == 429 and "retry-after" in locked.headers
    guarded.auth.refusals.flush()  # the counts of this minute, written now
    failed = wait_event(guarded.sup, "auth_failed", 5, count=3)
    first, *rest = failed
    assert first["client"] == "127.0.0.1" and first["user"] == USER
    assert first["reason"] == "wrong password" and "count" not in first
    wrong = next(e for e in rest if e["reason"] == "wrong password")
    assert wrong["count"] == 2 and wrong["locked_for_s"] == 3  # the 2nd and 3rd, coalesced
    assert any(e["reason"] == "locked out" for e in rest)
    assert all(PASSWORD not in json.dumps(e) and "guess" not in json.dumps(e) for e in failed)
    time.sleep(float(locked.headers["retry-after"]) + 0.1)  # the window moved on: forgiven
    assert requests.get(url, auth=(USER, PASSWORD), timeout=10).status_code == 200


def test_secrets_in_framework_env_never_leak(guarded):
    auth = (USER, PASSWORD)
    texts = [
        requests.get(f"{guarded.url}info", auth=auth, timeout=10).text,
        requests.get(f"{guarded.url}config", auth=auth, timeout=10).text,
        requests.get(guarded.url, auth=auth, timeout=10).text,
        json.dumps(Client(guarded.url, auth=auth, verbose=False).predict(api_name="/frameworks")),
        (guarded.sup.settings.logs_dir / "events.jsonl").read_text(),
    ]
    assert all("hf_sekrit_value_123" not in t for t in texts)


def test_set_password_command_stores_only_a_salted_hash(tmp_path, write_settings):
    settings = write_settings()
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "app.py"),
            "set-password",
            "alice",
            "--settings",
            str(settings),
        ],
        input="s3cret-passw0rd\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    path = tmp_path / "auth.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "s3cret-passw0rd" not in text
    token = re.search(r"API token.*: (\S+)", proc.stdout).group(1)
    assert token not in text
    creds = load_credentials(path)
    assert creds is not None and creds.check_password("alice", "s3cret-passw0rd")
    assert not creds.check_password("alice", "s3cret-passw0rd ")
    assert creds.check_token(token)
    assert Credentials.create("alice", "x")[0].salt != creds.salt
    short = run_app("set-password", "bob", "--settings", str(settings))
    assert short.returncode == 1 and "at least 8" in short.stdout + short.stderr


@pytest.mark.parametrize("flag", ["--public-host", "--share"])
def test_public_without_password_refuses_to_start(write_settings, flag):
    settings = write_settings()
    proc = run_app("--settings", str(settings), flag, "--port", str(free_port()))
    assert proc.returncode == 4
    assert "without a password" in proc.stderr
    hint = f"{sys.executable} {ROOT / 'app.py'} set-password admin --settings {settings}"
    assert hint in proc.stderr
    assert not (settings.parent / "logs" / "events.jsonl").exists()


def test_share_without_internet_says_so_and_keeps_serving(write_settings):
    settings = write_settings()
    set_password(settings)
    port = free_port()
    # A share server that refuses at once, on this machine: no traffic leaves it.
    env = {**os.environ, "GRADIO_SHARE_SERVER_ADDRESS": f"127.0.0.1:{free_port()}"}
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "app.py"),
            "--settings",
            str(settings),
            "--share",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        out = ""
        deadline = time.monotonic() + 60
        while "could not create a share link" not in out and time.monotonic() < deadline:
            out += proc.stdout.readline()
        assert "cannot be reached" in out and "still served locally" in out
        r = requests.get(f"http://127.0.0.1:{port}/info", auth=(USER, PASSWORD), timeout=10)
        assert r.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
