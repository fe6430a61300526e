"""The supervisor against real demo processes: start, crash, hang, stop, switch."""

from __future__ import annotations

import os
import random
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
import requests
from conftest import (
    STATUS_KEYS,
    demo,
    demo_servers,
    events,
    free_port,
    pid_alive,
    pid_in_log,
    running,
    ts,
    wait_event,
)

from watchdog.core.errors import NotInstalled, UnknownFramework
from watchdog.core.states import State


def test_start_becomes_running_on_ready_line(make_settings, supervise):
    port = free_port()
    sup = supervise(make_settings(frameworks={"demo": demo(port)}))
    status = sup.wait_for(running, timeout=10)
    assert status.pid and pid_alive(status.pid)
    assert status.url == f"http://127.0.0.1:{port}"
    assert status.healthy and status.is_running
    ready = wait_event(sup, "ready", 1)[-1]
    assert ready["via"] == "ready line" and ready["pid"] == status.pid
    spawn = events(sup, "spawn")[-1]
    assert spawn["run_id"] == ready["run_id"] == status.run_id
    assert spawn["requested_by"] == "boot"
    assert requests.get(f"{status.url}/internal/ping", timeout=2).json() == {}
    info = status.to_dict()
    assert info.keys() >= STATUS_KEYS and info["command"] == info["APP_CMD"]
    assert info["frameworks"] == ["demo"] and info["state"] == "RUNNING"


def test_running_by_health_url_without_ready_line(make_settings, supervise):
    sup = supervise(make_settings(frameworks={"quiet": demo(None, "--no-ready-line")}))
    sup.wait_for(running, timeout=10)
    assert wait_event(sup, "ready", 1)[-1]["via"] == "health URL"


def test_kill9_after_stable_run_respawns_within_milliseconds(make_settings, supervise):
    sup = supervise(make_settings(frameworks={"demo": demo()}))
    first = sup.wait_for(running, timeout=10)
    time.sleep(0.6)  # longer than stable_uptime_s: this run counts as stable
    os.kill(first.pid, signal.SIGKILL)
    second = sup.wait_for(lambda s: running(s) and s.pid != first.pid, timeout=10)
    assert not pid_alive(first.pid)
    crash = wait_event(sup, "crash", 1)[-1]
    assert crash["signal"] == "SIGKILL" and crash["pid"] == first.pid
    assert crash["cause"] == "killed by SIGKILL from outside the watchdog"  # not "memory"
    exit_ev = [e for e in events(sup, "exit") if e["pid"] == first.pid][-1]
    respawn = [e for e in events(sup, "spawn") if e["pid"] == second.pid][-1]
    gap = ts(respawn) - ts(exit_ev)
    assert gap < 0.5, f"exit→spawn gap {gap * 1000:.0f} ms"  # measured: a few ms
    assert respawn["requested_by"] == "watch" and second.restarts == 1
    assert [e["delay_s"] for e in events(sup, "backoff")] == [0], "no waiting after a stable run"
    assert second.last_exit is not None and second.last_exit.signal == "SIGKILL"


def test_sigstop_is_a_hang_and_restarts(make_settings, supervise):
    sup = supervise(make_settings(frameworks={"demo": demo()}))
    first = sup.wait_for(running, timeout=10)
    t0 = time.monotonic()
    os.kill(first.pid, signal.SIGSTOP)
    try:
        hang = wait_event(sup, "hang", 10)[-1]
        took = time.monotonic() - t0
        second = sup.wait_for(lambda s: running(s) and s.pid != first.pid, timeout=10)
    finally:
        if pid_alive(first.pid):
            os.kill(first.pid, signal.SIGCONT)
    # threshold 3 x (interval 0.2 + timeout 0.3) plus slack; never "instantly"
    assert 0.5 <= took < 5, took
    assert hang["pid"] == first.pid and hang["failures"] == 3
    assert "no answer within" in hang["reason"]
    assert not pid_alive(first.pid)
    assert events(sup, "unhealthy")[-1]["pid"] == first.pid
    assert second.pid != first.pid


