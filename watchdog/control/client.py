"""Talking to a running core through its control socket (what the CLI uses).

>>> client = ControlClient(Path("logs/control.sock"))           # doctest: +SKIP
>>> client.call("GET", "/status")["state"]
'RUNNING'
"""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from .server import connect_path

BUSY = "the watchdog hung up before answering (busy or stopping); try again"


class NoCore(ConnectionError):
    """No core listens on that socket (not running, or another logs folder)."""


class ApiError(RuntimeError):
    """The core refused the call; ``status`` is the HTTP status, the text its sentence."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("sdw", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class ControlClient:
    def __init__(self, path: Path, timeout: float = 40.0) -> None:
        self.path = path
        self.timeout = timeout  # a switch waits for the command's reply (30 s at most)

    def call(
        self, method: str, route: str, body: dict[str, Any] | None = None, **query: Any
    ) -> Any:
        """One request; the decoded JSON (or text) answer. Raises NoCore or ApiError."""
        params = {k: v for k, v in query.items() if v is not None}
        url = route + (f"?{urlencode(params)}" if params else "")
        conn = _UnixConnection(connect_path(self.path), self.timeout)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            try:
                conn.request(method, url, body=payload, headers=headers)
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                raise NoCore(f"no watchdog is running here (no one at {self.path})") from exc
            except (BrokenPipeError, ConnectionResetError) as exc:
                # It hung up before reading: full (it answers 503 and closes) or stopping.
                raise ApiError(503, BUSY) from exc
            try:
                resp = conn.getresponse()
                raw = resp.read()
            except (BrokenPipeError, ConnectionResetError) as exc:  # RemoteDisconnected too
                raise ApiError(503, BUSY) from exc
        finally:
            conn.close()
        is_json = resp.getheader("Content-Type", "").startswith("application/json")
        data = json.loads(raw) if is_json else raw.decode("utf-8", "replace")
        if resp.status >= 400:
            message = data.get("error") if isinstance(data, dict) else str(data)
            raise ApiError(resp.status, message or f"HTTP {resp.status}")
        return data
