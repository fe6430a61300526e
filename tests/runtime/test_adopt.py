"""A restarted watchdog adopts the framework that is still running, never a stranger."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import (
    ROOT,
    demo,
    demo_servers,
    events,
    journal,
    pid_alive,
    running,
    wait_event,
    wait_journal,
)

from watchdog.runtime.proctree import stat as _stat


def test_kill9_of_the_watchdog_then_restart_adopts(write_settings):
    settings = write_settings(frameworks={"demo": demo(None, "--spam-rate", "20")})
    logs = settings.parent / "logs"
    cmd = [sys.executable, str(ROOT / "app.py"), "--settings", str(settings), "--no-server"]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = None
    try:
        ready = wait_journal(logs, "ready")[0]
        pid = ready["pid"]
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        assert pid_alive(pid), "the framework outlives a crashed watchdog"
        out = Path(wait_journal(logs, "spawn")[0]["stdout"])
        size_before = out.stat().st_size

        second = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        adopt = wait_journal(logs, "adopt")[0]
        assert adopt["pid"] == pid and adopt["run_id"] == ready["run_id"]
        again = wait_journal(logs, "ready", count=2)[1]
        assert again["pid"] == pid
        time.sleep(1.0)
        assert demo_servers() == [pid], "no second copy"
        assert len([e for e in journal(logs) if e["event"] == "spawn"]) == 1
        assert out.stat().st_size > size_before, "its log goes on in the same file"

        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
        assert not pid_alive(pid)
        stop = [e for e in journal(logs) if e["event"] == "stop"][-1]
        assert stop["pid"] == pid and stop["requested_by"] == "signal"
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def test_detached_run_is_adopted_in_process(make_settings, supervise):
    settings = make_settings(frameworks={"demo": demo()})
    one = supervise(settings)
    first = one.wait_for(running, timeout=10)
    one.shutdown(leave_running=True)
    two = supervise(settings)
    status = two.wait_for(running, timeout=10)
    assert status.pid == first.pid and status.run_id == first.run_id
    assert events(two, "adopt")[-1]["pid"] == first.pid
    os.kill(first.pid, signal.SIGKILL)  # an adopted run's crash is still seen at once
    crash = wait_event(two, "crash", 5)[-1]
    assert crash["pid"] == first.pid and "status unknown" in crash["reason"]
    two.wait_for(lambda s: running(s) and s.pid != first.pid, timeout=10)


def test_stale_state_with_a_reused_pid_is_not_adopted(make_settings, supervise):
    settings = make_settings(frameworks={"demo": demo()})
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        ticks = _stat(stranger.pid).start_ticks
        for record_ticks in (ticks, ticks - 1):  # right start time (no marker), wrong one
            state = settings.logs_dir / "state.json"
            state.parent.mkdir(parents=True, exist_ok=True)
            run = {
                "framework": "demo",
                "run_id": "20260101-000000-000-demo",
                "pid": stranger.pid,
                "start_ticks": record_ticks,
                "started_at": time.time(),
                "command": "x",
                "stdout": "/nonexistent",
                "stderr": "/nonexistent",
                "url": None,
            }
            state.write_text(
                json.dumps(
                    {"version": 2, "run": run, "desired": {"framework": "demo", "should_run": True}}
                )
            )
            sup = supervise(settings)
            status = sup.wait_for(running, timeout=10)
            assert status.pid != stranger.pid
            assert events(sup, "adopt_skipped")[-1]["pid"] == stranger.pid
            assert not events(sup, "adopt")
            sup.shutdown()
            assert stranger.poll() is None, "the stranger was left alone"
    finally:
        stranger.kill()
        stranger.wait()
