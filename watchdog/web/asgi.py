"""The ASGI shapes the web layer's own middlewares share, and an answer without an app.

>>> await respond(scope, send, 401, "authentication required")   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

WS_CLOSE_CODES = {401: 4401, 403: 4403, 429: 4429, 503: 4503}


async def respond(
    scope: Scope,
    send: Send,
    status: int,
    text: str,
    headers: list[tuple[bytes, bytes]] | None = None,
    content_type: bytes = b"text/plain; charset=utf-8",
) -> None:
    """Answer at the ASGI level, without the app (a refusal before anything runs)."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": WS_CLOSE_CODES.get(status, 4400)})
        return
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
