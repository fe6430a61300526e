"""Asking a busy framework to end its job before a forced stop, or to empty its queue
when a person asks for that."""

from __future__ import annotations

from typing import Any

import requests

from .presets import FrameworkSpec, join_url


def call_interrupt(spec: FrameworkSpec, url: str | None, timeout: float = 5) -> tuple[bool, str]:
    """Call the preset's interrupt endpoint; ``(ok, detail)`` for the ``interrupt`` event."""
    if spec.interrupt is None or url is None:
        return False, "this framework has no interrupt"
    method, path = spec.interrupt
    return _call(method, join_url(url, path), None, timeout)


def call_clear_queue(spec: FrameworkSpec, url: str | None, timeout: float = 10) -> tuple[bool, str]:
    """Empty the framework's own queue (``clear_queue``); ``(ok, detail)`` for the
    ``queue_cleared`` event, with what InvokeAI says it deleted."""
    if spec.clear_queue is None or url is None:
        return False, "this framework has no queue to clear"
    method, path, body = spec.clear_queue
    return _call(method, join_url(url, path), body, timeout)


def _call(method: str, url: str, body: Any, timeout: float) -> tuple[bool, str]:
    """A session that ignores HTTP_PROXY & co: a cloud image's proxy must not sit
    between the watchdog and a framework on 127.0.0.1."""
    session = requests.Session()
    session.trust_env = False
    path = "/" + url.split("/", 3)[-1] if url.count("/") >= 3 else url
    try:
        resp = session.request(method, url, json=body, timeout=timeout)
        ok, detail = resp.status_code < 400, f"HTTP {resp.status_code}"
        deleted = _deleted(resp) if ok else None
        if deleted is not None:
            detail += f", {deleted} deleted"
    except requests.RequestException as exc:
        ok, detail = False, f"failed: {exc.__class__.__name__}"
    finally:
        session.close()
    return ok, f"{method} {path}: {detail}"


def _deleted(resp: requests.Response) -> int | None:
    """InvokeAI's ``ClearResult``: ``{"deleted": 3}``."""
    try:
        found = resp.json().get("deleted")
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, int) else None
