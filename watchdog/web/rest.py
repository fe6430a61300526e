"""REST under ``/api/v1`` on the page port: the core's JSON API, one request per action.

Behind the page's credentials (the auth gate wraps everything but ``/health``), with
the same methods and checks as the control socket and the Gradio API
(``control/api.py``, reached through ``web/link.py``)::

    curl -u admin -X POST http://vm:5005/api/v1/switch -d '{"framework": "comfyui"}'
    curl -u admin http://vm:5005/api/v1/status

OpenAPI at ``/api/v1/openapi.json``. Errors are 4xx with ``{"error": "<a sentence>"}``
and change nothing.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.concurrency import run_in_threadpool

from ..control.api import (
    MAX_EVENTS,
    MAX_HISTORY_MINUTES,
    MAX_LINES,
    Refused,
    json_object,
)
from .link import CoreLink


class Action(BaseModel):
    """The body of ``start``, ``stop``, ``restart`` and ``switch`` (all optional but a
    switch's framework)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    framework: str | None = None
    force: bool = False
    slot: str | None = None  # which GPU slot (default: the first)
    requeue: bool = False  # stop, restart: ComfyUI's queue goes back once it runs again
    clear_queue: bool = False  # stop, restart: empty the framework's own queue first


MAX_BODY = 64 * 1024
SLOT = Query(None, description="which GPU slot (default: the first)")
# The body is JSON whatever its Content-Type says: `curl -d '{…}'` sends it as a form.
BODY_DOC = {
    "requestBody": {
        "required": False,
        "content": {"application/json": {"schema": Action.model_json_schema()}},
    }
}


async def _action(request: Request) -> Action:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise Refused(f"the body must be at most {MAX_BODY} bytes", 413)
    try:
        return Action.model_validate(json_object(raw))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "the body"
        raise Refused(f"{where}: {first.get('msg', 'invalid')}"[:300]) from None


def _refused(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Refused)
    return JSONResponse({"error": str(exc)}, status_code=exc.status)


def _invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "the request"
    message = f"{where}: {first.get('msg', 'invalid')}"
    return JSONResponse({"error": message[:300]}, status_code=400)


def build_rest(core: CoreLink) -> FastAPI:
    api = core.as_requester("http")
    rest = FastAPI(
        title="sd-watchdog",
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        description="Keep one Stable Diffusion web UI alive; switch between them.",
    )
    rest.add_exception_handler(Refused, _refused)
    rest.add_exception_handler(RequestValidationError, _invalid)

    @rest.get("/status", summary="The status object (same as GET /info)")
    def status(slot: str | None = SLOT) -> dict[str, Any]:
        return api.status(slot=slot)

    @rest.get("/frameworks", summary="Every framework in the settings")
    def frameworks() -> list[dict[str, Any]]:
        return api.frameworks()

    # Actions are async only to read the body; the core's answer is awaited in a
    # worker thread, so the event loop never blocks on a switch.

    @rest.post(
        "/start", summary="Start a framework (default: the chosen one)", openapi_extra=BODY_DOC
    )
    async def start(request: Request) -> dict[str, Any]:
        body = await _action(request)
        return await run_in_threadpool(api.start, body.framework, body.force, body.slot)

    @rest.post("/stop", summary="Stop the framework's whole process tree", openapi_extra=BODY_DOC)
    async def stop(request: Request) -> dict[str, Any]:
        body = await _action(request)
        queue = (body.requeue, body.clear_queue)
        return await run_in_threadpool(api.stop, body.force, body.slot, *queue)

    @rest.post(
        "/restart", summary="Stop and start the chosen framework again", openapi_extra=BODY_DOC
    )
    async def restart(request: Request) -> dict[str, Any]:
        body = await _action(request)
        queue = (body.requeue, body.clear_queue)
        return await run_in_threadpool(api.restart, body.force, body.slot, *queue)

    @rest.post(
        "/switch",
        summary="Stop what runs, wait for its port and VRAM, start another",
        openapi_extra=BODY_DOC,
    )
    async def switch(request: Request) -> dict[str, Any]:
        body = await _action(request)
        return await run_in_threadpool(api.switch, body.framework or "", body.force, body.slot)

    @rest.post(
        "/keep-awake",
        summary="Restart the idle clock; a pending idle command will not run",
        openapi_extra=BODY_DOC,
    )
    async def keep_awake(request: Request) -> dict[str, Any]:
        body = await _action(request)
        return await run_in_threadpool(api.keep_awake, body.force, body.slot)

    @rest.get("/logs", summary="The current run's last lines", response_class=PlainTextResponse)
    def logs(
        stream: str = Query("both", description="both (in write order), stdout or stderr"),
        lines: int = Query(200, ge=1, le=MAX_LINES),
        slot: str | None = SLOT,
    ) -> str:
        return api.logs(stream, lines, slot)

    @rest.get("/events", summary="The newest events, newest first")
    def events(
        limit: int = Query(50, ge=1, le=MAX_EVENTS),
        framework: str | None = None,
        slot: str | None = Query(None, description="one GPU slot's (default: every slot's)"),
    ) -> list[dict[str, Any]]:
        return api.events(limit, framework, slot)

    @rest.get("/gpu", summary="The latest GPU snapshot")
    def gpu() -> dict[str, Any]:
        return api.gpu()

    @rest.get("/history", summary="GPU / CPU / RAM samples, at most 400 points")
    def history(minutes: int = Query(60, ge=1, le=MAX_HISTORY_MINUTES)) -> list[dict[str, Any]]:
        return api.history(minutes)

    return rest
