"""Which journal events become a message on someone's phone, and what it says.

Pure: events in, messages out, the clock passed in. One message per kind and
framework per ``min_interval_s``; what is held back is counted and told in the next
message about that framework ("and 19 more crashes of comfyui since 14:02 UTC"), or
on its own once the interval is over. A crash loop that ends FATAL is two messages,
not twenty.

    >>> t = Throttle(["crash", "fatal"], 300, machine="vm1", page_url=None)
    >>> [m.title for m in t.offer({"event": "crash", "framework": "a", "reason": "x"}, 0)]
    ['a crashed on vm1']
    >>> t.offer({"event": "crash", "framework": "a", "reason": "x"}, 10)
    []
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

DEFAULT_EVENTS = (
    "fatal", "crash", "hang", "stalled", "recovered", "vram_timeout", "idle",
    "idle_command_failed", "front_exit", "front_hang", "front_rss",
)  # fmt: skip
# What notify.events may name: the journal's events about frameworks and the page.
NOTIFIABLE = (
    *DEFAULT_EVENTS, "startup_timeout", "spawn_failed", "teardown_failed", "port_busy",
    "restart", "switch", "stop", "spawn", "ready", "jobs_resumed", "auth_failed",
    "log_truncated", "internal_error", "url_changed", "sleep", "wake", "idle_command",
    "idle_command_exit", "idle_cancelled", "keep_awake", "requeued", "requeue_skipped",
    "limit_wait", "queue_cleared",
)  # fmt: skip
# A problem that, followed by ready, makes a "recovered" message.
TROUBLE = ("crash", "hang", "stalled", "fatal", "startup_timeout", "spawn_failed")
WHAT = {
    "fatal": "gave up (FATAL)",
    "crash": "crashed",
    "hang": "hung and was restarted",
    "stalled": "stalled and was restarted",
    "recovered": "is running again",
    "vram_timeout": "did not free its GPU memory",
    "idle": "is idle",
    "idle_command_failed": "idle command failed",
    "idle_command": "idle command is running",
    "sleep": "is asleep (idle)",
    "wake": "is waking up",
    "front_exit": "control page exited and was restarted",
    "front_hang": "control page hung and was restarted",
    "front_rss": "control page grew too big and was restarted",
    "startup_timeout": "did not start in time",
}
LEVEL = {"recovered": "success", "vram_timeout": "warning", "idle": "warning"}
PLURAL = {"crash": "crashes", "fatal": "fatals"}


@dataclass(frozen=True)
class Message:
    kind: str
    framework: str
    title: str
    body: str
    level: str  # apprise's notify type: info, success, warning, failure


@dataclass
class _Held:
    count: int = 0
    since: str = ""
    last: dict[str, Any] = field(default_factory=dict)


class Throttle:
    def __init__(
        self,
        kinds: Iterable[str],
        min_interval_s: float,
        machine: str,
        page_url: str | None,
        stable_s: float = 60.0,
    ) -> None:
        self.kinds = set(kinds)
        self.interval = min_interval_s
        self.machine = machine
        self.page_url = page_url
        # "Running again" only once it stayed up this long: in a crash loop every
        # start is ready for a moment, and "running again" then would be a lie.
        self.stable_s = stable_s
        self._sent: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], _Held] = {}
        self._trouble: dict[str, str] = {}  # framework -> the last problem's kind
        self._back: dict[str, tuple[float, dict[str, Any]]] = {}  # ready, not yet stable

    def offer(self, event: dict[str, Any], now: float) -> list[Message]:
        """The message to send now for ``event`` (none if it is held back or not wanted)."""
        kind, framework = str(event.get("event", "")), str(event.get("framework") or "")
        if kind in TROUBLE:
            self._trouble[framework] = kind
            self._back.pop(framework, None)  # it did not stay up
        elif kind == "ready" and framework in self._trouble:
            self._back[framework] = (now + self.stable_s, event)
        return self._send(event, now)

    def _send(self, event: dict[str, Any], now: float) -> list[Message]:
        kind, framework = str(event.get("event", "")), str(event.get("framework") or "")
        if kind not in self.kinds:
            return []
        key = (kind, framework)
        if now - self._sent.get(key, float("-inf")) < self.interval:
            held = self._held.setdefault(key, _Held(since=str(event.get("ts", ""))))
            held.count += 1
            held.last = event
            return []
        self._sent[key] = now
        return [self._message(kind, framework, event, self._fold(framework))]

    def due(self, now: float) -> list[Message]:
        """Runs that stayed up ("recovered"), and digests whose interval is over."""
        out = []
        for framework, (when, ready) in list(self._back.items()):
            if now >= when:
                del self._back[framework]
                after = self._trouble.pop(framework, "failure")
                why = f"ready again after a {after}, and up for {self.stable_s:g} s"
                out += self._send({**ready, "event": "recovered", "reason": why}, now)
        for (kind, framework), held in list(self._held.items()):
            if held.count and now - self._sent.get((kind, framework), 0.0) >= self.interval:
                self._sent[(kind, framework)] = now
                del self._held[(kind, framework)]
                title = f"{_more(held, kind, framework)} on {self.machine}"
                body = self._body(held.last)
                out.append(Message(kind, framework, title, body, LEVEL.get(kind, "failure")))
        return out

    def next_due(self) -> float | None:
        times = [self._sent.get(k, 0.0) + self.interval for k, h in self._held.items() if h.count]
        times += [when for when, _ in self._back.values()]
        return min(times) if times else None

    def _fold(self, framework: str) -> list[str]:
        """Everything held back about ``framework``, as lines of the next message."""
        lines = []
        for key, held in list(self._held.items()):
            if key[1] == framework and held.count:
                lines.append(_more(held, *key))
                del self._held[key]
        return lines

    def _message(
        self, kind: str, framework: str, event: dict[str, Any], digest: list[str]
    ) -> Message:
        who = framework or "the watchdog"
        title = f"{who} {WHAT.get(kind, kind)} on {self.machine}"
        body = "\n".join([self._body(event), *(f"Also: {line}." for line in digest)])
        return Message(kind, framework, title, body.strip(), LEVEL.get(kind, "failure"))

    def _body(self, event: dict[str, Any]) -> str:
        lines = [str(event[k]) for k in ("reason", "cause") if event.get(k)][:1]
        stderr = [s for s in event.get("last_stderr") or [] if str(s).strip()]
        if stderr:
            lines.append(f"Last stderr line: {str(stderr[-1])[:300]}")
        if event.get("ts"):
            lines.append(f"At {_clock(str(event['ts']))}.")
        if self.page_url:
            lines.append(f"Page: {self.page_url}")
        return "\n".join(lines)


def _more(held: _Held, kind: str, framework: str) -> str:
    if held.count == 1:
        noun = kind if kind in PLURAL else f"{kind} event"
    else:
        noun = PLURAL.get(kind, f"{kind} events")
    return f"{held.count} more {noun} of {framework or 'the watchdog'} since {_clock(held.since)}"


def _clock(stamp: str) -> str:
    """``2026-11-27T14:02:05.123Z`` → ``14:02 UTC`` (the stamp itself if unreadable)."""
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(timezone.utc)
    except ValueError:
        return stamp
    return when.strftime("%H:%M UTC")
