"""The core as a reaper: PID 1 in a PID namespace (a container), orphans, open files."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, demo, free_port, journal, pid_alive, wait_journal

from watchdog.runtime import proctree


def _children(pid: int) -> list[int]:
    return [p for p in proctree.list_pids() if (info := proctree.stat(p)) and info.ppid == pid]


def _zombies_of(pid: int) -> list[int]:
    out = []
    for p in proctree.list_pids():
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == pid:
            out.append(p)
    return out


def _can_unshare() -> str | None:
    if shutil.which("unshare") is None:
        return "unshare is not installed"
    probe = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        return f"no PID namespaces here: {probe.stderr.strip()[:120]}"
    return None


def test_as_pid_1_in_a_pid_namespace_every_orphan_is_reaped(write_settings):
    why = _can_unshare()
    if why:
        pytest.skip(why)
    # A launcher whose shell leaves three short-lived orphans behind, as install
    # scripts do: they end up children of PID 1 (the watchdog) and die there.
    orphans = "for i in 1 2 3; do (sleep 0.3 &); done; exec {python} {demo_app} --port {port}"
    settings = write_settings(frameworks={"demo": demo(free_port(), command=["sh", "-c", orphans])})
    logs = settings.parent / "logs"
    ns = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child=SIGTERM", sys.executable,
         str(ROOT / "app.py"), "--settings", str(settings), "--no-server"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    core = None
    try:
        ready = wait_journal(logs, "ready", timeout=30)[0]
        start = wait_journal(logs, "watchdog_start")[0]
        assert start["pid"] == 1, "the watchdog is PID 1 of its namespace"
        core = _children(ns.pid)[0]  # the watchdog, as seen from outside
        time.sleep(1.5)  # the orphans have exited by now
        assert _zombies_of(core) == [], "every orphan was reaped"
        assert ready["framework"] == "demo"
    finally:
        # unshare ignores SIGTERM while it waits: the watchdog itself is told to stop.
        for pid in [core] if core else _children(ns.pid):
            os.kill(pid, signal.SIGTERM)
        ns.wait(30)
    stop = [e for e in journal(logs) if e["event"] == "stop"]
    assert stop and stop[-1]["requested_by"] == "signal"


def test_open_files_limit_is_raised_to_the_hard_limit(write_settings):
    settings = write_settings()
    logs = settings.parent / "logs"
    cmd = (
        f"ulimit -Sn 256; exec {sys.executable} {ROOT / 'app.py'} --settings {settings} --no-server"
    )
    proc = subprocess.Popen(
        ["bash", "-c", cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_journal(logs, "ready", timeout=30)
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
        line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
        soft, hard = line.split()[3:5]
        assert soft == hard and int(soft) > 256
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert not pid_alive(proc.pid)
