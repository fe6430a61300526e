"""Load: 50 clients for 60 s while the framework is killed every 10 s.

Zero client errors; every kill seen and the framework respawned within a bound; the
control thread's reaction (kill → crash event) measured under load; the watchdog's
CPU and RSS reported. ``SDW_LOAD_SECONDS`` shortens it for a quick local run.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
import requests
from conftest import ROOT, demo, free_port
from gradio_client import Client

DURATION = float(os.environ.get("SDW_LOAD_SECONDS", "60"))
KILL_EVERY = 10.0


def journal(logs: Path) -> list[dict]:
    try:
        return [json.loads(x) for x in (logs / "events.jsonl").read_text().splitlines() if x]
    except (FileNotFoundError, ValueError):
        return []


def ts(event: dict) -> float:
    return datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()


def cpu_rss(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return cpu, rss


@pytest.mark.slow
@pytest.mark.timeout(DURATION + 240)
def test_fifty_clients_while_the_framework_is_killed(write_settings):
    settings = write_settings(
        frameworks={"demo": demo(None, "--spam-rate", "20")},
        watch={
            "health_interval_s": 1,
            "health_timeout_s": 1,
            "stable_uptime_s": 2,
            "max_restarts": 1000,
        },
        metrics={"interval_s": 2},
    )
    logs = settings.parent / "logs"
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    watchdog = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "--settings", str(settings), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stop = threading.Event()
    errors: list[str] = []
    counts = {"info": 0, "client": 0, "page": 0}
    lock = threading.Lock()

    def fail(what: str) -> None:
        with lock:
            errors.append(what)

    def bump(kind: str) -> None:
        with lock:
            counts[kind] += 1

    def info_client() -> None:
        session = requests.Session()
        while not stop.is_set():
            try:
                r = session.get(base + "info", timeout=10)
                r.raise_for_status()
                r.json()["state"]
                bump("info")
            except Exception as exc:
                fail(f"info: {exc!r}")
            stop.wait(0.1)

    def gradio_client() -> None:
        try:
            client = Client(base, verbose=False)
        except Exception as exc:
            fail(f"client connect: {exc!r}")
            return
        n = 0
        while not stop.is_set():
            try:
                if n % 2:
                    client.predict("stdout", 50, api_name="/logs")
                else:
                    assert client.predict(api_name="/status")["framework"] == "demo"
                bump("client")
            except Exception as exc:
                fail(f"gradio_client: {exc!r}")
            n += 1
            stop.wait(0.2)

    def page_client() -> None:
        # What an open page costs each second: status, a log tail, the journal.
        session = requests.Session()
        try:
            session.get(base, timeout=10).raise_for_status()
        except Exception as exc:
            fail(f"page: {exc!r}")
        while not stop.is_set():
            try:
                session.get(base + "info", timeout=10).raise_for_status()
                session.get(
                    base + "read-current-stdout-log", params={"lines": 200}, timeout=10
                ).raise_for_status()
                r = session.post(
                    base + "gradio_api/call/events", json={"data": [50, None]}, timeout=10
                )
                r.raise_for_status()
                done = session.get(
                    base + f"gradio_api/call/events/{r.json()['event_id']}", timeout=10
                ).text
                assert "event: complete" in done, done[:200]
                bump("page")
            except Exception as exc:
                fail(f"page: {exc!r}")
            stop.wait(1.0)

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(base + "info", timeout=2).json()["state"] == "RUNNING":
                    break
            except (requests.RequestException, ValueError, KeyError):
                pass
            assert time.monotonic() < deadline, "the watchdog never came up"
            time.sleep(0.2)
        cpu0, _ = cpu_rss(watchdog.pid)
        workers = (
            [threading.Thread(target=info_client) for _ in range(20)]
            + [threading.Thread(target=gradio_client) for _ in range(10)]
            + [threading.Thread(target=page_client) for _ in range(20)]
        )
        for w in workers:
            w.start()
        kills: list[tuple[int, float]] = []
        t_end = time.monotonic() + DURATION
        next_kill = time.monotonic() + KILL_EVERY / 2
        peak_rss = 0.0
        while time.monotonic() < t_end:
            time.sleep(0.25)
            peak_rss = max(peak_rss, cpu_rss(watchdog.pid)[1])
            if time.monotonic() >= next_kill:
                next_kill += KILL_EVERY
                pid = requests.get(base + "info", timeout=5).json()["pid"]
                if pid:
                    os.kill(pid, signal.SIGKILL)
                    kills.append((pid, time.time()))
        stop.set()
        for w in workers:
            w.join(30)
        cpu1, rss = cpu_rss(watchdog.pid)
        time.sleep(2)  # the last respawn
        events = journal(logs)
    finally:
        stop.set()
        watchdog.send_signal(signal.SIGTERM)
        watchdog.wait(60)

    reactions, respawns = [], []
    for pid, killed_at in kills:
        crash = next(e for e in events if e["event"] == "crash" and e["pid"] == pid)
        spawn = next(e for e in events if e["event"] == "spawn" and ts(e) >= ts(crash))
        reactions.append(ts(crash) - killed_at)
        respawns.append(ts(spawn) - killed_at)
    cpu_pct = 100 * (cpu1 - cpu0) / DURATION
    print(
        f"\nload: {sum(counts.values())} requests ({counts}), {len(errors)} errors,"
        f" {len(kills)} kills; kill→crash event median {statistics.median(reactions) * 1000:.0f}"
        f" ms max {max(reactions) * 1000:.0f} ms; kill→spawn max {max(respawns) * 1000:.0f} ms;"
        f" watchdog CPU {cpu_pct:.0f}% of a core, RSS {rss:.0f} MB (peak {peak_rss:.0f})"
    )
    assert not errors, errors[:5]
    assert len(kills) >= int(DURATION // KILL_EVERY)
    assert max(reactions) < 2.0, reactions  # seen at once, even under load
    assert max(respawns) < 5.0, respawns
    assert counts["info"] > 100 and counts["client"] > 20 and counts["page"] > 20
