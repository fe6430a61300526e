"""GPU memory held by the demo, like a framework's loaded model: ``--hold-vram-mb N``.

Through the CUDA driver API with ``ctypes`` (``libcuda.so.1``: cuInit, cuDeviceGet,
cuCtxCreate, cuMemAlloc, cuMemsetD8 so the pages are really backed), no torch: every
GPU behaviour of the watchdog (VRAM attributed to the right pid and slot, the wait
for release after a stop) can be driven by the stand-in on a real NVIDIA GPU. The
memory is the process's until it exits; the driver frees it then.

    >>> held = hold_vram(2048, gpu=0)              # doctest: +SKIP
    >>> held.mb, held.device
    (2048, 0)
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

MIB = 1024 * 1024


class VramError(RuntimeError):
    """Why the memory could not be held, in a sentence."""


@dataclass(frozen=True)
class HeldVram:
    mb: int
    device: int  # the CUDA device index (within CUDA_VISIBLE_DEVICES)
    context: int
    pointer: int


def _check(cuda: Any, result: int, call: str) -> None:
    if result == 0:
        return
    text = ctypes.c_char_p()
    cuda.cuGetErrorString(result, ctypes.byref(text))
    why = text.value.decode(errors="replace") if text.value else f"error {result}"
    raise VramError(f"{call} failed: {why}")


def hold_vram(mb: int, gpu: int = 0) -> HeldVram:
    """Allocate and touch ``mb`` MiB on CUDA device ``gpu``; kept until the process ends."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        raise VramError(
            "--hold-vram-mb needs an NVIDIA driver: libcuda.so.1 is not on this machine"
        ) from None
    _check(cuda, cuda.cuInit(0), "cuInit")
    device = ctypes.c_int()
    _check(cuda, cuda.cuDeviceGet(ctypes.byref(device), gpu), f"cuDeviceGet({gpu})")
    context = ctypes.c_void_p()
    _check(cuda, cuda.cuCtxCreate_v2(ctypes.byref(context), 0, device), "cuCtxCreate")
    pointer = ctypes.c_uint64()
    size = ctypes.c_size_t(mb * MIB)
    _check(cuda, cuda.cuMemAlloc_v2(ctypes.byref(pointer), size), f"cuMemAlloc({mb} MiB)")
    _check(cuda, cuda.cuMemsetD8_v2(pointer, 0, size), "cuMemsetD8")
    _check(cuda, cuda.cuCtxSynchronize(), "cuCtxSynchronize")
    return HeldVram(mb, gpu, context.value or 0, pointer.value)
