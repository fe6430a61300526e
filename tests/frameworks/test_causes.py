"""Crash causes read from exit status and real-shaped stderr."""

from __future__ import annotations

import pytest

from watchdog.frameworks.causes import crash_cause, last_exception

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
        (-9, [], "killed, likely out of memory (SIGKILL not sent by the watchdog)"),
        (-9, COMFY_OOM, "CUDA out of memory"),
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
