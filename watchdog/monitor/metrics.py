"""The sampler thread and the history it keeps: GPU, framework CPU/RSS, host RAM/load.

One thread reads everything every ``metrics.interval_s`` and stores it: the latest
GPU snapshot in memory (for the page and the ``gpu`` endpoint) and one row per
sample in ``<logs.dir>/history.sqlite`` (for the plots and the ``history``
endpoint), kept ``metrics.retention_days``. Readers only read what it stored::

    >>> history.window(minutes=7 * 24 * 60)[:1]                 # doctest: +SKIP
    [{'ts': 1795000000.0, 'gpu_util_pct': 37.0, 'vram_used_mb': 4608.0, …}]

A window is averaged into at most ``MAX_POINTS`` buckets inside SQLite, so a 7-day
plot of a sample every 2 s (302,400 rows) still returns a few hundred points.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import psutil

from .gpu import GpuReader, GpuSnapshot, no_gpu

log = logging.getLogger(__name__)

MAX_POINTS = 400
MIB = 1024 * 1024


@dataclass(frozen=True)
class Sample:
    ts: float
    gpu_util_pct: float | None  # mean over devices
    vram_used_mb: float | None  # all devices
    vram_total_mb: float | None
    framework_vram_mb: float | None
    framework_rss_mb: float | None
    framework_cpu_pct: float | None
    host_ram_used_mb: float
    host_ram_total_mb: float
    load1: float


COLUMNS = [f.name for f in fields(Sample)]


class History:
    """Samples on disk (SQLite, WAL). Thread-safe; a damaged file is set aside, not fatal."""

    def __init__(self, path: Path, retention_s: float) -> None:
        self.path = path
        self.retention_s = retention_s
        self.error: str | None = None
        self._lock = threading.Lock()
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            os.replace(self.path, aside)
            self.error = f"history file was unreadable ({exc}); kept as {aside.name}"
            log.error("%s", self.error)
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        cols = ", ".join(f"{c} REAL" for c in COLUMNS[1:])
        db.execute(f"CREATE TABLE IF NOT EXISTS samples (ts REAL PRIMARY KEY, {cols})")
        db.execute("SELECT count(*) FROM samples").fetchone()  # reads the file: corrupt?
        for path in (
            self.path,
            *(self.path.with_name(self.path.name + s) for s in ("-wal", "-shm")),
        ):
            with contextlib.suppress(OSError):
                os.chmod(path, 0o600)  # the owner's alone, like every file in the logs
        return db

    def add(self, sample: Sample) -> None:
        row = [getattr(sample, c) for c in COLUMNS]
        marks = ", ".join("?" for _ in COLUMNS)
        try:
            with self._lock:
                self._db.execute(f"INSERT OR REPLACE INTO samples VALUES ({marks})", row)
        except sqlite3.Error as exc:  # a full disk must not stop the sampler
            self.error = f"cannot write history: {exc}"

    def add_many(self, samples: list[Sample]) -> None:
        marks = ", ".join("?" for _ in COLUMNS)
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                f"INSERT OR REPLACE INTO samples VALUES ({marks})",
                ([getattr(s, c) for c in COLUMNS] for s in samples),
            )
            self._db.execute("COMMIT")

    def prune(self, now: float | None = None) -> int:
        cutoff = (now or time.time()) - self.retention_s
        try:
            with self._lock:
                return self._db.execute("DELETE FROM samples WHERE ts < ?", (cutoff,)).rowcount
        except sqlite3.Error as exc:
            self.error = f"cannot prune history: {exc}"
            return 0

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM samples").fetchone()[0])

    def window(
        self, minutes: float, max_points: int = MAX_POINTS, now: float | None = None
    ) -> list[dict[str, Any]]:
        """Samples of the last ``minutes``, averaged into at most ``max_points`` buckets."""
        end = now or time.time()
        start = end - minutes * 60
        step = max(minutes * 60 / max_points, 1e-6)
        avgs = ", ".join(f"avg({c})" for c in COLUMNS[1:])
        query = (
            f"SELECT avg(ts), {avgs} FROM samples WHERE ts >= ? AND ts <= ?"
            " GROUP BY CAST((ts - ?) / ? AS INTEGER) ORDER BY 1"
        )
        with self._lock:
            rows = self._db.execute(query, (start, end, start, step)).fetchall()
        return [
            {
                c: (round(v, 3) if isinstance(v, float) else v)
                for c, v in zip(COLUMNS, row, strict=True)
            }
            for row in rows
        ]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class TreeUsage:
    """CPU % and RSS of a set of processes; keeps psutil objects between calls,
    since CPU % is measured from one call to the next."""

    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}

    def measure(self, pids: list[int]) -> tuple[float | None, float | None]:
        if not pids:
            self._procs.clear()
            return None, None
        cpu = rss = 0.0
        keep: dict[int, psutil.Process] = {}
        for pid in pids:
            proc = self._procs.get(pid)
            try:
                if proc is None:
                    proc = psutil.Process(pid)
                    proc.cpu_percent(None)  # first call only primes the counter
                else:
                    cpu += proc.cpu_percent(None)
                rss += proc.memory_info().rss
                keep[pid] = proc
            except psutil.Error:
                continue
        self._procs = keep
        return round(cpu, 1), round(rss / MIB, 1)


def _mean(values: list[float | None]) -> float | None:
    real = [v for v in values if v is not None]
    return sum(real) / len(real) if real else None


def _sum(values: list[float | None]) -> float | None:
    real = [v for v in values if v is not None]
    return sum(real) if real else None


def make_sample(snap: GpuSnapshot, cpu: float | None, rss: float | None) -> Sample:
    mem = psutil.virtual_memory()
    return Sample(
        ts=time.time(),
        gpu_util_pct=_mean([d.util_pct for d in snap.devices]),
        vram_used_mb=_sum([d.mem_used_mb for d in snap.devices]),
        vram_total_mb=_sum([d.mem_total_mb for d in snap.devices]),
        framework_vram_mb=snap.framework_mb() if snap.available else None,
        framework_rss_mb=rss,
        framework_cpu_pct=cpu,
        host_ram_used_mb=round((mem.total - mem.available) / MIB, 1),
        host_ram_total_mb=round(mem.total / MIB, 1),
        load1=round(os.getloadavg()[0], 2),
    )


def tree_vram(snap: GpuSnapshot, tree: list[int]) -> float | None:
    """The GPU memory ``tree``'s processes hold; None when it cannot be known (no GPU
    reading, or the driver hides a process's figure): a limit never acts on a guess."""
    if not snap.available:
        return None
    pids = set(tree)
    mine = [p.used_mb for p in snap.processes if p.pid in pids]
    if any(mb is None for mb in mine):
        return None
    return round(sum(mb for mb in mine if mb is not None), 1)


