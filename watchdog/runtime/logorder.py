"""In which order a run wrote its two streams, so "both" can show its lines as written.

A framework writes stdout and stderr straight into two files (no pipe through us),
and files keep no clock. While a run is live, ``WriteOrder`` wakes on every write
(inotify, no polling) and notes both files' sizes in ``<run_id>.order`` each time
the writing switches from one stream to the other. ``ordered_tail`` places each line
after the last note it was written before.

One note is four numbers, a stream's rotation count and size for each::

    0 1200 0 53        # stdout: rotation 0, 1200 bytes; stderr: rotation 0, 53 bytes

A run that only ever writes one stream (most frameworks: stderr) adds no notes
after its first. Lines written within one wake-up of both streams cannot be told
apart: stdout's come first.
"""

from __future__ import annotations

import bisect
import contextlib
import ctypes
import logging
import os
import select
import threading
from pathlib import Path

from .logs import (
    MAX_TAIL_LINES,
    RunLogs,
    clean_line,
    iter_lines_backward,
    iter_lines_backward_at,
    rotated_path,
    tail_lines,
)
from .private import opener

log = logging.getLogger(__name__)

IN_MODIFY = 0x2
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
POLL_S = 0.25  # only where inotify is missing (or its watches are used up)
MAX_BYTES = 1024 * 1024  # about 50,000 notes; then the older half goes

Note = tuple[int, int, int, int]  # stdout (rotations, size), stderr (rotations, size)


def order_path(logs: RunLogs) -> Path:
    return logs.stdout.with_name(f"{logs.run_id}.order")


