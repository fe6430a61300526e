"""The sampler's cheap view of a tree: parent links between whole scans."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from watchdog.runtime.proctree import CachedTree, children


def test_cached_tree_follows_children_and_scans_again_when_all_are_gone():
    root = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30 & wait"], start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while len(children(root.pid) or []) < 2:
            assert time.monotonic() < deadline, "the shell never started its children"
            time.sleep(0.02)
        scans: list[int] = []

        def full() -> list[int]:
            scans.append(1)
            return [root.pid] if root.poll() is None else []

        tree = CachedTree(full, full_every=100)
        assert tree() == [root.pid]  # the first call scans
        pids = tree()  # then parent links find the children
        assert root.pid in pids and len(pids) == 3 and len(scans) == 1
    finally:
        os.killpg(root.pid, signal.SIGKILL)
        root.wait(5)
    assert tree() == [] and len(scans) == 2  # nothing known lives: a whole scan again
