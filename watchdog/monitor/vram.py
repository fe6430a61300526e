"""Waiting until a stopped tree's GPU memory is free again.

The next framework would otherwise die of CUDA out-of-memory while the old one's
memory is still being freed. Runs on a teardown worker, never on the control thread.
"""

from __future__ import annotations

import threading
import time

from ..core.messages import VramWait
from .gpu import GpuReader

POLL_S = 0.25


def vram_held(gpu: GpuReader | None, pids: set[int]) -> float | None:
    """Before a stop: the VRAM the tree's pids hold (None: no GPU, or unreadable)."""
    if gpu is None:
        return None
    snap = gpu.read(pids)
    return snap.framework_mb() if snap.available else None


def wait_vram_free(
    gpu: GpuReader | None,
    pids: set[int],
    timeout_s: float,
    freed_mb: float | None,
    abort: threading.Event,
) -> VramWait:
    """Until no GPU process of ``pids`` is left, or ``timeout_s``."""
    if gpu is None:
        return VramWait(skipped="no GPU reader")
    t0 = time.monotonic()
    while True:
        snap = gpu.read(pids)
        if not snap.available:
            return VramWait(skipped=snap.message)
        held = [p for p in snap.processes if p.in_framework]
        waited = time.monotonic() - t0
        if not held:
            return VramWait(released=True, waited_s=waited, freed_mb=freed_mb)
        if waited >= timeout_s or abort.is_set():
            return VramWait(
                released=False,
                waited_s=waited,
                held_pids=tuple(p.pid for p in held),
                held_mb=snap.framework_mb(),
            )
        abort.wait(POLL_S)
