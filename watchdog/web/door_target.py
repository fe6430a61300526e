"""Where the door leads: the current framework's loopback URL, and what to say while
there is none.

The target comes from the core's status, fetched at most once a ``TTL_S`` while
requests arrive and never while none do (an idle door costs the core nothing), and
again soon after the framework failed to answer. Only a URL on 127.0.0.1, ::1 or
localhost is ever a target: a framework whose URL names another machine is not
opened, whatever the settings say.

    >>> target = await DoorTarget(core).current()                     # doctest: +SKIP
    >>> target.url, target.ready
    ('http://127.0.0.1:8188', True)
"""

from __future__ import annotations

import asyncio
import html
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..control.api import Refused
from .link import CoreLink, SlotLink

TTL_S = 1.0
# A failed request asks again, but a crowd of them (50 streams cut by a crash) must
# not become a crowd of status calls to the core while it respawns the framework.
FRESH_AFTER_S = 0.25
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
READY_STATES = frozenset({"RUNNING", "UNHEALTHY"})
RELOAD_S = 3


@dataclass(frozen=True)
class Target:
    framework: str
    state: str
    url: str | None  # loopback only; None while there is nowhere to go
    ready: bool
    spawned_secs_ago: float | None = None
    startup_timeout_s: float | None = None
    reason: str | None = None
    idle_after_s: float | None = None  # the idle policy's time, for the door's reports

    @property
    def host(self) -> str | None:
        return urlsplit(self.url).hostname if self.url else None

    @property
    def port(self) -> int | None:
        return urlsplit(self.url).port if self.url else None


def loopback_url(url: Any) -> str | None:
    """The URL if it is ``http`` on this machine's loopback, else None."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme != "http" or parts.hostname not in LOOPBACK or port is None:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"http://{host}:{port}"


def target_of(info: dict[str, Any]) -> Target:
    url = loopback_url(info.get("url"))
    state = str(info.get("state", "n/a"))
    idle = info.get("idle") if isinstance(info.get("idle"), dict) else {}
    after_min = idle.get("after_min") if idle.get("enabled") else None
    return Target(
        framework=str(info.get("framework") or "the framework"),
        state=state,
        url=url,
        ready=bool(url and info.get("ready") and state in READY_STATES),
        spawned_secs_ago=info.get("spawned_secs_ago"),
        startup_timeout_s=info.get("startup_timeout_s"),
        reason=info.get("reason") if info.get("url") == url else "its URL is not on this machine",
        idle_after_s=after_min * 60 if isinstance(after_min, (int, float)) else None,
    )


class DoorTarget:
    def __init__(self, core: CoreLink | SlotLink) -> None:
        self.core = core
        self._target: Target | None = None
        self._fetched = 0.0
        self._lock: asyncio.Lock | None = None

    async def current(self, fresh: bool = False) -> Target:
        age = time.monotonic() - self._fetched
        if self._target is not None and age < (FRESH_AFTER_S if fresh else TTL_S):
            return self._target
        if self._lock is None:
            self._lock = asyncio.Lock()
        began = time.monotonic()
        async with self._lock:  # one status call for a crowd
            if self._target is not None and self._fetched >= began:
                return self._target
            try:
                info = await asyncio.to_thread(self.core.status)
            except Refused as exc:
                target = Target("the framework", "n/a", None, False, reason=str(exc))
            else:
                target = target_of(info)
            self._target, self._fetched = target, time.monotonic()
            return target


def starting_page(target: Target) -> str:
    """The door while no framework is ready: what, for how long, and a reload."""
    e = html.escape
    name = e(target.framework)
    if target.state == "STARTING" and target.spawned_secs_ago is not None:
        limit = f" of up to {target.startup_timeout_s:.0f} s" if target.startup_timeout_s else ""
        line = f"{name} is starting: {target.spawned_secs_ago:.0f} s{limit}."
    elif target.state in ("BACKOFF", "STOPPING"):
        line = f"{name} is restarting ({e(target.state.lower())})."
    elif target.state == "FATAL":
        line = f"{name} gave up starting: {e(target.reason or 'see the control page')}."
    elif target.state == "SLEEPING":
        line = f"{name} was asleep (idle) and is waking up."
    elif target.state == "STOPPED":
        line = f"{name} is not running (stopped); start it from the control page."
    else:
        line = f"{name} is not ready ({e(target.reason or target.state)})."
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='refresh' content='{RELOAD_S}'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{name} · sd-watchdog</title>"
        "<style>body{font-family:system-ui,sans-serif;display:flex;min-height:90vh;"
        "align-items:center;justify-content:center;color:#1f2937}</style></head>"
        f"<body><div><h1>{line}</h1><p>This page reloads every {RELOAD_S} s and shows "
        f"{name} as soon as it is ready.</p></div></body></html>"
    )
