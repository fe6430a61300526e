"""A stand-in Stable Diffusion web UI: the default framework and the tests' subject.

Standard library only, so it runs under any Python without the watchdog's venv.
It behaves like AUTOMATIC1111 where the watchdog looks: an A1111-style ready line,
``GET /internal/ping`` and ``GET /sdapi/v1/progress``. Flags make it misbehave the
way real frameworks do::

    python demo_app.py --port 7860                        # a healthy server
    python demo_app.py --port 0 --crash-after 2 --crash-signal SIGSEGV
    python demo_app.py --launcher --escape                # webui.sh shape + a setsid grandchild
    python demo_app.py --hang-after 1                     # alive, never answers again

Times count from the moment the server is ready (after ``--startup-delay``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

try:
    from . import demo_faults as faults  # imported as part of the package
    from . import demo_stream as streams
    from .demo_invoke_queue import SessionQueue
    from .demo_queue import PromptQueue
    from .demo_vram import VramError, hold_vram
except ImportError:
    import demo_faults as faults  # type: ignore[no-redef]  # run as a script
    import demo_stream as streams  # type: ignore[no-redef]
    from demo_invoke_queue import SessionQueue  # type: ignore[no-redef]
    from demo_queue import PromptQueue  # type: ignore[no-redef]
    from demo_vram import VramError, hold_vram  # type: ignore[no-redef]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860, help="0 picks a free port")
    p.add_argument("--startup-delay", type=float, default=0.0, help="seconds of 'loading'")
    p.add_argument(
        "--startup-chatter", action="store_true", help="print install lines while loading"
    )
    p.add_argument("--no-ready-line", action="store_true", help="serve without printing it")
    p.add_argument("--crash-after", type=float, help="exit this many seconds after ready")
    p.add_argument("--exit-code", type=int, default=1, help="exit code of --crash-after")
    p.add_argument("--crash-signal", help="die by this signal instead (SIGSEGV, SIGABRT…)")
    p.add_argument(
        "--crash-with",
        choices=("traceback", "cuda-oom", "port-in-use", "restart-request"),
        default="traceback",
        help="what --crash-after prints to stderr first",
    )
    p.add_argument("--hang-after", type=float, help="stop answering HTTP, stay alive")
    p.add_argument("--ignore-sigterm", action="store_true")
    p.add_argument("--launcher", action="store_true", help="run the server as a child")
    p.add_argument("--escape", action="store_true", help="spawn a setsid grandchild")
    p.add_argument("--spam-rate", type=float, default=0.0, help="log lines per second")
    p.add_argument("--spam-stream", choices=("stdout", "stderr", "both"), default="stdout")
    p.add_argument("--spam-line-bytes", type=int, default=100)
    p.add_argument("--busy-for", type=float, default=0.0, help="a 'generation' of N s")
    p.add_argument("--busy-frozen", action="store_true", help="its progress never moves")
    p.add_argument("--slow-ping", type=float, default=0.0, help="health answers late when busy")
    p.add_argument(
        "--impersonate",
        choices=tuple(READY_LINES),
        default="automatic1111",
        help="that framework's ready line and endpoints",
    )
    p.add_argument("--progress-bars", action="store_true", help="tqdm-style \\r bars on stderr")
    p.add_argument("--grow-rss-mb-per-s", type=float, default=0.0, help="leak memory")
    p.add_argument("--workers", type=int, default=0, help="fork N worker processes")
    p.add_argument("--pid-file", help="write the server's pid here once ready")
    p.add_argument("--term-delay", type=float, default=0.0, help="exit this long after SIGTERM")
    p.add_argument("--ghost", action="store_true", help="a double-forked, renamed escapee")
    p.add_argument("--hold-vram-mb", type=int, default=0, help="hold this much GPU memory")
    p.add_argument("--gpu", type=int, default=0, help="CUDA device of --hold-vram-mb")
    p.add_argument("--prompt-s", type=float, default=2.0, help="comfyui: seconds per prompt")
    p.add_argument("--queue-db", help="invokeai: its queue, kept in this file across runs")
    return p.parse_args(argv)


# What each framework answers where the watchdog looks (see shared/frameworks.md).
READY_LINES = {
    "automatic1111": "Running on local URL:  {url}",
    "comfyui": "To see the GUI go to: {url}",
    "invokeai": "Invoke running on {url} (Press CTRL+C to quit)",
    "sdnext": "Local URL: {url}/",
    "fooocus": "App started successful. Use the app with {url}/ or {hostport}",
}


class DemoState:
    """One job at most: started by --busy-for at ready, or by POST /sdapi/v1/txt2img."""

    def __init__(self, busy_for: float, frozen: bool = False, slow_ping: float = 0.0) -> None:
        self.hung = threading.Event()
        self.lock = threading.Lock()
        self.ready_at = time.monotonic()
        self.job_start = time.monotonic()
        self.job_len = busy_for
        self.frozen = frozen  # busy, but the step never moves (stuck after CUDA OOM)
        self.slow_ping = slow_ping  # health answers this slowly while busy
        self.steps = 20
        self.job_no = 0
        self.prompts: PromptQueue | None = None  # --impersonate comfyui: its queue
        self.invoke: SessionQueue | None = None  # --impersonate invokeai --queue-db

    def start_job(self, seconds: float) -> None:
        with self.lock:
            self.job_start, self.job_len = time.monotonic(), seconds
            self.job_no += 1

    def interrupt(self) -> None:
        with self.lock:
            self.job_len = 0.0
        print("demo: interrupted by the interrupt endpoint", flush=True)

    def job(self) -> tuple[bool, float, int]:
        """(busy, fraction done, step)."""
        with self.lock:
            elapsed = time.monotonic() - self.job_start
            busy = elapsed < self.job_len
            frac = 0.0 if not busy else (0.05 if self.frozen else elapsed / self.job_len)
        return busy, round(min(frac, 1.0), 3), int(min(frac, 1.0) * self.steps)

    def a1111_progress(self) -> dict[str, object]:
        busy, frac, step = self.job()
        return {
            "progress": frac if busy else 0.0,
            "eta_relative": 0.0,
            "state": {
                "job_count": 1 if busy else 0,
                "job": "txt2img" if busy else "",
                "job_no": self.job_no,
                "sampling_step": step if busy else 0,
                "sampling_steps": self.steps,
                "interrupted": False,
            },
            "current_image": None,
            "textinfo": None,
        }

    def comfyui_queue(self) -> dict[str, object]:
        busy, _, _ = self.job()
        running = [[self.job_no, f"prompt-{self.job_no}", {}, {}, []]] if busy else []
        if self.prompts is None:
            return {"queue_running": running, "queue_pending": []}
        queued = self.prompts.queue()  # prompts posted to /prompt, ComfyUI's way
        return {"queue_running": running + queued["queue_running"],
                "queue_pending": queued["queue_pending"]}  # fmt: skip

    def queue_routes(self) -> dict[tuple[str, str], Any]:
        """The impersonated framework's own queue endpoints (POST /prompt, …)."""
        return {**(self.prompts.routes if self.prompts else {}),
                **(self.invoke.routes if self.invoke else {})}  # fmt: skip

    def invokeai_status(self) -> dict[str, object]:
        if self.invoke is not None:
            return self.invoke.status()
        busy, _, step = self.job()
        return {
            "queue": {
                "queue_id": "default",
                "item_id": self.job_no if busy else None,
                "pending": 0,
                "in_progress": 1 if busy else 0,
                "completed": self.job_no - (1 if busy else 0) + step * 0,
                "failed": 0,
                "canceled": 0,
                "total": self.job_no,
            },
            "processor": {"is_started": True, "is_processing": busy},
        }

    def sdnext_status(self) -> dict[str, object]:
        busy, frac, step = self.job()
        return {
            "status": "running" if busy else "idle",
            "task": "txt2img" if busy else "",
            "step": step,
            "steps": self.steps,
            "progress": frac,
        }


