"""Crash causes read from exit status and real-shaped stderr."""

from __future__ import annotations

import pytest

from watchdog.frameworks.causes import crash_cause, last_exception
from watchdog.runtime import oom

COMFY_OOM = [
    "Traceback (most recent call last):",
    '  File "/ComfyUI/execution.py", line 151, in recursive_execute',
    "torch.OutOfMemoryError: Allocation on device",
]
A1111_CUDA = ["RuntimeError: CUDA error: out of memory", "CUDA kernel errors might be reported"]
UVICORN_PORT = [
    "ERROR:    [Errno 98] error while attempting to bind on address "
    "('0.0.0.0', 9090): address already in use"
]
PLAIN = [
    "Traceback (most recent call last):",
    '  File "main.py", line 3, in <module>',
    "ModuleNotFoundError: No module named 'xformers'",
]
# InvokeAI's harmless first line, then its start-up and request lines.
INVOKEAI = [
    "No module named 'kernels'",
    *(f"[2026-11-27 10:00:{i:02d},000]::[InvokeAI]::INFO --> line {i}" for i in range(15)),
]
VALUE = ["Traceback (most recent call last):", '  File "x.py", line 1', "ValueError: bad value"]


@pytest.mark.parametrize(
    ("code", "tail", "cause"),
    [
        (1, COMFY_OOM, "CUDA out of memory"),
        (1, A1111_CUDA, "CUDA out of memory"),
        (1, UVICORN_PORT, "address already in use (the port is taken)"),
        (1, PLAIN, "a Python module is missing"),
        (1, VALUE, "Python exception: ValueError: bad value"),
        (-11, [], "segfault"),
        (-9, [], "killed by SIGKILL from outside the watchdog"),
        (-9, COMFY_OOM, "killed by SIGKILL from outside the watchdog"),  # sent from outside
        (-9, INVOKEAI, "killed by SIGKILL from outside the watchdog"),
        (1, INVOKEAI, None),  # a pattern far from the end explains nothing
        (1, [*INVOKEAI, *VALUE], "Python exception: ValueError: bad value"),
        (-6, A1111_CUDA, "aborted (just before: CUDA out of memory)"),
        (2, ["usage: main.py [-h]"], None),
        (-15, [], None),
    ],
)
def test_causes(code, tail, cause):
    assert crash_cause(code, tail) == cause


def test_last_exception_takes_the_final_one():
    lines = [
        *VALUE,
        "",
        "During handling of the above exception, another exception occurred:",
        "KeyError: 'model'",
    ]
    assert last_exception(lines) == "KeyError: 'model'"
    assert last_exception(["all good"]) is None


def test_out_of_memory_only_when_the_kernel_says_so():
    assert crash_cause(-9, [], oom_killed=True) == "killed by the kernel: out of memory (RAM)"
    assert crash_cause(-9, COMFY_OOM, oom_killed=False).endswith("from outside the watchdog")


def test_the_kernel_log_names_the_pid_or_the_counter_rose(tmp_path):
    kmsg = tmp_path / "kmsg"
    kmsg.write_text(
        "6,1234,5678,-;Out of memory: Killed process 4242 (python3) total-vm:9000kB\n"
        "6,1235,5679,-;oom-kill:constraint=CONSTRAINT_NONE,task=python3,pid=777,uid=0\n"
    )
    assert oom.kernel_log_names(4242, str(kmsg)) is True
    assert oom.kernel_log_names(777, str(kmsg)) is True
    assert oom.kernel_log_names(42, str(kmsg)) is False  # not 4242's prefix
    assert oom.kernel_log_names(42, str(tmp_path / "none")) is None
    vmstat = tmp_path / "vmstat"
    vmstat.write_text("nr_free_pages 100\noom_kill 3\n")
    assert oom.oom_kills(vmstat) == 3
    unreadable = str(tmp_path / "none")
    assert oom.killed_by_oom(42, 2, unreadable, vmstat) is True  # the log unreadable: count
    assert oom.killed_by_oom(42, 3, unreadable, vmstat) is False
    assert oom.killed_by_oom(42, None, unreadable, vmstat) is False  # adopted: unknown
    assert oom.killed_by_oom(4242, 3, str(kmsg), vmstat) is True
    assert oom.killed_by_oom(42, 0, str(kmsg), vmstat) is False  # the log is exact
