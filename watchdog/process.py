"""Spawning a framework's process tree and stopping all of it.

A framework runs in its own session (so its process group is ours to signal), with
stdout and stderr going straight to files. Its whole tree is found by three marks,
because SD launchers are messy (``webui.sh`` runs Python as a child, tools fork
workers, some call ``setsid``):

- the process group and session of the leader;
- an environment marker (``SD_WATCHDOG_RUN_ID``) every descendant inherits, which
  survives a ``setsid`` and a re-parenting to init;
- parent links, for a descendant that cleared its environment *and* left the group.

Only processes started after the leader count, so a reused pid is never touched.

    >>> proc = ManagedProcess.spawn(spec, run_id, out, err, on_exit=print)  # doctest: +SKIP
    >>> proc.stop(signal.SIGTERM, timeout=20).clean                        # doctest: +SKIP
    True
"""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import psutil

from .presets import FrameworkSpec

log = logging.getLogger(__name__)

MARKER_ENV = "SD_WATCHDOG_RUN_ID"
KILL_WAIT_S = 5.0
POLL_S = 0.02
RESCAN_S = 0.25
_PROC = Path("/proc")
_HAVE_PROC = (_PROC / "self" / "stat").exists()


class SpawnError(Exception):
    """The framework could not be started at all (missing command or folder, …)."""


@dataclass(frozen=True)
class StopResult:
    """What a stop did; ``remaining`` is empty when the whole tree is gone."""

    duration_s: float
    signal: str | None  # the polite signal sent, None if nothing was alive
    forced: bool  # SIGKILL was needed
    swept: tuple[int, ...]  # pids that had left the process group
    remaining: tuple[int, ...]
    pids: tuple[int, ...] = ()  # every process of the tree this stop dealt with

    @property
    def clean(self) -> bool:
        return not self.remaining


@dataclass(frozen=True)
class _ProcInfo:
    ppid: int
    pgrp: int
    session: int
    zombie: bool
    start_ticks: int


