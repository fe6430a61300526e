"""Notifications against a real receiver on 127.0.0.1, from a real watchdog."""

from __future__ import annotations

import json
import time

import requests
from conftest import demo, free_port, journal, ts, wait_event, wait_journal
from fakes.receiver import Receiver, closed_port

SECRET = "s3cretT0ken"


def test_fatal_is_one_message_within_5_s_and_a_crash_loop_at_most_three(make_settings, service):
    with Receiver() as receiver:
        settings = make_settings(
            frameworks={"broken": demo(None, "--crash-after", "0")},
            watch={"max_restarts": 19},  # 20 crashes, then FATAL
            notify={"urls": [receiver.url()]},
        )
        svc = service(settings)
        fatal = wait_event(svc.supervisor, "fatal", 60)[-1]
        crashes = wait_event(svc.supervisor, "crash", 1, count=20)
        assert len(crashes) == 20
        got = receiver.wait(2, timeout=5)
        time.sleep(1)  # anything more would come now
    messages = receiver.messages
    assert 2 <= len(messages) <= 3, [m["title"] for m in messages]
    first, last = messages[0], messages[-1]
    assert first["title"].startswith("broken crashed on ")
    assert last["title"].startswith("broken gave up (FATAL) on ") and last["type"] == "failure"
    assert fatal["reason"][:40] in last["message"]
    assert "more crashes of broken since" in last["message"], "the held-back crashes, told"
    assert got[-1] == last
    assert receiver.arrivals[-1] - ts(fatal) < 5, "FATAL told within 5 s"


def test_a_hanging_receiver_never_delays_a_respawn(make_settings, service):
    with Receiver(hang=True) as receiver:
        settings = make_settings(
            frameworks={"demo": demo(None, "--crash-after", "1")},
            watch={"max_restarts": 50, "stable_uptime_s": 0.5},
            notify={"urls": [receiver.url()], "min_interval_s": 0},
        )
        svc = service(settings)
        exits = wait_event(svc.supervisor, "crash", 30, count=3)
        spawns = wait_event(svc.supervisor, "spawn", 30, count=4)
        # Each crash wants a message the receiver never answers (5 s read timeout):
        # the respawns after it come as fast as ever.
        gaps = [ts(spawns[i + 1]) - ts(exits[i]) for i in range(3)]
        assert max(gaps) < 2.0, gaps
        failed = wait_event(svc.supervisor, "notify_failed", 20)[-1]
    assert failed["service"].startswith("json://127.0.0.1:") and failed["kind"] == "crash"


def test_the_secret_of_a_notify_url_appears_nowhere_we_show(write_settings, app, tmp_path):
    refused = f"json://sdw:{SECRET}@127.0.0.1:{closed_port()}/hook?token={SECRET}"
    settings = write_settings(
        frameworks={"demo": demo(None, "--crash-after", "1")},
        notify={"urls": [refused], "min_interval_s": 0},
    )
    a = app(settings, free_port())
    a.wait_page()
    wait_journal(a.logs, "notify_failed", timeout=30)
    page = f"http://127.0.0.1:{a.port}/"
    paths = ("info", "api/v1/status", "api/v1/frameworks", "api/v1/events")
    shown = [requests.get(page + path, timeout=10).text for path in paths]
    shown.append(a.cli("status", "--json").stdout)
    shown.append(a.cli("events", "-n", "100").stdout)
    shown.append((a.logs / "events.jsonl").read_text())
    a.close()
    shown += [p.read_text(errors="replace") for p in tmp_path.glob("app-*.log")]
    assert all(SECRET not in text for text in shown)
    failed = [e for e in journal(a.logs) if e["event"] == "notify_failed"]
    assert failed and "****" in failed[0]["service"]


def test_notify_test_sends_one_and_says_where(write_settings, tmp_path):
    from conftest import run_app

    with Receiver() as receiver:
        settings = write_settings(notify={"urls": [receiver.url(SECRET)]})
        done = run_app("--settings", str(settings), "notify-test")
        assert done.returncode == 0, done.stderr
        [message] = receiver.wait(1, timeout=5)
    assert "test message" in message["title"]
    assert done.stdout.startswith("sent: json://sdw:****@127.0.0.1:")
    assert SECRET not in done.stdout + done.stderr
    unknown = write_settings(notify={"urls": [f"nosuch://{SECRET}@x"]})
    done = run_app("--settings", str(unknown), "notify-test")
    assert done.returncode == 1 and "not a URL Apprise knows" in done.stderr
    assert SECRET not in done.stdout + done.stderr


def test_wrong_notify_settings_name_the_key_and_never_echo_a_url(write_settings):
    from conftest import run_app

    path = write_settings(notify={"urls": f"ntfys://{SECRET}@ntfy.sh/me", "events": ["crsh"]})
    done = run_app("--settings", str(path), "status")
    said = done.stdout + done.stderr
    assert done.returncode != 0 and "notify.events" in said and "did you mean 'crash'" in said
    assert "notify.urls" in said and SECRET not in said
    json.loads(path.read_text())  # the file itself is left as it was
