"""What the page says, as pure functions of what the core answered (replayed)."""

from __future__ import annotations

from watchdog.web.actions import SHOW_DONE_S, after_answer, progress
from watchdog.web.events_view import group_events, render_events


def test_a_restart_is_followed_until_the_new_run_is_up_then_the_message_clears():
    before = {"framework": "demo", "state": "RUNNING", "run_id": "r1"}
    pending = after_answer("restart", None, before, {**before, "note": None}, now=0)
    said, pending = progress(pending, {**before, "state": "STOPPING"}, now=1)
    assert said == "Restarting **demo**… (stopping, 1 s)"
    said, pending = progress(pending, before, now=2)  # the old run still: not done
    assert said.startswith("Restarting")
    said, pending = progress(pending, {**before, "run_id": "r2"}, now=3)
    assert said == "✓ **demo** is running again"
    assert progress(pending, before, now=3 + SHOW_DONE_S + 1) == ("", None)


def test_a_switch_that_ends_fatal_says_why_and_a_no_op_says_nothing_to_do():
    before = {"framework": "a", "state": "RUNNING", "run_id": "r1"}
    pending = after_answer("switch", "broken", before, {"note": None}, now=0)
    fatal = {"framework": "broken", "state": "FATAL", "reason": "6 failures", "run_id": None}
    assert progress(pending, fatal, now=5)[0] == "✗ **broken** failed: 6 failures"
    noop = after_answer("switch", "a", before, {"note": "a is already running"}, now=0)
    assert progress(noop, before, now=1)[0] == "Nothing to do: a is already running"


def test_one_row_per_run_coloured_by_its_worst_event_and_filtered():
    events = [  # newest first, as the journal is read
        {"ts": "2026-11-27T10:00:03.000Z", "event": "backoff", "framework": "x", "run_id": "r2"},
        {"ts": "2026-11-27T10:00:02.000Z", "event": "crash", "framework": "x", "run_id": "r2",
         "reason": "exited with code 1", "exit_code": 1},
        {"ts": "2026-11-27T10:00:01.000Z", "event": "spawn", "framework": "x", "run_id": "r2"},
        {"ts": "2026-11-27T10:00:00.000Z", "event": "ready", "framework": "y", "run_id": "r1"},
    ]  # fmt: skip
    groups = group_events(events)
    assert [g.level for g in groups] == ["bad", "ok"]
    assert groups[0].summary() == "spawn → crash (code 1) → backoff: exited with code 1"
    page = render_events(events, kind="problems", now=1795773600.0)
    assert page.count("<tr") == 1 and 'class="ev-bad"' in page
    assert render_events(events, framework="y").count("<tr") == 1
    assert "No events match" in render_events(events, framework="z")
    hostile = [{"ts": "x", "event": "<script>", "framework": "<b>", "reason": "<img src=x>"}]
    assert "<script>" not in render_events(hostile) and "<img" not in render_events(hostile)
