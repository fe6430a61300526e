"""Never stuck, never undone: the watchdog killed mid-way, leftovers, escapees, failures.

Real processes throughout: ``app.py`` as a user runs it (kill -9 is real), the demo
server with its fault modes, and the in-process supervisor where a seam is needed.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import (
    demo,
    demo_servers,
    free_port,
    journal,
    pid_alive,
    pid_in_log,
    running,
    wait_journal,
)

from watchdog.core.states import State
from watchdog.runtime import proctree


def since_boot(logs: Path, boot: int) -> list[dict]:
    """The journal from the ``boot``-th watchdog_start on (1: the first); [] before."""
    events = journal(logs)
    starts = [i for i, e in enumerate(events) if e["event"] == "watchdog_start"]
    return events[starts[boot - 1] :] if len(starts) >= boot else []


def last_state(events: list[dict]) -> str | None:
    states = [e["state"] for e in events if "state" in e]
    return states[-1] if states else None


def settle(logs: Path, boot: int, state: str, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = since_boot(logs, boot)
        if last_state(events) == state:
            return events
        time.sleep(0.1)
    raise AssertionError(f"never {state}; journal since boot {boot}: {since_boot(logs, boot)}")


# -- the watchdog killed while it was doing what a person asked -----------------------


def test_stop_interrupted_by_kill9_of_the_watchdog_ends_stopped(write_settings, app):
    # A framework that takes 4 s to exit after SIGTERM; the watchdog dies meanwhile.
    settings = write_settings(
        frameworks={"demo": demo(None, "--term-delay", "4")}, watch={"stop_timeout_s": 10}
    )
    first = app(settings, free_port())
    first.wait_page()
    pid = wait_journal(first.logs, "ready")[0]["pid"]
    assert '"STOPPING"' in first.call("stop", False)
    wait_journal(first.logs, "stopping")
    first.kill9()
    assert pid_alive(pid), "still exiting when the watchdog died"

    app(settings)
    events = settle(first.logs, 2, "STOPPED")
    assert [e["pid"] for e in events if e["event"] == "adopt"] == [pid]
    time.sleep(6)  # well past the framework's own exit
    assert not pid_alive(pid)
    after = since_boot(first.logs, 2)
    assert not [e for e in after if e["event"] == "spawn"], "the person's Stop stays a stop"
    assert not [e for e in after if e["event"] == "crash"]
    assert last_state(after) == "STOPPED" and demo_servers() == []


def test_switch_interrupted_by_kill9_of_the_watchdog_ends_on_the_new_framework(write_settings, app):
    settings = write_settings(
        frameworks={"a": demo(None, "--term-delay", "4"), "b": demo()},
        watch={"stop_timeout_s": 10},
    )
    first = app(settings, free_port())
    first.wait_page()
    old = wait_journal(first.logs, "ready")[0]["pid"]
    first.call("switch", "b", False)
    wait_journal(first.logs, "stopping")
    first.kill9()

    app(settings)
    events = settle(first.logs, 2, "RUNNING", timeout=40)
    ready = [e for e in events if e["event"] == "ready"][-1]
    assert ready["framework"] == "b"
    assert not pid_alive(old)
    assert demo_servers() == [ready["pid"]], "only the new framework is alive"
    state = json.loads((first.logs / "state.json").read_text())
    assert state["wanted"] == {
        "framework": "b",
        "should_run": True,
        "restart_run": None,
        "sleeping": False,
    }


# -- leftovers of earlier runs are cleaned before anything is spawned -----------------


def test_orphaned_server_of_a_killed_launcher_is_cleaned_then_running(write_settings, app):
    port = free_port()
    settings = write_settings(frameworks={"webui": demo(port, "--launcher")})
    first = app(settings)
    launcher = wait_journal(first.logs, "ready")[0]["pid"]
    server = pid_in_log(Path(wait_journal(first.logs, "spawn")[-1]["stdout"]), r"demo: pid (\d+) ")
    first.kill9()
    os.kill(launcher, signal.SIGKILL)  # webui.sh gone; its Python child keeps the port
    time.sleep(0.3)
    assert pid_alive(server)

    app(settings)
    events = settle(first.logs, 2, "RUNNING")
    skipped = [e for e in events if e["event"] == "adopt_skipped"]
    assert skipped and skipped[0]["pid"] == launcher
    cleanup = next(e for e in events if e["event"] == "cleanup")
    assert server in cleanup["pids"] and not cleanup.get("remaining")
    assert not [e for e in events if e["event"] == "port_busy"]
    assert not pid_alive(server)
    assert len(demo_servers()) == 2  # the new launcher and its server, nothing else


def test_run_of_a_framework_removed_from_settings_is_cleaned(write_settings, app, tmp_path):
    settings = write_settings(frameworks={"old": demo()})
    first = app(settings)
    old = wait_journal(first.logs, "ready")[0]["pid"]
    first.kill9()
    data = json.loads(settings.read_text())
    data["frameworks"] = {"new": demo()}
    data["default_framework"] = "new"
    settings.write_text(json.dumps(data))

    app(settings)
    events = settle(first.logs, 2, "RUNNING")
    assert [e["reason"] for e in events if e["event"] == "adopt_skipped"] == [
        "framework no longer in settings"
    ]
    assert old in next(e for e in events if e["event"] == "cleanup")["pids"]
    assert not pid_alive(old)
    ready = [e for e in events if e["event"] == "ready"][-1]
    assert ready["framework"] == "new" and demo_servers() == [ready["pid"]]


# -- escapees and failures in the supervisor's own workers ----------------------------


@pytest.fixture
def subreaper() -> Iterator[None]:
    """This test process as a child subreaper, the way app.py runs (undone after)."""
    from watchdog.runtime import reaper

    if not reaper.become_subreaper():
        pytest.skip("prctl(PR_SET_CHILD_SUBREAPER) is not available here")
    try:
        yield
    finally:
        reaper.stop_being_subreaper()


def test_double_forked_env_cleared_renamed_escapee_is_gone_after_stop(
    make_settings, supervise, subreaper
):
    port = free_port()
    sup = supervise(make_settings(frameworks={"demo": demo(port, "--ghost")}))
    sup.wait_for(running, timeout=10)
    stdout = Path(wait_journal(sup.settings.logs_dir, "spawn")[0]["stdout"])
    ghost = pid_in_log(stdout, r"demo: ghost pid (\d+)")
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{ghost}/comm").read_text().strip() != "sdw-ghost":
            assert time.monotonic() < deadline, "the ghost never renamed itself"
            time.sleep(0.05)
        assert Path(f"/proc/{ghost}/environ").read_bytes() == b"", "no run marker to find"
        info = proctree.stat(ghost)
        assert info is not None and info.ppid == os.getpid(), "re-parented to us"
        sup.stop()
        status = sup.wait_for(lambda s: s.state is State.STOPPED, timeout=20)
        assert not pid_alive(ghost)
        assert not Path(f"/proc/{ghost}").exists(), "and reaped, no zombie left"
        stop = wait_journal(sup.settings.logs_dir, "stop")[-1]
        assert stop["port_free"] is True and ghost in (stop["swept"] or [])
        assert status.state is State.STOPPED
    finally:
        if pid_alive(ghost):
            os.kill(ghost, signal.SIGKILL)


def _emfile() -> list[int]:
    raise OSError(errno.EMFILE, "Too many open files")


def test_exception_in_a_teardown_ends_in_a_state_and_supervision_goes_on(
    make_settings, supervise, monkeypatch
):
    sup = supervise(make_settings(frameworks={"demo": demo()}))
    first = sup.wait_for(running, timeout=10)
    # The narrowest seam: the /proc listing every tree scan starts with.
    monkeypatch.setattr(proctree, "list_pids", _emfile)
    sup.stop()
    fatal = sup.wait_for(lambda s: s.state is not State.STOPPING, timeout=20)
    assert fatal.state is State.FATAL and "Too many open files" in (fatal.reason or "")
    failed = wait_journal(sup.settings.logs_dir, "teardown_failed")[0]
    assert failed["pid"] == first.pid and "Too many open files" in failed["error"]
    monkeypatch.undo()

    # A start sweeps what the failed stop left (the old server), then runs again.
    sup.start()
    second = sup.wait_for(lambda s: running(s) and s.pid != first.pid, timeout=20)
    assert not pid_alive(first.pid)
    assert first.pid in wait_journal(sup.settings.logs_dir, "cleanup")[-1]["pids"]
    # And a later kill -9 is restarted as ever.
    time.sleep(0.6)
    os.kill(second.pid, signal.SIGKILL)
    sup.wait_for(lambda s: running(s) and s.pid not in (first.pid, second.pid), timeout=20)


def test_a_passing_failure_in_a_teardown_is_tried_again(make_settings, supervise, monkeypatch):
    sup = supervise(make_settings(frameworks={"demo": demo()}))
    first = sup.wait_for(running, timeout=10)
    real = proctree.list_pids
    calls = {"n": 0}

    def once() -> list[int]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(errno.EMFILE, "Too many open files")
        return real()

    monkeypatch.setattr(proctree, "list_pids", once)
    sup.stop()
    status = sup.wait_for(lambda s: s.state is not State.STOPPING, timeout=20)
    assert status.state is State.STOPPED and not pid_alive(first.pid)
    assert not [e for e in journal(sup.settings.logs_dir) if e["event"] == "teardown_failed"]


def test_a_prober_that_breaks_is_seen_as_a_hang_not_silence(make_settings, supervise, monkeypatch):
    from watchdog.runtime import probes

    sup = supervise(make_settings(frameworks={"demo": demo()}))
    first = sup.wait_for(running, timeout=10)

    def broken(*_args: object, **_kw: object) -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(probes, "http_probe", broken)
    hang = wait_journal(sup.settings.logs_dir, "hang", timeout=20)[0]
    assert hang["pid"] == first.pid and "prober failed: RuntimeError" in hang["reason"]
    monkeypatch.undo()
    sup.wait_for(lambda s: running(s) and s.pid != first.pid, timeout=20)
