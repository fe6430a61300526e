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
- ``pending_event_ids_session``: one entry per session, never removed for a call that
  finished normally; ``trim_queue`` drops the finished ones once a minute.

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
# Gradio's queue looks for work every 1 ms while idle (about 6 % of a core here).
# Measured here: every 50 ms costs ~0.8 % idle with status p50 83 ms; every 100 ms,
# ~0.6 % with p50 99 ms. API responsiveness wins; see the README's Performance.
QUEUE_POLL_S = 0.05
TRIM_EVERY_S = 60.0


def bound(page: gr.Blocks) -> None:
    """Before mounting ``page``: its session store, its queue's poll and its memory."""
    page.state_session_capacity = SESSIONS_KEPT  # read when mounted (StateHolder.set_blocks)
    queue: Any = getattr(page, "_queue", None)
    if queue is None:
        return
    queue.sleep_when_free = QUEUE_POLL_S
    queue.progress_update_sleep_when_free = 0.25  # we report no progress bars
    if hasattr(queue, "ANALYTICS_MAX_EVENTS"):
        queue.ANALYTICS_MAX_EVENTS = EVENTS_KEPT


def trim_queue(page: gr.Blocks) -> None:
    """Forget sessions whose every event has finished. Runs on the server's event
    loop (where Gradio changes these), never from another thread."""
    queue: Any = getattr(page, "_queue", None)
    pending = getattr(queue, "pending_event_ids_session", None)
    live = getattr(queue, "event_ids_to_events", None)
    if not isinstance(pending, dict) or not isinstance(live, dict):
        return
    for session, ids in list(pending.items()):
        ids.intersection_update(live.keys())
        if not ids:
            pending.pop(session, None)


def trimming(page: gr.Blocks) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """A lifespan for the app ``page`` is mounted in: ``trim_queue`` once a minute."""

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        async def every_minute() -> None:
            while True:
                await asyncio.sleep(TRIM_EVERY_S)
                trim_queue(page)

        task = asyncio.create_task(every_minute())
        try:
            yield
        finally:
            task.cancel()

    return lifespan
