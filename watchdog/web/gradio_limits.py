"""What we bound inside Gradio, whose defaults suit a busy public demo, not a small
always-on control page. Each is an internal of Gradio's: set only where it is found,
so a newer Gradio without it still runs (just less lean).

Measured (``bench/front.py``): without these the front grew by about 90 KB per plain
API call (``/gradio_api/call/<name>``), +177 MB after 2,000 calls.

- ``state_session_capacity``: Gradio keeps a copy of every component's config per
  session (about 90 KB here) for up to 10,000 sessions, and every plain API call is a
  session of its own. The page keeps no per-session state (no ``gr.State``; every
  refresh returns whole values), so an evicted session costs nothing.
- ``ANALYTICS_MAX_EVENTS``: 10,000 finished events are kept, and summed again after
  every call (a cost that grows with uptime).
- ``pending_event_ids_session``: one entry per plain call's session, never removed;
  ``QueueTrimmer`` drops the empty ones once a minute.

Left as it is: the per-session message queues (at most 2,000, small when empty). A
smaller cap evicts the queue of a long-lived ``gradio_client`` session while plain
calls stream in, and its next result never arrives (seen in ``test_load.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import gradio as gr

SESSIONS_KEPT = 100
EVENTS_KEPT = 100
# Gradio's queue looks for work every 1 ms while idle (about 6 % of a core here); at
# every 50 ms it was still 25 wake-ups a second, 0.55 % of a core for the front alone.
# Now a push wakes it (``_WakeOnPush``), and the poll is only a fallback.
QUEUE_POLL_S = 0.5
PROGRESS_POLL_S = 2.0  # the page reports no progress bars
TRIM_EVERY_S = 60.0


def bound(page: gr.Blocks) -> None:
    """Before mounting ``page``: its session store, its queue's poll and its memory."""
    page.state_session_capacity = SESSIONS_KEPT  # read when mounted (StateHolder.set_blocks)
    queue: Any = getattr(page, "_queue", None)
    if queue is None:
        return
    queue.sleep_when_free = QUEUE_POLL_S
    queue.progress_update_sleep_when_free = PROGRESS_POLL_S
    if _WakeOnPush.install():
        push = queue.push

        async def push_and_wake(*args: Any, **kwargs: Any) -> Any:
            try:
                return await push(*args, **kwargs)
            finally:
                _WakeOnPush.wake()

        queue.push = push_and_wake
    if hasattr(queue, "ANALYTICS_MAX_EVENTS"):
        queue.ANALYTICS_MAX_EVENTS = EVENTS_KEPT


class QueueTrimmer:
    """Forgets the sessions of ``pending_event_ids_session`` left with no event id.

    Gradio removes an event's id once its result is delivered, but keeps the
    session's (empty) entry for good: one per plain call. An empty entry is safe to
    drop at any time: Gradio creates it again, without a pause in between, when the
    session pushes a call, and reads it while delivering only when it holds that
    call's id. An entry with an id in it is never touched: its result may be on the
    way (dropping those once closed live streams and failed gradio_client calls).
    """

    def __init__(self, page: gr.Blocks) -> None:
        self.page = page

    def __call__(self) -> int:
        """Runs on the server's event loop (where Gradio changes these); returns how
        many sessions were forgotten."""
        queue: Any = getattr(self.page, "_queue", None)
        pending = getattr(queue, "pending_event_ids_session", None)
        if not isinstance(pending, dict):
            return 0
        empty = [session for session, ids in pending.items() if not ids]
        for session in empty:
            pending.pop(session, None)
        return len(empty)


def trimming(page: gr.Blocks) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """A lifespan for the app ``page`` is mounted in: a ``QueueTrimmer`` once a minute."""

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        trim = QueueTrimmer(page)

        async def every_minute() -> None:
            while True:
                await asyncio.sleep(TRIM_EVERY_S)
                trim()

        task = asyncio.create_task(every_minute())
        try:
            yield
        finally:
            task.cancel()

    return lifespan


class _WakeOnPush:
    """Stands in for the ``asyncio`` module inside ``gradio.queueing``, so that the
    queue's idle poll (``asyncio.sleep(sleep_when_free)``) ends the moment a call is
    pushed, instead of after a fixed delay: idle, the front wakes twice a second, and
    a call no longer waits up to one poll before it runs. Every other use of asyncio
    there passes straight through. One event per event loop (one loop per server).
    """

    _events: dict[asyncio.AbstractEventLoop, asyncio.Event] = {}

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    @classmethod
    def install(cls) -> bool:
        """Idempotent; False if this Gradio has no ``queueing.asyncio`` to stand in for."""
        try:
            from gradio import queueing
        except ImportError:
            return False
        current = getattr(queueing, "asyncio", None)
        if isinstance(current, cls):
            return True
        if current is not asyncio:
            return False
        queueing.asyncio = cls(asyncio)  # type: ignore[attr-defined]
        return True

    @classmethod
    def _event(cls) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        event = cls._events.get(loop)
        if event is None:
            for old in [lp for lp in cls._events if lp.is_closed()]:
                del cls._events[old]
            event = cls._events[loop] = asyncio.Event()
        return event

    @classmethod
    def wake(cls) -> None:
        cls._event().set()

    async def sleep(self, delay: float, result: Any = None) -> Any:
        if delay != QUEUE_POLL_S:
            return await self._real.sleep(delay, result)
        event = self._event()
        try:
            await self._real.wait_for(event.wait(), delay)
        except asyncio.TimeoutError:
            pass
        # Cleared after waking: a push from here on sets it again, and one that came
        # just before is seen anyway, as the queue looks at its length next.
        event.clear()
        return result
