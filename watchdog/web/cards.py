"""The page's HTML pieces: pure functions of what the core's API returns.

The status card, the event rows and the GPU panel, each from plain JSON data
(``status``, ``events``, ``gpu``), so they are tested without a server and render
the same whichever door the data came through. Every value from outside is escaped.
"""

from __future__ import annotations

import html
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from ..core.states import State
from ..runtime.ports import LOCAL_HOSTS

STATE_COLOURS = {
    State.RUNNING: "#16a34a",
    State.STARTING: "#2563eb",
    State.UNHEALTHY: "#d97706",
    State.BACKOFF: "#d97706",
    State.STOPPING: "#6b7280",
    State.STOPPED: "#6b7280",
    State.FATAL: "#dc2626",
    State.SLEEPING: "#7c3aed",
}
EVENT_ROWS = 50

CSS = """
.sdw-card { border-radius: 10px; padding: 14px 18px; border: 1px solid #e5e7eb; }
.sdw-state { display: inline-block; color: white; font-weight: 700; border-radius: 6px;
             padding: 2px 10px; letter-spacing: .05em; }
.sdw-grid { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px;
            margin-top: 10px; }
.sdw-grid dt { color: #6b7280; } .sdw-grid dd { margin: 0; }
.sdw-why { margin-top: 10px; } .sdw-why pre { white-space: pre-wrap; font-size: 12px;
            max-height: 14em; overflow: auto; background: #11182710; padding: 8px; }
.sdw-bar { height: 6px; background: #e5e7eb; border-radius: 3px; margin-top: 6px; }
.sdw-bar > div { height: 6px; background: #2563eb; border-radius: 3px; }
.sdw-table { width: 100%; border-collapse: collapse; margin-top: 8px; font-size: 13px; }
.sdw-table th, .sdw-table td { text-align: left; padding: 3px 8px;
            border-bottom: 1px solid #e5e7eb; }
.sdw-ours { background: #16a34a18; }
.sdw-slots { display: flex; flex-wrap: wrap; gap: 12px; }
.sdw-slots > .sdw-card { flex: 1 1 260px; }
.sdw-chosen { border: 2px solid #2563eb; }
.sdw-slot { font-weight: 700; margin-right: 6px; }
"""


def ago(stamp: str, now: float | None = None) -> str:
    """``"2026-11-27T14:02:00.000Z"`` → ``"3 min ago"`` (the stamp itself if unreadable).

    >>> ago("2026-11-27T14:02:00.000Z", now=1795788300.0)
    '3 min ago'
    """
    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except (ValueError, AttributeError):
        return stamp
    secs = max(0, int((time.time() if now is None else now) - then))
    if secs < 60:
        return f"{secs} s ago"
    if secs < 3600:
        return f"{secs // 60} min ago"
    if secs < 86400:
        return f"{secs // 3600} h {secs % 3600 // 60} min ago"
    return f"{secs // 86400} d ago"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def public_url(url: str | None, page_host: str | None) -> str | None:
    """The framework's URL as the viewer's browser can reach it.

    A framework on 127.0.0.1:7860 is, for someone who opened this page at
    ``vm.example:5005``, at ``vm.example:7860``.
    """
    if not url:
        return None
    parts = urlsplit(url)
    if parts.hostname in LOCAL_HOSTS and page_host:
        host = urlsplit(f"//{page_host}").hostname or parts.hostname
        if ":" in host:
            host = f"[{host}]"
        return f"{parts.scheme}://{host}:{parts.port}" if parts.port else f"{parts.scheme}://{host}"
    return url


def account_line(user: str | None, tls_fingerprint: str | None = None) -> str:
    """Who is signed in, a way out, and the certificate to compare with the browser's."""
    e = html.escape
    parts = []
    if user:
        parts.append(
            f"signed in as <b class='sdw-user'>{e(user)}</b> · "
            "<a href='logout' id='sign-out'>Sign out</a>"
        )
    if tls_fingerprint:
        parts.append(f"<span title='TLS certificate'>🔒 <code>{e(tls_fingerprint)}</code></span>")
    return f"<div class='sdw-account'>{' · '.join(parts)}</div>" if parts else ""


