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
from pathlib import Path

from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from ..control.api import MAX_LINES
from ..runtime.logs import tail_text
from ..runtime.supervisor import Supervisor

CHUNK = 256 * 1024


def _read_upto(path: Path, size: int) -> Iterator[bytes]:
    # The framework keeps writing: send exactly the size announced, not what arrives.
    with open(path, "rb") as fh:
        left = size
        while left > 0:
            chunk = fh.read(min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk


def add_routes(app: FastAPI, supervisor: Supervisor) -> None:
    @app.get("/health")
    def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/info")
    def info() -> JSONResponse:
        return JSONResponse(supervisor.status().to_dict())

    def read_log(stream: str, lines: int) -> Response:
        if not 1 <= lines <= MAX_LINES:
            return PlainTextResponse(f"lines must be from 1 to {MAX_LINES}\n", status_code=400)
        text = tail_text(supervisor.status().logs, stream, lines)
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
        logs = supervisor.status().logs
        if logs is None:
            return PlainTextResponse("no run yet\n", status_code=404)
        path = logs.stdout if stream == "stdout" else logs.stderr
        try:
            size = path.stat().st_size
        except OSError:
            return PlainTextResponse("log file is gone\n", status_code=404)
        return StreamingResponse(
            _read_upto(path, size),
            media_type="text/plain; charset=utf-8",
            headers={
                "content-length": str(size),
                "content-disposition": f'attachment; filename="{path.name}"',
            },
        )
