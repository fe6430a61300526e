"""Asking a busy framework to end its job before a forced stop."""

from __future__ import annotations

import requests

from .presets import FrameworkSpec, join_url


def call_interrupt(spec: FrameworkSpec, url: str | None, timeout: float = 5) -> tuple[bool, str]:
    """Call the preset's interrupt endpoint; ``(ok, detail)`` for the ``interrupt`` event.

    A session that ignores HTTP_PROXY & co: a cloud image's proxy must not sit between
    the watchdog and a framework on 127.0.0.1.
    """
    if spec.interrupt is None or url is None:
        return False, "this framework has no interrupt"
    method, path = spec.interrupt
    session = requests.Session()
    session.trust_env = False
    try:
        resp = session.request(method, join_url(url, path), timeout=timeout)
        ok, detail = resp.status_code < 400, f"HTTP {resp.status_code}"
    except requests.RequestException as exc:
        ok, detail = False, f"failed: {exc.__class__.__name__}"
    finally:
        session.close()
    return ok, f"{method} {path}: {detail}"
