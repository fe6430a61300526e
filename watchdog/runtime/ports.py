"""The framework's port: whose is it, is it free, and waiting until it is.

>>> url_port("http://127.0.0.1:7860")
('127.0.0.1', 7860)
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from urllib.parse import urlsplit

import psutil

# A framework URL on one of these is a port of this machine, ours to check.
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "0.0.0.0", "::1", "::"})


def local_port(url: str | None) -> int | None:
    """The port of a URL on this machine; None for another host or no URL."""
    hostport = url_port(url)
    return hostport[1] if hostport and hostport[0] in LOCAL_HOSTS else None


def url_port(url: str | None) -> tuple[str, int] | None:
    """``http://127.0.0.1:7860`` → ``("127.0.0.1", 7860)``; None without a port."""
    if not url:
        return None
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return parts.hostname or "127.0.0.1", port


def port_in_use(port: int) -> bool:
    """True when something listens on ``port`` (any local address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def port_holder(port: int) -> str | None:
    """Who listens on ``port``, in words (``"pid 1234 (python3 main.py)"``), if we may see it.

    Slow-ish (scans every process's sockets): only for error messages.
    """
    try:
        conns = psutil.net_connections(kind="inet")
    except (psutil.Error, OSError):
        return None
    for conn in conns:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            if conn.pid is None:
                return None
            try:
                cmd = " ".join(psutil.Process(conn.pid).cmdline())[:80]
            except psutil.Error:
                cmd = "?"
            return f"pid {conn.pid} ({cmd})"
    return None


def wait_port_free(port: int, timeout: float, stop: threading.Event | None = None) -> bool:
    """Wait until nothing listens on ``port``; False if still taken at the timeout."""
    stop = stop or threading.Event()
    deadline = time.monotonic() + timeout
    while port_in_use(port):
        left = deadline - time.monotonic()
        if left <= 0 or stop.wait(min(0.05, left)):
            return False
    return True
