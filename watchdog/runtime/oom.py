"""Did the kernel's out-of-memory killer end that process? Asked only of a SIGKILL
the watchdog did not send, so a person's ``kill -9`` is not called "out of memory".

The kernel says so in two places: its log names the pid (``Killed process 1234``,
``oom-kill:…,pid=1234,…``; ``/dev/kmsg`` is readable by root, the usual user on a
rented VM), and the ``oom_kill`` counter in ``/proc/vmstat`` rises with every kill
(memory cgroups' kills included). The log is exact; the counter only says that
*some* process was killed since the run began, so it is asked only when the log
cannot be read.

    >>> at_start = oom_kills()                                      # doctest: +SKIP
    >>> killed_by_oom(pid, at_start)
    False
"""

from __future__ import annotations

import os
import re
from pathlib import Path

VMSTAT = Path("/proc/vmstat")
KMSG = "/dev/kmsg"
MAX_KMSG_RECORDS = 20_000  # the kernel's ring holds far fewer; a bound all the same


def oom_kills(vmstat: Path = VMSTAT) -> int | None:
    """The kernel's count of out-of-memory kills since boot; None if unreadable."""
    try:
        for line in vmstat.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        return None
    return None


def kernel_log_names(pid: int, kmsg: str = KMSG) -> bool | None:
    """True when the kernel log tells of an OOM kill of ``pid``; None if unreadable."""
    pattern = re.compile(rf"(?:Killed process {pid}\b|oom-kill:.*\bpid={pid}\b)")
    try:
        fd = os.open(kmsg, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        for _ in range(MAX_KMSG_RECORDS):
            try:
                record = os.read(fd, 8192)
            except BlockingIOError:
                return False  # read to the end
            except OSError:  # EPIPE: a record was overwritten while reading; go on
                continue
            if not record:
                return False
            if pattern.search(record.decode("utf-8", "replace")):
                return True
        return False
    finally:
        os.close(fd)


def killed_by_oom(
    pid: int, kills_at_start: int | None, kmsg: str = KMSG, vmstat: Path = VMSTAT
) -> bool:
    said = kernel_log_names(pid, kmsg)
    if said is not None:
        return said
    now = oom_kills(vmstat)
    return now is not None and kills_at_start is not None and now > kills_at_start