def test_launcher_and_escaped_grandchild_leave_nothing_after_stop(make_settings, supervise):
    sup = supervise(make_settings(frameworks={"webui": demo(None, "--launcher", "--escape")}))
    status = sup.wait_for(running, timeout=10)
    run_log = Path(events(sup, "spawn")[-1]["stdout"])
    server = pid_in_log(run_log, r"demo: pid (\d+) loading")
    escapee = pid_in_log(run_log, r"escaped grandchild pid (\d+)")
    launcher = status.pid
    assert len({launcher, server, escapee}) == 3
    assert os.getsid(escapee) != os.getsid(server)  # it really left the session
    assert all(pid_alive(p) for p in (launcher, server, escapee))
    sup.stop()
    sup.wait_for(lambda s: s.state is State.STOPPED, timeout=15)
    assert not any(pid_alive(p) for p in (launcher, server, escapee))
    stop = wait_event(sup, "stop", 1)[-1]
    assert escapee in stop["swept"] and "remaining" not in stop


def test_ignore_sigterm_is_killed_after_stop_timeout(make_settings, supervise):
    sup = supervise(
        make_settings(
            frameworks={"stubborn": demo(None, "--ignore-sigterm")}, watch={"stop_timeout_s": 1}
        )
    )
    status = sup.wait_for(running, timeout=10)
    t0 = time.monotonic()
    sup.stop()
    sup.wait_for(lambda s: s.state is State.STOPPED, timeout=15)
    took = time.monotonic() - t0
    assert 1.0 <= took < 6, took
    assert not pid_alive(status.pid)
    stop = wait_event(sup, "stop", 1)[-1]
    assert stop["forced"] is True and stop["signal"] == "SIGTERM"
    exit_ev = [e for e in events(sup, "exit") if e["pid"] == status.pid][-1]
    assert exit_ev["signal"] == "SIGKILL" and exit_ev["requested_by"] == "api"


def test_crash_loop_backs_off_then_fatal_then_start_recovers(make_settings, supervise):
    sup = supervise(
        make_settings(
            frameworks={"flaky": demo(None, "--crash-after", "0.05", "--exit-code", "3")},
            watch={"max_restarts": 3, "backoff_initial_s": 0.1, "backoff_max_s": 5},
        )
    )
    fatal = sup.wait_for(lambda s: s.state is State.FATAL, timeout=20)
    backoffs = events(sup, "backoff")
    delays = [e["delay_s"] for e in backoffs]
    assert delays == sorted(delays) and len(delays) == 3 and delays[0] < delays[-1], delays
    assert delays == [0.1, 0.2, 0.4]
    crashes = events(sup, "crash")
    assert len(crashes) == 4 and all(c["exit_code"] == 3 for c in crashes)
    assert any("RuntimeError: demo crash" in line for line in crashes[-1]["last_stderr"])
    fatal_ev = wait_event(sup, "fatal", 1)[-1]
    assert "max_restarts=3" in fatal_ev["reason"] and "exited with code 3" in fatal_ev["reason"]
    assert any("RuntimeError" in line for line in fatal_ev["last_stderr"])
    assert "max_restarts=3" in fatal.reason and fatal.last_stderr
    assert fatal.pid is None and not fatal.is_running
    time.sleep(0.5)
    assert len(events(sup, "spawn")) == 4  # FATAL really stops trying

    again = sup.start(requested_by="ui")
    assert again.state is not State.FATAL
    spawn = wait_event(sup, "spawn", 5, count=5)[-1]
    assert spawn["requested_by"] == "ui"


