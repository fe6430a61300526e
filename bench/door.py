"""The door against Caddy, with the direct connection as the limit, in one run.

    .venv/bin/python bench/door.py [--reps 2000] [--mb 200]

One demo framework, reached three ways: directly on 127.0.0.1, through Caddy
(Debian's ``caddy``: ``reverse_proxy``), and through the watchdog's door (a real
``app.py`` with a password; requests carry Basic credentials, as scripts send them).
Prints a markdown table:

- added latency of a small GET, p50 and p99 over a kept-alive connection;
- a 200 MB download and upload, in GB/s;
- a WebSocket echo round trip, p50;
- kill -9 → serving again after a stable run, idle and while 50 clients stream
  (SSE) through the door.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
DEMO = ROOT / "watchdog" / "frameworks" / "demo_app.py"
USER, PASSWORD = "admin", "bench-password-1"
BASIC = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(cond: Callable[[], bool], timeout: float, step: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(step)


def get(port: int, path: str, headers: dict | None = None, timeout: float = 2) -> int:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", path, headers=headers or {})
        status = c.getresponse().status
        c.close()
        return status
    except OSError:
        return 0


@contextmanager
def watchdog(tmp: Path, demo_port: int) -> Iterator[dict]:
    settings = tmp / "settings.json"
    settings.write_text(
        json.dumps(
            {
                "frameworks": {"demo": {"preset": "demo", "port": demo_port}},
                "watch": {"stable_uptime_s": 0.5, "max_restarts": 100000},
                "logs": {"dir": str(tmp / "logs")},
            }
        )
    )
    subprocess.run(
        [PY, str(ROOT / "app.py"), "--settings", str(settings), "set-password", USER],
        input=PASSWORD + "\n",
        text=True,
        capture_output=True,
        check=True,
    )
    page, door = free_port(), free_port()
    proc = subprocess.Popen(
        [
            PY,
            str(ROOT / "app.py"),
            "--settings",
            str(settings),
            "--port",
            str(page),
            "--app-port",
            str(door),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait(lambda: get(door, "/internal/ping", BASIC) == 200, 90, 0.2)
        yield {"door": door, "page": page, "logs": tmp / "logs"}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


@contextmanager
def caddy(tmp: Path, upstream: int) -> Iterator[int | None]:
    exe = shutil.which("caddy")
    if exe is None:
        print("caddy not installed (apt-get install caddy): its column is n/a", file=sys.stderr)
        yield None
        return
    port = free_port()
    conf = tmp / "Caddyfile"
    conf.write_text(
        "{\n  admin off\n  auto_https off\n  log default {\n    output discard\n  }\n}\n"
        f"http://127.0.0.1:{port} {{\n  reverse_proxy 127.0.0.1:{upstream}\n}}\n"
    )
    env = {**os.environ, "HOME": str(tmp), "XDG_DATA_HOME": str(tmp), "XDG_CONFIG_HOME": str(tmp)}
    proc = subprocess.Popen(
        [exe, "run", "--config", str(conf), "--adapter", "caddyfile"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        wait(lambda: get(port, "/internal/ping") == 200, 30)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def latency(port: int, headers: dict, reps: int) -> list[float]:
    c = http.client.HTTPConnection("127.0.0.1", port)
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        c.request("GET", "/internal/ping", headers=headers)
        r = c.getresponse()
        r.read()
        out.append(time.perf_counter() - t0)
    c.close()
    return out


def download(port: int, headers: dict, mb: int) -> float:
    c = http.client.HTTPConnection("127.0.0.1", port)
    t0 = time.perf_counter()
    c.request("GET", f"/download?mb={mb}", headers=headers)
    r = c.getresponse()
    got = 0
    while chunk := r.read(1 << 20):
        got += len(chunk)
    assert got == mb << 20, got
    c.close()
    return got / (time.perf_counter() - t0) / 1e9


def upload(port: int, headers: dict, mb: int) -> float:
    block = os.urandom(1 << 20)
    c = http.client.HTTPConnection("127.0.0.1", port)
    t0 = time.perf_counter()
    c.putrequest("POST", "/upload")
    for k, v in {**headers, "Content-Length": str(mb << 20)}.items():
        c.putheader(k, v)
    c.endheaders()
    for _ in range(mb):
        c.send(block)
    body = json.loads(c.getresponse().read())
    assert body["size"] == mb << 20, body
    c.close()
    return (mb << 20) / (time.perf_counter() - t0) / 1e9


def ws_rtt(port: int, headers: dict, reps: int) -> list[float]:
    async def run() -> list[float]:
        out = []
        async with connect(
            f"ws://127.0.0.1:{port}/ws", additional_headers=headers, proxy=None
        ) as ws:
            for _ in range(reps):
                t0 = time.perf_counter()
                await ws.send("x")
                await ws.recv()
                out.append(time.perf_counter() - t0)
        return out

    return asyncio.run(run())


def demo_pid(port: int) -> int:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if str(DEMO).encode() in cmd and f"--port\0{port}\0".encode() in cmd + b"\0":
                return int(entry)
    raise LookupError("no demo")


def respawn(demo_port: int, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        wait(lambda: get(demo_port, "/internal/ping") == 200, 30, 0.005)
        time.sleep(0.7)  # a stable run: restarted without backoff
        pid = demo_pid(demo_port)
        t0 = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        wait(lambda: get(demo_port, "/internal/ping", timeout=0.5) == 200, 30, 0.0005)
        out.append(time.perf_counter() - t0)
    return out


def stream_clients(port: int, n: int) -> None:
    """n clients, each reading an endless SSE stream through the door (re-opened when
    the framework dies under it), until SIGTERM; then the count of lines read."""
    stop = threading.Event()
    lines = [0]

    def client() -> None:
        while not stop.is_set():
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/stream?events=100000&interval=0.2", headers=BASIC)
                r = c.getresponse()
                while not stop.is_set() and r.readline():
                    lines[0] += 1
                c.close()
            except OSError:
                pass
            stop.wait(0.2)  # then open it again, as EventSource does (after 3 s, in fact)

    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    for _ in range(n):
        threading.Thread(target=client, daemon=True).start()
    stop.wait()
    print(lines[0], flush=True)


@contextmanager
def streaming_clients(port: int, n: int) -> Iterator[list[int]]:
    """The clients in a process of their own: their threads must not take the GIL
    from the timing loop here."""
    proc = subprocess.Popen(
        [PY, __file__, "--stream-clients", str(port), str(n)], stdout=subprocess.PIPE, text=True
    )
    seen = [0]
    try:
        yield seen
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(30)
        seen[0] = int(out.strip() or 0)


def p(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * q))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--respawns", type=int, default=10)
    ap.add_argument("--stream-clients", nargs=2, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stream_clients:
        stream_clients(*args.stream_clients)
        return
    rows: list[tuple[str, str, str, str]] = []

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        demo_port = free_port()
        with watchdog(tmp, demo_port) as wd, caddy(tmp, demo_port) as cp:
            ways: dict[str, tuple[int | None, dict]] = {
                "direct": (demo_port, {}),
                "caddy": (cp, {}),
                "door": (wd["door"], BASIC),
            }

            def each(fn: Callable[[int, dict], float]) -> dict[str, float | None]:
                return {k: (fn(port, h) if port else None) for k, (port, h) in ways.items()}

            for way in ways.values():  # warm up pools and caches
                if way[0]:
                    latency(way[0], way[1], 200)
            lat = {
                k: (latency(port, h, args.reps) if port else None) for k, (port, h) in ways.items()
            }
            for name, q in (("p50", 0.5), ("p99", 0.99)):
                base = p(lat["direct"], q)
                cells = [
                    f"{(p(v, q) - base) * 1000:+.2f} ms" if v else "n/a"
                    for v in (lat["caddy"], lat["door"])
                ]
                rows.append((f"small GET, added latency {name}", f"{base * 1000:.2f} ms", *cells))
            dl = each(lambda port, h: max(download(port, h, args.mb) for _ in range(3)))
            up = each(lambda port, h: max(upload(port, h, args.mb) for _ in range(2)))
            for label, got in ((f"{args.mb} MB download", dl), (f"{args.mb} MB upload", up)):
                rows.append(
                    (label, *(f"{got[k]:.2f} GB/s" if got[k] else "n/a" for k in ways))  # type: ignore[arg-type]
                )
            ws = {k: (ws_rtt(port, h, 1000) if port else None) for k, (port, h) in ways.items()}
            base = statistics.median(ws["direct"])  # type: ignore[arg-type]
            rows.append(
                (
                    "WebSocket echo round trip p50 (added)",
                    f"{base * 1000:.2f} ms",
                    *(
                        f"{(statistics.median(v) - base) * 1000:+.2f} ms" if v else "n/a"
                        for v in (ws["caddy"], ws["door"])
                    ),
                )
            )
            idle = respawn(demo_port, args.respawns)
            with streaming_clients(wd["door"], 50) as seen:
                time.sleep(2)
                loaded = respawn(demo_port, args.respawns)
            streamed = seen[0]
            rows.append(
                (
                    f"kill -9 → serving again, median of {args.respawns}",
                    f"idle: {statistics.median(idle) * 1000:.1f} ms",
                    "",
                    f"50 SSE clients through the door: {statistics.median(loaded) * 1000:.1f} ms"
                    f" ({streamed} SSE lines relayed)",
                )
            )

    print("| measure | direct | Caddy | the door |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
