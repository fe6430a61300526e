"""app.py as a user runs it: a real process, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, demo, journal, pid_alive, run_app, wait_journal


@pytest.fixture
def launch(write_settings) -> Iterator:
    procs: list[subprocess.Popen] = []

    def start(*flags: str, frameworks: dict | None = None) -> tuple[subprocess.Popen, Path]:
        path = write_settings(frameworks=frameworks or {"demo": demo()})
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "--settings", str(path), *flags],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        procs.append(proc)
        return proc, path.parent / "logs"

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_framework_cleanly(launch, sig):
    proc, logs = launch("--no-server")
    ready = wait_journal(logs, "ready")[0]
    assert pid_alive(ready["pid"])
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert not pid_alive(ready["pid"])
    stop = wait_journal(logs, "stop", timeout=1)[0]
    assert stop["requested_by"] == "signal" and stop["reason"] == "watchdog shutting down"
    assert journal(logs)[-1]["event"] == "watchdog_stop"


def test_leave_running_keeps_the_framework(launch):
    proc, logs = launch("--no-server", "--leave-running")
    ready = wait_journal(logs, "ready")[0]
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    try:
        assert proc.returncode == 0 and pid_alive(ready["pid"])
        assert wait_journal(logs, "detach", timeout=1)[0]["pid"] == ready["pid"]
    finally:
        os.killpg(ready["pid"], signal.SIGKILL)


def test_second_watchdog_on_same_settings_refuses(launch):
    proc, logs = launch("--no-server")
    wait_journal(logs, "ready")[0]
    settings = logs.parent / "settings.json"
    second = run_app("--settings", str(settings), "--no-server")
    assert second.returncode == 3
    assert "another sd-watchdog" in second.stderr and str(proc.pid) in second.stderr
    assert len([e for e in journal(logs) if e["event"] == "spawn"]) == 1


def test_no_watch_never_launches(launch):
    proc, logs = launch("--no-server", "--no-watch")
    start = wait_journal(logs, "watchdog_start")[0]
    assert start["watching"] is False
    time.sleep(0.5)
    assert not [e for e in journal(logs) if e["event"] == "spawn"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
