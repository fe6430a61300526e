"""What the status card tells a person, from real supervisor states."""

from __future__ import annotations

from conftest import demo, free_port, running

from watchdog.core.states import State
from watchdog.core.status import Status
from watchdog.runtime.logs import latest_line
from watchdog.web.cards import ago, public_url, status_card


def card(status: Status, page_host: str | None = None) -> str:
    """The card as the page shows it: from the status object and the newest log line."""
    return status_card(status.to_dict(), page_host, latest_line(status.logs))


def test_starting_shows_progress_and_the_newest_log_line(make_settings, supervise):
    sup = supervise(make_settings(frameworks={"slow": demo(None, "--startup-delay", "30")}))
    status = sup.wait_for(lambda s: s.state is State.STARTING and s.logs is not None, 5)
    shown = sup.wait_for(lambda s: "loading model weights" in card(s), timeout=5)
    html = card(shown)
    assert "STARTING" in html and "of 15s allowed" in html and "(not ready yet)" in html
    assert status.pid is not None


def test_fatal_shows_why_and_the_last_stderr_lines(make_settings, supervise):
    sup = supervise(
        make_settings(
            frameworks={"flaky": demo(None, "--crash-after", "0.05")}, watch={"max_restarts": 1}
        )
    )
    status = sup.wait_for(lambda s: s.state is State.FATAL, timeout=15)
    html = card(status)
    assert "Gave up" in html and "max_restarts=1" in html
    assert "RuntimeError: demo crash requested by --crash-after" in html
    assert "Press <b>Start</b>" in html


def test_log_text_is_escaped(make_settings, supervise):
    script = "echo '<script>alert(1)</script>'; exec sleep 30"
    sup = supervise(
        make_settings(frameworks={"evil": {"command": ["sh", "-c", script], "port": free_port()}})
    )
    status = sup.wait_for(lambda s: "alert" in card(s), timeout=10)
    html = card(status)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_running_card_links_to_the_framework_on_the_page_host(make_settings, supervise):
    port = free_port()
    sup = supervise(make_settings(frameworks={"demo": demo(port)}))
    html = card(sup.wait_for(running, timeout=10), page_host="gpu-box.example:5005")
    assert f'href="http://gpu-box.example:{port}"' in html and "RUNNING" in html


def test_public_url():
    assert public_url("http://127.0.0.1:7860", "10.1.2.3:5005") == "http://10.1.2.3:7860"
    assert public_url("http://0.0.0.0:8188", "[::1]:5005") == "http://[::1]:8188"
    assert public_url("http://127.0.0.1:7860", None) == "http://127.0.0.1:7860"
    assert public_url("https://sd.example.com", "x:5005") == "https://sd.example.com"
    assert public_url(None, "x") is None


def test_the_card_shows_only_its_own_frameworks_last_exit(make_settings, supervise):
    sup = supervise(
        make_settings(frameworks={"broken": demo(None, "--crash-after", "0.3"), "ok": demo()},
                      default="broken", watch={"max_restarts": 1})
    )  # fmt: skip
    sup.wait_for(lambda s: s.state.value == "FATAL", timeout=20)
    info = sup.status().to_dict()
    assert info["last_exit"]["framework"] == "broken"
    assert "last exit" in status_card(info) and " ago</span>" in status_card(info)
    sup.switch("ok", requested_by="api")
    ok = sup.wait_for(lambda s: running(s) and s.framework == "ok", timeout=20)
    assert "last exit" not in status_card(ok.to_dict()), "broken's exit is not ok's story"


def test_ago_reads_like_a_person_and_keeps_what_it_cannot_read():
    assert ago("2026-11-27T14:04:30.000Z", now=1795788300.0) == "30 s ago"
    assert ago("2026-11-27T12:00:00.000Z", now=1795788300.0) == "2 h 5 min ago"
    assert ago("not a time") == "not a time"
