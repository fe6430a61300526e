"""The control page: a Gradio Blocks app that reads and acts only through the core's API.

A ``gr.Timer`` refreshes it about once a second. A refresh reads the published
status, the tail of the current log and the tail of the journal, never a whole
file, so many open pages cost little. Buttons submit a command and show the new
status at once; the page never waits for a framework to stop or start.
"""

from __future__ import annotations

import time
from typing import Any

import gradio as gr
import pandas as pd

from ..control.api import MAX_LINES, Refused
from ..core.states import State
from .actions import after_answer, progress, said_now
from .cards import (
    EVENT_ROWS,
    account_line,
    gpu_panel,
    slot_cards,
    status_card,
    unreachable_card,
)
from .events_view import ALL, PROBLEMS, SEVERITY, render_events
from .link import CoreLink
from .rpc import Rpc, register

WINDOWS = {"15 min": 15, "1 h": 60, "24 h": 24 * 60, "7 d": 7 * 24 * 60}
# (history column, what a person reads, unit); the first two exist only with a GPU.
PLOTS = (
    ("gpu_util_pct", "GPU utilisation", "%"),
    ("framework_vram_mb", "Framework VRAM", "MB"),
    ("framework_rss_mb", "Framework RAM (RSS)", "MB"),
    ("framework_cpu_pct", "Framework CPU", "% of one core"),
)
GPU_PLOTS = 2
PLOT_REFRESH_S = 10
# The browser shows epoch times in its own zone (Vega-Lite's default): say so.
TIME_AXIS = "your local time"
NO_GPU = (
    "**No NVIDIA GPU here**: GPU and VRAM history are not recorded on this machine."
    " RAM and CPU history below."
)
EVENT_KINDS = [
    ALL,
    PROBLEMS,
    *sorted({k for kinds in SEVERITY.values() for k in kinds} | {"spawn", "stop", "switch"}),
]


def history_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """History rows (``ts`` in ISO 8601 UTC) with human column names and a time axis."""
    frame = pd.DataFrame(rows, columns=["ts", *(c for c, _, _ in PLOTS)])
    frame = frame.rename(columns={c: label for c, label, _ in PLOTS})
    frame["time"] = pd.to_datetime(frame["ts"], utc=True).dt.tz_localize(None)
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


def cards_of(
    core: CoreLink, slots: list[str], chosen: str | None, host: str | None
) -> tuple[str, dict[str, Any]]:
    """The card (or every slot's, side by side) and the status of the chosen slot;
    while it starts, its card shows its newest log line."""
    infos = [core.status(slot) for slot in slots] or [core.status()]
    mine = next((i for i in infos if i.get("slot") == chosen), infos[0])
    starting = mine.get("state") == State.STARTING.value
    latest = core.latest(mine.get("slot")) if starting else ""
    if not slots:
        return status_card(mine, host, latest), mine
    return slot_cards(infos, host, mine.get("slot"), latest), mine


