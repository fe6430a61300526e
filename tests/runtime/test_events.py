"""The event journal: appended, filtered, read from the end, robust to damage."""

from __future__ import annotations

import json

from watchdog.runtime.events import EventLog


def test_write_and_tail_newest_first(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    for i in range(5):
        log.write("spawn", framework="a" if i % 2 else "b", run_id=f"r{i}", pid=100 + i)
    newest = log.tail(2)
    assert [e["run_id"] for e in newest] == ["r4", "r3"]
    assert [e["run_id"] for e in log.tail(10, framework="a")] == ["r3", "r1"]
    assert log.tail(10, run_id="r2")[0]["pid"] == 102
    first = json.loads((tmp_path / "events.jsonl").read_text().splitlines()[0])
    assert first["event"] == "spawn" and first["ts"].endswith("Z")


def test_corrupt_lines_are_skipped(tmp_path):
    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    log.write("spawn", run_id="ok1")
    with open(path, "a") as fh:
        fh.write('{"torn": \n[1,2]\n')
    log.write("exit", run_id="ok2")
    assert [e["run_id"] for e in log.tail(10)] == ["ok2", "ok1"]


def test_rotation_keeps_reading_across_parts(tmp_path):
    log = EventLog(tmp_path / "events.jsonl", max_bytes=2000)
    for i in range(60):
        log.write("probe", n=i)
    assert (tmp_path / "events.jsonl.1").exists()
    got = [e["n"] for e in log.tail(40)]
    assert got == list(range(59, 19, -1))


def test_write_failure_is_counted_not_raised(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    log = EventLog(blocker / "events.jsonl")
    log.write("spawn")
    assert log.dropped == 1 and "cannot write" in (log.error or "")
