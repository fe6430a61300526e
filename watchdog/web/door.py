"""The door: the current framework's own UI on ``server.app_port``, behind our gate.

An ASGI app (the gate wraps it in ``server.build_door``). HTTP goes through httpx,
streamed both ways with the transport's back-pressure (a 200 MB upload or download
never sits in memory) and no read timeout (a long generation or an SSE stream is
never cut); WebSockets through the ``websockets`` client, frame by frame. The
request keeps its Host (frameworks compare it with Origin: ComfyUI answers 403 when
they differ) and gains ``X-Forwarded-For/-Proto/-Host``. The target is only ever the
current framework's loopback URL (``door_target.py``), and only the request's path
and query are sent to it; a request whose target is not a path is refused.

While no framework is ready, a browser gets a page that says so and reloads itself;
any other client 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import httpcore
import httpx
import websockets
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from .activity import ActivityReporter
from .asgi import Receive, Scope, Send, respond
from .clients import ClientResolver, header
from .door_target import RELOAD_S, DoorTarget, Target, starting_page
from .metrics import DoorStats

log = logging.getLogger(__name__)

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"forwarded",
    }
)
WS_HANDSHAKE = frozenset(
    {b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions", b"host"}
)
CONNECT_TIMEOUT_S = 10.0
MAX_WS_FRAME = 64 * 2**20  # a ComfyUI preview or a pasted image, not a memory bomb


# httpcore reads a response 64 KB at a time; a read returns what has arrived, up to
# this, so bigger reads cost an SSE event nothing and halve the per-chunk work of a
# large download (measured in bench/door.py).
READ_BYTES = 1 << 20
if getattr(httpcore.AsyncHTTP11Connection, "READ_NUM_BYTES", 0) < READ_BYTES:
    httpcore.AsyncHTTP11Connection.READ_NUM_BYTES = READ_BYTES


class ClientGone(Exception):
    """The client hung up while its request body was on its way."""


class Door:
    def __init__(
        self,
        target: DoorTarget,
        clients: ClientResolver,
        tls: bool = False,
        stats: DoorStats | None = None,
        activity: ActivityReporter | None = None,
    ) -> None:
        self.target = target
        self.activity = activity
        self.clients = clients
        self.stats = stats if stats is not None else DoorStats()
        self.scheme = "https" if tls else "http"
        # One pool for every request; no proxy from the environment, no redirects
        # followed, and no timeout once the framework answered.
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(connect=CONNECT_TIMEOUT_S, read=None, write=None, pool=None),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
            follow_redirects=False,
            trust_env=False,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        self.stats.requests += 1  # one event loop: no lock needed
        raw_path: bytes = scope.get("raw_path") or scope.get("path", "/").encode()
        if not raw_path.startswith(b"/"):  # absolute-form or garbage: we are no proxy
            await respond(scope, send, 400, "the door takes a path, not a URL")
            return
        target = await self.target.current()
        if self.activity is not None:  # use, for the idle policy; it wakes a sleeper
            self.activity.seen(target.state == "SLEEPING", target.idle_after_s)
        if not target.ready:
            await self._not_ready(scope, send, target)
            return
        query = scope.get("query_string", b"")
        path = raw_path + (b"?" + query if query else b"")
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send, target, path)
        else:
            await self._http(scope, receive, send, target, path)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.http.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _not_ready(self, scope: Scope, send: Send, target: Target) -> None:
        retry = [(b"retry-after", str(RELOAD_S).encode())]
        accept = header(scope, b"accept") or ""
        if scope["type"] == "http" and "text/html" in accept:
            await respond(
                scope, send, 503, starting_page(target), retry, b"text/html; charset=utf-8"
            )
        else:
            why = target.reason if target.state in ("RUNNING", "UNHEALTHY") else target.state
            text = f"{target.framework} is not ready ({why}); try again shortly"
            await respond(scope, send, 503, text, retry)

    def _forwarded(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        host = header(scope, b"host") or ""
        proto = self.scheme
        if self.clients.from_proxy(scope):  # Caddy in front: https is what the user sees
            told = (header(scope, b"x-forwarded-proto") or "").strip().lower()
            proto = told if told in ("http", "https") else proto
        return [
            (b"x-forwarded-for", self.clients.address(scope).encode()),
            (b"x-forwarded-proto", proto.encode()),
            (b"x-forwarded-host", host.encode("latin-1")),
        ]

    async def _http(
        self, scope: Scope, receive: Receive, send: Send, target: Target, path: bytes
    ) -> None:
        headers = [(k, v) for k, v in scope["headers"] if k not in HOP_BY_HOP]
        headers += self._forwarded(scope)
        has_body = any(k in (b"content-length", b"transfer-encoding") for k, _ in scope["headers"])
        # httpx.Request, not client.build_request: no default headers of httpx's
        # (Accept-Encoding would make the framework compress for a client that can't).
        try:
            request = httpx.Request(
                scope["method"],
                httpx.URL(target.url + path.decode("latin-1")),
                headers=headers,
                content=_body(receive) if has_body else None,
            )
        except (httpx.InvalidURL, ValueError, TypeError) as exc:
            await respond(scope, send, 400, f"not a request the door can pass on: {exc}"[:200])
            return
        try:
            response = await self.http.send(request, stream=True)
        except ClientGone:
            return
        except httpx.TransportError as exc:
            await self.target.current(fresh=True)  # a crash or a switch: look again
            await respond(
                scope, send, 502, f"{target.framework} did not answer ({type(exc).__name__})"
            )
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": _response_headers(response, target),
                }
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except httpx.TransportError as exc:  # the framework went away mid-answer
            log.debug("door: the framework's answer ended early: %s", exc)
            if "content-length" not in response.headers:  # a stream: end it as it ended
                with contextlib.suppress(Exception):
                    await send({"type": "http.response.body", "body": b""})
        except OSError as exc:  # the client went away
            log.debug("door: the client left: %s", exc)
        finally:
            await response.aclose()

    async def _websocket(
        self, scope: Scope, receive: Receive, send: Send, target: Target, path: bytes
    ) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in scope["headers"]
            if k not in HOP_BY_HOP and k not in WS_HANDSHAKE and k not in (b"origin", b"user-agent")
        ]
        headers += [(k.decode(), v.decode("latin-1")) for k, v in self._forwarded(scope)]
        host = header(scope, b"host") or f"{target.host}:{target.port}"
        protocols = [
            p.strip()
            for value in (v for k, v in scope["headers"] if k == b"sec-websocket-protocol")
            for p in value.decode("latin-1").split(",")
            if p.strip()
        ]
        try:
            # The URI carries the client's Host; host= and port= are where we connect
            # (and make websockets refuse a redirect to any other origin).
            upstream = await ws_connect(
                f"ws://{host}{path.decode('latin-1')}",
                host=target.host,
                port=target.port,
                proxy=None,
                origin=header(scope, b"origin"),  # type: ignore[arg-type]
                subprotocols=protocols or None,  # type: ignore[arg-type]
                additional_headers=headers,
                user_agent_header=header(scope, b"user-agent"),
                open_timeout=CONNECT_TIMEOUT_S,
                ping_interval=None,  # the browser keeps its own connection alive
                max_size=MAX_WS_FRAME,
                compression=None,
            )
        except Exception as exc:  # refused, unreachable, or a Host it cannot parse
            log.info("door: the framework refused a WebSocket to %s: %s", path[:100], exc)
            await send({"type": "websocket.close", "code": 1011})
            return
        async with upstream:
            await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})
            await _pump(receive, send, upstream)


async def _pump(receive: Receive, send: Send, upstream: websockets.ClientConnection) -> None:
    """Frames both ways until either side closes; its close code reaches the other."""

    async def from_client() -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                await upstream.close(message.get("code", 1000))
                return
            data = message.get("text")
            await upstream.send(data if data is not None else message.get("bytes") or b"")

    async def from_upstream() -> None:
        try:
            async for data in upstream:
                key = "text" if isinstance(data, str) else "bytes"
                await send({"type": "websocket.send", key: data})
        except ConnectionClosed:
            pass
        code = upstream.close_code or 1000
        with contextlib.suppress(Exception):  # the client may be gone already
            await send({"type": "websocket.close", "code": 1000 if code in (1005, 1006) else code})

    tasks = [asyncio.create_task(from_client()), asyncio.create_task(from_upstream())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body"):
            return


def _response_headers(response: httpx.Response, target: Target) -> list[tuple[bytes, bytes]]:
    out = []
    for key, value in response.headers.raw:
        name = key.lower()
        if name in HOP_BY_HOP:
            continue
        if name == b"location" and target.url and value.startswith(target.url.encode()):
            value = value[len(target.url) :] or b"/"  # the framework's own address: keep it ours
        out.append((name, value))
    return out