def status_card(info: dict[str, Any], page_host: str | None = None, latest: str = "") -> str:
    """The status card as HTML, from the status object; every value from outside is
    escaped. ``latest``: the newest log line, shown while the framework starts."""
    e = html.escape
    state = str(info.get("state", "n/a"))
    colour = next((c for s, c in STATE_COLOURS.items() if s.value == state), "#6b7280")
    # The door when there is one: the framework behind our login, from anywhere.
    link = public_url(info.get("door_url") or info.get("url"), page_host)
    chosen = f"<span class='sdw-framework'>{e(str(info.get('framework')))}</span>"
    run_framework = info.get("run_framework")
    if run_framework and run_framework != info.get("framework"):
        chosen += f" (still {e(str(run_framework))}: {e(state.lower())})"
    pid = info.get("pid")
    rows: list[tuple[str, str]] = [
        ("framework", chosen),
        ("pid", f"<span class='sdw-pid'>{int(pid)}</span>" if pid else "n/a"),
        ("uptime", _duration(info.get("spawned_secs_ago")) if info.get("is_running") else "n/a"),
        ("restarts", e(str(info.get("restarts", "n/a")))),
    ]
    if link:
        rows.append(
            (
                "open",
                f'<a href="{e(link)}" target="_blank" rel="noopener">{e(link)}</a>'
                if info.get("ready")
                else e(link) + " (not ready yet)",
            )
        )
    if info.get("busy"):
        rows.append(("generating", e(str(info.get("busy_detail") or "busy"))))
    idle = idle_text(info.get("idle"))
    if idle:
        rows.append(("idle", f"<span class='sdw-idle'>{e(idle)}</span>"))
    queue = info.get("queue")
    if isinstance(queue, dict) and queue.get("text"):
        # What a crash owes, what InvokeAI resumes, what the last requeue set aside.
        rows.append(("queue", f"<span class='sdw-queue'>{e(str(queue['text']))}</span>"))
    last_exit = info.get("last_exit")
    # Another framework's exit (the one switched away from) is not this one's story.
    if last_exit and last_exit.get("framework", info.get("framework")) == info.get("framework"):
        stamp = str(last_exit["time"])
        when = f"<span title='{e(stamp)}'>{e(ago(stamp))}</span>"
        rows.append(("last exit", f"{e(str(last_exit['reason']))}, {when}"))
    grid = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    why = ""
    elapsed = info.get("spawned_secs_ago")
    if state == State.STARTING.value and elapsed is not None:
        allowed = float(info.get("startup_timeout_s") or 0)
        pct = min(100.0, 100 * elapsed / max(allowed, 1e-6))
        why = (
            f"<div class='sdw-why'>Starting: {_duration(elapsed)} of"
            f" {_duration(allowed)} allowed"
            f"<div class='sdw-bar'><div style='width:{pct:.0f}%'></div></div>"
            f"<pre>{e(latest) or 'no output yet'}</pre></div>"
        )
    elif state == State.FATAL.value:
        stderr = "\n".join(info.get("last_stderr") or ()) or "(no stderr output)"
        why = (
            f"<div class='sdw-why'><b>Gave up:</b> {e(str(info.get('reason') or ''))}"
            f"<pre>{e(stderr)}</pre>Press <b>Start</b> to try again.</div>"
        )
    elif info.get("reason"):
        extra = ""
        if info.get("backoff_secs_left") is not None:
            extra = f" — restarting in {info['backoff_secs_left']:.0f} s"
        why = f"<div class='sdw-why'>{e(str(info['reason']))}{extra}</div>"
    why += "".join(
        f"<div class='sdw-why' style='color:#dc2626'>⚠ {e(str(x))}</div>"
        for x in info.get("errors") or ()
    )
    slot = info.get("slot")
    title = f"<span class='sdw-slot'>{e(str(slot))}</span> " if slot else ""
    return (
        f"<div class='sdw-card' data-slot='{e(str(slot or ''))}'>{title}<span class='sdw-state'"
        f" style='background:{colour}'>{e(state)}</span><dl class='sdw-grid'>{grid}</dl>"
        f"{why}</div>"
    )


