"""sd-watchdog side by side with supervisord on the same stand-in server.

    bench/run.sh                     # installs bench/requirements.txt, runs this
    .venv/bin/python bench/compare.py --reps 20 --idle-s 60

Prints one markdown table (medians over --reps, ratio sd-watchdog / supervisord).
supervisord is configured as people do for SD (autorestart, stopasgroup, killasgroup,
startsecs=0 so that it does not wait a second before counting a start as good).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xmlrpc.client
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from watchdog.control.client import ControlClient  # noqa: E402

DEMO = ROOT / "watchdog" / "frameworks" / "demo_app.py"
PY = sys.executable
WRITER = (  # writes 200 MB as fast as it can; records when it started
    "import sys,time\n"
    "open(sys.argv[1],'w').write(str(time.time())); b=b'x'*99+b'\\n'\n"
    "w=sys.stdout.buffer.write\n"
    "for _ in range(2_000_000): w(b)\n"
    "sys.stdout.flush(); time.sleep(3600)\n"
)
TOTAL = 200_000_000
rows: list[tuple[str, str, str, str]] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serving(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/internal/ping", timeout=0.5).ok
    except requests.RequestException:
        return False


def wait(cond: Callable[[], bool], timeout: float, step: float = 0.0005) -> float:
    t0 = time.perf_counter()
    while not cond():
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError("condition not met")
        time.sleep(step)
    return time.perf_counter() - t0


def demo_pids(port: int) -> list[int]:
    mark = f"--port\0{port}\0".encode()
    out = []
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                cmd = Path(f"/proc/{e}/cmdline").read_bytes()
                state = Path(f"/proc/{e}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if str(DEMO).encode() in cmd and mark in cmd + b"\0" and state not in "ZX":
                out.append(int(e))
    return out


def cpu_rss(pid: int) -> tuple[float, float]:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK"), int(f[21]) * 4096 / 2**20


def med(values: list[float]) -> float:
    return statistics.median(values)


def p99(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.99) - 1)]


def add(what: str, ours: float | None, theirs: float | None, unit: str = "ms") -> None:
    def fmt(v: float | None) -> str:
        if v is None:
            return "never"
        return f"{v * 1000:.1f} ms" if unit == "ms" else f"{v:.2f} {unit}".strip()

    ratio = f"{ours / theirs:.2f}" if ours is not None and theirs else "n/a"
    rows.append((what, fmt(ours), fmt(theirs), ratio))
    print(f"  {what}: {fmt(ours)} vs {fmt(theirs)}", file=sys.stderr, flush=True)


# -- the two supervisors -----------------------------------------------------------------


@contextmanager
def watchdog(tmp: Path, frameworks: dict, server: bool = False, **watch) -> Iterator[dict]:
    settings = {
        "default_framework": next(iter(frameworks)),
        "frameworks": frameworks,
        "watch": {"stable_uptime_s": 0.5, "max_restarts": 100000, **watch},
        "logs": {
            "dir": str(tmp / "wd-logs"),
            "max_bytes": 4 * 2**30,
            "max_total_bytes": 16 * 2**30,
        },
        "metrics": {"interval_s": 5},
    }
    path = tmp / "wd-settings.json"
    path.write_text(json.dumps(settings))
    port = free_port()
    args = [PY, str(ROOT / "app.py"), "--settings", str(path), "--port", str(port)]
    args += ["--app-port", "0"]  # the door, out of the way of a watchdog on 5006
    proc = subprocess.Popen(
        [*args, *([] if server else ["--no-server"])],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    info = {"proc": proc, "port": port, "logs": tmp / "wd-logs", "url": f"http://127.0.0.1:{port}/"}
    try:
        if server:
            wait(lambda: _health(info["url"]), 60, 0.1)
        yield info
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        subprocess.run(["rm", "-rf", str(tmp / "wd-logs")], check=False)


def _health(url: str) -> bool:
    try:
        return requests.get(url + "health", timeout=1).ok
    except requests.RequestException:
        return False


def journal(logs: Path) -> list[dict]:
    try:
        return [json.loads(x) for x in (logs / "events.jsonl").read_text().splitlines() if x]
    except (FileNotFoundError, ValueError):
        return []


@contextmanager
def supervisord(tmp: Path, programs: dict[str, str], autostart: set[str]) -> Iterator[dict]:
    port = free_port()
    conf = tmp / "supervisord.conf"
    parts = [
        "[supervisord]",
        "nodaemon=true",
        f"logfile={tmp}/supervisord.log",
        f"pidfile={tmp}/supervisord.pid",
        f"childlogdir={tmp}",
        "[inet_http_server]",
        f"port=127.0.0.1:{port}",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
    ]
    for name, command in programs.items():
        parts += [
            f"[program:{name}]",
            f"command={command}",
            "autorestart=true",
            f"autostart={'true' if name in autostart else 'false'}",
            "startsecs=0",
            "stopasgroup=true",
            "killasgroup=true",
            "stopwaitsecs=20",
            f"stdout_logfile={tmp}/{name}.out",
            "stdout_logfile_maxbytes=0",
            f"stderr_logfile={tmp}/{name}.err",
            "stderr_logfile_maxbytes=0",
        ]
    conf.write_text("\n".join(parts) + "\n")
    proc = subprocess.Popen(
        [str(Path(PY).parent / "supervisord"), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rpc = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}/RPC2")
    wait(lambda: _rpc_up(rpc), 30, 0.05)
    try:
        yield {"proc": proc, "rpc": rpc, "dir": tmp}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def _rpc_up(rpc: xmlrpc.client.ServerProxy) -> bool:
    try:
        return rpc.supervisor.getState()["statename"] == "RUNNING"
    except OSError:
        return False


def demo_cmd(port: int) -> str:
    return f"{PY} {DEMO} --port {port}"


# -- the measures ------------------------------------------------------------------------


def respawn(reps: int, port: int, get_pid: Callable[[], int | None]) -> tuple[list, list]:
    new_proc, again = [], []
    for _ in range(reps):
        wait(lambda: serving(port), 30, 0.01)
        time.sleep(0.7)  # a stable run
        pid = get_pid()
        t0 = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        wait(lambda pid=pid: any(p != pid for p in demo_pids(port)), 30)
        new_proc.append(time.perf_counter() - t0)
        wait(lambda: serving(port), 30)
        again.append(time.perf_counter() - t0)
    return new_proc, again


def measure_respawn(tmp: Path, reps: int) -> None:
    port = free_port()
    with watchdog(tmp, {"demo": {"preset": "demo", "port": port}}) as wd:
        wait(lambda: serving(port), 30, 0.05)
        ours = respawn(reps, port, lambda: (demo_pids(port) or [None])[0])
    port2 = free_port()
    with supervisord(tmp, {"demo": demo_cmd(port2)}, {"demo"}) as sv:
        wait(lambda: serving(port2), 30, 0.05)
        theirs = respawn(reps, port2, lambda: sv["rpc"].supervisor.getProcessInfo("demo")["pid"])
    add(f"1a. kill -9 → new process exists (median of {reps})", med(ours[0]), med(theirs[0]))
    add(f"1b. kill -9 → serving HTTP again (median of {reps})", med(ours[1]), med(theirs[1]))
    del wd


def measure_hang(tmp: Path, reps: int) -> None:
    port = free_port()
    times = []
    with watchdog(
        tmp,
        {"demo": {"preset": "demo", "port": port}},
        health_interval_s=1,
        health_timeout_s=1,
        failure_threshold=3,
    ):
        for _ in range(reps):
            wait(lambda: serving(port), 30, 0.01)
            pid = demo_pids(port)[0]
            t0 = time.perf_counter()
            os.kill(pid, signal.SIGSTOP)
            wait(lambda pid=pid: serving(port) and pid not in demo_pids(port), 60, 0.01)
            times.append(time.perf_counter() - t0)
    rows.append(
        (
            f"2. SIGSTOP (hang) → restarted (median of {reps}; probe 1 s, timeout 1 s,"
            " threshold 3)",
            f"{med(times):.2f} s (bound 5 s: interval + 3 timeouts + one busy check)",
            "never (no HTTP probe)",
            "n/a",
        )
    )


def measure_switch(tmp: Path, reps: int) -> None:
    pa, pb = free_port(), free_port()
    # B's own startup, started alone: subtracted from both.
    own = []
    for _ in range(5):
        t0 = time.perf_counter()
        proc = subprocess.Popen([PY, str(DEMO), "--port", str(pb)], stdout=subprocess.DEVNULL)
        wait(lambda: serving(pb), 30)
        own.append(time.perf_counter() - t0)
        proc.kill()
        proc.wait()
    startup = med(own)
    ours, theirs = [], []
    fws = {"a": {"preset": "demo", "port": pa}, "b": {"preset": "demo", "port": pb}}
    with watchdog(tmp, fws, server=True) as wd:
        wait(lambda: serving(pa), 60, 0.05)
        for i in range(reps * 2):
            target, port = ("b", pb) if i % 2 == 0 else ("a", pa)
            time.sleep(0.3)
            t0 = time.perf_counter()
            r = requests.post(
                f"{wd['url']}gradio_api/call/switch", json={"data": [target, True]}, timeout=30
            )
            requests.get(f"{wd['url']}gradio_api/call/switch/{r.json()['event_id']}", timeout=30)
            wait(lambda port=port: serving(port), 30)
            if target == "b":
                ours.append(time.perf_counter() - t0 - startup)
    with supervisord(tmp, {"a": demo_cmd(pa), "b": demo_cmd(pb)}, {"a"}) as sv:
        rpc = sv["rpc"]
        wait(lambda: serving(pa), 30, 0.05)
        for i in range(reps * 2):
            old, new, port = ("a", "b", pb) if i % 2 == 0 else ("b", "a", pa)
            time.sleep(0.3)
            t0 = time.perf_counter()
            rpc.supervisor.stopProcess(old)
            rpc.supervisor.startProcess(new)
            wait(lambda port=port: serving(port), 30)
            if new == "b":
                theirs.append(time.perf_counter() - t0 - startup)
    add(
        f"3. switch A → B, minus B's own startup ({startup * 1000:.0f} ms; median of {reps})",
        med(ours),
        med(theirs),
    )


def measure_throughput(tmp: Path) -> None:
    """Wall time from the writer's start until all 200 MB are in its log file."""

    def until_written(side: Path, out: Callable[[], Path | None]) -> float:
        wait(lambda: side.exists() and side.read_text() != "", 60, 0.005)
        start = float(side.read_text())
        wait(
            lambda: (p := out()) is not None and p.exists() and p.stat().st_size >= TOTAL,
            300,
            0.005,
        )
        return time.time() - start

    writer = tmp / "writer.py"
    writer.write_text(WRITER)
    out = tmp / "plain.out"
    side = tmp / "t-plain"
    with open(out, "wb") as fh:
        proc = subprocess.Popen([PY, str(writer), str(side)], stdout=fh)
        plain = until_written(side, lambda: out)
        proc.kill()
        proc.wait()
    out.unlink()
    side = tmp / "t-wd"
    unused = f"http://127.0.0.1:{free_port()}"
    with watchdog(
        tmp, {"w": {"command": [PY, str(writer), str(side)], "url": unused}}, startup_timeout_s=600
    ) as wd:

        def run_log() -> Path | None:
            spawn = [e for e in journal(wd["logs"]) if e["event"] == "spawn"]
            return Path(spawn[0]["stdout"]) if spawn else None

        ours = until_written(side, run_log)
    side2 = tmp / "t-sv"
    with supervisord(tmp, {"w": f"{PY} {writer} {side2}"}, {"w"}):
        theirs = until_written(side2, lambda: tmp / "w.out")
    rows.append(
        (
            f"4. child writes 200 MB to stdout: wall time (unsupervised to a file: {plain:.2f} s)",
            f"{ours:.2f} s ({plain / ours:.2f} of unsupervised)",
            f"{theirs:.2f} s ({plain / theirs:.2f} of unsupervised)",
            f"{ours / theirs:.2f}",
        )
    )


