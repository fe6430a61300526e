"""One run of a framework: its leader, its whole tree, and a waiter for its exit.

A framework runs in its own session (so its process group is ours to signal), with
stdout and stderr going straight to files. Its tree is found by the marks described
in ``proctree``: group and session, the run marker ``SD_WATCHDOG_RUN_ID`` in the
environment, parent links, and orphans re-parented to the core.

    >>> proc = ManagedProcess.spawn(spec, run_id, home, out, err, on_exit=print)  # doctest: +SKIP
    >>> proc.stop(signal.SIGTERM, timeout=20).clean                              # doctest: +SKIP
    True
"""

from __future__ import annotations

import os
import select
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from typing import BinaryIO

import psutil

from ..frameworks.presets import FrameworkSpec
from . import reaper
from .proctree import (
    HAVE_PROC,
    Tree,
    alive,
    as_processes,
    has_marker,
    orphans,
    scan,
    stat,
    with_descendants,
)

MARKER_ENV = "SD_WATCHDOG_RUN_ID"
# Every framework this watchdog starts carries its logs folder: leftovers of earlier
# runs are found by it, and never a process of another watchdog on the machine.
HOME_ENV = "SD_WATCHDOG_HOME"


class SpawnError(Exception):
    """The framework could not be started at all (missing command or folder, …)."""


def run_marker(run_id: str) -> bytes:
    return f"{MARKER_ENV}={run_id}\0".encode()


def home_marker(home: str) -> bytes:
    return f"{HOME_ENV}={home}\0".encode()


class ManagedProcess(Tree):
    """One run of a framework: its leader, its tree, and a waiter for its exit."""

    def __init__(
        self,
        run_id: str,
        pid: int,
        popen: subprocess.Popen[bytes] | None = None,
        started_at: float | None = None,
    ) -> None:
        self.run_id = run_id
        self.name = f"run {run_id}"
        self.popen = popen  # None for an adopted run: not our child
        self.pid = pid
        self.pgid = pid  # start_new_session: leader of its own group and session
        self.started_at = started_at or time.time()
        self.started_mono = time.monotonic() - (time.time() - self.started_at)
        info = stat(self.pid) if HAVE_PROC else None
        self.start_ticks = info.start_ticks if info else 0
        self._marker = run_marker(run_id)
        self.exited = threading.Event()

    @classmethod
    def spawn(
        cls,
        spec: FrameworkSpec,
        run_id: str,
        home: str,
        stdout: BinaryIO,
        stderr: BinaryIO,
        on_exit: Callable[[int | None], None],
        extra_env: Mapping[str, str] | None = None,
    ) -> ManagedProcess:
        """Start the framework; ``on_exit(returncode)`` is called from a waiter thread.

        Raises :class:`SpawnError` with a message a user can act on.
        """
        if spec.cwd is not None and not spec.cwd.is_dir():
            raise SpawnError(f"working folder {spec.cwd} does not exist")
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")  # live logs from Python frameworks
        env.update(spec.env)
        env.update(extra_env or {})
        env[MARKER_ENV] = run_id
        env[HOME_ENV] = home
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
        reaper.waited(popen.pid)
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
        info = stat(pid)
        if info is None or info.zombie or info.start_ticks != start_ticks:
            return None
        if not has_marker(pid, run_marker(run_id)):
            return None
        proc = cls(run_id, pid, None, started_at)
        threading.Thread(
            target=proc._watch_foreign, args=(on_exit,), name=f"waiter-{pid}", daemon=True
        ).start()
        return proc

    def _wait(self, on_exit: Callable[[int | None], None]) -> None:
        assert self.popen is not None
        code = self.popen.wait()
        reaper.unwaited(self.pid)
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
        info = stat(self.pid)
        return info is not None and not info.zombie and info.start_ticks == self.start_ticks

    # -- the tree ------------------------------------------------------------------

    def find(self) -> list[psutil.Process]:
        """Every live process of this run, the leader included while it lives."""
        if not HAVE_PROC:
            return self._tree_psutil()
        infos = scan(self.start_ticks)
        holder = infos.get(self.pid)
        # If the leader's pid now belongs to a newer process, its group id may be that
        # stranger's too: trust only the marker then.
        ids_ours = holder is None or holder.start_ticks == self.start_ticks
        members = {
            pid
            for pid, info in infos.items()
            if (ids_ours and (pid == self.pid or self.pgid in (info.pgrp, info.session)))
            or has_marker(pid, self._marker)
        }
        # Orphans re-parented to the core: they shed group, session and marker.
        members |= orphans(infos, {self.pid})
        return as_processes(with_descendants(members, infos))

    def _tree_psutil(self) -> list[psutil.Process]:
        try:
            leader = psutil.Process(self.pid)
            return [p for p in [leader, *leader.children(recursive=True)] if alive(p)]
        except psutil.Error:
            return []
