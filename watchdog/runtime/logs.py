"""Per-run log files: naming, fast tail, clean-up for display (``logstore.py`` writes,
rotates and prunes them).

A framework writes straight into ``<logs.dir>/runs/<run_id>.stdout.log`` and
``.stderr.log`` (no pipe through us), so reading is always from files. A tail reads
backwards from the end, so its cost depends on the lines asked for, never on the
size of the file::

    >>> tail_lines(Path("logs/runs/demo-…stdout.log"), 3)      # doctest: +SKIP
    ['step 18/20', 'step 19/20', 'Startup time: 4.2s']
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

BLOCK = 64 * 1024
# A tail never reads more than this, whatever is asked: a file of one endless line
# (or a sparse hole of NULs) must not make a request read gigabytes.
MAX_TAIL_SCAN = 32 * 1024 * 1024
MAX_TAIL_LINES = 10_000
# A longer line is shown by its end, behind a marker (a progress bar that never
# printed a newline, a base64 image in a log): reading past it stays cheap.
MAX_LINE_BYTES = 16 * 1024

_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC: titles, hyperlinks
    r"|\x1b[@-Z\\-_]"  # other two-byte escapes
)


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def collapse_cr(line: str) -> str:
    """Keep what a terminal would show of a line that ``\\r`` rewrote (tqdm bars)."""
    if "\r" not in line:
        return line
    parts = [p for p in line.split("\r") if p]
    return parts[-1] if parts else ""


def clean_line(line: str) -> str:
    return collapse_cr(strip_ansi(line))


def iter_lines_backward(path: Path, max_bytes: int = MAX_TAIL_SCAN) -> Iterator[bytes]:
    """Yield the lines of a file from the last to the first, reading at most ``max_bytes``.

    A final line without a newline is yielded too. Missing file: nothing. A line
    longer than ``MAX_LINE_BYTES`` is yielded as its last ``MAX_LINE_BYTES`` behind a
    ``[… N bytes cut] `` marker: what a line keeps is bounded, so a 10 MB line costs
    one pass over its bytes (no re-joining) and the lines before it still come.
    """
    for _end, line in iter_lines_backward_at(path, max_bytes):
        yield line


def iter_lines_backward_at(
    path: Path, max_bytes: int = MAX_TAIL_SCAN
) -> Iterator[tuple[int, bytes]]:
    """``iter_lines_backward`` with where each line ends in the file (the offset of
    its newline, or the file's size for an unfinished last line)."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 (closed in finally; generator)
    except OSError:
        return
    try:
        line = _LineEnd()
        pos = fh.seek(0, os.SEEK_END)
        budget = max_bytes
        first = True
        end = pos
        while pos > 0 and budget > 0:
            size = min(BLOCK, pos, budget)
            pos -= size
            budget -= size
            fh.seek(pos)
            block = fh.read(size)
            stop = len(block)
            if first:
                first = False
                if block.endswith(b"\n"):
                    stop -= 1  # the file's own final newline
                    end -= 1
            while (newline := block.rfind(b"\n", 0, stop)) >= 0:
                line.add(block[newline + 1 : stop])
                yield end, line.take()
                stop = newline
                end = pos + newline
            line.add(block[:stop])
        if pos == 0 and line.length:
            yield end, line.take()
    finally:
        fh.close()


class _LineEnd:
    """The end of a line read backwards, in pieces: at most ``MAX_LINE_BYTES`` kept."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []  # the line's end first
        self.kept = 0
        self.length = 0

    def add(self, piece: bytes) -> None:
        self.length += len(piece)
        room = MAX_LINE_BYTES - self.kept
        if room > 0 and piece:
            piece = piece[-room:]
            self.pieces.append(piece)
            self.kept += len(piece)

    def take(self) -> bytes:
        data = b"".join(reversed(self.pieces))
        if self.length > self.kept:
            data = b"[\xe2\x80\xa6 %d bytes cut] " % (self.length - self.kept) + data
        self.pieces, self.kept, self.length = [], 0, 0
        return data


def tail_lines(path: Path, count: int, *, clean: bool = True) -> list[str]:
    """The last ``count`` lines of a log stream, oldest first.

    Reads the rotated part (``.1``) too when the current part is shorter than asked.
    """
    count = max(0, min(count, MAX_TAIL_LINES))
    out: list[bytes] = []
    for part in (path, rotated_path(path)):
        for line in iter_lines_backward(part):
            if len(out) >= count:
                break
            out.append(line)
        if len(out) >= count:
            break
    out.reverse()
    text = [b.decode("utf-8", errors="replace") for b in out]
    return [clean_line(t) for t in text] if clean else text


STREAMS = ("stdout", "stderr", "both")


def read_from(path: Path, offset: int, cap: int) -> tuple[bytes, int, int]:
    """Up to ``cap`` bytes of ``path`` from ``offset`` (-1: the end), where the next
    read starts, and the file's size. A file shorter than ``offset`` was rotated: read
    from its start."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            if offset < 0:
                return b"", size, size
            if offset > size:
                offset = 0
            fh.seek(offset)
            data = fh.read(cap)
    except OSError:
        return b"", max(offset, 0), 0
    return data, offset + len(data), size


def latest_line(logs: RunLogs | None) -> str:
    """The newest non-empty line of a run, from whichever stream was written last."""
    if logs is None:
        return ""
    paths = []
    for path in (logs.stdout, logs.stderr):
        try:
            paths.append((path.stat().st_mtime, path))
        except OSError:
            pass
    for _, path in sorted(paths, reverse=True):
        for line in reversed(tail_lines(path, 5)):
            if line.strip():
                return line.strip()
    return ""


def rotated_path(path: Path) -> Path:
    return path.with_name(path.name + ".1")


@dataclass(frozen=True)
class RunLogs:
    """The two files of one run; ``run_id`` joins them with the events."""

    run_id: str
    stdout: Path
    stderr: Path