def measure_tail(tmp: Path) -> None:
    line = b"x" * 99 + b"\n"
    for size_mb in (1, 100, 1024):
        port = free_port()
        with watchdog(tmp, {"demo": {"preset": "demo", "port": port}}, server=True) as wd:
            wait(lambda: serving(port), 60, 0.05)
            wait(lambda: any(e["event"] == "spawn" for e in journal(wd["logs"])), 30, 0.05)
            stdout = Path(next(e for e in journal(wd["logs"]) if e["event"] == "spawn")["stdout"])
            _fill(stdout, size_mb, line)
            ours = _time(
                lambda: requests.get(
                    f"{wd['url']}read-current-stdout-log", params={"lines": 200}, timeout=60
                ),
                20,
            )
            naive = _time(lambda: stdout.read_bytes().splitlines()[-200:], 3)
        with supervisord(tmp, {"demo": demo_cmd(free_port())}, {"demo"}) as sv:
            _fill(sv["dir"] / "demo.out", size_mb, line)
            rpc = sv["rpc"]
            theirs = _time(lambda: rpc.supervisor.tailProcessStdoutLog("demo", 0, 200 * 100), 20)
            (sv["dir"] / "demo.out").unlink()
        add(
            f"5. tail last 200 lines of a {size_mb} MB log (naive whole-file read:"
            f" {naive * 1000:.0f} ms)",
            ours,
            theirs,
        )
        stdout.unlink(missing_ok=True)