def _inotify(paths: list[Path]) -> int:
    """An inotify descriptor watching ``paths`` for writes; -1 where there is none."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
    except (OSError, AttributeError):
        return -1
    if fd < 0:
        return -1
    for path in paths:
        if libc.inotify_add_watch(fd, os.fsencode(path), IN_MODIFY) < 0:
            os.close(fd)
            return -1
    return fd


def _parse(line: bytes) -> Note | None:
    try:
        a, b, c, d = (int(x) for x in line.split())
    except ValueError:
        return None
    return a, b, c, d


class WriteOrder:
    """Notes the live run's write order in its ``.order`` file (see the module)."""

    def __init__(self, logs: RunLogs, max_bytes: int = MAX_BYTES) -> None:
        self.logs = logs
        self.max_bytes = max_bytes
        self.path = order_path(logs)
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._loop, name="write-order", daemon=True)
        self._file = None
        self._inotify = -1
        self._last: Note = (0, 0, 0, 0)
        self._last_grew: tuple[bool, bool] = (False, False)
        self._noted = False  # whether ``_last`` is in the file

    @property
    def seen(self) -> tuple[int, int]:
        """The sizes of stdout and stderr at the last write it noticed."""
        return self._last[1], self._last[3]

    def start(self) -> None:
        try:
            self._file = open(self.path, "ab", buffering=0, opener=opener)  # noqa: SIM115
        except OSError as exc:
            log.warning("no write order for run %s: %s", self.logs.run_id, exc)
            return
        # An adopted run goes on from its last note.
        previous = next((n for n in map(_parse, iter_lines_backward(self.path, 4096)) if n), None)
        if previous is None:
            self._note(self._last)  # the first note: a reader knows the order is kept
        else:
            self._last, self._noted = previous, True
        # Watching before the first look: no write falls between the two.
        self._inotify = _inotify([self.logs.stdout, self.logs.stderr])
        self._sample()
        self._thread.start()

    def stop(self) -> None:
        os.write(self._stop_w, b"x")
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self._file is not None:
            self._note(self._last)
            self._file.close()
        os.close(self._stop_r)
        os.close(self._stop_w)

    def _loop(self) -> None:
        fd = self._inotify
        wait = None if fd >= 0 else POLL_S
        watched = [self._stop_r] + ([fd] if fd >= 0 else [])
        try:
            while True:
                ready, _, _ = select.select(watched, [], [], wait)
                if self._stop_r in ready:
                    return
                if fd >= 0:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(fd, 65536):
                            pass
                self._sample()
        except Exception:  # the order is a nicety: its failure never touches the run
            log.exception("write order of run %s stopped", self.logs.run_id)
        finally:
            if fd >= 0:
                os.close(fd)

    def _sample(self) -> None:
        og, osize, eg, esize = self._last
        out, err = _size(self.logs.stdout), _size(self.logs.stderr)
        if out < 0 or err < 0:
            return
        # A file that shrank was rotated (copy-then-truncate): its next rotation.
        og, eg = og + (out < osize), eg + (err < esize)
        now = (og, out, eg, err)
        grew = (now[:2] != self._last[:2], now[2:] != self._last[2:])
        if not any(grew):
            return
        rotated = og != self._last[0] or eg != self._last[2]
        if grew != self._last_grew or all(grew) or rotated:
            self._note(self._last)  # the switch point: what came before it
        self._last, self._last_grew, self._noted = now, grew, False
        if rotated:
            self._note(now)  # a reader learns the rotation counts from the last note

    def _note(self, note: Note) -> None:
        if self._noted and note == self._last:
            return
        if self._file is not None:
            with contextlib.suppress(OSError):  # a full disk: the order is lost, not the run
                if self._file.write(b"%d %d %d %d\n" % note) and self._file.tell() > self.max_bytes:
                    self._compact()
        self._noted = note == self._last

    def _compact(self) -> None:
        """Keep the newer half of the notes: a run that switches streams ten times a
        second for days must not fill the disk. Older lines then only lose their
        place between the streams, never their text."""
        assert self._file is not None
        with open(self.path, "rb") as fh:
            fh.seek(-(self.max_bytes // 2), os.SEEK_END)
            kept = fh.read()
        kept = kept[kept.index(b"\n") + 1 :]
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "wb", opener=opener) as out:
                out.write(kept)
            os.replace(tmp, self.path)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        reopened = open(self.path, "ab", buffering=0, opener=opener)  # noqa: SIM115
        self._file.close()
        self._file = reopened


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def _keyed_tail(path: Path, rotation: int, count: int) -> list[tuple[tuple[int, int], bytes]]:
    """The last ``count`` lines of a stream (live part, then its rotated part), each
    keyed by (rotation, end offset); newest first."""
    out: list[tuple[tuple[int, int], bytes]] = []
    for part, gen in ((path, rotation), (rotated_path(path), rotation - 1)):
        for end, line in iter_lines_backward_at(part):
            if len(out) >= count:
                return out
            out.append(((gen, end), line))
    return out


def ordered_tail(logs: RunLogs, count: int) -> list[bytes] | None:
    """The last ``count`` lines of both streams in the order they were written,
    oldest first; None when the run has no order file (the caller shows the streams
    apart)."""
    notes_backward = (n for n in map(_parse, iter_lines_backward(order_path(logs))) if n)
    newest = next(notes_backward, None)
    if newest is None:
        return None
    out = _keyed_tail(logs.stdout, newest[0], count)
    err = _keyed_tail(logs.stderr, newest[2], count)
    oldest_out = out[-1][0] if out else (newest[0], newest[1])
    oldest_err = err[-1][0] if err else (newest[2], newest[3])
    notes = [newest]
    for note in notes_backward:  # back only as far as the oldest line needs
        notes.append(note)
        if (note[0], note[1]) < oldest_out and (note[2], note[3]) < oldest_err:
            break
    notes.reverse()
    out_marks = [(n[0], n[1]) for n in notes]
    err_marks = [(n[2], n[3]) for n in notes]
    placed = [(bisect.bisect_left(out_marks, key), 0, key, line) for key, line in out]
    placed += [(bisect.bisect_left(err_marks, key), 1, key, line) for key, line in err]
    placed.sort()
    return [line for *_, line in placed[-count:]]


def tail_text(logs: RunLogs | None, stream: str, count: int) -> str:
    """The last ``count`` cleaned lines of a run's stdout, stderr or both, as text.

    "both" shows the lines in the order they were written (``ordered_tail``); a run
    recorded without that order shows each stream under its own heading.
    """
    if logs is None:
        return ""
    if stream != "both":
        return "\n".join(tail_lines(logs.stdout if stream == "stdout" else logs.stderr, count))
    count = max(0, min(count, MAX_TAIL_LINES))
    ordered = ordered_tail(logs, count)
    if ordered is not None:
        return "\n".join(clean_line(b.decode("utf-8", errors="replace")) for b in ordered)
    return (
        "── stdout ──\n"
        + "\n".join(tail_lines(logs.stdout, count))
        + "\n── stderr ──\n"
        + "\n".join(tail_lines(logs.stderr, count))
    )
