"""The idle command's runner: real /bin/sh processes, their output, the time limit."""

from __future__ import annotations

import tempfile
import time

from conftest import pid_alive

from watchdog.runtime.idle_command import OUTPUT_BYTES, run_idle_command


def test_the_exit_code_and_the_last_of_the_output_are_kept():
    done = run_idle_command("head -c 1000000 /dev/zero | tr '\\0' x; echo; echo the end", {})
    assert done.exit_code == 0 and done.error is None
    assert len(done.output) <= OUTPUT_BYTES and done.output.endswith("the end")
    done = run_idle_command('echo "$SDW_FRAMEWORK" >&2; exit 7', {"SDW_FRAMEWORK": "comfyui"})
    assert (done.exit_code, done.output) == (7, "comfyui")


def test_a_command_over_its_time_limit_is_killed_with_its_whole_group(tmp_path):
    pids = tmp_path / "pids"
    began = time.monotonic()
    done = run_idle_command(f"sleep 60 & echo $! > '{pids}'; sleep 60", {}, timeout_s=1)
    assert time.monotonic() - began < 10
    assert done.exit_code is None and "still running after 1 s" in (done.error or "")
    child = int(pids.read_text())
    deadline = time.monotonic() + 5
    while pid_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(child), "the command's own children go with it"


def test_no_room_for_its_output_still_runs_it(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))  # like a full /tmp
    done = run_idle_command(f"touch '{tmp_path / 'ran'}'", {})
    assert done.exit_code == 0 and "output not kept" in done.output
    assert (tmp_path / "ran").exists()


def test_a_command_that_cannot_start_says_so():
    done = run_idle_command("true", {"PATH": ""}, timeout_s=5)
    assert done.exit_code == 0  # /bin/sh is found by path, whatever PATH says
    done = run_idle_command("no-such-program-here", {})
    assert done.exit_code == 127 and "not found" in done.output