def test_startup_timeout_is_a_failed_start(make_settings, supervise):
    sup = supervise(
        make_settings(
            frameworks={"slow": demo(None, "--startup-delay", "30", "--no-ready-line")},
            watch={"startup_timeout_s": 0.7, "max_restarts": 1},
        )
    )
    first_pid = sup.status().pid
    ev = wait_event(sup, "startup_timeout", 10)[0]
    assert ev["pid"] == first_pid and "startup_timeout_s=0.7" in ev["reason"]
    assert any("loading model weights" in line for line in ev["last_stdout"])
    sup.wait_for(lambda s: s.state is State.FATAL, timeout=15)
    assert not pid_alive(first_pid)
    assert len(events(sup, "startup_timeout")) == 2


def test_switch_stops_whole_old_tree_and_frees_port_before_spawning(make_settings, supervise):
    port = free_port()
    # Same port for both: B can only start once A has really let go of it.
    sup = supervise(
        make_settings(
            frameworks={"a": demo(port, "--launcher"), "b": demo(port)},
            default="a",
        )
    )
    a = sup.wait_for(running, timeout=10)
    a_server = pid_in_log(Path(events(sup, "spawn")[-1]["stdout"]), r"demo: pid (\d+) loading")
    status = sup.switch("b", requested_by="api")
    assert status.framework == "b"
    b = sup.wait_for(lambda s: running(s) and s.framework == "b", timeout=15)
    assert not pid_alive(a.pid) and not pid_alive(a_server)
    journal = events(sup)
    kinds = [(e["event"], e.get("framework")) for e in journal]
    i_switch = kinds.index(("switch", "b"))
    i_stop = kinds.index(("stop", "a"))
    i_spawn = kinds.index(("spawn", "b"))
    assert i_switch < i_stop < i_spawn
    stop = journal[i_stop]
    assert stop["port_free"] is True and stop["requested_by"] == "api"
    assert journal[i_spawn]["pid"] == b.pid
    assert b.url == f"http://127.0.0.1:{port}"


def test_concurrent_commands_are_serialized(make_settings, supervise):
    names = ["a", "b", "c"]
    sup = supervise(make_settings(frameworks={n: demo() for n in names}))
    sup.wait_for(running, timeout=10)

    alive_max = 0
    watching = threading.Event()

    def count_servers() -> None:
        nonlocal alive_max
        while not watching.is_set():
            alive_max = max(alive_max, len(demo_servers()))
            time.sleep(0.005)

    monitor = threading.Thread(target=count_servers)
    monitor.start()
    results: list[tuple[int, str, str | None, str | None]] = []
    lock = threading.Lock()
    rng = random.Random(7)
    plan = [(rng.choice(["start", "stop", "switch"]), rng.choice(names)) for _ in range(20)]

    def call(kind: str, name: str) -> None:
        if kind == "stop":
            st = sup.stop()
        elif kind == "start":
            st = sup.start(name)
        else:
            st = sup.switch(name)
        with lock:
            results.append((st.seq, kind, name, st.note))

    threads = [threading.Thread(target=call, args=p) for p in plan]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 20, "every command was answered"
    # A command that changed nothing ("already stopped") is answered with a note and
    # takes no place of its own; every other one does.
    changed = [r for r in results if r[3] is None]
    seqs = [r[0] for r in changed]
    assert len(set(seqs)) == len(seqs), "each command got its own place in the order"
    last_kind, last_name = max(changed)[1:3]
    if last_kind == "stop":
        final = sup.wait_for(lambda s: s.state is State.STOPPED, timeout=30)
    else:
        final = sup.wait_for(lambda s: running(s) and s.framework == last_name, timeout=30)
        assert final.framework == last_name
    time.sleep(0.3)
    watching.set()
    monitor.join()
    assert alive_max <= 1, f"{alive_max} frameworks were alive at once"


