"""The suite beside a user's own watchdog on the same machine (``./start.sh`` and
``./test.sh`` from one checkout): what the tests count is only what they started."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import demo_servers, free_port, leftover_pids, pid_alive

from watchdog.frameworks.presets import DEMO_APP


def test_a_demo_the_suite_did_not_start_is_not_counted_or_touched(fake_nvml):
    # What a user's ./start.sh runs: a demo with a watchdog's run marker, no test token.
    env = {k: v for k, v in os.environ.items() if k != "SDW_TEST_TOKEN"}
    env["SD_WATCHDOG_RUN_ID"] = "20261127-000000-000-demo"
    theirs = subprocess.Popen(
        [sys.executable, str(DEMO_APP), "--port", str(free_port())],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert pid_alive(theirs.pid)
        assert theirs.pid not in demo_servers()
        assert theirs.pid not in leftover_pids()  # so never killed as a test's leftover
        assert theirs.pid not in fake_nvml._framework_pids()  # and holds no fake VRAM
    finally:
        theirs.kill()
        theirs.wait(10)
