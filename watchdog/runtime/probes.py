"""How the watchdog tells that a framework is ready and still alive.

Ready: the ready line appears in its output, or its health URL answers, whichever
comes first. Alive: the health URL answers within ``health_timeout_s``. A framework
whose kernel still accepts connections but whose process is stopped or deadlocked
fails by timeout, which is exactly the "hang" that exit codes never show.

A :class:`Prober` thread per run does this work and reports through a callback,
so the supervisor's control thread never blocks on the network.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..core.messages import Probe, Ready, StartupOutput
from ..frameworks.busy import Busy, parse_busy
from ..frameworks.presets import FrameworkSpec, join_url
from .logs import strip_ansi

log = logging.getLogger(__name__)

READY_SCAN_S = 0.05  # how often the log files are looked at while starting
STARTUP_PROBE_S = 0.25  # how often the health URL is tried while starting
STARTUP_PROBE_TIMEOUT_S = 2.0
STARTUP_OUTPUT_S = 2.0  # how often a starting run's output is looked at for growth
MAX_SCAN_CHUNK = 1024 * 1024
MAX_BUSY_BODY = 8 * 1024 * 1024  # ComfyUI's /queue carries whole workflows


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str
    latency_ms: float


def http_get(
    url: str, timeout: float, limit: int = 64 * 1024, verify: bool = True
) -> tuple[int, bytes]:
    """One GET, with the standard library: no proxy (a cloud image's ``HTTP_PROXY``
    must not sit between us and a framework on 127.0.0.1), no redirect, no reuse.

    A third of the CPU of the same call through ``requests``; a probe runs every few
    seconds for as long as the watchdog lives, and is most of its idle cost. Raises
    ``OSError`` (``TimeoutError`` included) or ``http.client.HTTPException``.
    """
    parts = urlsplit(url)
    https = parts.scheme == "https"
    host = parts.hostname or "127.0.0.1"
    if https:
        # verify=False: our own front on loopback, with its self-signed certificate.
        context = ssl.create_default_context() if verify else ssl._create_unverified_context()
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, parts.port, timeout=timeout, context=context
        )
    else:
        conn = http.client.HTTPConnection(host, parts.port, timeout=timeout)
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("GET", target, headers={"Connection": "close", "Accept": "*/*"})
        resp = conn.getresponse()
        return resp.status, resp.read(limit + 1)
    finally:
        conn.close()


def http_probe(url: str, timeout: float) -> ProbeResult:
    """GET ``url``; any HTTP answer below 500 means alive.

    A 401/404 is still a live server (auth or a path the framework moved): treating
    it as dead would restart a healthy framework forever.
    """
    t0 = time.perf_counter()
    try:
        status, _ = http_get(url, timeout)
    except TimeoutError:
        return ProbeResult(False, f"no answer within {timeout:g}s", _ms(t0))
    except ConnectionRefusedError:
        return ProbeResult(False, "connection failed: connection refused", _ms(t0))
    except OSError as exc:
        return ProbeResult(False, f"connection failed: {exc.strerror or exc}"[:200], _ms(t0))
    except http.client.HTTPException as exc:
        return ProbeResult(False, f"request failed: {exc!r}"[:200], _ms(t0))
    return ProbeResult(status < 500, f"HTTP {status}", _ms(t0))


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 1)


class ReadyLineScanner:
    """Finds the ready line in growing log files, reading only what is new."""

    def __init__(self, paths: list[Path], pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self._offsets = dict.fromkeys(paths, 0)
        self._partial = dict.fromkeys(paths, b"")

    def poll(self) -> re.Match[str] | None:
        for path in self._offsets:
            try:
                size = path.stat().st_size
            except OSError:
                continue
            offset = self._offsets[path]
            if size < offset:  # rotated: start over
                offset, self._partial[path] = 0, b""
            if size == offset:
                continue
            try:
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    chunk = fh.read(min(size - offset, MAX_SCAN_CHUNK))
            except OSError:  # no descriptor to spare right now: next poll
                continue
            self._offsets[path] = offset + len(chunk)
            data = self._partial[path] + chunk
            *lines, self._partial[path] = data.split(b"\n")
            # A ready line printed without a newline (yet) still counts.
            for raw in [*lines, self._partial[path]]:
                text = strip_ansi(raw.decode("utf-8", errors="replace"))
                for piece in text.split("\r"):
                    match = self.pattern.search(piece)
                    if match:
                        return match
            self._partial[path] = self._partial[path][-MAX_SCAN_CHUNK:]
        return None


class Prober(threading.Thread):
    """Per run: waits for readiness, then probes liveness every interval until stopped."""

    def __init__(
        self,
        run_id: str,
        spec: FrameworkSpec,
        interval: float,
        timeout: float,
        log_paths: list[Path],
        report: Callable[[Ready | Probe | StartupOutput], None],
        remember: Callable[[Any], None] | None = None,
    ) -> None:
        """``remember``: told every answer of the busy endpoint (ComfyUI's queue)."""
        super().__init__(name=f"prober-{run_id}", daemon=True)
        self.run_id = run_id
        self.spec = spec
        self.interval = interval
        self.timeout = timeout
        self.log_paths = log_paths
        self.report = report
        self.remember = remember
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        try:
            self._probe()
        except Exception as exc:
            # A prober that cannot go on reports failed probes: a ready run is then
            # restarted as a hang, a starting one by its startup timeout.
            log.exception("prober of run %s failed", self.run_id)
            detail = f"prober failed: {exc.__class__.__name__}"
            while not self._halt.wait(self.interval):
                self.report(Probe(self.run_id, False, detail))

    def _probe(self) -> None:
        url = self._wait_ready()
        if url is None:
            return
        health = join_url(url, self.spec.health_path)
        busy_url = join_url(url, self.spec.busy_path) if self.spec.busy_path else None
        next_at = time.monotonic() + self.interval
        busy_silent = False
        while not self._halt.wait(max(0.0, next_at - time.monotonic())):
            next_at = time.monotonic() + self.interval
            result = http_probe(health, self.timeout)
            # A slow health check may be a long job (ask whether it is busy), or a hang.
            # Once the busy endpoint has not answered either, stop asking until health
            # answers again: it would only double the time a hang takes to be seen.
            busy = None
            if busy_url and (result.ok or not busy_silent):
                busy = self._busy(busy_url)
                busy_silent = busy is None and not result.ok
            if self._halt.is_set():
                return
            output = self._output_bytes() if busy is not None and busy.busy else 0
            self.report(Probe(self.run_id, result.ok, result.detail, busy, output))

    def _output_bytes(self) -> int:
        """How much the run has written: output is a sign of life during a long job."""
        total = 0
        for path in self.log_paths:
            try:
                total += path.stat().st_size
            except OSError:
                pass
        return total

    def _busy(self, url: str) -> Busy | None:
        try:
            status, body = http_get(url, self.timeout, MAX_BUSY_BODY)
        except (OSError, http.client.HTTPException):
            return None
        if status >= 400 or len(body) > MAX_BUSY_BODY:
            return None
        try:
            payload = json.loads(body)
            busy = parse_busy(self.spec.busy_kind or "automatic1111", payload)
        except (ValueError, RecursionError):
            return None
        if self.remember is not None:
            self.remember(payload)
        return busy

    def _wait_ready(self) -> str | None:
        pattern = self.spec.ready_pattern
        scanner = ReadyLineScanner(self.log_paths, pattern) if pattern else None
        health = self.spec.health_url
        next_probe = next_output = time.monotonic()
        written = self._output_bytes()
        while not self._halt.is_set():
            if time.monotonic() >= next_output:  # output while starting is progress
                next_output = time.monotonic() + min(STARTUP_OUTPUT_S, self.interval)
                now_written = self._output_bytes()
                if now_written > written:
                    written = now_written
                    self.report(StartupOutput(self.run_id, written))
            if scanner is not None:
                match = scanner.poll()
                if match:
                    found = match.groupdict().get("url")
                    url = found.rstrip("/") if found else self.spec.url
                    self.report(Ready(self.run_id, "ready line", url, match.string.strip()))
                    return url
            if health and time.monotonic() >= next_probe:
                result = http_probe(health, min(self.timeout, STARTUP_PROBE_TIMEOUT_S))
                if result.ok and not self._halt.is_set():
                    self.report(Ready(self.run_id, "health URL", self.spec.url))
                    return self.spec.url
                next_probe = time.monotonic() + STARTUP_PROBE_S
            self._halt.wait(READY_SCAN_S)
        return None
