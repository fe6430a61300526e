"""The notification policy, replayed: which events become messages, and what they say."""

from __future__ import annotations

from watchdog.notify.policy import DEFAULT_EVENTS, Throttle


def crash(i: int, framework: str = "comfyui") -> dict:
    return {
        "event": "crash",
        "framework": framework,
        "ts": f"2026-11-27T14:02:{i:02d}.000Z",
        "reason": "exited with code 1: Python exception: RuntimeError: boom",
        "last_stderr": ["Traceback (most recent call last):", "RuntimeError: boom"],
    }


def test_a_crash_loop_that_ends_fatal_is_two_messages_the_second_with_a_digest():
    t = Throttle(DEFAULT_EVENTS, 300, machine="vm1", page_url="https://vm1:5005/")
    sent = []
    for i in range(20):
        sent += t.offer(crash(i), now=i)
    sent += t.offer({"event": "fatal", "framework": "comfyui", "reason": "6 failures"}, 21)
    assert [m.kind for m in sent] == ["crash", "fatal"]
    first, fatal = sent
    assert first.title == "comfyui crashed on vm1" and first.level == "failure"
    assert "RuntimeError: boom" in first.body and "Page: https://vm1:5005/" in first.body
    assert "Last stderr line: RuntimeError: boom" in first.body
    assert fatal.title == "comfyui gave up (FATAL) on vm1"
    assert "19 more crashes of comfyui since 14:02 UTC" in fatal.body
    assert t.due(1000) == [], "the digest went out with the fatal message"


def test_held_back_events_are_told_on_their_own_once_the_interval_is_over():
    t = Throttle(["crash"], 60, machine="vm1", page_url=None)
    assert len(t.offer(crash(0), 0)) == 1
    t.offer(crash(1), 10)
    t.offer(crash(2), 20)
    assert t.next_due() == 60 and t.due(59) == []
    [digest] = t.due(60)
    assert digest.title == "2 more crashes of comfyui since 14:02 UTC on vm1"
    assert t.next_due() is None


def test_recovered_once_it_stayed_up_and_not_after_a_plain_start():
    t = Throttle(DEFAULT_EVENTS, 300, machine="vm1", page_url=None, stable_s=60)
    assert t.offer({"event": "ready", "framework": "a"}, 0) == []
    t.offer(crash(0, "a"), 1)
    assert t.offer({"event": "ready", "framework": "a"}, 2) == []
    t.offer(crash(3, "a"), 30)  # up for a moment only, as in a crash loop: no news
    assert t.offer({"event": "ready", "framework": "a"}, 40) == []
    assert t.next_due() == 100 and t.due(99) == []
    [back] = t.due(100)
    assert back.kind == "recovered" and back.level == "success"
    assert back.title == "a is running again on vm1" and "after a crash" in back.body
    assert "1 more crash of a since" in back.body, "the held-back crash, told"
    assert t.due(1000) == []


def test_kinds_not_asked_for_and_other_frameworks_are_their_own():
    t = Throttle(["fatal"], 300, machine="vm1", page_url=None)
    assert t.offer(crash(0), 0) == []
    assert len(t.offer({"event": "fatal", "framework": "a"}, 1)) == 1
    assert len(t.offer({"event": "fatal", "framework": "b"}, 2)) == 1
