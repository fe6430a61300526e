"""The run log files: ``<logs>/runs``, one pair per run, rotated while the run
writes and pruned when there are too many (reading them is ``logs.py``).

    >>> store = LogStore(Path("logs"), max_bytes=50 << 20, keep_runs=20, max_total_bytes=1 << 30)
    >>> logs = store.new_run("20261127-083000-123-demo")              # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .logorder import WriteOrder
from .logs import RunLogs, rotated_path
from .private import opener

log = logging.getLogger(__name__)

# A file is checked every ROTATE_CHECK_S while it grows, and ever less often (up to
# ROTATE_QUIET_S) while it does not: four looks a second at a quiet log were most of
# an idle watchdog's CPU.
ROTATE_CHECK_S = 0.25
ROTATE_QUIET_S = 2.0
ROTATE_FAILING_MAX_S = 30.0  # a rotation that fails is retried at most this rarely
ROTATE_HEADROOM = 16 * 1024 * 1024  # free space a copy must leave


class LogStore:
    """Owns ``<dir>/runs``: creates run files, rotates the live run, prunes old runs.

    Rotation is copy-then-truncate: the child holds its files open with O_APPEND, so
    after a truncate it simply continues at offset 0. Output written in the
    microseconds between the copy and the truncate can be lost (as with logrotate's
    ``copytruncate``); that is the price of never putting a pipe between the
    framework and its log.

    A copy needs room. When the disk has less free than the file (or the copy runs
    out of it), the old part is deleted and the live file truncated without a copy:
    old lines are lost, once journaled as ``log_truncated``, but the log cannot fill
    the disk. A failing rotation is retried ever less often, and its error leaves the
    status once a rotation works again.
    """

    def __init__(
        self, directory: Path, max_bytes: int, keep_runs: int, max_total_bytes: int
    ) -> None:
        self.dir = directory
        self.runs_dir = directory / "runs"
        self.max_bytes = max_bytes
        self.keep_runs = keep_runs
        self.max_total_bytes = max_total_bytes
        self.error: str | None = None
        # Where a truncation without a copy is journaled (the supervisor's EventLog).
        self.journal: Callable[..., None] | None = None
        self._space_short = False  # journaled once per episode
        self._live: RunLogs | None = None
        self._order: WriteOrder | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    # -- run files -------------------------------------------------------------

    def new_run(self, run_id: str) -> RunLogs:
        logs = RunLogs(
            run_id,
            self.runs_dir / f"{run_id}.stdout.log",
            self.runs_dir / f"{run_id}.stderr.log",
        )
        self.prune(keep=logs)
        return logs

    def open_for_child(self, logs: RunLogs) -> tuple[BinaryIO, BinaryIO]:
        """Append-mode files for the child's stdout/stderr; /dev/null if the disk says no.

        Failing logs must never stop a framework from running: we record the error
        (shown in status) and run it with its output discarded.
        """
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            out = open(logs.stdout, "ab", buffering=0, opener=opener)  # noqa: SIM115 (handed to the child)
            try:
                err = open(logs.stderr, "ab", buffering=0, opener=opener)  # noqa: SIM115
            except OSError:
                out.close()
                raise
            self.error = None
            return out, err
        except OSError as exc:
            self.error = f"cannot write run logs in {self.runs_dir}: {exc.strerror or exc}"
            log.error("%s; the framework's output is discarded", self.error)
            return open(os.devnull, "ab"), open(os.devnull, "ab")

    def run_ids(self) -> list[str]:
        """Runs with files on disk, oldest first (run ids sort by time)."""
        try:
            names = os.listdir(self.runs_dir)
        except OSError:
            return []
        ids = {n.split(".", 1)[0] for n in names if ".std" in n}
        return sorted(ids)

    def _run_bytes(self, run_id: str) -> int:
        total = 0
        for name in os.listdir(self.runs_dir):
            if name.startswith(run_id + "."):
                try:
                    total += (self.runs_dir / name).stat().st_blocks * 512
                except OSError:
                    pass
        return total

    def prune(self, keep: RunLogs | None = None) -> list[str]:
        """Delete the oldest runs beyond ``keep_runs`` or ``max_total_bytes``."""
        with self._lock:
            ids = [r for r in self.run_ids() if keep is None or r != keep.run_id]
            live = self._live.run_id if self._live else None
            # The new run (keep) counts as one of keep_runs.
            budget_runs = self.keep_runs - (1 if keep else 0)
            removed: list[str] = []
            sizes = {r: self._run_bytes(r) for r in ids}
            total = sum(sizes.values())
            for run_id in ids:
                if run_id == live:
                    continue
                too_many = len(ids) - len(removed) > budget_runs
                too_big = total > self.max_total_bytes
                if not (too_many or too_big):
                    break
                for name in os.listdir(self.runs_dir):
                    if name.startswith(run_id + "."):
                        try:
                            (self.runs_dir / name).unlink()
                        except OSError as exc:
                            log.warning("cannot delete old log %s: %s", name, exc)
                total -= sizes[run_id]
                removed.append(run_id)
            return removed

    # -- rotation of the live run -------------------------------------------------

    @property
    def live(self) -> RunLogs | None:
        return self._live

    def set_live(self, logs: RunLogs | None) -> None:
        """The run whose files the rotator watches and whose write order is noted
        (None: nothing is running)."""
        with self._lock:
            changed = logs != self._live
            self._live = logs
        self._wake.set()
        if changed:
            self._note_order(logs)
        if logs is not None and self._thread is None:
            self._thread = threading.Thread(
                target=self._rotate_loop, name="log-rotator", daemon=True
            )
            self._thread.start()

    def _note_order(self, logs: RunLogs | None) -> None:
        if self._order is not None:
            self._order.stop()
            self._order = None
        if logs is not None:
            self._order = WriteOrder(logs)
            self._order.start()

    def close(self) -> None:
        self._note_order(None)
        self._closed.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _rotate_loop(self) -> None:
        limit = max(1, self.max_bytes // 2)
        every, sizes = ROTATE_CHECK_S, (-1, -1)
        failing = ROTATE_CHECK_S
        while not self._closed.is_set():
            with self._lock:
                live = self._live
            if live is None:
                # Nothing to watch: sleep until a run starts.
                self._wake.wait()
                self._wake.clear()
                continue
            before = self.error
            now = (self._check(live.stdout, limit), self._check(live.stderr, limit))
            every = min(every * 2, ROTATE_QUIET_S) if now == sizes else ROTATE_CHECK_S
            sizes = now
            if self.error is not None and self.error.startswith("cannot rotate"):
                # Retry ever less often: a full disk is not fixed in a quarter second.
                failing = min(failing * 2, ROTATE_FAILING_MAX_S) if before else ROTATE_CHECK_S
                every = max(every, failing)
            else:
                failing = ROTATE_CHECK_S
            self._closed.wait(every)

    def _check(self, path: Path, limit: int) -> int:
        """Rotate ``path`` if it passed ``limit``; its size (-1: unknown)."""
        try:
            size = path.stat().st_size
            if size > limit:
                self.rotate(path)
                if self.error is not None and self.error.startswith("cannot rotate"):
                    self.error = None  # it works again
            return size
        except FileNotFoundError:
            return -1
        except OSError as exc:
            self.error = f"cannot rotate {path.name}: {exc.strerror or exc}"
            return -1

    def rotate(self, path: Path) -> None:
        """Move the current contents of ``path`` to ``path.1`` and empty ``path``
        (without the copy when the disk has no room for it)."""
        old = rotated_path(path)
        tmp = old.with_name(old.name + ".tmp")
        size = path.stat().st_size
        if free_bytes(path.parent) < size + ROTATE_HEADROOM:
            self._truncate_only(path, old, "the disk has no room for a copy")
            return
        try:
            with open(path, "rb") as src, open(tmp, "wb", opener=opener) as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)
                # Whatever arrived while copying, right before the truncate.
                shutil.copyfileobj(src, dst, 1024 * 1024)
                os.truncate(path, 0)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()  # never leave a half copy taking the space
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            self._truncate_only(path, old, f"the copy failed: {exc.strerror}")
            return
        os.replace(tmp, old)
        self._space_short = False

    def _truncate_only(self, path: Path, old: Path, why: str) -> None:
        with contextlib.suppress(OSError):
            old.unlink()  # the old part: its space first
        os.truncate(path, 0)
        if not self._space_short and self.journal is not None:
            self._space_short = True
            self.journal("log_truncated", file=path.name, reason=f"{why}; older lines lost")


def free_bytes(folder: Path) -> int:
    try:
        st = os.statvfs(folder)
    except OSError:
        return 1 << 62  # unknown: try the copy, and handle ENOSPC if it comes
    return st.f_bavail * st.f_frsize