def measure_long_line(tmp: Path) -> None:
    """A log ending in a 10 MB line without a newline (a progress bar, a base64 image),
    and "both" (in write order) of a run that wrote its two streams in turn."""
    port = free_port()
    with watchdog(tmp, {"demo": {"preset": "demo", "port": port}}, server=True) as wd:
        wait(lambda: serving(port), 60, 0.05)
        spawn = next(e for e in journal(wd["logs"]) if e["event"] == "spawn")
        stderr = Path(spawn["stderr"])
        with open(stderr, "ab") as fh:
            fh.write(b"".join(b"line %d\n" % i for i in range(200)) + b"=" * (10 << 20))
        url = f"{wd['url']}read-current-stderr-log"
        ours = _time(lambda: requests.get(url, params={"lines": 200}, timeout=60), 20)
        both = f"{wd['url']}api/v1/logs"
        ordered = _time(lambda: requests.get(both, params={"lines": 200}, timeout=60), 20)
    with supervisord(tmp, {"demo": demo_cmd(free_port())}, {"demo"}) as sv:
        with open(sv["dir"] / "demo.out", "ab") as fh:
            fh.write(b"".join(b"line %d\n" % i for i in range(200)) + b"=" * (10 << 20))
        rpc = sv["rpc"]
        theirs = _time(lambda: rpc.supervisor.tailProcessStdoutLog("demo", 0, 200 * 100), 20)
        (sv["dir"] / "demo.out").unlink()
    add("5b. tail 200 lines of a log ending in a 10 MB line", ours, theirs)
    add("5c. 200 lines of both streams in write order (supervisord: one stream)", ordered, theirs)


