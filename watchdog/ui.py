"""The control page: a Gradio Blocks app that only reads snapshots and calls the supervisor.

A ``gr.Timer`` refreshes it about once a second. A refresh reads the published
status, the tail of the current log and the tail of the journal, never a whole
file, so many open pages cost little. Buttons submit a command and show the new
status at once; the page never waits for a framework to stop or start.
"""

from __future__ import annotations

import html
import time
from typing import Any
from urllib.parse import urlsplit

import gradio as gr

from .logs import latest_line, tail_text
from .rpc import MAX_LINES, Rpc, register
from .service import Service
from .supervisor import State, Status

STATE_COLOURS = {
    State.RUNNING: "#16a34a",
    State.STARTING: "#2563eb",
    State.UNHEALTHY: "#d97706",
    State.BACKOFF: "#d97706",
    State.STOPPING: "#6b7280",
    State.STOPPED: "#6b7280",
    State.FATAL: "#dc2626",
}
EVENT_COLUMNS = ["time (UTC)", "event", "framework", "pid", "details"]
EVENT_ROWS = 50
_DETAIL_KEYS = (
    "reason",
    "via",
    "url",
    "requested_by",
    "exit_code",
    "signal",
    "delay_s",
    "previous",
    "detail",
    "client",
)

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
"""


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
    if parts.hostname in ("127.0.0.1", "localhost", "0.0.0.0", "::", "::1") and page_host:
        host = urlsplit(f"//{page_host}").hostname or parts.hostname
        if ":" in host:
            host = f"[{host}]"
        return f"{parts.scheme}://{host}:{parts.port}" if parts.port else f"{parts.scheme}://{host}"
    return url


def status_card(status: Status, page_host: str | None = None) -> str:
    """The status card as HTML; every value from outside is escaped."""
    e = html.escape
    info = status.to_dict()
    colour = STATE_COLOURS.get(status.state, "#6b7280")
    link = public_url(status.url, page_host)
    chosen = f"<span class='sdw-framework'>{e(status.framework)}</span>"
    if status.run_framework and status.run_framework != status.framework:
        chosen += f" (still {e(status.run_framework)}: {status.state.value.lower()})"
    rows: list[tuple[str, str]] = [
        ("framework", chosen),
        ("pid", f"<span class='sdw-pid'>{status.pid}</span>" if status.pid else "n/a"),
        ("uptime", _duration(info["spawned_secs_ago"]) if status.is_running else "n/a"),
        ("restarts", str(status.restarts)),
    ]
    if link:
        rows.append(
            (
                "open",
                f'<a href="{e(link)}" target="_blank" rel="noopener">{e(link)}</a>'
                if status.ready
                else e(link) + " (not ready yet)",
            )
        )
    if status.last_exit:
        rows.append(("last exit", f"{e(status.last_exit.reason)} at {e(status.last_exit.time)}"))
    grid = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    why = ""
    if status.state is State.STARTING and status.spawned_at:
        elapsed = time.time() - status.spawned_at
        pct = min(100.0, 100 * elapsed / max(status.startup_timeout_s, 1e-6))
        line = latest_line(status.logs)
        why = (
            f"<div class='sdw-why'>Starting: {_duration(elapsed)} of"
            f" {_duration(status.startup_timeout_s)} allowed"
            f"<div class='sdw-bar'><div style='width:{pct:.0f}%'></div></div>"
            f"<pre>{e(line) or 'no output yet'}</pre></div>"
        )
    elif status.state is State.FATAL:
        stderr = "\n".join(status.last_stderr) or "(no stderr output)"
        why = (
            f"<div class='sdw-why'><b>Gave up:</b> {e(status.reason or '')}"
            f"<pre>{e(stderr)}</pre>Press <b>Start</b> to try again.</div>"
        )
    elif status.reason:
        extra = ""
        if info.get("backoff_secs_left") is not None:
            extra = f" — restarting in {info['backoff_secs_left']:.0f} s"
        why = f"<div class='sdw-why'>{e(status.reason)}{extra}</div>"
    if status.errors:
        why += "".join(
            f"<div class='sdw-why' style='color:#dc2626'>⚠ {e(x)}</div>" for x in status.errors
        )
    return (
        f"<div class='sdw-card'><span class='sdw-state' style='background:{colour}'>"
        f"{status.state.value}</span><dl class='sdw-grid'>{grid}</dl>{why}</div>"
    )


def event_rows(events: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for ev in events:
        details = "; ".join(f"{k}={ev[k]}" for k in _DETAIL_KEYS if k in ev)
        ts = str(ev.get("ts", ""))
        rows.append(
            [
                ts[:19].replace("T", " "),
                str(ev.get("event", "")),
                str(ev.get("framework", "")),
                str(ev.get("pid", "")),
                details[:300],
            ]
        )
    return rows


def _host(request: gr.Request | None) -> str | None:
    if request is None:
        return None
    try:
        return request.headers.get("host")
    except Exception:
        return None


def build_page(service: Service, refresh_s: float = 1.0) -> gr.Blocks:
    """The Blocks app: the page for people and the RPC endpoints for scripts."""
    supervisor = service.supervisor
    ui = Rpc(service, requested_by="ui")
    names = list(supervisor.settings.frameworks)
    private = {"api_visibility": "private"}

    with gr.Blocks(title="sd-watchdog", analytics_enabled=False) as page:
        gr.Markdown("## sd-watchdog")
        with gr.Row():
            with gr.Column(scale=3):
                card = gr.HTML(status_card(supervisor.status()), elem_id="status-card")
            with gr.Column(scale=2):
                choice = gr.Dropdown(
                    choices=names,
                    value=supervisor.status().framework,
                    label="Framework",
                    elem_id="framework-choice",
                )
                with gr.Row():
                    switch_btn = gr.Button("Switch", variant="primary", elem_id="switch")
                    start_btn = gr.Button("Start", elem_id="start")
                with gr.Row():
                    stop_btn = gr.Button("Stop", variant="stop", elem_id="stop")
                    restart_btn = gr.Button("Restart", elem_id="restart")
                said = gr.Markdown("", elem_id="action-message")
        with gr.Tab("Log"):
            with gr.Row():
                stream = gr.Radio(["stdout", "stderr", "both"], value="both", label="Stream")
                lines = gr.Slider(10, 2000, value=200, step=10, label="Lines")
                gr.HTML(
                    "Download the current run's full log: "
                    '<a href="download-current-log?stream=stdout" download>stdout</a> · '
                    '<a href="download-current-log?stream=stderr" download>stderr</a>'
                )
            log_box = gr.Textbox(
                label="Log (ANSI stripped, progress bars collapsed)",
                lines=20,
                max_lines=30,
                autoscroll=True,
                interactive=False,
                elem_id="log-tail",
            )
        with gr.Tab("Events"):
            events_table = gr.Dataframe(
                headers=EVENT_COLUMNS, interactive=False, wrap=True, elem_id="events"
            )
        with gr.Tab("GPU"):
            gr.Markdown("GPU panel and history plots: not built yet.", elem_id="gpu-panel")

        def refresh(
            stream_name: str, count: float, request: gr.Request
        ) -> tuple[str, str, list[list[str]]]:
            status = supervisor.status()
            n = max(1, min(int(count or 200), MAX_LINES))
            text = tail_text(status.logs, stream_name or "both", n)
            rows = event_rows(supervisor.events.tail(EVENT_ROWS))
            return status_card(status, _host(request)), text, rows

        def act(kind: str) -> Any:
            def handler(name: str | None, request: gr.Request) -> tuple[str, str]:
                try:
                    if kind == "switch":
                        ui.switch(name or "")
                        message = f"Switching to **{name}**…"
                    elif kind == "start":
                        ui.start(name or None)
                        message = f"Starting **{name}**…"
                    elif kind == "stop":
                        ui.stop()
                        message = "Stopping…"
                    else:
                        ui.restart()
                        message = "Restarting…"
                except gr.Error as exc:
                    message = f"⚠ {exc.message}"
                return status_card(supervisor.status(), _host(request)), message

            return handler

        refresh_args: dict[str, Any] = {
            "fn": refresh,
            "inputs": [stream, lines],
            "outputs": [card, log_box, events_table],
            "show_progress": "hidden",
            "concurrency_limit": None,
            **private,
        }
        timer = gr.Timer(refresh_s)
        timer.tick(**refresh_args)
        page.load(**refresh_args)
        stream.change(**refresh_args)
        for button, kind in (
            (switch_btn, "switch"),
            (start_btn, "start"),
            (stop_btn, "stop"),
            (restart_btn, "restart"),
        ):
            button.click(
                act(kind),
                inputs=[choice],
                outputs=[card, said],
                concurrency_limit=None,
                **private,
            )
        register(Rpc(service, requested_by="api"))
    return page