def test_choice_survives_watchdog_restart(make_settings, supervise):
    settings = make_settings(frameworks={"a": demo(), "b": demo()}, default="a")
    first = supervise(settings)
    first.wait_for(running, timeout=10)
    first.switch("b")
    first.wait_for(lambda s: running(s) and s.framework == "b", timeout=10)
    first.shutdown()
    second = supervise(settings)
    status = second.wait_for(running, timeout=10)
    assert status.framework == "b"
    assert events(second, "spawn")[-1]["requested_by"] == "boot"
    second.stop()
    second.shutdown()
    third = supervise(settings)
    time.sleep(0.3)
    assert third.status().state is State.STOPPED and third.status().framework == "b"


def test_shutdown_leave_running_keeps_framework(make_settings, supervise):
    sup = supervise(make_settings(frameworks={"demo": demo()}))
    status = sup.wait_for(running, timeout=10)
    sup.shutdown(leave_running=True)
    try:
        assert pid_alive(status.pid)
        assert events(sup, "detach")[-1]["pid"] == status.pid
    finally:
        os.killpg(status.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while pid_alive(status.pid) and time.monotonic() < deadline:
            time.sleep(0.02)


def test_unknown_framework_changes_nothing(make_settings, supervise):
    sup = supervise(make_settings(frameworks={"demo": demo()}))
    before = sup.wait_for(running, timeout=10)
    with pytest.raises(UnknownFramework, match=r"unknown framework .nope.*known: demo"):
        sup.switch("nope")
    with pytest.raises(UnknownFramework, match=r"'dmeo' \(did you mean 'demo'\?\)"):
        sup.switch("dmeo")
    with pytest.raises(UnknownFramework):
        sup.start("../../etc/passwd")
    after = sup.status()
    assert after.seq == before.seq and after.pid == before.pid and running(after)


@pytest.mark.parametrize(
    ("flags", "code", "sig", "words"),
    [
        (("--exit-code", "0"), 0, None, "exited with code 0"),
        (("--crash-signal", "SIGSEGV"), None, "SIGSEGV", "killed by SIGSEGV: segfault"),
        (("--crash-signal", "SIGABRT"), None, "SIGABRT", "killed by SIGABRT: aborted"),
        (("--crash-with", "cuda-oom"), 1, None, "exited with code 1: CUDA out of memory"),
        (("--crash-with", "port-in-use"), 1, None, "exited with code 1: address already in use"),
        (
            ("--exit-code", "1"),
            1,
            None,
            "exited with code 1: Python exception: RuntimeError: demo crash requested",
        ),
    ],
)
def test_exit_causes_are_named(make_settings, supervise, flags, code, sig, words):
    sup = supervise(
        make_settings(
            frameworks={"demo": demo(None, "--crash-after", "0.3", *flags)},
            watch={"max_restarts": 1},
        )
    )
    crash = wait_event(sup, "crash", 10)[0]
    assert crash["exit_code"] == code if code is not None else "exit_code" not in crash
    assert crash.get("signal") == sig and words in crash["reason"]
    wait_event(sup, "spawn", 10, count=2)  # and it is restarted
    sup.stop()


def test_missing_command_fails_clearly_and_goes_fatal(make_settings, supervise, tmp_path):
    sup = supervise(
        make_settings(
            frameworks={
                "ghost": {"command": "/nonexistent/webui.sh", "port": free_port()},
                "nodir": {"preset": "demo", "cwd": str(tmp_path / "missing")},
            },
            watch={"max_restarts": 2, "backoff_initial_s": 0.05},
        )
    )
    status = sup.wait_for(lambda s: s.state is State.FATAL, timeout=10)
    failed = events(sup, "spawn_failed")
    assert len(failed) == 3 and "command not found: /nonexistent/webui.sh" in failed[0]["reason"]
    assert "command not found" in status.reason
    # A person asking for a framework that is not there is told at once, nothing tried.
    with pytest.raises(NotInstalled, match=r"nodir is not installed: .*missing does not exist"):
        sup.switch("nodir")
    assert sup.status().framework == "ghost" and len(events(sup, "spawn_failed")) == 3


def test_port_taken_by_stranger_is_reported(make_settings, supervise):
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()
        port = stranger.getsockname()[1]
        sup = supervise(make_settings(frameworks={"demo": demo(port)}, watch={"max_restarts": 1}))
        sup.wait_for(lambda s: s.state is State.FATAL, timeout=10)
        busy = events(sup, "port_busy")
        assert busy and busy[0]["port"] == port
        assert f"pid {os.getpid()}" in busy[0]["reason"]  # the stranger is named
        assert f"port {port} is already in use" in sup.status().reason
        assert not events(sup, "spawn")


def test_probes_ignore_proxy_settings(make_settings, supervise, monkeypatch):
    # A proxy that refuses everything: if probes used it, nothing would ever be ready.
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(var, dead_proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    sup = supervise(make_settings(frameworks={"quiet": demo(None, "--no-ready-line")}))
    sup.wait_for(running, timeout=10)
    time.sleep(0.7)  # a few liveness probes
    assert sup.status().healthy and not events(sup, "unhealthy")


def test_crashed_launcher_leaves_no_orphan_holding_the_port(make_settings, supervise):
    # webui.sh dies, its Python child lives on with the port (and the GPU): the
    # restart must first clear that orphan, or the new run can never bind.
    port = free_port()
    sup = supervise(make_settings(frameworks={"webui": demo(port, "--launcher")}))
    first = sup.wait_for(running, timeout=10)
    server = pid_in_log(Path(events(sup, "spawn")[-1]["stdout"]), r"demo: pid (\d+) loading")
    time.sleep(0.6)
    os.kill(first.pid, signal.SIGKILL)
    second = sup.wait_for(lambda s: running(s) and s.pid != first.pid, timeout=15)
    assert not pid_alive(server)
    cleanup = wait_event(sup, "cleanup", 1)[-1]
    assert cleanup["pid"] == first.pid and cleanup["reason"] == "cleanup after crash"
    assert second.url == f"http://127.0.0.1:{port}"
    assert requests.get(f"{second.url}/internal/ping", timeout=2).ok


def test_kill9_of_an_invokeai_like_framework_says_sigkill_not_module(make_settings, supervise):
    """Its first stderr line is a harmless "No module named 'kernels'"; a person's kill -9
    is what ended it, and no out-of-memory is claimed without the kernel saying so."""
    invoke = demo(
        None, "--impersonate", "invokeai", ready_pattern="Invoke running on (?P<url>\\S+)"
    )
    invoke["health_path"] = "/api/v1/app/version"
    sup = supervise(make_settings(frameworks={"invokeai": invoke}))
    first = sup.wait_for(running, timeout=10)
    stderr = first.logs.stderr.read_text() if first.logs else ""
    assert "No module named 'kernels'" in stderr
    os.kill(first.pid, signal.SIGKILL)
    crash = wait_event(sup, "crash", 5)[-1]
    assert crash["cause"] == "killed by SIGKILL from outside the watchdog"
    assert "module" not in crash["reason"] and "memory" not in crash["reason"]


def test_a_start_that_keeps_printing_is_not_timed_out(make_settings, supervise):
    """A1111's first start installs for minutes, printing as it goes: here 4 s of
    install lines against a startup_timeout_s of 1.5 s."""
    chatty = demo(None, "--startup-delay", "4", "--startup-chatter")
    silent = demo(None, "--startup-delay", "4")
    watch = {"startup_timeout_s": 1.5, "max_restarts": 1}
    sup = supervise(make_settings(frameworks={"chatty": chatty, "silent": silent}, watch=watch))
    ready = sup.wait_for(running, timeout=20)
    assert ready.framework == "chatty" and not events(sup, "startup_timeout")
    assert wait_event(sup, "ready", 1)[-1]["startup_s"] >= 4
    sup.switch("silent", requested_by="api")
    timeout = wait_event(sup, "startup_timeout", 15)[-1]
    assert timeout["framework"] == "silent"
    assert timeout["reason"].startswith("not ready within startup_timeout_s=1.5")