def _stat(pid: int) -> _ProcInfo | None:
    try:
        data = (_PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return _ProcInfo(
        ppid=int(fields[1]),
        pgrp=int(fields[2]),
        session=int(fields[3]),
        zombie=fields[0] in (b"Z", b"X"),
        start_ticks=int(fields[19]),
    )


def _has_marker(pid: int, marker: bytes) -> bool:
    try:
        return marker in (_PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return False


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _send(proc: psutil.Process, sig: int) -> None:
    try:
        proc.send_signal(sig)  # psutil refuses if the pid was reused
    except psutil.Error:
        pass


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class ManagedProcess:
    """One run of a framework: its leader, its tree, and a waiter for its exit."""

    def __init__(
        self,
        run_id: str,
        pid: int,
        popen: subprocess.Popen[bytes] | None = None,
        started_at: float | None = None,
    ) -> None:
        self.run_id = run_id
        self.popen = popen  # None for an adopted run: not our child
        self.pid = pid
        self.pgid = pid  # start_new_session: leader of its own group and session
        self.started_at = started_at or time.time()
        self.started_mono = time.monotonic() - (time.time() - self.started_at)
        info = _stat(self.pid) if _HAVE_PROC else None
        self.start_ticks = info.start_ticks if info else 0
        self._marker = f"{MARKER_ENV}={run_id}\0".encode()
        self.exited = threading.Event()

    @classmethod
    def spawn(
        cls,
        spec: FrameworkSpec,
        run_id: str,
        stdout: BinaryIO,
        stderr: BinaryIO,
        on_exit: Callable[[int | None], None],
    ) -> ManagedProcess:
        """Start the framework; ``on_exit(returncode)`` is called from a waiter thread.

        Raises :class:`SpawnError` with a message a user can act on.
        """
        if spec.cwd is not None and not spec.cwd.is_dir():
            raise SpawnError(f"working folder {spec.cwd} does not exist")
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")  # live logs from Python frameworks
        env.update(spec.env)
        env[MARKER_ENV] = run_id
        try:
            popen = subprocess.Popen(
                list(spec.command),
                cwd=spec.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
                close_fds=True,
            )
        except FileNotFoundError:
            raise SpawnError(f"command not found: {spec.command[0]}") from None
        except PermissionError:
            raise SpawnError(f"not executable: {spec.command[0]}") from None
        except OSError as exc:
            raise SpawnError(f"cannot start {spec.command[0]}: {exc.strerror or exc}") from None
        proc = cls(run_id, popen.pid, popen)
        threading.Thread(
            target=proc._wait, args=(on_exit,), name=f"waiter-{popen.pid}", daemon=True
        ).start()
        return proc

    @classmethod
    def adopt(
        cls,
        run_id: str,
        pid: int,
        start_ticks: int,
        started_at: float,
        on_exit: Callable[[int | None], None],
    ) -> ManagedProcess | None:
        """Take over a run a previous watchdog started, if it is still that process.

        None when the pid is gone, or now belongs to another process (its start time
        or its run marker differ): a reused pid is never adopted.
        """
        info = _stat(pid)
        if info is None or info.zombie or info.start_ticks != start_ticks:
            return None
        if not _has_marker(pid, f"{MARKER_ENV}={run_id}\0".encode()):
            return None
        proc = cls(run_id, pid, None, started_at)
        threading.Thread(
            target=proc._watch_foreign, args=(on_exit,), name=f"waiter-{pid}", daemon=True
        ).start()
        return proc

    def _wait(self, on_exit: Callable[[int | None], None]) -> None:
        assert self.popen is not None
        code = self.popen.wait()
        try:
            on_exit(code)
        finally:
            # Set after on_exit, so whoever waits on it knows the exit is already posted.
            self.exited.set()

    def _watch_foreign(self, on_exit: Callable[[int | None], None]) -> None:
        """Exit of a process that is not our child: a pidfd wakes us at once (Linux 5.3+);
        elsewhere, a check every 100 ms. Its exit code belongs to its real parent."""
        try:
            fd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            fd = None
        try:
            if fd is not None:
                poller = select.poll()
                poller.register(fd, select.POLLIN)
                while not poller.poll(60_000):
                    pass
            else:
                while self._alive_leader():
                    time.sleep(0.1)
        finally:
            if fd is not None:
                os.close(fd)
        try:
            on_exit(None)
        finally:
            self.exited.set()

    def _alive_leader(self) -> bool:
        info = _stat(self.pid)
        return info is not None and not info.zombie and info.start_ticks == self.start_ticks

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode if self.popen is not None else None

    # -- the tree ------------------------------------------------------------------

    def tree(self) -> list[psutil.Process]:
        """Every live process of this run, the leader included while it lives."""
        if not _HAVE_PROC:
            return self._tree_psutil()
        infos: dict[int, _ProcInfo] = {}
        for entry in os.listdir(_PROC):
            if entry.isdigit():
                info = _stat(int(entry))
                if info is not None and not info.zombie and info.start_ticks >= self.start_ticks:
                    infos[int(entry)] = info
        me = os.getpid()
        holder = infos.get(self.pid)
        # If the leader's pid now belongs to a newer process, its group id may be that
        # stranger's too: trust only the marker then.
        ids_ours = holder is None or holder.start_ticks == self.start_ticks
        members = {
            pid
            for pid, info in infos.items()
            if pid != me
            and (
                (ids_ours and (pid == self.pid or self.pgid in (info.pgrp, info.session)))
                or _has_marker(pid, self._marker)
            )
        }
        # Descendants of members that shed both the group and the marker.
        grew = True
        while grew:
            grew = False
            for pid, info in infos.items():
                if pid not in members and pid != me and info.ppid in members:
                    members.add(pid)
                    grew = True
        out = []
        for pid in sorted(members):
            try:
                out.append(psutil.Process(pid))
            except psutil.Error:
                pass
        return out

    def _tree_psutil(self) -> list[psutil.Process]:
        try:
            leader = psutil.Process(self.pid)
            return [p for p in [leader, *leader.children(recursive=True)] if _alive(p)]
        except psutil.Error:
            return []

    def _in_group(self, proc: psutil.Process) -> bool:
        try:
            return os.getpgid(proc.pid) == self.pgid
        except OSError:
            return False

    # -- stopping ------------------------------------------------------------------

    def stop(self, sig: int, timeout: float, abort: threading.Event | None = None) -> StopResult:
        """Stop the whole tree: ``sig`` to all, wait ``timeout``, SIGKILL, sweep, confirm.

        Blocking (seconds, up to ``timeout`` + a few); run it off the control thread.
        """
        abort = abort or threading.Event()
        t0 = time.monotonic()
        members = self.tree()
        if not members:
            return StopResult(0.0, None, False, (), ())
        escaped = tuple(p.pid for p in members if not self._in_group(p))
        self._signal_all(members, sig)
        if sig != signal.SIGKILL:
            # A SIGSTOPped (hung) process would hold the polite signal forever.
            self._signal_all(members, signal.SIGCONT)
        alive = self._wait_gone(members, t0 + timeout, abort, sig)
        forced = bool(alive)
        if alive:
            log.warning(
                "run %s: %d processes ignored %s; SIGKILL",
                self.run_id,
                len(alive),
                signal.Signals(sig).name,
            )
            self._signal_all(alive, signal.SIGKILL)
            alive = self._wait_gone(alive, time.monotonic() + KILL_WAIT_S, abort, signal.SIGKILL)
        # Whatever slipped out while we waited (a fork at the last moment).
        late = [p for p in self.tree() if _alive(p)]
        seen = {p.pid for p in members} | {p.pid for p in late}
        if late:
            forced = True
            self._signal_all(late, signal.SIGKILL)
            alive = self._wait_gone(late, time.monotonic() + KILL_WAIT_S, abort, signal.SIGKILL)
        return StopResult(
            duration_s=time.monotonic() - t0,
            signal=signal.Signals(sig).name,
            forced=forced,
            swept=escaped,
            remaining=tuple(p.pid for p in alive),
            pids=tuple(sorted(seen)),
        )

    def _signal_all(self, procs: list[psutil.Process], sig: int) -> None:
        grouped = {p.pid for p in procs if self._in_group(p)}
        # The group signal also reaches what forked since the scan. Only sent while a
        # known member is in the group: Linux does not reuse a group id still in use,
        # so then it cannot hit a stranger that got the old leader's pid.
        if grouped:
            _killpg(self.pgid, sig)
        for p in procs:
            if p.pid not in grouped:
                _send(p, sig)

    def _wait_gone(
        self,
        procs: list[psutil.Process],
        deadline: float,
        abort: threading.Event,
        sig: int,
    ) -> list[psutil.Process]:
        """Wait until ``procs`` are gone, or the deadline; newcomers to the tree get ``sig``."""
        pending = {p.pid: p for p in procs}
        next_scan = time.monotonic() + RESCAN_S
        while True:
            pending = {pid: p for pid, p in pending.items() if _alive(p)}
            now = time.monotonic()
            if now >= next_scan:
                next_scan = now + RESCAN_S
                for p in self.tree():
                    if p.pid not in pending and _alive(p):
                        pending[p.pid] = p
                        _send(p, sig)
            if not pending or now >= deadline or abort.is_set():
                return list(pending.values())
            abort.wait(min(POLL_S, max(0.0, deadline - now)))