@dataclass
class Feed:
    """One supervisor the sampler reports to: its tree, where its RSS, GPU utilisation
    and VRAM go (``max_rss_mb``, progress, ``max_vram_mb``), and its GPUs (None: all)."""

    tree_pids: Callable[[], list[int]]
    report: Callable[[float | None, float | None, float | None], None] | None = None
    gpus: frozenset[int] | None = None
    usage: TreeUsage = field(default_factory=TreeUsage)


class Sampler(threading.Thread):
    """Samples every ``interval_s``; tells each supervisor its framework's RSS."""

    def __init__(
        self, reader: GpuReader, history: History, interval_s: float, feeds: list[Feed]
    ) -> None:
        super().__init__(name="sampler", daemon=True)
        self.reader = reader
        self.history = history
        self.interval_s = interval_s
        self.feeds = feeds
        self.gpu: GpuSnapshot = no_gpu("not sampled yet")
        self.latest: Sample | None = None
        self._halt = threading.Event()
        self._prune_every = max(1, int(3600 / interval_s))

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(timeout=10)

    def sample_once(self) -> Sample:
        trees = [feed.tree_pids() for feed in self.feeds]
        pids = [pid for tree in trees for pid in tree]
        try:
            snap = self.reader.read(pids)
        except Exception as exc:  # a GPU that fell off the bus must not stop sampling
            log.warning("GPU read failed: %s", exc)
            snap = no_gpu(f"GPU read failed: {exc}")
        usage = [feed.usage.measure(tree) for feed, tree in zip(self.feeds, trees, strict=True)]
        sample = make_sample(snap, _sum([c for c, _ in usage]), _sum([r for _, r in usage]))
        self.gpu = snap
        self.latest = sample
        self.history.add(sample)
        for feed, tree, (_, rss) in zip(self.feeds, trees, usage, strict=True):
            if feed.report is not None:
                mine = snap.only(feed.gpus) if feed.gpus is not None else snap
                feed.report(rss, _mean([d.util_pct for d in mine.devices]), tree_vram(snap, tree))
        return sample

    def run(self) -> None:
        n = 0
        while not self._halt.is_set():
            try:
                self.sample_once()
                if n % self._prune_every == 0:
                    self.history.prune()
            except Exception:
                log.exception("sampling failed")
            n += 1
            self._halt.wait(self.interval_s)

    def snapshot_dict(self) -> dict[str, Any]:
        out = self.gpu.to_dict()
        out["sample"] = asdict(self.latest) if self.latest else None
        return out
