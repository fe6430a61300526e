"""The control socket: the core's JSON API over HTTP/1.1 on a Unix socket.

``<logs.dir>/control.sock``, mode 0600 in a folder of the owner's: the file mode is
the guard, so no password is asked. The standard library is enough, which keeps the
core free of any web framework::

    curl --unix-socket logs/control.sock http://sdw/status
    curl --unix-socket logs/control.sock -X POST http://sdw/switch -d '{"framework": "comfyui"}'

Bounded like anything that reads from a socket: lines and headers as ``http.server``
bounds them (64 KB a line, 100 headers), a body of at most 64 KB, 10 s of silence
before a connection is dropped, 48 connections at once (more are answered 503 at
once). Errors are 4xx/5xx with ``{"error": "<a sentence>"}``; nothing changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import logging
import os
import socket
import socketserver
import tempfile
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .api import ControlApi, Refused, json_object

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
# The front keeps at most FRONT_IN_FLIGHT of these (web/link.py): the CLI always gets in.
MAX_IN_FLIGHT = 48
READ_TIMEOUT_S = 10.0
SUN_PATH_MAX = 100  # sockaddr_un's path is 108 bytes, with the NUL and some margin

# method, path → (API method, where its arguments come from)
ROUTES: dict[tuple[str, str], tuple[str, str]] = {
    ("GET", "/status"): ("status", "query"),
    ("GET", "/frameworks"): ("frameworks", "query"),
    ("POST", "/start"): ("start", "body"),
    ("POST", "/stop"): ("stop", "body"),
    ("POST", "/restart"): ("restart", "body"),
    ("POST", "/switch"): ("switch", "body"),
    ("POST", "/keep-awake"): ("keep_awake", "body"),
    ("POST", "/activity"): ("activity", "body"),
    ("GET", "/logs"): ("logs", "query"),
    ("GET", "/logs/follow"): ("follow", "query"),
    ("GET", "/logs/latest"): ("latest", "query"),
    ("GET", "/events"): ("events", "query"),
    ("GET", "/gpu"): ("gpu", "query"),
    ("GET", "/history"): ("history", "query"),
    ("GET", "/metrics"): ("metrics", "query"),
    ("POST", "/journal"): ("journal", "body"),
}
# Query values arrive as text; these are numbers.
NUMERIC = {"lines", "limit", "minutes", "offset"}
# Each API method's argument names, from its signature: what a request may name.
ARGS = {
    name: set(inspect.signature(getattr(ControlApi, name)).parameters) - {"self"}
    for name, _ in ROUTES.values()
}


def socket_path(logs_dir: Path) -> Path:
    return logs_dir / "control.sock"


def _short_home(path: Path) -> Path:
    """Where the socket really lives when ``path`` is too long for a Unix socket: a
    folder of our own (0700) in the temp dir; ``path`` becomes a link to it."""
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"sd-watchdog-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    if folder.stat().st_uid != os.getuid() or folder.stat().st_mode & 0o077:
        raise OSError(f"{folder} is not a private folder of this user")
    return folder / f"{digest}.sock"


def connect_path(path: Path) -> str:
    """The path a client connects to (through the link when there is one)."""
    real = os.path.realpath(path)
    return real if len(real) <= SUN_PATH_MAX else str(path)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = False
    # A full backlog is EAGAIN at once for a client of a Unix socket (no waiting as
    # with TCP): room for every caller the in-flight limit allows, and more.
    request_queue_size = 128

    def __init__(self, path: str, handler: type, api: ControlApi) -> None:
        self.api = api
        self.slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        super().__init__(path, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(_response(503, {"error": "too many requests in flight"}))
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


def _response(status: int, payload: Any) -> bytes:
    body = json.dumps(payload).encode()
    head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    return head.encode() + body


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = READ_TIMEOUT_S
    protocol_version = "HTTP/1.1"
    server_version = "sd-watchdog"

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        try:
            status, payload = 200, self._call(method)
        except Refused as exc:
            status, payload = exc.status, {"error": str(exc)}
        except Exception as exc:  # a bug must not take the socket down
            log.exception("control request failed")
            status, payload = 500, {"error": f"internal error: {exc.__class__.__name__}"}
        self._send(status, payload)

    def _call(self, method: str) -> Any:
        parts = urlsplit(self.path)
        route = ROUTES.get((method, parts.path))
        if route is None:
            if any(p == parts.path for _, p in ROUTES):
                raise Refused(f"{method} is not allowed on {parts.path:.80}", 405)
            raise Refused(f"no such route: {parts.path:.80}", 404)
        name, source = route
        args = self._body() if source == "body" else self._query(parts.query)
        api = self.server.api
        by = args.pop("requested_by", None)
        if by is not None:
            api = api.as_requester(by)
        unknown = set(args) - ARGS[name]
        if unknown:
            raise Refused(f"unknown argument(s) for {name}: {', '.join(sorted(unknown))[:80]}")
        return getattr(api, name)(**args)

    def _body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise Refused("Content-Length must be a number") from None
        if length < 0 or length > MAX_BODY:
            raise Refused(f"the body must be at most {MAX_BODY} bytes", 413)
        return json_object(self.rfile.read(length) if length else b"")

    @staticmethod
    def _query(query: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, values in parse_qs(query, keep_blank_values=True).items():
            value: Any = values[-1]
            if key in NUMERIC:
                try:
                    value = int(value)
                except ValueError:
                    raise Refused(f"{key} must be a whole number, not {value!r:.40}") from None
            out[key] = value
        return out

    def _send(self, status: int, payload: Any) -> None:
        body = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
        ctype = "text/plain; charset=utf-8" if isinstance(payload, str) else "application/json"
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client went away

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """A request that is not HTTP at all, or too long: JSON like any refusal (and
        never the HTTP/0.9 bare body ``http.server`` would send)."""
        self.close_connection = True
        self.request_version = self.protocol_version
        self._send(code, {"error": message or "bad request"})

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the journal is for what happens to the framework, not for reads

    def address_string(self) -> str:
        return "control.sock"


class ControlSocket:
    """Serves ``api`` on ``path`` from a thread of its own until ``stop()``."""

    def __init__(self, path: Path, api: ControlApi) -> None:
        self.path = path
        self.api = api
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._real: Path | None = None

    def start(self) -> Path:
        """Bind (replacing a stale socket: the instance lock says no core owns it)."""
        self._unlink()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        real = self.path if len(str(self.path)) <= SUN_PATH_MAX else _short_home(self.path)
        if real != self.path:
            with contextlib.suppress(FileNotFoundError):
                real.unlink()
            self.path.symlink_to(real)
        self._real = real
        old = os.umask(0o177)  # born 0600: never a moment of wider access
        try:
            self._server = _Server(str(real), _Handler, self.api)
        finally:
            os.umask(old)
        os.chmod(real, 0o600)
        self._thread = threading.Thread(
            # No timed wake-ups while idle: stop() wakes the loop with a connection.
            target=self._server.serve_forever,
            kwargs={"poll_interval": None},
            daemon=True,
        )
        self._thread.name = "control-socket"
        self._thread.start()
        return self.path

    def stop(self) -> None:
        server = self._server
        if server is not None:
            stopping = threading.Thread(target=server.shutdown, daemon=True)
            stopping.start()
            while stopping.is_alive():
                self._poke()
                stopping.join(0.1)
            server.server_close()
            self._server = None
        self._unlink()

    def _poke(self) -> None:
        """A connection that says nothing: the serving loop wakes, sees shutdown."""
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(1)
            sock.connect(str(self._real))

    def _unlink(self) -> None:
        for p in (self.path, self._real):
            if p is not None:
                with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                    p.unlink()
