"""A local notification receiver: what Apprise's ``json://`` posts, on 127.0.0.1.

``Receiver()`` keeps every message; ``Receiver(hang=True)`` accepts the connection
and never answers (a dead service behind a live load balancer).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(self, hang: bool = False) -> None:
        self.messages: list[dict[str, Any]] = []
        self.arrivals: list[float] = []  # wall clock, beside each message
        self.arrived = threading.Condition()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if hang:
                    receiver._release.wait(30)
                    return
                with receiver.arrived:
                    receiver.messages.append(json.loads(body))
                    receiver.arrivals.append(time.time())
                    receiver.arrived.notify_all()
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, secret: str = "") -> str:
        auth = f"sdw:{secret}@" if secret else ""
        return f"json://{auth}127.0.0.1:{self.port}/hook"

    def wait(self, count: int, timeout: float) -> list[dict[str, Any]]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.messages) >= count, timeout)
            return list(self.messages)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> int:
    """A port nothing listens on (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