def build_page(
    core: CoreLink, refresh_s: float = 1.0, tls_fingerprint: str | None = None
) -> gr.Blocks:
    """The Blocks app: the page for people and the RPC endpoints for scripts."""
    ui = Rpc(core, requested_by="ui")
    names = framework_choices(core)
    first = core.status()
    slots: list[str] = list(first.get("slots") or [])  # GPU slots; [] without
    private = {"api_visibility": "private"}

    with gr.Blocks(title="sd-watchdog", analytics_enabled=False) as page:
        with gr.Row():
            gr.Markdown("## sd-watchdog")
            account = gr.HTML("", elem_id="account")
        with gr.Row():
            with gr.Column(scale=3):
                card = gr.HTML(cards_of(core, slots, first.get("slot"), None)[0],
                               elem_id="status-card")  # fmt: skip
            with gr.Column(scale=2):
                slot_choice = gr.Radio(slots, value=first.get("slot"), label="GPU slot",
                                       elem_id="slot-choice", visible=bool(slots))  # fmt: skip
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
                idle_on = bool((first.get("idle") or {}).get("enabled"))
                keep_btn = gr.Button("Keep awake", elem_id="keep-awake", visible=idle_on)
                force = gr.Checkbox(
                    False, label="Force: interrupt a running generation", elem_id="force"
                )
                requeue = gr.Checkbox(
                    False, label="Stop / Restart: queue ComfyUI's prompts again afterwards",
                    elem_id="requeue",
                )  # fmt: skip
                clear = gr.Checkbox(
                    False, label="Stop / Restart: clear its queue (InvokeAI's resumes otherwise)",
                    elem_id="clear-queue",
                )  # fmt: skip
                said = gr.Markdown("", elem_id="action-message")
                pending_state = gr.State(None)
        with gr.Tab("Log"):
            with gr.Row():
                stream = gr.Radio(["stdout", "stderr", "both"], value="both", label="Stream")
                lines = gr.Slider(10, 2000, value=200, step=10, label="Lines")
            # Its own line, not a column: at phone width a third column was cut off.
            gr.HTML(
                "Download the current run's full log: "
                '<a href="download-current-log?stream=stdout" download>stdout</a> · '
                '<a href="download-current-log?stream=stderr" download>stderr</a>',
                elem_id="log-download",
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
            with gr.Row():
                ev_framework = gr.Dropdown(
                    [ALL, *(value for _, value in names)],
                    value=ALL,
                    label="Framework",
                    elem_id="events-framework",
                )
                ev_kind = gr.Dropdown(EVENT_KINDS, value=ALL, label="Kind", elem_id="events-kind")
            events_html = gr.HTML("", elem_id="events")
        with gr.Tab("GPU"):
            gpu_html = gr.HTML(gpu_panel(core.gpu()), elem_id="gpu-panel")
            window = gr.Radio(list(WINDOWS), value="1 h", label="History window")
            no_gpu = gr.Markdown(NO_GPU, visible=False, elem_id="no-gpu")
            plots = []
            for pair in (PLOTS[:2], PLOTS[2:]):
                with gr.Row():
                    plots += [
                        gr.LinePlot(x="time", y=label, title=f"{label} ({unit})", height=220,
                                    x_title=TIME_AXIS, y_title=unit, elem_id=f"plot-{column}")
                        for column, label, unit in pair
                    ]  # fmt: skip

        def refresh(
            stream_name: str,
            count: float,
            pending: dict[str, Any] | None,
            framework: str,
            kind: str,
            slot: str | None,
            request: gr.Request,
        ) -> tuple[Any, ...]:
            n = max(1, min(int(count or 200), MAX_LINES))
            slot = slot or None
            try:
                card_html, info = cards_of(core, slots, slot, _host(request))
                text = core.logs(stream_name or "both", n, slot)
                events = render_events(core.events(EVENT_ROWS), framework, kind)
                gpu = gpu_panel(core.gpu())
            except Refused as exc:  # the page stays up and says why; the rest keeps its value
                return unreachable_card(str(exc)), *[gr.skip()] * 5
            if not pending:
                # Nothing to follow: leave both alone, so a refresh that crosses a click
                # never blanks the message and the pending action the click just set.
                return card_html, text, events, gpu, gr.skip(), gr.skip()
            said, pending = progress(pending, info, time.time())
            return card_html, text, events, gpu, said, pending

        def refresh_plots(choice_label: str) -> list[Any]:
            try:
                has_gpu = bool(core.gpu().get("available"))
                frame = history_frame(core.history(WINDOWS.get(choice_label, 60)))
            except Refused:
                return [gr.skip()] * (len(plots) + 1)
            gpu_plots = [gr.update(value=frame, visible=has_gpu)] * GPU_PLOTS
            others = [frame] * (len(plots) - GPU_PLOTS)
            return [gr.update(visible=not has_gpu), *gpu_plots, *others]

        def act(kind: str) -> Any:
            def handler(
                name: str | None,
                forced: bool,
                slot: str | None,
                again: bool,
                wipe: bool,
                request: gr.Request,
            ) -> tuple[str, str, dict[str, Any]]:
                now = time.time()
                slot = slot or None
                call = {"switch": lambda: ui.switch(name or "", bool(forced), slot),
                        "start": lambda: ui.start(name or None, bool(forced), slot),
                        "stop": lambda: ui.stop(bool(forced), slot, bool(again), bool(wipe)),
                        "restart": lambda: ui.restart(bool(forced), slot, bool(again),
                                                      bool(wipe)),
                        "keep_awake": lambda: ui.keep_awake(slot)}[kind]  # fmt: skip
                try:
                    before = core.status(slot)
                    pending = after_answer(kind, name, before, call(), now)
                except gr.Error as exc:  # refused: said, and the card shows why not
                    pending = said_now(f"⚠ {exc.message}", now)
                except Refused as exc:
                    return unreachable_card(str(exc)), f"⚠ {exc}", said_now(f"⚠ {exc}", now)
                try:
                    card_html, info = cards_of(core, slots, slot, _host(request))
                except Refused as exc:
                    return unreachable_card(str(exc)), pending["said"], pending
                said, pending = progress(pending, info, now)
                return card_html, said, pending

            return handler

        refresh_args: dict[str, Any] = {
            "fn": refresh,
            "inputs": [stream, lines, pending_state, ev_framework, ev_kind, slot_choice],
            "outputs": [card, log_box, events_html, gpu_html, said, pending_state],
            "show_progress": "hidden",
            "concurrency_limit": None,
            **private,
        }
        timer = gr.Timer(refresh_s)
        timer.tick(**refresh_args)
        page.load(**refresh_args)
        for control in (stream, ev_framework, ev_kind, slot_choice):
            control.change(**refresh_args)
        plot_args: dict[str, Any] = {
            "fn": refresh_plots,
            "inputs": [window],
            "outputs": [no_gpu, *plots],
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

        def slot_framework(slot: str | None) -> Any:
            # The dropdown follows the chosen slot: Switch starts from what it runs.
            try:
                return gr.update(value=core.status(slot or None)["framework"])
            except Refused:
                return gr.skip()

        slot_choice.change(slot_framework, slot_choice, choice, show_progress="hidden", **private)

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
        buttons = [switch_btn, start_btn, stop_btn, restart_btn, keep_btn]

        def hold() -> list[Any]:  # a second click while the first is sent goes nowhere
            return [gr.update(interactive=False)] * len(buttons)

        def release() -> list[Any]:
            return [gr.update(interactive=True)] * len(buttons)

        kinds = ("switch", "start", "stop", "restart", "keep_awake")
        for button, kind in zip(buttons, kinds, strict=True):
            button.click(
                hold, None, buttons, show_progress="hidden", concurrency_limit=None, **private
            ).then(
                act(kind),
                inputs=[choice, force, slot_choice, requeue, clear],
                outputs=[card, said, pending_state],
                concurrency_limit=None,
                **private,
            ).then(release, None, buttons, show_progress="hidden", **private)
        register(Rpc(core, requested_by="api"))
    return page
