"""Plain HTTP routes beside the Gradio app, for curl, scripts and load balancers.

    GET /health                      the watchdog itself is alive (never needs auth)
    GET /info                        the status object (same as the ``status`` endpoint)
    GET /read-current-stdout-log     ?lines=N (1..10000, default 100), text/plain
    GET /read-current-stderr-log     same for stderr
    GET /download-current-log        ?stream=stdout|stderr, the current run's whole file

Only GET, and nothing here changes state: a link can never stop a framework.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from ..control.api import MAX_LINES, Refused
from .link import CoreLink


def _read_upto(core: CoreLink, stream: str, first: dict[str, Any]) -> Iterator[bytes]:
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
            piece = core.follow(stream, piece["offset"], run_id)
        except Refused:
            return
        if piece["run_id"] != run_id:
            return  # a new run began: what was announced is all there is


def add_routes(app: FastAPI, core: CoreLink) -> None:
    @app.get("/health")
    def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/info")
    def info() -> JSONResponse:
        try:
            return JSONResponse(core.status())
        except Refused as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)

    def read_log(stream: str, lines: int) -> Response:
        if not 1 <= lines <= MAX_LINES:
            return PlainTextResponse(f"lines must be from 1 to {MAX_LINES}\n", status_code=400)
        try:
            text = core.logs(stream, lines)
        except Refused as exc:
            return PlainTextResponse(f"{exc}\n", status_code=exc.status)
        return PlainTextResponse(text + "\n" if text else "")

    @app.get("/read-current-stdout-log")
    def stdout_log(lines: int = Query(100)) -> Response:
        return read_log("stdout", lines)

    @app.get("/read-current-stderr-log")
    def stderr_log(lines: int = Query(100)) -> Response:
        return read_log("stderr", lines)

    @app.get("/download-current-log")
    def download(stream: str = Query("stdout")) -> Response:
        if stream not in ("stdout", "stderr"):
            return PlainTextResponse("stream must be stdout or stderr\n", status_code=400)
        try:
            first = core.follow(stream, 0)
        except Refused as exc:
            return PlainTextResponse(f"{exc}\n", status_code=exc.status)
        if first["run_id"] is None:
            return PlainTextResponse("no run yet\n", status_code=404)
        name = f"{first['run_id']}.{stream}.log"
        return StreamingResponse(
            _read_upto(core, stream, first),
            media_type="text/plain; charset=utf-8",
            headers={
                "content-length": str(first["size"]),
                "content-disposition": f'attachment; filename="{name}"',
            },
        )
