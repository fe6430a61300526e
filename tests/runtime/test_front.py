"""The front (page, APIs) as a child of the core: out of supervision's reach.

Each test runs ``app.py`` for real: the core, its front, and a demo framework.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from conftest import ROOT, free_port, journal, pid_alive, wait_journal

from watchdog.control.client import ControlClient

WEB_MODULES = ("gradio", "gradio_client", "uvicorn", "fastapi", "starlette", "pandas")
FAST = {"health_interval_s": 1, "health_timeout_s": 1, "failure_threshold": 2}


def front_pid(logs: Path, count: int = 1) -> int:
    """The pid of the ``count``-th front, once the core has seen it answer."""
    return int(wait_journal(logs, "front_ready", count, timeout=60)[-1]["pid"])


def app_args(settings: Path, port: int) -> list[str]:
    return [str(ROOT / "app.py"), "--settings", str(settings), "--port", str(port)]


def page_answers(port: int, timeout: float) -> float:
    """Seconds until the page's status route answers (through the front and the core)."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        try:
            if requests.get(f"http://127.0.0.1:{port}/info", timeout=2).ok:
                return time.monotonic() - began
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the page did not answer within {timeout} s")


def test_the_core_never_imports_gradio_uvicorn_or_fastapi(write_settings, tmp_path):
    """``-X importtime`` lists every module the core imports, whenever it does."""
    port = free_port()
    settings = write_settings()
    out = tmp_path / "core.err"
    with open(out, "wb") as err:
        core = subprocess.Popen(
            [sys.executable, "-X", "importtime", *app_args(settings, port)],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        page_answers(port, 60)  # the front is up and has asked the core for the status
        logs = settings.parent / "logs"
        client = ControlClient(logs / "control.sock")
        for route in ("/status", "/frameworks", "/events", "/gpu", "/history", "/logs"):
            client.call("GET", route)
        assert requests.post(f"http://127.0.0.1:{port}/api/v1/restart", timeout=30).ok
        wait_journal(logs, "ready", 2)
    finally:
        core.send_signal(signal.SIGTERM)
        core.wait(60)
    imported = {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in out.read_text().splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "watchdog" in imported and "pydantic" in imported  # the listing works
    assert not imported & set(WEB_MODULES)


def test_kill9_of_the_front_leaves_the_framework_alone(write_settings, app):
    port = free_port()
    a = app(write_settings(), port)
    a.wait_page()
    client = ControlClient(a.socket)
    framework = client.call("GET", "/status")["pid"]
    front = front_pid(a.logs)
    os.kill(front, signal.SIGKILL)
    assert page_answers(port, 15) < 15
    assert client.call("GET", "/status")["pid"] == framework
    ended = wait_journal(a.logs, "front_exit")[-1]
    assert ended["pid"] == front and ended["signal"] == "SIGKILL"
    assert front_pid(a.logs, 2) != front
    kinds = [e["event"] for e in journal(a.logs)]
    assert kinds.count("spawn") == 1 and "exit" not in kinds and "crash" not in kinds


def test_a_hung_front_is_restarted_and_the_framework_is_not(write_settings, app):
    port = free_port()
    a = app(write_settings(watch=FAST), port)
    a.wait_page()
    framework = ControlClient(a.socket).call("GET", "/status")["pid"]
    front = front_pid(a.logs)
    os.kill(front, signal.SIGSTOP)  # alive, holds the port, answers nothing
    try:
        hang = wait_journal(a.logs, "front_hang", timeout=30)[-1]
    finally:
        if pid_alive(front):
            os.kill(front, signal.SIGCONT)
    assert hang["pid"] == front and hang["failures"] == 2
    page_answers(port, 30)
    assert not pid_alive(front)
    assert ControlClient(a.socket).call("GET", "/status")["pid"] == framework


def test_a_front_over_its_memory_cap_is_restarted(write_settings, app):
    # Gradio alone is more than 100 MB: the smallest cap allowed is passed at once.
    a = app(write_settings(server={"max_rss_mb": 100}), free_port())
    over = wait_journal(a.logs, "front_rss", timeout=60)[-1]
    assert over["rss_mb"] > over["max_rss_mb"] == 100
    assert not pid_alive(over["pid"])
    assert wait_journal(a.logs, "front_spawn", 2, timeout=30)[-1]["pid"] != over["pid"]


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)")
def test_a_flood_of_idle_connections_cannot_stop_supervision(write_settings, tmp_path):
    """Under a 256 open-files limit, 400 idle connections to the page: a killed
    framework is still respawned within 5 s, and the page comes back afterwards."""
    port = free_port()
    settings = write_settings(watch=FAST)
    logs = settings.parent / "logs"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))  # ours, for 400
    err = tmp_path / "core.err"
    with open(err, "wb") as out:
        core = subprocess.Popen(
            ["prlimit", "--nofile=256", sys.executable, *app_args(settings, port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    idle: list[socket.socket] = []
    try:
        page_answers(port, 60)
        client = ControlClient(logs / "control.sock")
        first = client.call("GET", "/status")["pid"]
        for _ in range(400):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            idle.append(s)
        time.sleep(1)
        with pytest.raises(requests.RequestException):  # the flood did fill the front
            requests.get(f"http://127.0.0.1:{port}/health", timeout=2)
        killed = time.monotonic()
        os.kill(first, signal.SIGKILL)
        while True:
            status = client.call("GET", "/status")
            if status["pid"] not in (None, first) and status["state"] == "RUNNING":
                break
            assert time.monotonic() - killed < 5, status
            time.sleep(0.05)
        for s in idle:
            s.close()
        idle.clear()
        page_answers(port, 60)
    finally:
        for s in idle:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        core.send_signal(signal.SIGTERM)
        core.wait(60)
    assert err.stat().st_size < 1_000_000  # a flood is not a flood of log


def test_kill9_of_the_core_ends_the_front_within_2s(write_settings, app):
    port = free_port()
    settings = write_settings()
    a = app(settings, port)
    a.wait_page()
    front = front_pid(a.logs)
    framework = ControlClient(a.socket).call("GET", "/status")["pid"]
    a.kill9()
    killed = time.monotonic()
    while pid_alive(front):
        assert time.monotonic() - killed < 2.0, "the front outlived its core"
        time.sleep(0.02)
    # The framework lives on (a new core adopts it), and the port is free for that core.
    assert pid_alive(framework)
    b = app(settings, port)
    b.wait_page()
    assert ControlClient(b.socket).call("GET", "/status")["pid"] == framework


def test_no_server_runs_no_front(write_settings, app):
    a = app(write_settings())
    wait_journal(a.logs, "ready")
    a.wait_socket()
    kinds = {e["event"] for e in journal(a.logs)}
    assert not any(k.startswith("front_") for k in kinds)
    tasks = Path(f"/proc/{a.proc.pid}/task").iterdir()
    children = [pid for task in tasks for pid in (task / "children").read_text().split()]
    assert len(children) == 1  # the framework, nothing else
