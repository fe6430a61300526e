"""The demo's streaming endpoints, what real frameworks do through the door:

- ``GET /ws``: a WebSocket that echoes every message (ComfyUI's ``/ws``),
- ``GET /stream?events=N&interval=S``: Server-Sent Events, one every S seconds
  (Gradio's queue),
- ``POST /upload``: reads the body as it comes (Content-Length or chunked) and
  answers its size and SHA-256 (an image or a LoRA uploaded),
- ``GET /download?mb=N``: N MiB of a known pattern, written as it goes (an output).

Standard library only (the demo runs under any Python). Each takes the request
handler (``BaseHTTPRequestHandler``) and answers on its socket.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
from http.server import BaseHTTPRequestHandler
from typing import BinaryIO
from urllib.parse import parse_qs

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CHUNK = bytes(range(256)) * 4096  # 1 MiB; pattern(n) is CHUNK repeated
MAX_DOWNLOAD_MB = 4096


def home_page(persona: str, port: int) -> str:
    """The demo's UI: it calls its API and its WebSocket the way a framework's page
    does (relative URLs, the page's own host), so a browser shows both working."""
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>sd-watchdog demo ({persona})</title></head><body>
<h1>sd-watchdog demo framework</h1>
<p id="persona">{persona} on port {port}</p>
<p id="api">api: waiting</p><p id="ws">ws: waiting</p>
<script>
fetch("sdapi/v1/progress").then(r => r.json())
  .then(j => {{ document.getElementById("api").textContent = "api: ok"; }})
  .catch(e => {{ document.getElementById("api").textContent = "api: " + e; }});
const scheme = location.protocol === "https:" ? "wss://" : "ws://";
const ws = new WebSocket(scheme + location.host + "/ws");
ws.onopen = () => ws.send("hello through the door");
ws.onmessage = e => {{ document.getElementById("ws").textContent = "ws: " + e.data; }};
ws.onerror = () => {{ document.getElementById("ws").textContent = "ws: error"; }};
</script></body></html>
"""


def _query(handler: BaseHTTPRequestHandler) -> dict[str, str]:
    query = handler.path.split("?", 1)[1] if "?" in handler.path else ""
    return {k: v[0] for k, v in parse_qs(query).items()}


def download(handler: BaseHTTPRequestHandler) -> None:
    try:
        mb = max(0, min(int(_query(handler).get("mb", "1")), MAX_DOWNLOAD_MB))
    except ValueError:
        mb = 1
    handler.send_response(200)
    handler.send_header("Content-Type", "application/octet-stream")
    handler.send_header("Content-Length", str(mb * len(CHUNK)))
    handler.end_headers()
    for _ in range(mb):
        handler.wfile.write(CHUNK)


def _read_into(rfile: BinaryIO, left: int, digest: hashlib._Hash) -> int:
    """Read exactly ``left`` bytes into ``digest``, 1 MiB at a time; the count."""
    size = left
    while left:
        data = rfile.read(min(left, 1 << 20))
        if not data:
            raise ConnectionError("body ended early")
        digest.update(data)
        left -= len(data)
    return size


def _read_body(handler: BaseHTTPRequestHandler) -> tuple[int, str]:
    """(size, sha256) of the request body, as it comes: Content-Length or chunked."""
    digest, size = hashlib.sha256(), 0
    rfile: BinaryIO = handler.rfile  # type: ignore[assignment]
    if handler.headers.get("Transfer-Encoding", "").lower() != "chunked":
        size = _read_into(rfile, int(handler.headers.get("Content-Length") or 0), digest)
        return size, digest.hexdigest()
    while length := int(rfile.readline().split(b";", 1)[0].strip() or b"0", 16):
        size += _read_into(rfile, length, digest)
        rfile.readline()  # the CRLF after each chunk
    while rfile.readline() not in (b"\r\n", b"\n", b""):
        pass  # trailers
    return size, digest.hexdigest()


def upload(handler: BaseHTTPRequestHandler) -> None:
    size, sha = _read_body(handler)
    body = json.dumps({"size": size, "sha256": sha}).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def stream(handler: BaseHTTPRequestHandler) -> None:
    q = _query(handler)
    try:
        count = max(1, min(int(q.get("events", "5")), 100_000))
        interval = max(0.0, min(float(q.get("interval", "0.2")), 600.0))
    except ValueError:
        count, interval = 5, 0.2
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Cache-Control", "no-cache")
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.close_connection = True
    for i in range(count):
        handler.wfile.write(f"id: {i}\ndata: {json.dumps({'n': i})}\n\n".encode())
        handler.wfile.flush()
        if i + 1 < count:
            time.sleep(interval)


def websocket_echo(handler: BaseHTTPRequestHandler) -> None:
    key = handler.headers.get("Sec-WebSocket-Key")
    if not key or handler.headers.get("Upgrade", "").lower() != "websocket":
        handler.send_error(400, "a WebSocket handshake is expected here")
        return
    accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept}",
    ]
    protocols = handler.headers.get("Sec-WebSocket-Protocol")
    if protocols:
        lines.append(f"Sec-WebSocket-Protocol: {protocols.split(',')[0].strip()}")
    handler.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    handler.wfile.flush()
    handler.close_connection = True
    rfile, wfile = handler.rfile, handler.wfile
    while True:
        head = rfile.read(2)
        if len(head) < 2:
            return
        first, second = head
        opcode, length = first & 0x0F, second & 0x7F
        if length == 126:
            length = struct.unpack("!H", rfile.read(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", rfile.read(8))[0]
        mask = rfile.read(4) if second & 0x80 else b"\0\0\0\0"
        raw = rfile.read(length)
        pad = (mask * (length // 4 + 1))[:length]
        data = (int.from_bytes(raw, "big") ^ int.from_bytes(pad, "big")).to_bytes(length, "big")
        if opcode == 0x8:  # close: answer it, then hang up
            _frame(wfile, 0x88, bytes(data[:2]))
            return
        if opcode == 0x9:  # ping
            _frame(wfile, 0x8A, bytes(data))
        elif opcode in (0x0, 0x1, 0x2):
            _frame(wfile, first, bytes(data))  # FIN bit and opcode as they came


def _frame(wfile: BinaryIO, first: int, data: bytes) -> None:
    n = len(data)
    if n < 126:
        head = struct.pack("!BB", first, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", first, 126, n)
    else:
        head = struct.pack("!BBQ", first, 127, n)
    wfile.write(head + data)
    wfile.flush()
