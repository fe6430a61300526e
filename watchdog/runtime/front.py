"""The front (page, Gradio API, REST, the door) as a child of the core: bound,
started, watched.

Like nginx's master and its workers: the core binds the page's and the door's ports
once and hands the listening sockets to the front, a child process (``python -m watchdog.web``). The
front is restarted when it exits, when its ``/health`` fails ``failure_threshold``
times in a row, or when its RSS passes ``server.max_rss_mb``; each is a journaled
``front_*`` event. None of that ever touches the framework: the front is not a run,
lives in the core's session (so no sweep counts it as a leftover) and is reaped by
its own waiter, not by the subreaper.

While a front restarts, the kernel keeps new connections in the socket's backlog:
a browser waits a moment instead of seeing "connection refused".

    >>> keeper = FrontKeeper(config, bind_page("127.0.0.1", 5005), events, watch)  # doctest: +SKIP
    >>> keeper.start()
    >>> keeper.stop()          # SIGTERM, then SIGKILL after 5 s
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..core.status import describe_exit
from ..web.config import ENV, FrontConfig
from . import reaper
from .events import EventLog
from .probes import http_get

log = logging.getLogger(__name__)

PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent  # holds watchdog/
STABLE_S = 30.0  # a front that ran this long restarts at once; sooner, with backoff
BACKOFF_MAX_S = 30.0
STOP_TIMEOUT_S = 5.0
BIND_RETRY_S = 5.0  # the front of a core that just died leaves within 2 s
BACKLOG = 1024


@dataclass(frozen=True)
class FrontWatch:
    """How the front is judged (the framework's ``watch`` numbers, and the RSS cap)."""

    interval_s: float = 5.0
    timeout_s: float = 5.0
    failure_threshold: int = 3
    max_rss_mb: float = 400.0
    startup_s: float = 120.0  # Gradio's import alone takes seconds on a small VM


def bind_page(host: str, port: int, retry_s: float = BIND_RETRY_S) -> socket.socket:
    """The page's listening socket. ``EADDRINUSE`` is retried for ``retry_s``: the
    front of a core that was just killed still holds the port for a moment."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    deadline = time.monotonic() + retry_s
    while True:
        try:
            return socket.create_server((host, port), family=family, backlog=BACKLOG)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def probe_host(host: str) -> str:
    """Where the core reaches the page: the wildcard addresses are reached on loopback."""
    return {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)


def rss_mb(pid: int) -> float | None:
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class FrontKeeper:
    def __init__(
        self,
        config: FrontConfig,
        sock: socket.socket,
        events: EventLog,
        watch: FrontWatch,
        door_sock: socket.socket | None = None,
        slot_doors: dict[str, socket.socket] | None = None,
    ) -> None:
        """``slot_doors``: with GPU slots, the door of each slot after the first."""
        self.config = config
        self.sock = sock
        self.door_sock = door_sock
        self.slot_doors = slot_doors or {}
        self.slot_ports = {s: int(d.getsockname()[1]) for s, d in self.slot_doors.items()}
        self.events = events
        self.watch = watch
        self.port = int(sock.getsockname()[1])
        self.app_port = int(door_sock.getsockname()[1]) if door_sock is not None else None
        self.restarts = 0
        self._halt = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        # Only the core holds the write end: when the core dies, the front reads EOF.
        self._alive_r, self._alive_w = os.pipe()
        self._thread = threading.Thread(target=self._loop, name="front-keeper", daemon=True)

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()
        with self._lock:
            proc = self._proc
        if proc is not None:
            self._end(proc)
            self.events.write("front_stop", pid=proc.pid)
        self._thread.join(timeout=STOP_TIMEOUT_S + 5)
        for fd in (self._alive_r, self._alive_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.sock.close()
        for door in [self.door_sock, *self.slot_doors.values()]:
            if door is not None:
                door.close()

    def _loop(self) -> None:
        delay = 0.0
        while not self._halt.is_set():
            began = time.monotonic()
            proc = self._spawn()
            if proc is not None:
                cause, details = self._watch_until_done(proc)
                if self._halt.is_set():
                    return
                if cause != "front_exit":
                    self._end(proc)
                self.events.write(cause, pid=proc.pid, **details, **self._exit_of(proc))
                reaper.unwaited(proc.pid)
            stable = time.monotonic() - began >= STABLE_S
            delay = 0.0 if stable else min(max(1.0, delay * 2), BACKOFF_MAX_S)
            self.restarts += 1
            if delay:
                log.warning("restarting the front in %.0f s", delay)
            self._halt.wait(delay)

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        fd = self.sock.fileno()
        config = self.config.but(listen_fd=fd, core_fd=self._alive_r, port=self.port)
        fds = [fd, self._alive_r]
        if self.door_sock is not None:
            fds.append(self.door_sock.fileno())
            config = config.but(door_fd=fds[-1], app_port=self.app_port)
        doors = []
        for slot, door in self.slot_doors.items():
            fds.append(door.fileno())
            doors.append((slot, fds[-1], self.slot_ports[slot]))
        config = config.but(slot_doors=tuple(doors))
        path = os.environ.get("PYTHONPATH")
        env = {
            **os.environ,
            ENV: config.to_json(),
            "PYTHONPATH": str(PACKAGE_ROOT) + (os.pathsep + path if path else ""),
        }
        with self._lock:
            if self._halt.is_set():
                return None
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "watchdog.web"],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    pass_fds=fds,
                )
            except OSError as exc:
                self.events.write("front_exit", reason=f"cannot start the front: {exc}")
                return None
            reaper.waited(proc.pid)
            self._proc = proc
        self.events.write("front_spawn", pid=proc.pid, port=self.port, restarts=self.restarts)
        return proc

    def _watch_until_done(self, proc: subprocess.Popen[bytes]) -> tuple[str, dict[str, object]]:
        """Wait for the front's exit, a hang or an RSS above the cap; say which."""
        exited = threading.Event()
        threading.Thread(
            target=lambda: (proc.wait(), exited.set()), name="front-waiter", daemon=True
        ).start()
        spawned, ready, failures = time.monotonic(), False, 0
        w = self.watch
        while not exited.wait(w.interval_s if ready else min(1.0, w.interval_s)):
            if self._halt.is_set():
                return "front_stop", {}
            rss = rss_mb(proc.pid)
            if rss is not None and rss > w.max_rss_mb:
                return "front_rss", {"rss_mb": round(rss, 1), "max_rss_mb": w.max_rss_mb}
            if self._healthy():
                if not ready:
                    ready = True
                    self.events.write("front_ready", pid=proc.pid, port=self.port)
                failures = 0
            elif ready:
                failures += 1
                if failures >= w.failure_threshold:
                    return "front_hang", {"failures": failures}
            elif time.monotonic() - spawned > w.startup_s:
                return "front_hang", {"reason": f"no answer within {w.startup_s:.0f} s"}
        return "front_exit", {}

    def _healthy(self) -> bool:
        """The page's ``/health`` and the door's ``/__sdw/health`` both answer: the
        two servers run on loops of their own, and either may hang alone."""
        host = probe_host(self.config.host)
        host = f"[{host}]" if ":" in host else host
        scheme = "https" if self.config.tls else "http"
        urls = [f"{scheme}://{host}:{self.port}/health"]
        for port in [self.app_port, *self.slot_ports.values()]:
            if port is not None:
                urls.append(f"{scheme}://{host}:{port}/__sdw/health")
        for url in urls:
            try:
                status, _ = http_get(url, self.watch.timeout_s, verify=False)
            except (OSError, http.client.HTTPException):
                return False
            if status != 200:
                return False
        return True

    def _end(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM, then SIGKILL: the front holds nothing that needs a clean exit."""
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()

    @staticmethod
    def _exit_of(proc: subprocess.Popen[bytes]) -> dict[str, object]:
        code = proc.poll()
        if code is None:
            return {}
        exit_code, signal_name, _ = describe_exit(code)
        return {"exit_code": exit_code} if signal_name is None else {"signal": signal_name}
