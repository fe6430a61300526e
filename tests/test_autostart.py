"""Boot start written into a temp root: the unit, its enable link, rc.local; idempotent."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, pid_alive, run_app, wait_journal

from watchdog.autostart import BEGIN, END, systemd_quote


def test_systemd_unit_installs_idempotently_and_uninstalls(tmp_path, write_settings):
    settings = write_settings(watch={"stop_timeout_s": 20})
    args = ("install-autostart", "--root", str(tmp_path), "--settings", str(settings))
    first = run_app(*args)
    assert first.returncode == 0, first.stderr
    unit = tmp_path / "etc/systemd/system/sd-watchdog.service"
    link = tmp_path / "etc/systemd/system/multi-user.target.wants/sd-watchdog.service"
    text = unit.read_text()
    assert f"ExecStart={sys.executable} {ROOT / 'app.py'} --settings {settings}" in text
    assert "Restart=always" in text and "KillMode=process" in text
    assert "TimeoutStopSec=50" in text and "WantedBy=multi-user.target" in text
    assert "LimitNOFILE=65536" in text
    assert link.is_symlink() and link.resolve() == unit.resolve()
    assert run_app(*args).returncode == 0
    assert unit.read_text() == text  # idempotent
    gone = run_app("uninstall-autostart", "--root", str(tmp_path))
    assert gone.returncode == 0 and not unit.exists() and not link.is_symlink()
    assert "nothing to remove" in run_app("uninstall-autostart", "--root", str(tmp_path)).stdout


def test_rc_local_entry_is_idempotent_and_keeps_the_rest(tmp_path, write_settings):
    settings = write_settings()
    rc = tmp_path / "etc/rc.local"
    rc.parent.mkdir(parents=True)
    rc.write_text("#!/bin/sh -e\necho hello\nexit 0\n")
    args = ("install-autostart", "--rc-local", "--root", str(tmp_path), "--settings", str(settings))
    assert run_app(*args).returncode == 0
    assert run_app(*args).returncode == 0
    text = rc.read_text()
    assert text.count(BEGIN) == 1
    lines = text.splitlines()
    assert lines[0] == "#!/bin/sh -e" and lines[1] == "echo hello" and lines[-1] == "exit 0"
    assert lines.index(BEGIN) < lines.index("exit 0")
    assert "nohup" in text and "app.py --settings" in text and text.rstrip().endswith("exit 0")
    assert rc.stat().st_mode & 0o111
    assert run_app("uninstall-autostart", "--root", str(tmp_path)).returncode == 0
    assert rc.read_text() == "#!/bin/sh -e\necho hello\nexit 0\n"


def test_rc_local_is_created_when_missing(tmp_path, write_settings):
    settings = write_settings()
    args = ("install-autostart", "--rc-local", "--root", str(tmp_path), "--settings", str(settings))
    assert run_app(*args).returncode == 0
    text = (tmp_path / "etc/rc.local").read_text()
    assert text.startswith("#!/bin/sh") and BEGIN in text and text.rstrip().endswith("exit 0")


def test_public_autostart_needs_a_password(tmp_path, write_settings):
    settings = write_settings()
    proc = run_app(
        "install-autostart", "--root", str(tmp_path), "--settings", str(settings), "--public-host"
    )
    assert proc.returncode == 4 and "set-password" in proc.stderr
    assert not (tmp_path / "etc").exists()


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_unit_passes_systemd_analyze_verify(tmp_path, write_settings):
    settings = write_settings()
    run_app("install-autostart", "--root", str(tmp_path), "--settings", str(settings))
    unit = tmp_path / "etc/systemd/system/sd-watchdog.service"
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and "sd-watchdog" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("user", ["nosuchuser-sdw", ""])
def test_an_unknown_or_empty_user_is_refused(tmp_path, write_settings, user):
    settings = write_settings()
    for kind in ((), ("--rc-local",)):
        proc = run_app(
            "install-autostart", *kind, "--root", str(tmp_path), "--settings", str(settings),
            "--user", user,
        )  # fmt: skip
        assert proc.returncode == 2 and "no such user" in proc.stderr
    assert not (tmp_path / "etc").exists()


def test_exec_start_is_quoted_the_systemd_way():
    assert systemd_quote("/opt/sd watchdog/app.py") == '"/opt/sd watchdog/app.py"'
    assert systemd_quote("50%") == "50%%" and systemd_quote("$HOME") == "$$HOME"
    assert systemd_quote('a"b') == '"a\\"b"'


def test_the_rc_local_block_starts_the_watchdog_from_a_fresh_clone(tmp_path, write_settings):
    """rc.local runs its block with sh as root at boot: here, the block alone, on
    settings whose logs folder does not exist yet."""
    settings = write_settings()
    logs = settings.parent / "logs"
    assert not logs.exists()
    args = ("install-autostart", "--rc-local", "--root", str(tmp_path), "--settings", str(settings))
    assert run_app(*args).returncode == 0
    text = (tmp_path / "etc/rc.local").read_text()
    block = text[text.index(BEGIN) : text.index(END)]
    subprocess.run(["sh", "-c", block], check=True, timeout=30)
    try:
        wait_journal(logs, "watchdog_start", timeout=30)
        assert (logs / "watchdog.out").exists()
    finally:
        pids = [int(p) for p in subprocess.run(
            ["pgrep", "-f", f"app.py --settings {settings}"], capture_output=True, text=True
        ).stdout.split()]  # fmt: skip
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
