"""The control page: a Gradio Blocks app that reads and acts only through the core's API.

A ``gr.Timer`` refreshes it about once a second. A refresh reads the published
status, the tail of the current log and the tail of the journal, never a whole
file, so many open pages cost little. Buttons submit a command and show the new
status at once; the page never waits for a framework to stop or start.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd

from ..control.api import MAX_LINES, Refused
from ..core.states import State
from .cards import (
    EVENT_COLUMNS,
    EVENT_ROWS,
    account_line,
    event_rows,
    gpu_panel,
    status_card,
    unreachable_card,
)
from .link import CoreLink
from .rpc import Rpc, register

WINDOWS = {"15 min": 15, "1 h": 60, "24 h": 24 * 60, "7 d": 7 * 24 * 60}
PLOTS = (
    ("gpu_util_pct", "GPU utilisation (%)"),
    ("framework_vram_mb", "Framework VRAM (MB)"),
    ("framework_rss_mb", "Framework RAM, RSS (MB)"),
    ("framework_cpu_pct", "Framework CPU (% of a core)"),
)
PLOT_REFRESH_S = 10


def history_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["ts", *(c for c, _ in PLOTS)])
    frame["time"] = pd.to_datetime(frame["ts"], unit="s")
    return frame


def _host(request: gr.Request | None) -> str | None:
    if request is None:
        return None
    try:
        return request.headers.get("host")
    except Exception:
        return None


def framework_choices(core: CoreLink) -> list[tuple[str, str]]:
    """(label, name) for the dropdown; "not installed" as it is now, not at start."""
    return [
        (f"{f['name']} (not installed)" if f.get("missing") else f["name"], f["name"])
        for f in core.frameworks()
    ]


def _user(request: gr.Request | None) -> str | None:
    try:
        return request.headers.get("x-sdw-user") if request is not None else None
    except Exception:
        return None


def build_page(
    core: CoreLink, refresh_s: float = 1.0, tls_fingerprint: str | None = None
) -> gr.Blocks:
    """The Blocks app: the page for people and the RPC endpoints for scripts."""
    ui = Rpc(core, requested_by="ui")
    names = framework_choices(core)
    first = core.status()
    private = {"api_visibility": "private"}

    with gr.Blocks(title="sd-watchdog", analytics_enabled=False) as page:
        with gr.Row():
            gr.Markdown("## sd-watchdog")
            account = gr.HTML("", elem_id="account")
        with gr.Row():
            with gr.Column(scale=3):
                card = gr.HTML(status_card(first), elem_id="status-card")
            with gr.Column(scale=2):
                choice = gr.Dropdown(
                    choices=names,
                    value=first["framework"],
                    label="Framework",
                    elem_id="framework-choice",
                )
                with gr.Row():
                    switch_btn = gr.Button("Switch", variant="primary", elem_id="switch")
                    start_btn = gr.Button("Start", elem_id="start")
                with gr.Row():
                    stop_btn = gr.Button("Stop", variant="stop", elem_id="stop")
                    restart_btn = gr.Button("Restart", elem_id="restart")
                force = gr.Checkbox(
                    False, label="Force: interrupt a running generation", elem_id="force"
                )
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
            gpu_html = gr.HTML(gpu_panel(core.gpu()), elem_id="gpu-panel")
            window = gr.Radio(list(WINDOWS), value="1 h", label="History window")
            with gr.Row():
                plots = [
                    gr.LinePlot(x="time", y=col, title=title, height=220, x_title="", y_title="")
                    for col, title in PLOTS[:2]
                ]
            with gr.Row():
                plots += [
                    gr.LinePlot(x="time", y=col, title=title, height=220, x_title="", y_title="")
                    for col, title in PLOTS[2:]
                ]

        def refresh(
            stream_name: str, count: float, request: gr.Request
        ) -> tuple[str, str, list[list[str]], str]:
            n = max(1, min(int(count or 200), MAX_LINES))
            try:
                info = core.status()
                latest = core.latest() if info.get("state") == State.STARTING.value else ""
                text = core.logs(stream_name or "both", n)
                rows = event_rows(core.events(EVENT_ROWS))
                gpu = gpu_panel(core.gpu())
            except Refused as exc:  # the page stays up and says why; the rest keeps its value
                return unreachable_card(str(exc)), gr.skip(), gr.skip(), gr.skip()
            return status_card(info, _host(request), latest), text, rows, gpu

        def refresh_plots(choice_label: str) -> list[Any]:
            try:
                frame = history_frame(core.history(WINDOWS.get(choice_label, 60)))
            except Refused:
                return [gr.skip()] * len(plots)
            return [frame] * len(plots)

        def act(kind: str) -> Any:
            def handler(name: str | None, forced: bool, request: gr.Request) -> tuple[str, str]:
                forced = bool(forced)
                try:
                    if kind == "switch":
                        ui.switch(name or "", forced)
                        message = f"Switching to **{name}**…"
                    elif kind == "start":
                        ui.start(name or None, forced)
                        message = f"Starting **{name}**…"
                    elif kind == "stop":
                        ui.stop(forced)
                        message = "Stopping…"
                    else:
                        ui.restart(forced)
                        message = "Restarting…"
                except gr.Error as exc:
                    message = f"⚠ {exc.message}"
                try:
                    return status_card(core.status(), _host(request)), message
                except Refused as exc:
                    return unreachable_card(str(exc)), message

            return handler

        refresh_args: dict[str, Any] = {
            "fn": refresh,
            "inputs": [stream, lines],
            "outputs": [card, log_box, events_table, gpu_html],
            "show_progress": "hidden",
            "concurrency_limit": None,
            **private,
        }
        timer = gr.Timer(refresh_s)
        timer.tick(**refresh_args)
        page.load(**refresh_args)
        stream.change(**refresh_args)
        plot_args: dict[str, Any] = {
            "fn": refresh_plots,
            "inputs": [window],
            "outputs": plots,
            "show_progress": "hidden",
            "concurrency_limit": None,
            **private,
        }

        def signed_in(request: gr.Request) -> str:
            return account_line(_user(request), tls_fingerprint)

        def choices() -> Any:
            # Installed since the page was built? Each page load asks again.
            try:
                return gr.update(choices=framework_choices(core))
            except Refused:
                return gr.skip()

        page.load(choices, inputs=None, outputs=choice, show_progress="hidden", **private)

        page.load(
            signed_in,
            inputs=None,
            outputs=account,
            show_progress="hidden",
            **private,
        )
        gr.Timer(PLOT_REFRESH_S).tick(**plot_args)
        page.load(**plot_args)
        window.change(**plot_args)
        for button, kind in (
            (switch_btn, "switch"),
            (start_btn, "start"),
            (stop_btn, "stop"),
            (restart_btn, "restart"),
        ):
            button.click(
                act(kind),
                inputs=[choice, force],
                outputs=[card, said],
                concurrency_limit=None,
                **private,
            )
        register(Rpc(core, requested_by="api"))
    return page
