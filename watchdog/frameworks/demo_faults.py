"""The demo server's misbehaviours: workers, escapees, log spam, leaks, crashes, hangs.

Kept apart from ``demo_app`` (the server itself); imported by it both as part of the
package and when it runs as a script (its folder is then on ``sys.path``).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Protocol


class Job(Protocol):
    hung: threading.Event
    ready_at: float
    steps: int
    frozen: bool

    def job(self) -> tuple[bool, float, int]: ...


def spawn_worker() -> None:
    """A forked worker (like a data loader): same group, no exec, runs until stopped."""
    pid = os.fork()
    if pid == 0:
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            while True:
                time.sleep(3600)
        finally:
            os._exit(0)
    print(f"demo: worker pid {pid}", flush=True)


def spawn_escapee() -> None:
    """A grandchild in its own session: it leaves our process group, as some tools do."""
    code = "import time\nwhile True: time.sleep(3600)"
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    print(f"demo: escaped grandchild pid {child.pid}", flush=True)


def spam(rate: float, stream: str, line_bytes: int, stop: threading.Event) -> None:
    outs = {"stdout": [sys.stdout], "stderr": [sys.stderr], "both": [sys.stdout, sys.stderr]}
    targets = outs[stream]
    tick = 0.01
    per_tick = rate * tick
    owed = 0.0
    n = 0
    filler = "x" * max(0, line_bytes - 30)
    while not stop.wait(tick):
        owed += per_tick
        batch = int(owed)
        owed -= batch
        if batch:
            for out in targets:
                text = "".join(f"spam line {n + i:09d} {filler}\n" for i in range(batch))
                out.write(text)
                out.flush()
            n += batch


def progress_bars(state: Job, stop: threading.Event) -> None:
    while not stop.wait(0.1):
        busy, _, step = state.job()
        if busy and not state.frozen:
            bar = "#" * step + " " * (state.steps - step)
            sys.stderr.write(f"\r\x1b[32m{step * 5:3d}%\x1b[0m|{bar}| {step}/{state.steps}")
            sys.stderr.flush()


CRASH_TEXT = {
    "traceback": "Traceback (most recent call last):\n"
    '  File "demo_app.py", line 1, in generate\n'
    "RuntimeError: demo crash requested by --crash-after",
    # As torch prints it when a generation does not fit.
    "cuda-oom": "Traceback (most recent call last):\n"
    '  File "modules/processing.py", line 845, in process_images\n'
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a"
    " total capacity of 23.65 GiB of which 1.06 GiB is free.",
    "port-in-use": "ERROR:    [Errno 98] error while attempting to bind on address"
    " ('127.0.0.1', 7860): address already in use",
    "restart-request": "Restarting UI...",
}


def leak(mb_per_s: float, stop: threading.Event) -> None:
    """Grow RSS steadily, like the RAM leaks every SD framework has had."""
    hoard = []
    chunk = max(1, int(mb_per_s * 1024 * 1024 / 10))
    while not stop.wait(0.1):
        hoard.append(b"x" * chunk)  # filled, so the pages are really resident


def timeline(args: argparse.Namespace, state: Job, stop: threading.Event) -> None:
    """Scheduled misbehaviour: crash or hang at the requested time."""
    events = []
    if args.crash_after is not None:
        events.append((args.crash_after, "crash"))
    if args.hang_after is not None:
        events.append((args.hang_after, "hang"))
    for at, what in sorted(events):
        if stop.wait(max(0.0, state.ready_at + at - time.monotonic())):
            return
        if what == "hang":
            print("demo: hanging now (still alive, no more answers)", file=sys.stderr, flush=True)
            state.hung.set()
            stop.set()  # no more log output either
        else:
            print(CRASH_TEXT[args.crash_with], file=sys.stderr, flush=True)
            if args.crash_with == "restart-request":
                session = os.environ.get("__COMFY_CLI_SESSION__")
                if session:  # ComfyUI-Manager's Restart button
                    open(session + ".reboot", "w").close()
                else:  # A1111's "Apply and restart UI"
                    os.makedirs("tmp", exist_ok=True)
                    open("tmp/restart", "w").close()
                os._exit(0)
            if args.crash_signal:
                sig = args.crash_signal.upper()
                sig = signal.Signals[sig if sig.startswith("SIG") else "SIG" + sig]
                os.kill(os.getpid(), sig)  # default disposition: the process dies by it
                time.sleep(5)
            os._exit(args.exit_code)


def load(seconds: float, chatter: bool) -> None:
    """The time before serving: silent, or like A1111's first start installing torch
    (a line every half second on stdout)."""
    if not chatter:
        time.sleep(seconds)
        return
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        n += 1
        print(f"Installing torch and torchvision… ({n})", flush=True)
        time.sleep(min(0.5, max(0.0, end - time.monotonic())))


def spawn_ghost(listener: int) -> None:
    """The hardest escapee: a double fork and ``setsid``, an empty environment (no run
    marker), another name, and it keeps serving on the framework's port."""
    first = os.fork()
    if first != 0:
        os.waitpid(first, 0)
        return
    try:
        os.setsid()
        pid = os.fork()
        if pid != 0:
            print(f"demo: ghost pid {pid}", flush=True)
            os._exit(0)
        os.set_inheritable(listener, True)
        os.execve(sys.executable, ["sdw-ghost", "-c", GHOST_CODE, str(listener)], {})
    finally:
        os._exit(1)


GHOST_CODE = """
import ctypes, http.server, socket, sys
ctypes.CDLL(None).prctl(15, b"sdw-ghost", 0, 0, 0)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
        self.wfile.write(b"{}")
    def log_message(self, *a): pass
srv = http.server.HTTPServer(("127.0.0.1", 0), H, bind_and_activate=False)
srv.socket.close()
srv.socket = socket.socket(fileno=int(sys.argv[1]))
srv.serve_forever()
"""


def slow_exit_on_sigterm(delay: float) -> None:
    """A framework that takes ``delay`` seconds to shut down after SIGTERM."""

    def later(signum: int, _frame: object) -> None:
        print(f"demo: {signal.Signals(signum).name}: exiting in {delay:g}s", flush=True)
        threading.Timer(delay, os._exit, args=(0,)).start()

    signal.signal(signal.SIGTERM, later)
