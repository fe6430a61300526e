"""NVIDIA GPU snapshots: devices, per-process VRAM, and "no GPU" as a value.

Read through nvidia-ml-py (``pynvml``), initialised once; when the library is
missing but ``nvidia-smi`` exists, its CSV output instead. A metric the driver does
not report is ``None`` here and ``"n/a"`` in JSON, never an exception::

    >>> reader = make_reader()                                   # doctest: +SKIP
    >>> snap = reader.read(framework_pids={1234})
    >>> snap.to_dict()["devices"][0]["fan_pct"]
    'n/a'

Only the metrics sampler calls :meth:`GpuReader.read`; requests read its snapshots.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

import psutil

log = logging.getLogger(__name__)

NA = "n/a"
NO_GPU = "No NVIDIA GPU detected"
MIB = 1024 * 1024
SMI_TIMEOUT_S = 10
SMI_GPU_FIELDS = (
    "index,name,uuid,utilization.gpu,utilization.memory,memory.used,memory.total,"
    "temperature.gpu,power.draw,power.limit,fan.speed,clocks.sm,clocks.mem"
)
SMI_APP_FIELDS = "pid,gpu_uuid,used_memory,process_name"


@dataclass(frozen=True)
class GpuDevice:
    index: int
    name: str
    uuid: str | None
    util_pct: float | None
    mem_util_pct: float | None
    mem_used_mb: float | None
    mem_total_mb: float | None
    temp_c: float | None
    power_w: float | None
    power_limit_w: float | None
    fan_pct: float | None
    sm_clock_mhz: float | None
    mem_clock_mhz: float | None


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    gpu_index: int
    used_mb: float | None
    name: str | None
    in_framework: bool


@dataclass(frozen=True)
class GpuSnapshot:
    """One reading of every GPU. ``available`` False means: nothing to show, and why."""

    available: bool
    message: str
    source: str  # "nvml", "nvidia-smi" or "none"
    driver: str | None = None
    devices: tuple[GpuDevice, ...] = ()
    processes: tuple[GpuProcess, ...] = ()
    taken_at: float = field(default_factory=time.time)

    def framework_mb(self) -> float:
        return sum(p.used_mb or 0.0 for p in self.processes if p.in_framework)

    def pids(self) -> set[int]:
        return {p.pid for p in self.processes}

    def only(self, gpus: frozenset[int]) -> GpuSnapshot:
        """This reading of the GPUs ``gpus`` only (a slot's)."""
        return replace(
            self,
            devices=tuple(d for d in self.devices if d.index in gpus),
            processes=tuple(p for p in self.processes if p.gpu_index in gpus),
        )

    def to_dict(self) -> dict[str, Any]:
        def na(obj: Any) -> Any:
            return {k: (NA if v is None else v) for k, v in asdict(obj).items()}

        return {
            "available": self.available,
            "message": self.message,
            "source": self.source,
            "driver": self.driver or NA,
            "devices": [na(d) for d in self.devices],
            "processes": [na(p) for p in self.processes],
            "taken_at": self.taken_at,
        }


def no_gpu(reason: str = NO_GPU) -> GpuSnapshot:
    return GpuSnapshot(False, reason, "none")


class GpuReader(Protocol):
    source: str

    def read(self, framework_pids: Iterable[int] = ()) -> GpuSnapshot: ...


def _process_name(pid: int) -> str | None:
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return None  # e.g. a pid of another container's namespace


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class SlotGpus:
    """A reader that sees only a slot's GPUs: a stopped framework's memory is waited
    for on its own GPUs, whatever runs on the others."""

    def __init__(self, reader: GpuReader, gpus: str) -> None:
        self.reader = reader
        self.gpus = frozenset(int(g) for g in gpus.split(","))
        self.source = reader.source

    def read(self, framework_pids: Iterable[int] = ()) -> GpuSnapshot:
        snap = self.reader.read(framework_pids)
        return snap.only(self.gpus) if snap.available else snap


class NvmlReader:
    """Reads through pynvml. Build with :meth:`open`, which returns None without NVML."""

    source = "nvml"

    def __init__(self, nvml: Any) -> None:
        self.nvml = nvml
        self._lock = threading.Lock()  # one reader at a time: some drivers dislike more
        self.driver = self._get(nvml.nvmlSystemGetDriverVersion)

    @classmethod
    def open(cls) -> tuple[NvmlReader | None, str]:
        try:
            import pynvml
        except ImportError:
            return None, "nvidia-ml-py is not installed"
        try:
            pynvml.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, …
            return None, f"NVML unavailable: {exc}"
        return cls(pynvml), "NVML"

    def _get(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A metric, or None where this driver/board does not report it."""
        try:
            value = fn(*args)
        except self.nvml.NVMLError:
            return None
        except Exception:  # a function missing from an old library
            return None
        return value

    def read(self, framework_pids: Iterable[int] = ()) -> GpuSnapshot:
        ours = set(framework_pids)
        nvml = self.nvml
        with self._lock:
            count = self._get(nvml.nvmlDeviceGetCount)
            if not count:
                return no_gpu()
            devices, procs = [], {}
            for index in range(count):
                handle = self._get(nvml.nvmlDeviceGetHandleByIndex, index)
                if handle is None:
                    continue
                devices.append(self._device(index, handle))
                for getter in (
                    "nvmlDeviceGetComputeRunningProcesses",
                    "nvmlDeviceGetGraphicsRunningProcesses",
                ):
                    fn = getattr(nvml, getter, None)
                    for p in (self._get(fn, handle) if fn else None) or []:
                        used = getattr(p, "usedGpuMemory", None)
                        key = (int(p.pid), index)
                        mb = used / MIB if isinstance(used, int) and used >= 0 else None
                        if key not in procs or (mb or 0) > (procs[key] or 0):
                            procs[key] = mb
        processes = tuple(
            GpuProcess(pid, idx, mb, _process_name(pid), pid in ours)
            for (pid, idx), mb in sorted(procs.items())
        )
        driver = _text(self.driver) if self.driver is not None else None
        return GpuSnapshot(
            True, f"{len(devices)} GPU(s)", "nvml", driver, tuple(devices), processes
        )

    def _device(self, index: int, handle: Any) -> GpuDevice:
        nvml, get = self.nvml, self._get
        util = get(nvml.nvmlDeviceGetUtilizationRates, handle)
        mem = get(nvml.nvmlDeviceGetMemoryInfo, handle)
        power = get(nvml.nvmlDeviceGetPowerUsage, handle)
        limit = get(nvml.nvmlDeviceGetEnforcedPowerLimit, handle)
        name = get(nvml.nvmlDeviceGetName, handle)
        uuid = get(nvml.nvmlDeviceGetUUID, handle)
        return GpuDevice(
            index=index,
            name=_text(name) if name is not None else f"GPU {index}",
            uuid=_text(uuid) if uuid is not None else None,
            util_pct=float(util.gpu) if util is not None else None,
            mem_util_pct=float(util.memory) if util is not None else None,
            mem_used_mb=mem.used / MIB if mem is not None else None,
            mem_total_mb=mem.total / MIB if mem is not None else None,
            temp_c=_num(get(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU)),
            power_w=power / 1000 if power is not None else None,
            power_limit_w=limit / 1000 if limit is not None else None,
            fan_pct=_num(get(nvml.nvmlDeviceGetFanSpeed, handle)),
            sm_clock_mhz=_num(get(nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_SM)),
            mem_clock_mhz=_num(get(nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_MEM)),
        )


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def _smi_value(text: str) -> float | None:
    text = text.strip()
    if not text or text.startswith("[") or text.upper() in ("N/A", "NA"):
        return None  # "[N/A]", "[Not Supported]", "[Unknown Error]"
    try:
        return float(text)
    except ValueError:
        return None


class SmiReader:
    """Reads ``nvidia-smi --query-… --format=csv,noheader,nounits`` (no NVML library)."""

    source = "nvidia-smi"

    def __init__(self, exe: str) -> None:
        self.exe = exe

    def _query(self, *args: str) -> list[list[str]]:
        out = subprocess.run(
            [self.exe, *args, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=SMI_TIMEOUT_S,
            check=True,
        ).stdout
        return [[c.strip() for c in line.split(",")] for line in out.splitlines() if line.strip()]

    def read(self, framework_pids: Iterable[int] = ()) -> GpuSnapshot:
        ours = set(framework_pids)
        try:
            rows = self._query(f"--query-gpu={SMI_GPU_FIELDS}")
            apps = self._query(f"--query-compute-apps={SMI_APP_FIELDS}")
        except (OSError, subprocess.SubprocessError) as exc:
            return no_gpu(f"{NO_GPU} (nvidia-smi failed: {exc})")
        devices, by_uuid = [], {}
        for row in rows:
            if len(row) < 13:
                continue
            v = [_smi_value(x) for x in row]
            index = int(v[0]) if v[0] is not None else len(devices)
            by_uuid[row[2]] = index
            devices.append(
                GpuDevice(
                    index,
                    row[1],
                    row[2],
                    v[3],
                    v[4],
                    v[5],
                    v[6],
                    v[7],
                    v[8],
                    v[9],
                    v[10],
                    v[11],
                    v[12],
                )
            )
        if not devices:
            return no_gpu()
        processes = []
        for row in apps:
            if len(row) < 3 or not row[0].isdigit():
                continue
            pid = int(row[0])
            name = row[3] if len(row) > 3 and row[3] else _process_name(pid)
            processes.append(
                GpuProcess(pid, by_uuid.get(row[1], 0), _smi_value(row[2]), name, pid in ours)
            )
        return GpuSnapshot(
            True, f"{len(devices)} GPU(s)", "nvidia-smi", None, tuple(devices), tuple(processes)
        )


class NoGpuReader:
    source = "none"

    def __init__(self, reason: str = NO_GPU) -> None:
        self.reason = reason

    def read(self, framework_pids: Iterable[int] = ()) -> GpuSnapshot:
        return no_gpu(self.reason)


def make_reader() -> GpuReader:
    """NVML if it works, else nvidia-smi if it is on PATH, else "no GPU"."""
    reader, why = NvmlReader.open()
    if reader is not None:
        return reader
    exe = shutil.which("nvidia-smi")
    if exe:
        log.info("%s; reading GPUs through %s", why, exe)
        return SmiReader(exe)
    log.info("%s and no nvidia-smi: %s", why, NO_GPU)
    return NoGpuReader()