def _fill(path: Path, size_mb: int, line: bytes) -> None:
    block = line * (1024 * 1024 // len(line))
    with open(path, "ab") as fh:
        for _ in range(size_mb):
            fh.write(block)


def _time(fn: Callable[[], object], n: int) -> float:
    fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return med(times)


def front_pid(logs: Path) -> int:
    wait(lambda: any(e["event"] == "front_ready" for e in journal(logs)), 60, 0.1)
    return [e for e in journal(logs) if e["event"] == "front_ready"][-1]["pid"]


def measure_idle(tmp: Path, seconds: float) -> None:
    """Idle CPU and RSS of the core and of its front, each measured over the same
    window, beside supervisord's."""

    def idle(*pids: int) -> list[tuple[float, float]]:
        time.sleep(5)
        before = [cpu_rss(pid)[0] for pid in pids]
        time.sleep(seconds)
        after = [cpu_rss(pid) for pid in pids]
        pairs = zip(before, after, strict=True)
        return [(100 * (c1 - c0) / seconds, rss) for c0, (c1, rss) in pairs]

    port = free_port()
    with watchdog(tmp, {"demo": {"preset": "demo", "port": port}}) as wd:
        wait(lambda: serving(port), 60, 0.05)
        (no_server,) = idle(wd["proc"].pid)
    port = free_port()
    with watchdog(tmp, {"demo": {"preset": "demo", "port": port}}, server=True) as wd:
        wait(lambda: serving(port), 60, 0.05)
        front = front_pid(wd["logs"])
        core, front_idle = idle(wd["proc"].pid, front)
        with _page(wd["url"]):
            core_page, front_page = idle(wd["proc"].pid, front)
    with supervisord(tmp, {"demo": demo_cmd(free_port())}, {"demo"}) as sv:
        (theirs,) = idle(sv["proc"].pid)
    for label, ours in (
        ("core, --no-server", no_server),
        ("core, with its front", core),
        ("front, no page open", front_idle),
        ("core, one page open", core_page),
        ("front, one page open", front_page),
    ):
        rows.append(
            (
                f"6. idle {seconds:.0f} s, framework running: {label}",
                f"{ours[0]:.2f} % CPU, {ours[1]:.0f} MB",
                f"{theirs[0]:.2f} % CPU, {theirs[1]:.0f} MB",
                f"{ours[0] / theirs[0]:.1f}" if theirs[0] else "n/a",
            )
        )


@contextmanager
def _page(url: str) -> Iterator[None]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page()
        page.goto(url)
        try:
            yield
        finally:
            browser.close()


def measure_latency(tmp: Path, reps: int) -> None:
    port = free_port()
    with watchdog(tmp, {"demo": {"preset": "demo", "port": port}}, server=True) as wd:
        wait(lambda: serving(port), 60, 0.05)
        from gradio_client import Client

        for clients in (1, 20):
            info = _concurrent(clients, reps, lambda s: s.get(wd["url"] + "info", timeout=10))
            rest = _concurrent(
                clients, reps, lambda s: s.get(wd["url"] + "api/v1/status", timeout=10)
            )
            sock = wd["logs"] / "control.sock"
            ctl = _concurrent(clients, reps, lambda s: ControlClient(sock).call("GET", "/status"))
            # One Client per thread: threads sharing one race its result stream
            # (gradio_client cancels a call whose stream the server just closed).
            spare = [Client(wd["url"], verbose=False) for _ in range(clients)]
            mine = threading.local()

            def predict(_s: requests.Session) -> object:
                if not hasattr(mine, "client"):
                    mine.client = spare.pop()
                return mine.client.predict(api_name="/status")

            status = _concurrent(clients, max(10, reps // 4), predict)
            rows.append(
                (
                    f"7. {clients} client(s): GET /info p50 / p99",
                    f"{med(info) * 1000:.1f} / {p99(info) * 1000:.1f} ms",
                    "n/a",
                    "n/a",
                )
            )
            for label, times in (("GET /api/v1/status", rest), ("control socket /status", ctl)):
                rows.append(
                    (
                        f"7. {clients} client(s): {label} p50 / p99",
                        f"{med(times) * 1000:.1f} / {p99(times) * 1000:.1f} ms",
                        "n/a",
                        "n/a",
                    )
                )
            rows.append(
                (
                    f"7. {clients} client(s): gradio_client status p50 / p99",
                    f"{med(status) * 1000:.1f} / {p99(status) * 1000:.1f} ms",
                    "n/a",
                    "n/a",
                )
            )
    with supervisord(tmp, {"demo": demo_cmd(free_port())}, {"demo"}) as sv:
        url = sv["rpc"]._ServerProxy__host  # type: ignore[attr-defined]
        for clients in (1, 20):
            lat = _concurrent(
                clients,
                reps,
                lambda s: xmlrpc.client.ServerProxy(f"http://{url}/RPC2").supervisor.getProcessInfo(
                    "demo"
                ),
            )
            rows.append(
                (
                    f"7. {clients} client(s): supervisord getProcessInfo p50 / p99",
                    "n/a",
                    f"{med(lat) * 1000:.1f} / {p99(lat) * 1000:.1f} ms",
                    "n/a",
                )
            )


def _concurrent(clients: int, per_client: int, fn: Callable[[requests.Session], object]) -> list:
    times: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        s = requests.Session()
        for _ in range(per_client):
            t0 = time.perf_counter()
            fn(s)
            with lock:
                times.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return times


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--idle-s", type=float, default=60)
    p.add_argument(
        "--only", help="comma-separated: respawn,hang,switch,write,tail,longline,idle,latency"
    )
    args = p.parse_args()
    only = set(args.only.split(",")) if args.only else None
    started = datetime.now().isoformat(timespec="seconds")
    with tempfile.TemporaryDirectory(prefix="sdw-bench-") as t:
        tmp = Path(t)
        steps = {
            "respawn": lambda: measure_respawn(tmp, args.reps),
            "hang": lambda: measure_hang(tmp, args.reps),
            "switch": lambda: measure_switch(tmp, args.reps),
            "write": lambda: measure_throughput(tmp),
            "tail": lambda: measure_tail(tmp),
            "longline": lambda: measure_long_line(tmp),
            "idle": lambda: measure_idle(tmp, args.idle_s),
            "latency": lambda: measure_latency(tmp, 200),
        }
        for name, step in steps.items():
            if only is None or name in only:
                print(f"{name}…", file=sys.stderr, flush=True)
                step()
    print(f"\nsd-watchdog vs supervisord {_version()} — {started}, {os.cpu_count()} cores\n")
    print("| measure | sd-watchdog | supervisord | ratio |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("supervisor")
    except Exception:
        return "?"


if __name__ == "__main__":
    main()
