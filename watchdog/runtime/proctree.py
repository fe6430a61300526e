"""Finding every process of a tree in ``/proc`` and stopping all of it.

SD launchers are messy (``webui.sh`` runs Python as a child, tools fork workers, some
call ``setsid``), so a tree is found by marks, not by parent links alone: its process
group and session, an environment marker every descendant inherits, parent links,
and (when the core is a child subreaper) orphans re-parented to the core. Only
processes started after the tree's first one count, so a reused pid is never touched.

A :class:`Tree` says how its members are found (``find``); stopping is the same for
every tree: the polite signal (and SIGCONT) to all, wait, SIGKILL, sweep what slipped
out, confirm nothing is left.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from . import reaper

log = logging.getLogger(__name__)

KILL_WAIT_S = 5.0
POLL_S = 0.02
RESCAN_S = 0.25
PROC = "/proc"
HAVE_PROC = os.path.exists(f"{PROC}/self/stat")


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
class ProcInfo:
    ppid: int
    pgrp: int
    session: int
    zombie: bool
    start_ticks: int


def list_pids() -> list[int]:
    """Every pid in ``/proc`` (raises OSError, e.g. EMFILE, like the kernel does)."""
    return [int(entry) for entry in os.listdir(PROC) if entry.isdigit()]


def stat(pid: int) -> ProcInfo | None:
    try:
        with open(f"{PROC}/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return ProcInfo(
        ppid=int(fields[1]),
        pgrp=int(fields[2]),
        session=int(fields[3]),
        zombie=fields[0] in (b"Z", b"X"),
        start_ticks=int(fields[19]),
    )


def scan(min_ticks: int = 0) -> dict[int, ProcInfo]:
    """Live (not zombie) processes started at or after ``min_ticks``, but for us."""
    me = os.getpid()
    infos = {}
    for pid in list_pids():
        if pid != me:
            info = stat(pid)
            if info is not None and not info.zombie and info.start_ticks >= min_ticks:
                infos[pid] = info
    return infos


def has_marker(pid: int, marker: bytes) -> bool:
    try:
        with open(f"{PROC}/{pid}/environ", "rb") as fh:
            return marker in fh.read()
    except OSError:
        return False


def orphans(infos: dict[int, ProcInfo], leaders: set[int]) -> set[int]:
    """Processes re-parented to us (we are a subreaper) that are none of our run
    leaders and not in our own session: escaped descendants of a framework. A child
    with a waiter of its own (another GPU slot's framework, the front, the idle
    command) is no orphan."""
    if not reaper.is_subreaper():
        return set()
    me, mine = os.getpid(), os.getsid(0)
    waited = reaper.waited_pids()
    return {
        pid
        for pid, info in infos.items()
        if info.ppid == me and pid not in leaders and pid not in waited and info.session != mine
    }


def with_descendants(members: set[int], infos: dict[int, ProcInfo]) -> set[int]:
    """``members`` and every descendant of theirs in ``infos`` (parent links)."""
    members = set(members)
    grew = True
    while grew:
        grew = False
        for pid, info in infos.items():
            if pid not in members and info.ppid in members:
                members.add(pid)
                grew = True
    return members


def children(pid: int) -> list[int] | None:
    """``pid``'s children from ``/proc/<pid>/task/*/children``; None if it is gone
    (or a zombie: dead, only not yet reaped)."""
    info = stat(pid)
    if info is None or info.zombie:
        return None
    try:
        tasks = os.listdir(f"{PROC}/{pid}/task")
    except OSError:
        return None
    found: list[int] = []
    for task in tasks:
        try:
            with open(f"{PROC}/{pid}/task/{task}/children", "rb") as fh:
                found += [int(p) for p in fh.read().split()]
        except (OSError, ValueError):
            continue
    return found


class CachedTree:
    """A run's pids for the sampler, every few seconds for as long as it runs.

    The whole ``/proc`` scan of ``full()`` (one read per process on the machine) is
    done every ``full_every`` calls, or when nothing known is alive; in between, the
    members found last and their descendants by parent links, a few reads. Only an
    escapee that left the tree in between is missed, until the next full scan.
    """

    def __init__(self, full: Callable[[], list[int]], full_every: int = 12) -> None:
        self.full = full
        self.full_every = full_every
        self._known: set[int] = set()
        self._calls = 0

    def __call__(self) -> list[int]:
        self._calls += 1
        if self._known and self._calls % self.full_every:
            alive: set[int] = set()
            frontier = set(self._known)
            while frontier:
                pid = frontier.pop()
                kids = children(pid)
                if kids is not None and pid not in alive:
                    alive.add(pid)
                    frontier.update(k for k in kids if k not in alive)
            self._known = alive
        if not self._known:
            self._known = set(self.full())
        return sorted(self._known)


def as_processes(pids: set[int]) -> list[psutil.Process]:
    out = []
    for pid in sorted(pids):
        try:
            out.append(psutil.Process(pid))
        except psutil.Error:
            pass
    return out


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def send(proc: psutil.Process, sig: int) -> None:
    try:
        proc.send_signal(sig)  # psutil refuses if the pid was reused
    except psutil.Error:
        pass


def killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Tree:
    """Processes found by one rule (``find``) and stopped as one."""

    name = "tree"
    pgid = 0  # its process group, or 0: signal each member on its own

    def find(self) -> list[psutil.Process]:
        raise NotImplementedError

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
        members = self.find()
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
                "%s: %d processes ignored %s; SIGKILL",
                self.name,
                len(alive),
                signal.Signals(sig).name,
            )
            self._signal_all(alive, signal.SIGKILL)
            alive = self._wait_gone(alive, time.monotonic() + KILL_WAIT_S, abort, signal.SIGKILL)
        # Whatever slipped out while we waited (a fork at the last moment).
        late = [p for p in self.find() if alive(p)]
        seen = {p.pid for p in members} | {p.pid for p in late}
        if late:
            forced = True
            self._signal_all(late, signal.SIGKILL)
            alive = self._wait_gone(late, time.monotonic() + KILL_WAIT_S, abort, signal.SIGKILL)
        reaper.reap()  # orphans of ours that died in this stop
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
            killpg(self.pgid, sig)
        for p in procs:
            if p.pid not in grouped:
                send(p, sig)

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
            pending = {pid: p for pid, p in pending.items() if alive(p)}
            now = time.monotonic()
            if now >= next_scan:
                next_scan = now + RESCAN_S
                for p in self.find():
                    if p.pid not in pending and alive(p):
                        pending[p.pid] = p
                        send(p, sig)
            if not pending or now >= deadline or abort.is_set():
                return list(pending.values())
            abort.wait(min(POLL_S, max(0.0, deadline - now)))
