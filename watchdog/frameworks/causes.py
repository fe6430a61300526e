"""Why a framework died, in words a person can act on.

From the exit status and the last lines of stderr::

    >>> crash_cause(1, ["...", "torch.OutOfMemoryError: CUDA out of memory. Tried to..."])
    'CUDA out of memory'
    >>> crash_cause(-11, [])
    'segfault'
    >>> crash_cause(-9, ["No module named 'kernels'", "Invoke running on http://127.0.0.1:9090"])
    'killed by SIGKILL from outside the watchdog'
    >>> crash_cause(-9, [], oom_killed=True)
    'killed by the kernel: out of memory (RAM)'
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
    "SIGKILL": "killed by SIGKILL from outside the watchdog",
}
OOM_KILLED = "killed by the kernel: out of memory (RAM)"
# A pattern says why only when it is among the last lines written: InvokeAI's harmless
# first line "No module named 'kernels'" must not explain a kill -9 an hour later.
NEAR_END = 10


def last_exception(lines: Sequence[str]) -> str | None:
    """The final ``Error: message`` line of the last traceback in ``lines``."""
    for line in reversed(lines):
        match = _EXCEPTION.match(line.strip())
        if match:
            name, message = match.groups()
            text = f"{name}: {message}" if message else name
            return text[:200]
    return None


def _pattern(lines: Sequence[str]) -> str | None:
    text = "\n".join(lines[-NEAR_END:])
    return next((words for pattern, words in _PATTERNS if pattern.search(text)), None)


def crash_cause(
    returncode: int | None, stderr_tail: Sequence[str], oom_killed: bool = False
) -> str | None:
    """The most useful explanation, or None when nothing more than the code is known.

    How the process ended comes first (a signal says more than old text), then what
    it wrote just before the end: a known pattern, else its last exception.
    """
    near = _pattern(stderr_tail)
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            return near
        if name == "SIGKILL":  # sent from outside: nothing it wrote explains it
            return OOM_KILLED if oom_killed else _SIGNALS[name]
        words = _SIGNALS.get(name)
        if words is None:
            return near
        return f"{words} (just before: {near})" if near else words
    if near:
        return near
    exception = last_exception(stderr_tail[-NEAR_END:])
    return f"Python exception: {exception}" if exception else None
