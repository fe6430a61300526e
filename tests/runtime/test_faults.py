"""The fault matrix cases not covered elsewhere: timing edges, commands mid-transition,
workers, a deleted folder, a full disk, damaged state files."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

from conftest import demo, events, pid_alive, running

from watchdog.core.states import State
from watchdog.runtime.logs import tail_lines


def pids_in_log(path: Path, pattern: str, count: int, timeout: float = 5) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [
            int(m.group(1)) for line in tail_lines(path, 100) if (m := re.search(pattern, line))
        ]
        if len(found) >= count:
            return found
        time.sleep(0.02)
    raise AssertionError(f"{pattern!r} x{count} never appeared in {path}")


def test_slow_start_just_under_the_timeout_is_fine(make_settings, supervise):
    sup = supervise(
        make_settings(
            frameworks={"slow": demo(None, "--startup-delay", "0.6")},
            watch={"startup_timeout_s": 1.5},
        )
    )
    sup.wait_for(running, timeout=10)
    assert not events(sup, "startup_timeout")


def test_slow_start_just_over_the_timeout_fails(make_settings, supervise):
    sup = supervise(
        make_settings(
            frameworks={"slow": demo(None, "--startup-delay", "1.5")},
            watch={"startup_timeout_s": 0.8, "max_restarts": 1},
        )
    )
    sup.wait_for(lambda s: s.state is State.FATAL, timeout=15)
    assert len(events(sup, "startup_timeout")) == 2 and not events(sup, "ready")
    assert "not ready within startup_timeout_s=0.8" in sup.status().reason


def test_workers_forked_by_the_child_are_stopped_with_it(make_settings, supervise):
    sup = supervise(make_settings(frameworks={"w": demo(None, "--workers", "3")}))
    status = sup.wait_for(running, timeout=10)
    workers = pids_in_log(Path(events(sup, "spawn")[-1]["stdout"]), r"worker pid (\d+)", 3)
    assert all(pid_alive(p) for p in workers)
    sup.stop()
    sup.wait_for(lambda s: s.state is State.STOPPED, timeout=15)
    assert not any(pid_alive(p) for p in [status.pid, *workers])


def test_stop_during_starting(make_settings, supervise):
    sup = supervise(make_settings(frameworks={"slow": demo(None, "--startup-delay", "30")}))
    starting = sup.wait_for(lambda s: s.state is State.STARTING and s.pid, timeout=5)
    sup.stop()
    sup.wait_for(lambda s: s.state is State.STOPPED, timeout=10)
    assert not pid_alive(starting.pid) and not events(sup, "ready")
    assert events(sup, "stop")[-1]["reason"] == "stop requested"


def test_switch_during_backoff(make_settings, supervise):
    sup = supervise(
        make_settings(
            frameworks={"flaky": demo(None, "--crash-after", "0.05"), "good": demo()},
            watch={"backoff_initial_s": 5, "backoff_max_s": 5},
        )
    )
    sup.wait_for(lambda s: s.state is State.BACKOFF, timeout=10)
    t0 = time.monotonic()
    sup.switch("good")
    status = sup.wait_for(lambda s: running(s) and s.framework == "good", timeout=10)
    assert time.monotonic() - t0 < 4, "a person's switch does not wait out the backoff"
    assert status.restarts == 0


def test_switch_during_stopping(make_settings, supervise):
    sup = supervise(
        make_settings(
            frameworks={"a": demo(None, "--ignore-sigterm"), "b": demo(), "c": demo()},
            watch={"stop_timeout_s": 1.5},
        )
    )
    a = sup.wait_for(running, timeout=10)
    sup.switch("b")
    sup.wait_for(lambda s: s.state is State.STOPPING, timeout=5)
    sup.switch("c")  # changes its mind while a is still going away
    status = sup.wait_for(lambda s: running(s) and s.framework == "c", timeout=15)
    assert not pid_alive(a.pid)
    spawned = [e["framework"] for e in events(sup, "spawn")]
    assert spawned == ["a", "c"], "b was never started, and never two at once"
    assert status.framework == "c"


def test_cwd_deleted_while_running(make_settings, supervise, tmp_path):
    home = tmp_path / "webui"
    home.mkdir()
    sup = supervise(
        make_settings(
            frameworks={"w": demo(None, "--crash-after", "1", cwd=str(home))},
            watch={"max_restarts": 2, "backoff_initial_s": 0.1},
        )
    )
    sup.wait_for(running, timeout=10)
    shutil.rmtree(home)
    status = sup.wait_for(lambda s: s.state is State.FATAL, timeout=20)
    failed = events(sup, "spawn_failed")
    assert failed and f"working folder {home} does not exist" in failed[-1]["reason"]
    assert "does not exist" in status.reason


def test_full_disk_for_the_journal_keeps_supervising(make_settings, supervise):
    settings = make_settings(frameworks={"demo": demo()})
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    (settings.logs_dir / "events.jsonl").symlink_to("/dev/full")  # every write: ENOSPC
    sup = supervise(settings)
    first = sup.wait_for(running, timeout=10)
    assert any("No space left on device" in e for e in first.errors)
    os.kill(first.pid, signal.SIGKILL)
    sup.wait_for(lambda s: running(s) and s.pid != first.pid, timeout=10)
    assert sup.events.dropped >= 4  # start, spawn, ready, exit… all said, none written


def test_damaged_state_files_on_start(make_settings, supervise):
    settings = make_settings(frameworks={"demo": demo()})
    logs = settings.logs_dir
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "state.json").write_text('{"desired": {"framework": "demo", "shou')  # torn write
    (logs / "history.sqlite").write_bytes(b"\x00garbage" * 50)
    good = json.dumps({"ts": "2026-01-01T00:00:00Z", "event": "spawn", "framework": "demo"})
    (logs / "events.jsonl").write_text(good + "\n{not json\n" + good[:20])
    from watchdog.runtime.service import Service

    service = Service(settings)
    try:
        service.start()
        service.supervisor.wait_for(running, timeout=10)
        start = events(service.supervisor, "watchdog_start")[-1]
        assert "state.json unreadable" in " ".join(start["problems"])
        assert "history file was unreadable" in " ".join(start["problems"])
        assert events(service.supervisor, "spawn")[0]["framework"] == "demo"  # old one kept
    finally:
        service.stop()
