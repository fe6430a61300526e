"""Exit → respawn gap and hang → restart time of the supervisor, on the demo framework.

    .venv/bin/python bench/respawn.py [--reps 20] [--hang-reps 3]

Prints a markdown table. Times:

- the kill -9 rows twice: plain, and with a notification for every crash going to a
  service that accepts the connection and never answers (Apprise waits out its read
  timeout on the notify thread; supervision must not notice);

- kill -9 → new pid: from the kill to the moment a new framework process exists
  (polled in /proc every 0.2 ms, independent of our own journal);
- exit → spawn (journal): the ``exit`` and ``spawn`` event timestamps of that restart;
- kill -9 → serving: until the new process answers ``/internal/ping``;
- SIGSTOP → restarted: until a new process is RUNNING, with the probe settings shown.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from watchdog.runtime.service import Service
from watchdog.runtime.supervisor import State
from watchdog.settings import load_settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ts(event: dict) -> float:
    return datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()


def leader_pid_of_port_child(old: int, deadline: float) -> float:
    """Poll /proc until a process whose cmdline runs demo_app.py, other than ``old``, exists."""
    while time.monotonic() < deadline:
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != old:
                try:
                    cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
                except OSError:
                    continue
                if b"demo_app.py" in cmd:
                    return time.perf_counter()
        time.sleep(0.0002)
    raise TimeoutError("no new process")


def make(tmp: Path, watch: dict, notify: dict | None = None) -> Service:
    path = tmp / "settings.json"
    path.write_text(
        json.dumps(
            {
                "frameworks": {"demo": {"preset": "demo", "port": free_port()}},
                # Killing it 20 times a minute is a crash loop; let the bench do it.
                "watch": {"stable_uptime_s": 0.2, "max_restarts": 1000, **watch},
                "logs": {"dir": "logs"},
                **({"notify": notify} if notify else {}),
            }
        )
    )
    service = Service(load_settings(path))
    service.start()
    return service


def never_answering() -> socket.socket:
    """A listening socket nobody accepts from: connections complete, answers never come."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1000)
    return s


def ms(values: list[float]) -> str:
    lo, mid, hi = (v * 1000 for v in (min(values), statistics.median(values), max(values)))
    return f"{mid:.1f} ms (min {lo:.1f}, max {hi:.1f})"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--hang-reps", type=int, default=3)
    args = p.parse_args()

    plain = kill_rows(args.reps)
    dead = never_answering()
    notify = {"urls": [f"json://127.0.0.1:{dead.getsockname()[1]}/hook"], "min_interval_s": 0}
    hanging = kill_rows(args.reps, notify)
    dead.close()

    watch = {"health_interval_s": 1, "health_timeout_s": 1, "failure_threshold": 3}
    with tempfile.TemporaryDirectory() as tmp:
        service = make(Path(tmp), watch)
        sup = service.supervisor
        hang = []
        try:
            for _ in range(args.hang_reps):
                st = sup.wait_for(lambda s: s.state is State.RUNNING, 30)
                t0 = time.perf_counter()
                os.kill(st.pid, signal.SIGSTOP)
                sup.wait_for(lambda s, old=st.pid: s.state is State.RUNNING and s.pid != old, 60)
                hang.append(time.perf_counter() - t0)
        finally:
            service.stop()

    print(f"| measure (demo framework, {args.reps} reps) | median (min, max) |")
    print("| --- | --- |")
    for label, rows in (("", plain), (", every crash notified to a dead service", hanging)):
        new_pid, journal_gap, serving = rows
        print(f"| kill -9 → new process exists (/proc poll){label} | {ms(new_pid)} |")
        print(f"| exit → spawn, journal timestamps{label} | {ms(journal_gap)} |")
        print(f"| kill -9 → serving HTTP again{label} | {ms(serving)} |")
    print(
        f"| SIGSTOP → restarted and RUNNING ({args.hang_reps} reps; interval 1 s,"
        f" timeout 1 s, threshold 3) | {statistics.median(hang):.2f} s"
        f" (min {min(hang):.2f}, max {max(hang):.2f}) |"
    )


def kill_rows(reps: int, notify: dict | None = None) -> tuple[list[float], ...]:
    """kill -9 of a stable run, ``reps`` times: new pid, journal gap, serving again."""
    with tempfile.TemporaryDirectory() as tmp:
        service = make(Path(tmp), {}, notify)
        sup = service.supervisor
        new_pid, journal_gap, serving = [], [], []
        try:
            for _ in range(reps):
                st = sup.wait_for(lambda s: s.state is State.RUNNING, 30)
                time.sleep(0.3)  # a stable run
                t0 = time.perf_counter()
                os.kill(st.pid, signal.SIGKILL)
                new_pid.append(leader_pid_of_port_child(st.pid, time.monotonic() + 10) - t0)
                nxt = sup.wait_for(lambda s, old=st.pid: s.pid not in (None, old), 10)
                url = f"{st.url}/internal/ping"
                while True:
                    try:
                        requests.get(url, timeout=0.5)
                        break
                    except requests.RequestException:
                        time.sleep(0.001)
                serving.append(time.perf_counter() - t0)
                evs = list(reversed(sup.events.tail(20)))
                exit_ev = next(e for e in evs if e["event"] == "exit" and e["pid"] == st.pid)
                spawn_ev = next(e for e in evs if e["event"] == "spawn" and e["pid"] == nxt.pid)
                journal_gap.append(ts(spawn_ev) - ts(exit_ev))
        finally:
            service.stop()
    return new_pid, journal_gap, serving


if __name__ == "__main__":
    main()
