"""What we bound inside Gradio: bounded, and never at the cost of a call."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import requests
from conftest import running
from gradio_client import Client

from watchdog.web import gradio_limits
from watchdog.web.gradio_limits import QueueTrimmer


def page_with(pending: dict[str, set[str]]) -> SimpleNamespace:
    """Gradio's queue as far as the trimmer reads it."""
    return SimpleNamespace(_queue=SimpleNamespace(pending_event_ids_session=pending))


def test_only_sessions_with_no_event_left_are_forgotten():
    pending = {"delivered": set(), "on_its_way": {"e1"}, "also_done": set()}
    trim = QueueTrimmer(page_with(pending))  # type: ignore[arg-type]
    assert trim() == 2 and pending == {"on_its_way": {"e1"}}
    pending["on_its_way"].discard("e1")  # its result was delivered
    assert trim() == 1 and pending == {}


def test_trimming_often_never_fails_a_call(make_settings, serve, monkeypatch):
    """Ten gradio_client sessions and plain calls, with the trimmer every 50 ms."""
    monkeypatch.setattr(gradio_limits, "TRIM_EVERY_S", 0.05)
    web = serve(make_settings())
    web.sup.wait_for(running, timeout=10)
    errors: list[str] = []
    done = threading.Event()

    def client() -> None:
        c = Client(web.url, verbose=False)
        while not done.is_set():
            try:
                assert c.predict(api_name="/status")["framework"] == "demo"
            except Exception as exc:
                errors.append(repr(exc))

    def plain() -> None:
        s = requests.Session()
        while not done.is_set():
            try:
                r = s.post(f"{web.url}gradio_api/call/status", json={"data": []}, timeout=10)
                event = r.json()["event_id"]
                text = s.get(f"{web.url}gradio_api/call/status/{event}", timeout=10).text
                assert "event: complete" in text, text[:200]
            except Exception as exc:
                errors.append(repr(exc))

    threads = [threading.Thread(target=client) for _ in range(10)]
    threads += [threading.Thread(target=plain) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(15)
    done.set()
    for t in threads:
        t.join(30)
    assert not errors, errors[:3]
