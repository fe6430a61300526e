"""Why a framework died, in words a person can act on.

From the exit status and the last lines of stderr::

    >>> crash_cause(1, ["...", "torch.OutOfMemoryError: CUDA out of memory. Tried to..."])
    'CUDA out of memory'
    >>> crash_cause(-11, [])
    'segfault'
"""

from __future__ import annotations

import re
import signal
from collections.abc import Sequence

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"CUDA out of memory|CUDA error: out of memory|OutOfMemoryError", re.I),
        "CUDA out of memory",
    ),
    (
        re.compile(r"address already in use|Errno 98\b|EADDRINUSE", re.I),
        "address already in use (the port is taken)",
    ),
    (re.compile(r"No module named|ModuleNotFoundError", re.I), "a Python module is missing"),
    (re.compile(r"No space left on device", re.I), "the disk is full"),
)
# The last line of a Python traceback: "SomeError: message" (dotted names allowed).
_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt))(?::\s*(.*))?$")

_SIGNALS = {
    "SIGSEGV": "segfault",
    "SIGBUS": "bus error",
    "SIGABRT": "aborted",
    "SIGFPE": "arithmetic error",
    "SIGILL": "illegal instruction",
    "SIGKILL": "killed, likely out of memory (SIGKILL not sent by the watchdog)",
}


def last_exception(lines: Sequence[str]) -> str | None:
    """The final ``Error: message`` line of the last traceback in ``lines``."""
    for line in reversed(lines):
        match = _EXCEPTION.match(line.strip())
        if match:
            name, message = match.groups()
            text = f"{name}: {message}" if message else name
            return text[:200]
    return None


def crash_cause(returncode: int | None, stderr_tail: Sequence[str]) -> str | None:
    """The most useful explanation, or None when nothing more than the code is known."""
    text = "\n".join(stderr_tail)
    for pattern, words in _PATTERNS:
        if pattern.search(text):
            return words
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            return None
        if name in _SIGNALS:
            return _SIGNALS[name]
    exception = last_exception(stderr_tail)
    if exception:
        return f"Python exception: {exception}"
    return None
