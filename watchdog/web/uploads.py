"""The page has no upload component, so nobody needs Gradio's upload route.

Left open, it would write whatever a client sends into Gradio's cache folder (up to
its size limit, which is none by default). It answers 403 here before a byte of the
body is read. Behind the auth gate, so a stranger gets 401 first.
"""

from __future__ import annotations

from typing import Any

from .asgi import ASGIApp, respond

UPLOAD_PATHS = frozenset({"/gradio_api/upload", "/upload", "/gradio_api/upload_progress"})
BODY = '{"error": "this page takes no uploads"}'


class NoUploads:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("path", "").rstrip("/") in UPLOAD_PATHS:
            close = [(b"connection", b"close")]
            await respond(scope, send, 403, BODY, close, content_type=b"application/json")
            return
        await self.app(scope, receive, send)
