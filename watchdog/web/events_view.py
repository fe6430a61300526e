"""The Events tab: the journal as a person reads it.

Events of one run (spawn, exit, backoff, cleanup…) sit under one row that says how
the run went, coloured by its worst event; the row opens to show each event in full.
Filters pick a framework and a kind ("problems": anything that went wrong).

    >>> html = render_events(events, framework="all", kind="problems")   # doctest: +SKIP
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass
from typing import Any

from .cards import ago

# Worst first: a group takes the colour of its worst event.
SEVERITY = {
    "bad": (
        "crash", "fatal", "hang", "spawn_failed", "teardown_failed", "internal_error",
        "front_exit", "log_truncated", "idle_command_failed",
    ),
    "warn": (
        "unhealthy", "jobs_resumed", "backoff", "auth_failed", "interrupt", "adopt_skipped",
        "idle", "idle_command", "requeue_skipped", "limit_wait", "queue_cleared",
    ),
    "ok": ("ready", "healthy", "adopt", "front_ready", "watchdog_start", "requeued"),
}  # fmt: skip
RANK = {"bad": 0, "warn": 1, "ok": 2, "info": 3}
ALL = "all"
PROBLEMS = "problems"
DETAIL_SKIP = {"ts", "event", "framework", "run_id", "pid", "v"}

CSS = """
.sdw-events { width: 100%; border-collapse: collapse; font-size: 13px; }
.sdw-events td { padding: 4px 6px; vertical-align: top; border-bottom: 1px solid #8882; }
.sdw-events summary { cursor: pointer; }
.sdw-events .ev-bad { border-left: 4px solid #dc2626; }
.sdw-events .ev-warn { border-left: 4px solid #d97706; }
.sdw-events .ev-ok { border-left: 4px solid #16a34a; }
.sdw-events .ev-info { border-left: 4px solid #9ca3af; }
.sdw-events dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 10px;
                 margin: 4px 0 8px 0; }
.sdw-events dt { color: #6b7280; } .sdw-events dd { margin: 0; white-space: pre-wrap;
                 word-break: break-word; }
"""


def severity(event: str) -> str:
    for level, kinds in SEVERITY.items():
        if event in kinds:
            return level
    return "info"


@dataclass(frozen=True)
class Group:
    """Events in a row: one run's, or a single event without a run."""

    events: tuple[dict[str, Any], ...]  # newest first

    @property
    def level(self) -> str:
        return min((severity(str(e.get("event"))) for e in self.events), key=RANK.__getitem__)

    @property
    def newest(self) -> dict[str, Any]:
        return self.events[0]

    def summary(self) -> str:
        """``spawn → exit (code 1) → backoff`` with the worst event's reason."""
        steps = " → ".join(_step(e) for e in reversed(self.events))
        worst = min(self.events, key=lambda e: RANK[severity(str(e.get("event")))])
        why = worst.get("reason") or worst.get("detail") or ""
        return f"{steps}: {why}" if why else steps


def _step(event: dict[str, Any]) -> str:
    name = str(event.get("event", "?"))
    if event.get("exit_code") is not None:
        return f"{name} (code {event['exit_code']})"
    if event.get("signal"):
        return f"{name} ({event['signal']})"
    return name


def group_events(events: list[dict[str, Any]]) -> list[Group]:
    """Neighbouring events of one run (newest first, as the journal is read) in one group."""
    groups: list[list[dict[str, Any]]] = []
    for event in events:
        run = event.get("run_id")
        if groups and run and groups[-1][0].get("run_id") == run:
            groups[-1].append(event)
        else:
            groups.append([event])
    return [Group(tuple(g)) for g in groups]


def wanted(event: dict[str, Any], framework: str, kind: str) -> bool:
    if framework not in ("", ALL) and event.get("framework") != framework:
        return False
    if kind in ("", ALL):
        return True
    if kind == PROBLEMS:
        return severity(str(event.get("event"))) in ("bad", "warn")
    return event.get("event") == kind


def kinds_of(events: list[dict[str, Any]]) -> list[str]:
    """The filter's choices: all, problems, then each kind seen."""
    return [ALL, PROBLEMS, *sorted({str(e.get("event")) for e in events if e.get("event")})]


def render_events(
    events: list[dict[str, Any]], framework: str = ALL, kind: str = ALL, now: float | None = None
) -> str:
    now = time.time() if now is None else now
    # A filter keeps a run's whole row when any of its events matches.
    groups = [g for g in group_events(events) if any(wanted(e, framework, kind) for e in g.events)]
    if not groups:
        return '<p class="sdw-events-none">No events match.</p>'
    rows = [_row(g, now) for g in groups]
    return f'<table class="sdw-events">{"".join(rows)}</table>'


def _row(group: Group, now: float) -> str:
    first = group.newest
    stamp = str(first.get("ts", ""))
    when = f'<span title="{html.escape(stamp)}">{html.escape(ago(stamp, now))}</span>'
    who = html.escape(str(first.get("framework") or ""))
    pid = first.get("pid")
    head = html.escape(group.summary())
    details = "".join(_details(e, now) for e in group.events)
    return (
        f'<tr class="ev-{group.level}"><td>{when}</td><td>{who}</td>'
        f"<td><details><summary>{head}</summary>{details}</details></td>"
        f"<td>{html.escape(str(pid)) if pid else ''}</td></tr>"
    )


def _details(event: dict[str, Any], now: float) -> str:
    stamp = str(event.get("ts", ""))
    items = [("event", event.get("event")), ("when", f"{ago(stamp, now)} ({stamp})")]
    items += [("run", event.get("run_id")), ("pid", event.get("pid"))]
    items += [(k, v) for k, v in event.items() if k not in DETAIL_SKIP]
    cells = "".join(
        f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(_text(v))}</dd>"
        for k, v in items
        if v not in (None, "", [], ())
    )
    return f"<dl>{cells}</dl>"


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "\n".join(str(v) for v in value)
    return str(value)
