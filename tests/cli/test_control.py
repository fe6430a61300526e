"""Every control subcommand, as a user types it, against a running core and against none."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from conftest import (
    PASSWORD,
    ROOT,
    demo,
    invokeai_db,
    invokeai_demo,
    invokeai_enqueue,
    journal,
    run_app,
    wait_journal,
)

COMMANDS = [
    ("status",),
    ("status", "--json"),
    ("start",),
    ("stop",),
    ("restart",),
    ("switch", "b"),
    ("logs",),
    ("logs", "-f"),
    ("events",),
    ("events", "-f"),
]


@pytest.fixture
def core(write_settings, app):
    a = app(write_settings(frameworks={"a": demo(None, "--spam-rate", "5"), "b": demo()}))
    wait_journal(a.logs, "ready")
    a.wait_socket()
    return a


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_with_no_core_running_each_command_says_so_in_one_line(write_settings, args):
    settings = write_settings()
    proc = run_app("--settings", str(settings), *args, timeout=30)
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no watchdog is running" in lines[0]


def test_status_reads_at_a_glance_and_as_json(core):
    text = core.cli("status")
    assert text.returncode == 0 and text.stdout.startswith("a: RUNNING  pid ")
    data = json.loads(core.cli("status", "--json").stdout)
    assert data["state"] == "RUNNING" and data["framework"] == "a"


def test_stop_start_restart_switch(core):
    assert core.cli("stop").stdout.startswith("a: STOPPING")
    wait_journal(core.logs, "stop")
    assert core.cli("status").stdout.startswith("a: STOPPED")
    assert core.cli("start").returncode == 0
    wait_journal(core.logs, "ready", 2)
    assert core.cli("restart").stdout.startswith("a: STOPPING")
    wait_journal(core.logs, "ready", 3)
    out = core.cli("switch", "b")
    assert out.returncode == 0 and out.stdout.startswith("b: STOPPING")
    assert out.stdout.rstrip().endswith("(switch to b)")
    assert wait_journal(core.logs, "ready", 4)[-1]["framework"] == "b"
    by = {e["requested_by"] for e in journal(core.logs) if e["event"] in ("switch", "restart")}
    assert by == {"cli"}


def test_a_refused_command_says_why_and_changes_nothing(core):
    before = json.loads(core.cli("status", "--json").stdout)
    out = core.cli("switch", "nope")
    assert out.returncode == 6 and "unknown framework 'nope'" in out.stderr
    after = json.loads(core.cli("status", "--json").stdout)
    assert (after["pid"], after["framework"]) == (before["pid"], before["framework"])


def test_a_command_that_changes_nothing_says_so(core):
    pid = json.loads(core.cli("status", "--json").stdout)["pid"]
    out = core.cli("start", "a")
    assert out.returncode == 0 and out.stdout.strip() == "nothing to do: a is already running"
    assert json.loads(core.cli("status", "--json").stdout)["pid"] == pid


def test_logs_and_events(core):
    logs = core.cli("logs", "-n", "3")
    assert logs.returncode == 0 and 1 <= len(logs.stdout.splitlines()) <= 3
    events = core.cli("events", "-n", "2").stdout.splitlines()
    assert len(events) == 2 and " ready " in events[-1]
    raw = core.cli("events", "-n", "1", "--json").stdout
    assert json.loads(raw)["event"] == "ready"


@contextmanager
def following(core, *args: str) -> Iterator[subprocess.Popen[str]]:
    """``app.py … logs -f`` (or ``events -f``) running, stopped after the block."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "--settings", str(core.settings), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


def _read_until(proc: subprocess.Popen[str], needle: str, timeout: float = 20) -> list[str]:
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"{needle!r} never printed; got {seen[-5:]}")


def test_logs_follow_goes_on_across_a_restart(core):
    with following(core, "logs", "-f", "-n", "1") as proc:
        _read_until(proc, "spam line")
        core.cli("restart")
        _read_until(proc, "── run ")
        _read_until(proc, "Running on local URL")


def test_events_follow_prints_new_events_as_they_happen(core):
    with following(core, "events", "-f", "-n", "1") as proc:
        _read_until(proc, " ready ")
        core.cli("restart")
        _read_until(proc, " stopping ")
        _read_until(proc, " spawn ")


def test_global_options_go_before_the_command_too(write_settings):
    settings = write_settings()
    before = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "--settings", str(settings), "set-password", "me"],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert before.returncode == 0, before.stderr
    assert (settings.parent / "auth.json").exists() or "saved credentials" in before.stdout


def test_a_queue_kept_by_a_forced_stop_is_said_and_cleared_only_when_asked(
    write_settings, app, tmp_path
):
    entry = invokeai_demo(tmp_path, 60)
    core = app(write_settings(frameworks={"invoke": entry}))
    url = wait_journal(core.logs, "ready")[-1]["url"]
    core.wait_socket()
    invokeai_enqueue(url, 2)
    wait_busy(core)
    refused = core.cli("stop")
    assert refused.returncode != 0 and "force to interrupt" in refused.stderr
    assert core.cli("stop", "--force").returncode == 0
    wait_journal(core.logs, "stop")
    said = core.cli("status").stdout
    assert "queue: InvokeAI keeps its queue in its own database: 1 pending job resumes" in said
    assert core.cli("start").returncode == 0
    wait_journal(core.logs, "ready", count=2)
    wait_busy(core)  # it resumed the pending one
    assert core.cli("stop", "--clear-queue").returncode == 0
    cleared = wait_journal(core.logs, "queue_cleared")[-1]
    assert cleared["requested_by"] == "cli" and cleared["detail"].endswith("2 deleted")
    assert invokeai_db(tmp_path) == []


def wait_busy(core, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while "busy:" not in core.cli("status").stdout:
        assert time.monotonic() < deadline, core.cli("status").stdout
        time.sleep(0.2)
