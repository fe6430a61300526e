"""Taking a run's tree down, off the control thread, with a definite answer.

interrupt (a forced stop of a busy framework) → stop the whole tree → wait for the
leader's exit to be posted → wait for the port → wait for the VRAM. Whatever raises
on the way, the worker ends by posting one ``TornDown``: with ``error`` when the tree
could not be stopped (after a few tries: ``EMFILE`` passes), so the machine always
leaves STOPPING.

The same goes for a sweep of leftovers (``Swept``).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable

from ..core.messages import Message, Swept, Teardown, TornDown
from ..frameworks.interrupt import call_clear_queue, call_interrupt
from ..monitor.gpu import GpuReader
from ..monitor.vram import vram_held, wait_vram_free
from .events import Journal
from .leftovers import Leftovers
from .ports import local_port, wait_port_free
from .proctree import KILL_WAIT_S, StopResult
from .runs import Run

log = logging.getLogger(__name__)

ATTEMPTS = 3
RETRY_S = 0.5


def _with_retries(what: str, work: Callable[[], StopResult], abort: threading.Event) -> StopResult:
    """A stop that failed (``/proc`` unreadable, no file descriptors) is tried again:
    the tree may still be alive, and most such failures pass."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return work()
        except Exception as exc:
            log.warning("%s: stop attempt %d failed: %s", what, attempt, exc)
            if attempt == ATTEMPTS or abort.wait(RETRY_S * attempt):
                raise
    raise AssertionError("unreachable")


def tear_down(
    run: Run,
    td: Teardown,
    gpu: GpuReader | None,
    events: Journal,
    abort: threading.Event,
    post: Callable[[Message], None],
) -> None:
    """The worker's body (a thread per teardown). Posts exactly one ``TornDown``."""
    try:
        msg = _tear_down(run, td, gpu, events, abort)
    except BaseException as exc:
        log.exception("tearing down run %s failed", run.run_id)
        error = f"{exc.__class__.__name__}: {exc}"[:300]
        msg = TornDown(run.run_id, error=error, stderr_tail=_tail(run))
    post(msg)


def _tear_down(
    run: Run, td: Teardown, gpu: GpuReader | None, events: Journal, abort: threading.Event
) -> TornDown:
    if td.clear_queue:  # first: an interrupted job must not make room for the next one
        ok, detail = call_clear_queue(run.spec, td.url)
        events.write("queue_cleared", **run.ids(), ok=ok, detail=detail,
                     requested_by=td.requested_by)  # fmt: skip
    if td.interrupt and run.spec.interrupt is not None:
        ok, detail = call_interrupt(run.spec, td.url)
        events.write("interrupt", **run.ids(), ok=ok, detail=detail)
    # After a crash there is nothing to measure before the stop, and every
    # millisecond here delays the respawn.
    pids = {run.proc.pid}
    held_mb = None
    if not td.after_crash and gpu is not None:
        pids |= {p.pid for p in run.proc.find()}
        held_mb = vram_held(gpu, pids)
    result = _with_retries(
        f"run {run.run_id}",
        lambda: run.proc.stop(run.spec.stop_signal, run.watch.stop_timeout_s, abort),
        abort,
    )
    # The waiter posts the exit before setting this, so the exit is handled first.
    run.proc.exited.wait(KILL_WAIT_S)
    port = None if td.after_crash else local_port(td.url)
    free, waited = None, 0.0
    if port is not None:
        t0 = time.monotonic()
        free = wait_port_free(port, run.watch.port_free_timeout_s, abort)
        waited = time.monotonic() - t0
    vram = wait_vram_free(
        gpu, pids | set(result.pids), run.watch.vram_release_timeout_s, held_mb, abort
    )
    if result.remaining:
        log.error("run %s: processes %s survived SIGKILL", run.run_id, result.remaining)
    return TornDown(
        run.run_id,
        duration_s=result.duration_s,
        signal=result.signal,
        forced=result.forced,
        swept=result.swept,
        remaining=result.remaining,
        port_free=free,
        port_wait_s=waited,
        vram=vram,
        stderr_tail=_tail(run) if not td.after_crash else (),
    )


def sweep(
    leftovers: Leftovers,
    stop_timeout_s: float,
    abort: threading.Event,
    post: Callable[[Message], None],
) -> None:
    """Stop every leftover of earlier runs (a thread). Posts exactly one ``Swept``."""
    try:
        result = _with_retries(
            "leftovers", lambda: leftovers.stop(signal.SIGTERM, stop_timeout_s, abort), abort
        )
        msg = Swept(result.pids, result.remaining, result.forced)
    except BaseException as exc:
        log.exception("sweeping leftovers failed")
        msg = Swept(error=f"{exc.__class__.__name__}: {exc}"[:300])
    post(msg)


def _tail(run: Run) -> tuple[str, ...]:
    try:
        return run.stderr_tail()
    except Exception:
        return ()
