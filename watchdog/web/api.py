"""Plain HTTP routes beside the Gradio app, for curl, scripts and load balancers.

    GET /health                      the watchdog itself is alive (never needs auth)
    GET /info                        the status object (same as the ``status`` endpoint)
    GET /read-current-stdout-log     ?lines=N (1..10000, default 100), text/plain
    GET /read-current-stderr-log     same for stderr
    GET /download-current-log        ?stream=stdout|stderr, the current run's whole file
    GET /metrics                     Prometheus' text format (``metrics.py``)

Only GET, and nothing here changes state: a link can never stop a framework. An
error is ``{"error": "<a sentence>"}`` with a 4xx/5xx status, as everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST

from ..control.api import MAX_LINES, Refused
from .link import CoreLink
from .metrics import DoorStats, metrics_text


def _read_upto(
    core: CoreLink, stream: str, first: dict[str, Any], slot: str | None = None
) -> Iterator[bytes]:
    """The run's file from its start to the size it had when asked, a piece per call
    of the core. The framework keeps writing: send exactly the size announced."""
    size, run_id, piece = first["size"], first["run_id"], first
    left = size
    while left > 0:
        data = piece["text"].encode("utf-8", "replace")[:left]
        if not data:
            return
        left -= len(data)
        yield data
        if left <= 0:
            return
        try:
            piece = core.follow(stream, piece["offset"], run_id, slot)
        except Refused:
            return
        if piece["run_id"] != run_id:
            return  # a new run began: what was announced is all there is


def error(message: str, status: int) -> JSONResponse:
    """The one error shape of every route: ``{"error": "<a sentence>"}``."""
    return JSONResponse({"error": message[:300]}, status_code=status)


def add_routes(app: FastAPI, core: CoreLink, door: DoorStats | None = None) -> None:
    door = door if door is not None else DoorStats()

    @app.get("/metrics")
    def metrics() -> Response:
        try:
            text = metrics_text(core.metrics(), door)
        except Refused as exc:
            return error(str(exc), exc.status)
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    @app.get("/health")
    def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    # ``slot``: which GPU slot (default: the first; without slots there is one).

    @app.get("/info")
    def info(slot: str | None = None) -> JSONResponse:
        try:
            return JSONResponse(core.status(slot))
        except Refused as exc:
            return error(str(exc), exc.status)

    def read_log(stream: str, lines: str, slot: str | None) -> Response:
        # Taken as text: "abc" gets our sentence, not FastAPI's validation list.
        count = int(lines) if lines.strip().isdigit() else 0
        if not 1 <= count <= MAX_LINES:
            return error(f"lines must be a whole number from 1 to {MAX_LINES}", 400)
        try:
            text = core.logs(stream, count, slot)
        except Refused as exc:
            return error(str(exc), exc.status)
        return PlainTextResponse(text + "\n" if text else "")

    @app.get("/read-current-stdout-log")
    def stdout_log(lines: str = Query("100"), slot: str | None = None) -> Response:
        return read_log("stdout", lines, slot)

    @app.get("/read-current-stderr-log")
    def stderr_log(lines: str = Query("100"), slot: str | None = None) -> Response:
        return read_log("stderr", lines, slot)

    @app.get("/download-current-log")
    def download(stream: str = Query("stdout"), slot: str | None = None) -> Response:
        if stream not in ("stdout", "stderr"):
            return error("stream must be stdout or stderr", 400)
        try:
            first = core.follow(stream, 0, slot=slot)
        except Refused as exc:
            return error(str(exc), exc.status)
        if first["run_id"] is None:
            return error("no run yet", 404)
        name = f"{first['run_id']}.{stream}.log"
        return StreamingResponse(
            _read_upto(core, stream, first, slot),
            media_type="text/plain; charset=utf-8",
            headers={
                "content-length": str(first["size"]),
                "content-disposition": f'attachment; filename="{name}"',
            },
        )
