"""What keeps the front bounded: a deadline for the request head, and quiet errors.

uvicorn closes an idle keep-alive connection after ``timeout_keep_alive``, but a
connection that never sends a request (or sends its headers a byte a minute) is kept
forever: a thousand of them use up the process's file descriptors. Here a
connection that has not sent a whole request head within ``HEAD_TIMEOUT_S`` of
connecting, or of its last response, is closed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

HEAD_TIMEOUT_S = 10.0

log = logging.getLogger(__name__)


class BoundedH11Protocol(H11Protocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._armed_for: object = None

    def _waiting_for_head(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        if self._head_timer is None:
            self._armed_for = self.cycle
            self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_deadline)

    def _head_deadline(self) -> None:
        self._head_timer = None
        if self.cycle is self._armed_for and self._waiting_for_head():
            self.transport.close()  # no (new) request head in time

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._waiting_for_head() and not self.transport.is_closing():
            self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)


class QuietLoopErrors:
    """An event-loop exception handler that says each kind of trouble once a minute.

    Out of file descriptors, asyncio reports every failed ``accept()`` with a
    traceback, once a second per listener, and a dropped client's write errors the
    same way: a flood of connections must not become a flood of log. The count of
    what was held back goes with the next line.
    """

    def __init__(self, every_s: float = 60.0) -> None:
        self.every_s = every_s
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", "event loop error"))
        now = loop.time()
        if now - self._last.get(message, -self.every_s) < self.every_s:
            self._held[message] = self._held.get(message, 0) + 1
            return
        self._last[message] = now
        held = self._held.pop(message, 0)
        exc = context.get("exception")
        log.warning(
            "%s%s%s",
            message,
            f": {exc.__class__.__name__}: {exc}" if exc is not None else "",
            f" ({held} more like it in the last minute)" if held else "",
        )
