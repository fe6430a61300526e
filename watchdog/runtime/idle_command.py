"""Running the idle policy's command (``sudo poweroff``, a provider's CLI): once, on a
thread of its own, with a time limit, its output kept to its last few KB.

The output goes to an unlinked temporary file, not a pipe: a command that prints
without end costs disk, never the core's memory, and nothing is left behind. With no
room for that file the command still runs, without its output.

    >>> run_idle_command("echo bye", {}, 10.0)                         # doctest: +SKIP
    IdleCommandDone(exit_code=0, output='bye', duration_s=0.003, error=None)
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import IO

from ..core.messages import IdleCommandDone, RunIdleCommand
from . import reaper

TIMEOUT_S = 300.0  # a provider's CLI may take a while; poweroff ends us anyway
OUTPUT_BYTES = 4096


def idle_command_work(
    command: str, effect: RunIdleCommand, post: Callable[[IdleCommandDone], None]
) -> Callable[[], None]:
    """What a worker thread does for ``RunIdleCommand``: run it, tell the machine."""
    env = {"SDW_FRAMEWORK": effect.framework, "SDW_IDLE_MIN": f"{effect.idle_min:g}"}
    return lambda: post(run_idle_command(command, env))


def run_idle_command(
    command: str, env: dict[str, str], timeout_s: float = TIMEOUT_S
) -> IdleCommandDone:
    try:
        out = tempfile.TemporaryFile()  # noqa: SIM115 (closed below, or never opened)
    except OSError as exc:  # a full or read-only /tmp
        done = _run(command, env, timeout_s, None)
        return IdleCommandDone(done.exit_code, f"(output not kept: {exc.strerror or exc})",
                               done.duration_s, done.error)  # fmt: skip
    with out:
        done = _run(command, env, timeout_s, out)
        size = out.seek(0, os.SEEK_END)
        out.seek(max(0, size - OUTPUT_BYTES))
        text = out.read().decode("utf-8", "replace").strip()
    return IdleCommandDone(done.exit_code, text, done.duration_s, done.error)


def _run(
    command: str, env: dict[str, str], timeout_s: float, out: IO[bytes] | None
) -> IdleCommandDone:
    began = time.monotonic()
    try:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", command],
            stdin=subprocess.DEVNULL,
            stdout=out if out is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,  # its whole group is stopped at the time limit
            close_fds=True,
        )
    except OSError as exc:
        return IdleCommandDone(None, "", 0.0, f"could not be started: {exc.strerror or exc}")
    reaper.waited(proc.pid)
    error = None
    try:
        code: int | None = proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        error = f"was still running after {timeout_s:g} s and was killed"
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()
        code = None
    finally:
        reaper.unwaited(proc.pid)
    return IdleCommandDone(code, "", round(time.monotonic() - began, 3), error)
