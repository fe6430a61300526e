"""A stand-in for nvidia-ml-py's ``pynvml``, shaped like the real module.

Same function names, ``NVMLError`` with ``.value`` and its error-code constants,
process structs with ``pid`` / ``usedGpuMemory`` (None where the driver hides it),
byte sizes, milliwatts. What it reports is set in ``CONFIG`` by a test.

Like a real framework, every live demo server started by a watchdog of this test run
(found by the watchdog's environment marker and the test run's token, so a user's own
``./start.sh`` beside the suite holds nothing here) "holds" ``framework_vram_mb`` on
the first GPU of its ``CUDA_VISIBLE_DEVICES`` (GPU 0 without it, as CUDA would);
after it dies its memory shows for ``release_delay_s`` more, or forever with
``never_release``.
"""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path
from types import SimpleNamespace

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_GPU_IS_LOST = 15
NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
MIB = 1024 * 1024


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return {
            3: "Not Supported",
            9: "Driver Not Loaded",
            12: "NVML Shared Library Not Found",
        }.get(self.value, f"NVML error {self.value}")


class NVMLError_NotSupported(NVMLError):
    def __init__(self, value: int = NVML_ERROR_NOT_SUPPORTED) -> None:
        super().__init__(value)


DEFAULT = {
    "driver": "550.54.15",
    "init_error": None,
    "devices": [
        {
            "name": "NVIDIA H200",
            "uuid": "GPU-aaaa",
            "util": 37,
            "mem_util": 21,
            "total_mb": 143771,
            "base_used_mb": 512,
            "temp": 41,
            "power_mw": 123456,
            "limit_mw": 700000,
            "fan": None,
            "sm": 1980,
            "mem": 2619,
        },
    ],
    "framework_vram_mb": 4096,
    "framework_proc_mb_hidden": False,
    "release_delay_s": 0.0,
    "never_release": False,
    "others": [],  # [{"pid": 1, "gpu": 0, "mb": 100}] processes that are not ours
}
CONFIG: dict = copy.deepcopy(DEFAULT)
_seen: dict[int, float | None] = {}  # pid → time it was first seen dead (None: alive)
_gpu: dict[int, int] = {}  # pid → the GPU it holds memory on
calls = {"init": 0}


def reset() -> None:
    CONFIG.clear()
    CONFIG.update(copy.deepcopy(DEFAULT))
    _seen.clear()
    _gpu.clear()
    calls["init"] = 0


# This test run's token (tests/conftest.py): a demo without it is someone else's.
_TOKEN = f"SDW_TEST_TOKEN={os.environ.get('SDW_TEST_TOKEN', '')}\0".encode()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _framework_pids() -> list[int]:
    now = time.monotonic()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        ours = b"SD_WATCHDOG_RUN_ID=" in env and b"demo_app.py" in cmd and _TOKEN in env
        if ours and b"--launcher" not in cmd and _alive(int(entry)):
            _seen[int(entry)] = None
            visible = [v for v in env.split(b"\0") if v.startswith(b"CUDA_VISIBLE_DEVICES=")]
            first = visible[0].split(b"=", 1)[1].split(b",")[0] if visible else b"0"
            _gpu[int(entry)] = int(first) if first.isdigit() else 0
    out = []
    for pid, dead_since in list(_seen.items()):
        if dead_since is None and not _alive(pid):
            _seen[pid] = dead_since = now
        alive_or_held = dead_since is None or (
            CONFIG["never_release"] or now - dead_since < CONFIG["release_delay_s"]
        )
        if alive_or_held:
            out.append(pid)
    return out


def nvmlInit() -> None:
    calls["init"] += 1
    if CONFIG["init_error"] is not None:
        raise NVMLError(CONFIG["init_error"])


def nvmlShutdown() -> None:
    pass


def nvmlSystemGetDriverVersion() -> str:
    return CONFIG["driver"]


def nvmlDeviceGetCount() -> int:
    return len(CONFIG["devices"])


def nvmlDeviceGetHandleByIndex(index: int) -> int:
    if not 0 <= index < len(CONFIG["devices"]):
        raise NVMLError(2)
    return index


def _dev(handle: int) -> dict:
    return CONFIG["devices"][handle]


def _maybe(dev: dict, key: str):
    if dev.get(key) is None:
        raise NVMLError_NotSupported()
    return dev[key]


def nvmlDeviceGetName(handle: int) -> str:
    return _dev(handle)["name"]


def nvmlDeviceGetUUID(handle: int) -> str:
    return _dev(handle)["uuid"]


def nvmlDeviceGetUtilizationRates(handle: int):
    dev = _dev(handle)
    return SimpleNamespace(gpu=_maybe(dev, "util"), memory=_maybe(dev, "mem_util"))


def _procs(handle: int) -> list[SimpleNamespace]:
    out = []
    for pid in _framework_pids():
        if _gpu.get(pid, 0) == handle:
            used = None if CONFIG["framework_proc_mb_hidden"] else CONFIG["framework_vram_mb"] * MIB
            out.append(
                SimpleNamespace(
                    pid=pid,
                    usedGpuMemory=used,
                    gpuInstanceId=0xFFFFFFFF,
                    computeInstanceId=0xFFFFFFFF,
                )
            )
    for other in CONFIG["others"]:
        if other["gpu"] == handle:
            out.append(SimpleNamespace(pid=other["pid"], usedGpuMemory=other["mb"] * MIB))
    return out


def nvmlDeviceGetMemoryInfo(handle: int, version=None):
    dev = _dev(handle)
    used = dev["base_used_mb"] * MIB + sum(p.usedGpuMemory or 0 for p in _procs(handle))
    total = dev["total_mb"] * MIB
    return SimpleNamespace(total=total, used=used, free=total - used)


def nvmlDeviceGetComputeRunningProcesses(handle: int) -> list[SimpleNamespace]:
    return _procs(handle)


def nvmlDeviceGetGraphicsRunningProcesses(handle: int) -> list[SimpleNamespace]:
    return []


def nvmlDeviceGetTemperature(handle: int, sensor: int) -> int:
    return _maybe(_dev(handle), "temp")


def nvmlDeviceGetPowerUsage(handle: int) -> int:
    return _maybe(_dev(handle), "power_mw")


def nvmlDeviceGetEnforcedPowerLimit(handle: int) -> int:
    return _maybe(_dev(handle), "limit_mw")


def nvmlDeviceGetFanSpeed(handle: int) -> int:
    return _maybe(_dev(handle), "fan")


def nvmlDeviceGetClockInfo(handle: int, clock: int) -> int:
    return _maybe(_dev(handle), "sm" if clock == NVML_CLOCK_SM else "mem")
