"""The demo framework's own promises, which every other test relies on."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests
from conftest import demo, running, wait_event

from watchdog.frameworks.presets import DEMO_APP


@pytest.fixture
def run_demo() -> Iterator:
    procs: list[subprocess.Popen] = []

    def start(*flags: str) -> str:
        proc = subprocess.Popen(
            [sys.executable, str(DEMO_APP), "--port", "0", *flags],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        procs.append(proc)
        for line in proc.stdout:
            m = re.search(r"Running on local URL:  (http://\S+)", line)
            if m:
                return m.group(1)
        raise AssertionError("no ready line")

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_ready_line_ping_and_progress(run_demo):
    t0 = time.monotonic()
    url = run_demo("--busy-for", "1.5")
    assert time.monotonic() - t0 < 2  # "well under a second" on an idle machine
    assert requests.get(f"{url}/internal/ping", timeout=2).json() == {}
    busy = requests.get(f"{url}/sdapi/v1/progress?skip_current_image=true", timeout=2).json()
    assert busy["state"]["job_count"] == 1 and 0 <= busy["progress"] < 1
    time.sleep(1.6)
    idle = requests.get(f"{url}/sdapi/v1/progress", timeout=2).json()
    assert idle["state"]["job_count"] == 0


def test_hang_after_stays_alive_but_never_answers(run_demo):
    url = run_demo("--hang-after", "0.2")
    assert requests.get(f"{url}/internal/ping", timeout=2).ok
    time.sleep(0.4)
    with pytest.raises(requests.Timeout):
        requests.get(f"{url}/internal/ping", timeout=0.5)


def test_supervisor_restarts_a_hung_demo(make_settings, supervise):
    sup = supervise(make_settings(frameworks={"demo": demo(None, "--hang-after", "0.5")}))
    first = sup.wait_for(running, timeout=10)
    hang = wait_event(sup, "hang", 10)[0]
    assert hang["pid"] == first.pid
    wait_event(sup, "spawn", 10, count=2)


def test_hold_vram_without_an_nvidia_driver_exits_with_a_plain_reason():
    import ctypes

    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        pass
    else:
        pytest.skip("this machine has an NVIDIA driver: bench/gpu_check.py covers it")
    done = subprocess.run(
        [sys.executable, str(DEMO_APP), "--port", "0", "--hold-vram-mb", "64"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 1
    assert "--hold-vram-mb needs an NVIDIA driver: libcuda.so.1" in done.stderr
    assert "Running on local URL" not in done.stdout, "it never serves without its memory"