def slot_cards(infos: list[dict[str, Any]], page_host: str | None, chosen: str | None,
               latest: str = "") -> str:  # fmt: skip
    """Every GPU slot's card side by side (they wrap on a phone); the slot the buttons
    act on is outlined."""
    cards = []
    for info in infos:
        card = status_card(info, page_host, latest if info.get("slot") == chosen else "")
        mark = " sdw-chosen" if info.get("slot") == chosen else ""
        cards.append(card.replace("<div class='sdw-card'", f"<div class='sdw-card{mark}'", 1))
    return f"<div class='sdw-slots'>{''.join(cards)}</div>"


def idle_text(idle: Any) -> str | None:
    """The idle policy in words: ``"idle for 12 min; sleeps in 18 min"`` (None: off).

    >>> idle_text({"enabled": True, "idle_s": 720, "next": "sleep", "next_in_s": 1080})
    'idle for 12 min; sleeps in 18 min'
    """
    if not isinstance(idle, dict) or not idle.get("enabled"):
        return None
    text = f"idle for {_minutes(idle.get('idle_s'))}"
    if idle.get("sleeping"):
        return f"asleep; {text}. The next request through the door wakes it"
    left = idle.get("next_in_s")
    if left is None:
        return text
    if idle.get("next") == "sleep":
        return f"{text}; sleeps in {_minutes(left)}"
    if idle.get("grace"):
        return f"{text}; the idle command runs in {_minutes(left)} unless you keep it awake"
    return f"{text}; the idle command runs in {_minutes(left)}"


def _minutes(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "n/a"
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds // 60:.0f} min"


def _cell(value: Any, unit: str = "", digits: int = 0) -> str:
    if value is None or value == "n/a":
        return "n/a"
    if isinstance(value, (int, float)):
        return f"{value:.{digits}f}{unit}"
    return html.escape(str(value))


def gpu_panel(snap: dict[str, Any]) -> str:
    """An nvidia-smi-like table of devices and processes, from a stored snapshot."""
    e = html.escape
    if not snap.get("available"):
        return f"<div class='sdw-card' id='gpu-none'>{e(snap.get('message', ''))}</div>"
    rows = []
    for d in snap["devices"]:
        used, total = d["mem_used_mb"], d["mem_total_mb"]
        rows.append(
            "<tr>"
            f"<td>{d['index']}</td><td>{e(str(d['name']))}</td>"
            f"<td>{_cell(d['util_pct'], ' %')}</td>"
            f"<td>{_cell(used, '')} / {_cell(total, ' MiB')}</td>"
            f"<td>{_cell(d['temp_c'], ' °C')}</td>"
            f"<td>{_cell(d['power_w'], ' W')} / {_cell(d['power_limit_w'], ' W')}</td>"
            f"<td>{_cell(d['fan_pct'], ' %')}</td>"
            f"<td>{_cell(d['sm_clock_mhz'])} / {_cell(d['mem_clock_mhz'], ' MHz')}</td>"
            "</tr>"
        )
    procs = []
    for p in snap["processes"]:
        mark = "<b>framework</b>" if p["in_framework"] is True else ""
        procs.append(
            f"<tr{' class=sdw-ours' if mark else ''}><td>{p['gpu_index']}</td>"
            f"<td>{p['pid']}</td><td>{e(str(p['name']))}</td>"
            f"<td>{_cell(p['used_mb'], ' MiB')}</td><td>{mark}</td></tr>"
        )
    driver = e(str(snap.get("driver", "n/a")))
    return (
        f"<div class='sdw-card' id='gpu-panel-table'><div>Driver {driver} · via"
        f" {e(snap['source'])}</div><table class='sdw-table'><tr><th>GPU</th><th>name</th>"
        "<th>util</th><th>memory</th><th>temp</th><th>power</th><th>fan</th>"
        f"<th>clocks SM / mem</th></tr>{''.join(rows)}</table>"
        "<table class='sdw-table'><tr><th>GPU</th><th>pid</th><th>process</th><th>VRAM</th>"
        f"<th></th></tr>{''.join(procs) or '<tr><td colspan=5>no processes</td></tr>'}"
        "</table></div>"
    )


def unreachable_card(why: str) -> str:
    """The card while the core does not answer: the page stays, and says so."""
    return (
        "<div class='sdw-card'><span class='sdw-state' style='background:#6b7280'>n/a</span>"
        f"<div class='sdw-why'>{html.escape(why)}</div></div>"
    )