def make_handler(state: DemoState, persona: str) -> type[BaseHTTPRequestHandler]:
    routes_get = {
        "/internal/ping": lambda: {},
        "/sdapi/v1/progress": state.a1111_progress,
        "/sdapi/v1/version": lambda: {"app": "sd-watchdog-demo"},
        "/system_stats": lambda: {
            "system": {"os": "posix", "python_version": sys.version},
            "devices": [],
        },
        "/queue": state.comfyui_queue,
        "/api/v1/app/version": lambda: {"version": "6.14.2"},
        "/api/v1/queue/default/status": state.invokeai_status,
        "/sdapi/v1/status": state.sdnext_status,
    }
    interrupts = {
        ("POST", "/sdapi/v1/interrupt"),
        ("POST", "/interrupt"),
        ("PUT", "/api/v1/queue/default/clear"),
    }
    health = {
        "automatic1111": "/internal/ping",
        "comfyui": "/system_stats",
        "invokeai": "/api/v1/app/version",
        "sdnext": "/sdapi/v1/version",
        "fooocus": "/",
    }[persona]

    streaming = {
        ("GET", "/ws"): streams.websocket_echo,
        ("GET", "/stream"): streams.stream,
        ("GET", "/download"): streams.download,
        ("POST", "/upload"): streams.upload,
    }

    class Handler(BaseHTTPRequestHandler):
        server_version = "sd-watchdog-demo/1"
        protocol_version = "HTTP/1.1"  # keep-alive, and the WebSocket handshake
        disable_nagle_algorithm = True  # head and body are two writes: no 40 ms wait

        def do_GET(self) -> None:
            if state.hung.is_set():
                threading.Event().wait()  # a hung framework: connection open, no answer
            path = self.path.split("?", 1)[0]
            if path == health and state.slow_ping and state.job()[0]:
                time.sleep(state.slow_ping)  # a busy server answers its health check late
            if path in routes_get:
                self._send(200, routes_get[path]())
            elif ("GET", path) in streaming:
                streaming["GET", path](self)
            elif state.prompts is not None and path.startswith("/history"):
                wanted = path[len("/history/") :] if path.startswith("/history/") else None
                self._send(200, state.prompts.history_of(wanted or None))
            elif path == "/echo-headers":  # what a request looked like on arrival here
                self._send(200, {"path": self.path, "headers": dict(self.headers.items())})
            elif path == "/":
                port = self.server.server_address[1]
                self._raw(200, streams.home_page(persona, port).encode(), "text/html")
            else:
                self._send(404, {"detail": "Not Found"})

        def do_POST(self) -> None:
            self._action("POST")

        def do_PUT(self) -> None:
            self._action("PUT")

        def _action(self, method: str) -> None:
            path = self.path.split("?", 1)[0]
            if (method, path) in streaming:
                streaming[method, path](self)
                return
            # Keep-alive: a body left unread would be taken for the next request.
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            queue_routes = state.queue_routes()
            if (method, path) in queue_routes:
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    body = None
                self._send(*queue_routes[method, path](body))
            elif (method, path) in interrupts:
                state.interrupt()
                if state.prompts is not None:
                    state.prompts.interrupt()
                self._send(200, {})
            elif (method, path) == ("POST", "/sdapi/v1/txt2img"):
                state.start_job(5.0)
                self._send(200, {"images": []})
            else:
                self._send(404, {"detail": "Not Found"})

        def _send(self, code: int, payload: object) -> None:
            self._raw(code, json.dumps(payload).encode(), "application/json")

        def _raw(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # probes every few seconds would drown the log

    return Handler


def run_launcher(argv: list[str]) -> int:
    """Like webui.sh: a parent that runs the real server as a child, without exec."""
    child_args = [a for a in argv if a != "--launcher"]
    print(f"launcher: pid {os.getpid()} starting the server", flush=True)
    child = subprocess.Popen([sys.executable, os.path.abspath(__file__), *child_args])
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:
            continue


def serve(args: argparse.Namespace) -> int:
    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif args.term_delay:
        faults.slow_exit_on_sigterm(args.term_delay)
    print(f"demo: pid {os.getpid()} loading model weights…", flush=True)
    if args.impersonate == "invokeai":  # its harmless first lines (shared/frameworks.md)
        print("No module named 'kernels'", file=sys.stderr, flush=True)
    if args.startup_delay > 0:
        faults.load(args.startup_delay, args.startup_chatter)
    if args.hold_vram_mb > 0:  # like a model loaded onto the GPU, before serving
        try:
            held = hold_vram(args.hold_vram_mb, args.gpu)
        except VramError as exc:
            print(f"RuntimeError: {exc}", file=sys.stderr, flush=True)
            return 1
        print(f"demo: holding {held.mb} MiB on CUDA device {held.device}", flush=True)
    handler_state = DemoState(args.busy_for, args.busy_frozen, args.slow_ping)
    if args.impersonate == "comfyui":
        handler_state.prompts = PromptQueue(args.prompt_s)
    if args.impersonate == "invokeai" and args.queue_db:
        handler_state.invoke = SessionQueue(Path(args.queue_db), args.prompt_s)
    server = ThreadingHTTPServer(
        (args.host, args.port), make_handler(handler_state, args.impersonate)
    )
    server.daemon_threads = True
    port = server.server_address[1]
    if args.escape:
        faults.spawn_escapee()
    if args.ghost:
        faults.spawn_ghost(server.socket.fileno())
    for _ in range(args.workers):
        faults.spawn_worker()
    stop = threading.Event()
    handler_state.ready_at = handler_state.job_start = time.monotonic()
    threading.Thread(target=faults.timeline, args=(args, handler_state, stop), daemon=True).start()
    if args.spam_rate > 0:
        spam_args = (args.spam_rate, args.spam_stream, args.spam_line_bytes, stop)
        threading.Thread(target=faults.spam, args=spam_args, daemon=True).start()
    if args.grow_rss_mb_per_s > 0:
        threading.Thread(
            target=faults.leak, args=(args.grow_rss_mb_per_s, stop), daemon=True
        ).start()
    if args.progress_bars:
        threading.Thread(
            target=faults.progress_bars, args=(handler_state, stop), daemon=True
        ).start()
    if args.pid_file:
        with open(args.pid_file, "w") as fh:
            fh.write(str(os.getpid()))
    if not args.no_ready_line:
        url = f"http://{args.host}:{port}"
        line = READY_LINES[args.impersonate].format(url=url, hostport=f"{args.host}:{port}")
        print(line, flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        print("demo: interrupted, shutting down", flush=True)
    finally:
        stop.set()
        server.server_close()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.launcher:
        return run_launcher(argv)
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
