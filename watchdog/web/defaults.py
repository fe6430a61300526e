"""``{"data": []}`` is a valid call of every Gradio endpoint.

Gradio's plain HTTP door (``POST /gradio_api/call/<name>``) wants every argument,
though the functions behind it have a default for each (``gradio_client`` fills them
in itself; curl does not). This ASGI layer fills the arguments a call leaves out with
those defaults before Gradio sees the request.

    curl -X POST http://vm:5005/gradio_api/call/stop -d '{"data": []}'   # = [false]

It also sends a body that is JSON on as JSON whatever its Content-Type said, and
answers a call of an endpoint that does not exist with a 404 in the API's one error
shape (Gradio itself says a bare "Internal Server Error").
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any

from .asgi import ASGIApp, respond

PREFIX = "/gradio_api/call/"
# Gradio's HTTP doors that name an endpoint in the path.
NAMED = (PREFIX, "/gradio_api/run/", "/call/", "/run/")
MAX_BODY = 1024 * 1024


def defaults_of(functions: dict[str, Callable[..., Any]]) -> dict[str, list[Any]]:
    """Each function's parameter defaults, in order (``{"stop": [False]}``)."""
    return {
        name: [p.default for p in inspect.signature(fn).parameters.values() if p.name != "self"]
        for name, fn in functions.items()
    }


class DefaultArgs:
    def __init__(self, app: ASGIApp, defaults: dict[str, list[Any]]) -> None:
        self.app = app
        self.defaults = defaults

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        named = next((path[len(p) :].split("/", 1)[0] for p in NAMED if path.startswith(p)), None)
        if scope["type"] == "http" and named is not None and named not in self.defaults:
            known = ", ".join(sorted(self.defaults))
            error = json.dumps({"error": f"no API endpoint {named[:40]!r}; there are: {known}"})
            await respond(scope, send, 404, error, content_type=b"application/json")
            return
        name = path[len(PREFIX) :] if path.startswith(PREFIX) else None
        if scope["type"] != "http" or scope.get("method") != "POST" or name not in self.defaults:
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_BODY:
                error = '{"error": "the body must be at most 1 MB"}'
                await respond(scope, send, 413, error, content_type=b"application/json")
                return
        body, is_json = self._filled(name, body)
        # curl -d sends a form content type: a body that is JSON is sent on as JSON.
        drop = {b"content-length", b"content-type"} if is_json else {b"content-length"}
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() not in drop]
        headers.append((b"content-length", str(len(body)).encode()))
        if is_json:
            headers.append((b"content-type", b"application/json"))
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app({**scope, "headers": headers}, replay, send)

    def _filled(self, name: str, body: bytes) -> tuple[bytes, bool]:
        """The body with the missing arguments filled in; and whether it is JSON."""
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):  # "[[[[…": too deep for json
            return body, False  # Gradio says what is wrong with it
        args = data.get("data") if isinstance(data, dict) else None
        wanted = self.defaults[name]
        if not isinstance(args, list) or len(args) >= len(wanted):
            return body, True
        data["data"] = [*args, *wanted[len(args) :]]
        return json.dumps(data).encode(), True
