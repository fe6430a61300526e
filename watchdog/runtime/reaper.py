"""The core as a child subreaper, and the reaping that goes with it.

With ``PR_SET_CHILD_SUBREAPER`` an orphan of a framework's tree (a worker that
double-forked and called ``setsid``) is re-parented to the watchdog instead of init:
it stays findable (``orphans()``), stoppable, and its exit is ours to reap. As PID 1
in a container every orphan of the container comes to us; ``reap()`` collects them.

Only pids nobody else waits for are reaped: a framework leader has a waiter thread
(``subprocess.Popen.wait``), and reaping it here would steal its exit status.

    >>> become_subreaper()        # doctest: +SKIP
    True
"""

from __future__ import annotations

import ctypes
import logging
import os
import resource
import threading
from pathlib import Path

log = logging.getLogger(__name__)

PR_SET_CHILD_SUBREAPER = 36

_waited: set[int] = set()  # children with a waiter of their own
_lock = threading.Lock()
_enabled = False


def become_subreaper() -> bool:
    """Ask the kernel to re-parent our descendants' orphans to us (Linux 3.4+)."""
    global _enabled
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        _enabled = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        _enabled = False
    if not _enabled:
        log.warning("cannot become a child subreaper: escaped processes may outlive a stop")
    return _enabled


def stop_being_subreaper() -> None:
    """For tests that enable it in a long-lived process."""
    global _enabled
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    _enabled = False


def is_subreaper() -> bool:
    return _enabled


def raise_open_files_limit() -> tuple[int, int]:
    """Soft ``RLIMIT_NOFILE`` up to the hard one: 1,000 idle sockets must not leave the
    supervisor unable to open ``/proc`` or a log file. Returns (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            return soft, hard
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-files limit from %d: %s", soft, exc)
    return soft, soft


def waited(pid: int) -> None:
    """``pid`` has a waiter of its own (a Popen): never reap it here."""
    with _lock:
        _waited.add(pid)


def unwaited(pid: int) -> None:
    with _lock:
        _waited.discard(pid)


def waited_pids() -> frozenset[int]:
    """Children someone waits for: every slot's framework leader, the front, the idle
    command. None of them is an orphan, whichever slot sweeps."""
    with _lock:
        return frozenset(_waited)


def children() -> list[int]:
    """Our direct children, from ``/proc/self/task/*/children`` (no full /proc scan)."""
    found: list[int] = []
    try:
        for task in Path("/proc/self/task").iterdir():
            try:
                found += [int(p) for p in (task / "children").read_text().split()]
            except (OSError, ValueError):
                continue
    except OSError:
        return []
    return found


def _session(pid: int) -> int | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
        return int(data[data.rindex(b")") + 2 :].split()[3])
    except (OSError, ValueError, IndexError):
        return None


def reap() -> list[int]:
    """Collect every exited child that nobody else waits for; returns their pids.

    Children in our own session are left alone unless we are PID 1: they are the
    host program's own (``subprocess.run`` of ``nvidia-smi``, a test's Popen), and a
    framework's tree always lives in a session of its own.
    """
    if not _enabled:
        return []
    reaped = []
    mine = None if os.getpid() == 1 else os.getsid(0)
    with _lock:
        candidates = [pid for pid in children() if pid not in _waited]
    candidates = [pid for pid in candidates if mine is None or _session(pid) != mine]
    for pid in candidates:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue
        if done:
            reaped.append(pid)
    return reaped


class Reaper:
    """A thread that reaps when told a child exited (``SIGCHLD`` → ``wake()``), and
    after every stop. Idle costs nothing: it sleeps on an event."""

    def __init__(self) -> None:
        self._wake = threading.Event()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="reaper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._halt.set()
        self._wake.set()
        self._thread.join(timeout=2)

    def _loop(self) -> None:
        while not self._halt.is_set():
            self._wake.wait()
            self._wake.clear()
            try:
                reap()
            except Exception:  # never let the reaper die of one bad read
                log.exception("reaping failed")
