"""The front's memory under API calls: RSS at the start and after N calls of each kind.

    .venv/bin/python bench/front.py --calls 2000

One watchdog (core + front, demo framework); the front's RSS is read from
``/proc/<pid>/statm`` after a warm-up of 50 calls, then every 500 calls. Kinds:
plain Gradio calls (``POST /gradio_api/call/status`` + its result stream: a new
Gradio session each), ``gradio_client`` (one client, one session), REST
``GET /api/v1/status``. Goal: within 20 MB of the start after 2,000 calls.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests
from compare import free_port, front_pid, wait, watchdog

from watchdog.runtime.front import rss_mb

WARM_UP = 50


def gradio_plain(base: str) -> Callable[[], object]:
    session = requests.Session()

    def call() -> object:
        r = session.post(base + "gradio_api/call/status", json={"data": []}, timeout=30)
        event = r.json()["event_id"]
        return session.get(base + f"gradio_api/call/status/{event}", timeout=30).text

    return call


def gradio_client(base: str) -> Callable[[], object]:
    from gradio_client import Client

    client = Client(base, verbose=False)
    return lambda: client.predict(api_name="/status")


def rest(base: str) -> Callable[[], object]:
    session = requests.Session()
    return lambda: session.get(base + "api/v1/status", timeout=30).json()


KINDS = {"plain Gradio call": gradio_plain, "gradio_client": gradio_client, "REST": rest}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--calls", type=int, default=2000)
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="sdw-bench-") as t:
        tmp = Path(t)
        for kind, make in KINDS.items():
            demo = {"demo": {"preset": "demo", "port": free_port()}}
            with watchdog(tmp, demo, server=True) as wd:
                front = front_pid(wd["logs"])
                wait(lambda: requests.get(wd["url"] + "info", timeout=5).ok, 60, 0.1)
                call = make(wd["url"])
                for _ in range(WARM_UP):
                    call()
                start = rss_mb(front) or 0.0
                marks, began = [], time.perf_counter()
                for i in range(1, args.calls + 1):
                    call()
                    if i % 500 == 0 or i == args.calls:
                        marks.append(f"{i}: {(rss_mb(front) or 0.0) - start:+.1f}")
                per_call = (time.perf_counter() - began) / args.calls * 1000
                end = rss_mb(front) or 0.0
                rows.append((kind, start, end, per_call, ", ".join(marks)))
                print(f"{kind}: {start:.0f} → {end:.0f} MB", file=sys.stderr, flush=True)
    print(f"\nfront RSS after {args.calls} API calls (MB)\n")
    print("| calls of | RSS at start | RSS after | growth | per call | growth by calls |")
    print("| --- | --- | --- | --- | --- | --- |")
    for kind, start, end, per_call, marks in rows:
        print(
            f"| {kind} | {start:.1f} | {end:.1f} | {end - start:+.1f} | {per_call:.1f} ms"
            f" | {marks} |"
        )


if __name__ == "__main__":
    main()
