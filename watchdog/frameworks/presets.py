"""What sd-watchdog knows about each framework, and how a settings entry becomes a spec.

A preset fills in everything a user would otherwise have to look up (command, port,
health path, ready line); any field of a settings entry overrides it. The result of
merging is a :class:`FrameworkSpec`, the immutable description the supervisor runs.

>>> from watchdog.settings import FrameworkEntry
>>> spec = resolve_framework("demo", FrameworkEntry(preset="demo", port=7870))
>>> spec.url
'http://127.0.0.1:7870'
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

DEMO_APP = Path(__file__).with_name("demo_app.py")

# Gradio-based UIs print this (two spaces after the colon in A1111/Forge).
_GRADIO_READY = r"Running on local URL:\s+(?P<url>https?://[^\s/]+)"


@dataclass(frozen=True)
class Preset:
    """Defaults for one framework; ``{port}`` and ``{python}`` are filled in at resolve time."""

    command: str
    port: int
    health_path: str
    ready_pattern: str | None
    cwd: str | None = None
    stop_signal: str = "SIGTERM"
    busy_path: str | None = None  # reports whether a generation runs …
    busy_kind: str | None = None  # … read by busy.PARSERS[busy_kind]
    interrupt: tuple[str, str] | None = None  # (method, path) that stops the current job
    # (method, path, JSON body) that empties the framework's own queue: only ever on a
    # person's explicit ``clear_queue``, never as part of a forced stop.
    clear_queue: tuple[str, str, dict[str, Any] | None] | None = None
    # A file the framework writes before exiting to ask for a relaunch (A1111's
    # "Apply and restart UI"): that exit is a request, not a crash.
    restart_file: str | None = None
    # Environment the framework reads its address from (InvokeAI has no flag for it).
    env: Mapping[str, str] = field(default_factory=dict)
    # A variable naming a file path; the framework asks for a relaunch by creating
    # "<path>.reboot" and exiting 0 (ComfyUI-Manager's Restart button).
    session_env: str | None = None


_A1111_BUSY = {
    "busy_path": "/sdapi/v1/progress?skip_current_image=true",
    "busy_kind": "automatic1111",
    "interrupt": ("POST", "/sdapi/v1/interrupt"),
}


# "custom" is also accepted as a preset name: a framework described by its entry alone
# (command, url or port, health_path, ready_pattern…), like an entry without a preset.
CUSTOM = "custom"

# Every preset binds its framework to 127.0.0.1: from outside it is reached only
# through the door, behind the page's login. A1111, Forge, SD.Next and Fooocus bind
# loopback when ``--listen`` is left out (see shared/frameworks.md).

PRESETS: Mapping[str, Preset] = {
    "demo": Preset(
        command="{python} {demo_app} --port {port}",
        port=7860,
        health_path="/internal/ping",
        ready_pattern=_GRADIO_READY,
        **_A1111_BUSY,
    ),
    "automatic1111": Preset(
        # -f: webui.sh refuses to run as root (cloud VMs) without it; harmless otherwise.
        command="./webui.sh -f --port {port} --api",
        port=7860,
        health_path="/internal/ping",
        ready_pattern=_GRADIO_READY,
        cwd="~/stable-diffusion-webui",
        restart_file="tmp/restart",
        **_A1111_BUSY,
    ),
    "forge": Preset(
        command="./webui.sh -f --port {port} --api",
        port=7860,
        health_path="/internal/ping",
        ready_pattern=_GRADIO_READY,
        cwd="~/stable-diffusion-webui-forge",
        restart_file="tmp/restart",
        **_A1111_BUSY,
    ),
    "comfyui": Preset(
        command="{venv}python3 main.py --listen 127.0.0.1 --port {port}",
        port=8188,
        health_path="/system_stats",
        ready_pattern=r"To see the GUI go to:\s+(?P<url>https?://[^\s/]+)",
        cwd="~/ComfyUI",
        stop_signal="SIGINT",  # exits cleanly in seconds; SIGTERM kills it mid-write
        busy_path="/queue",
        busy_kind="comfyui",
        interrupt=("POST", "/interrupt"),
        clear_queue=("POST", "/queue", {"clear": True}),  # the pending ones; not the running
        session_env="__COMFY_CLI_SESSION__",
    ),
    "invokeai": Preset(
        command="{venv}invokeai-web --root .",
        port=9090,
        env={"INVOKEAI_HOST": "127.0.0.1", "INVOKEAI_PORT": "{port}"},
        health_path="/api/v1/app/version",
        ready_pattern=r"Invoke running on\s+(?P<url>https?://[^\s/]+)",
        cwd="~/invokeai",
        busy_path="/api/v1/queue/default/status",
        busy_kind="invokeai",
        # No interrupt: its queue is in its database and resumes at its next start
        # (InvokeAI cancels the job in progress itself then). A forced stop leaves it.
        clear_queue=("PUT", "/api/v1/queue/default/clear", None),
    ),
    "sdnext": Preset(
        command="./webui.sh --port {port} --quick",
        port=7860,
        health_path="/sdapi/v1/version",
        ready_pattern=r"Local URL:\s+(?P<url>https?://[^\s/]+)",
        cwd="~/automatic",
        busy_path="/sdapi/v1/status",
        busy_kind="sdnext",
        interrupt=("POST", "/sdapi/v1/interrupt"),
    ),
    "fooocus": Preset(
        command="{venv}python3 launch.py --port {port}",
        port=7865,
        health_path="/",
        ready_pattern=r"App started successful\. Use the app with\s+(?P<url>https?://[^\s/]+)",
        cwd="~/Fooocus",
    ),
}


class FrameworkEntryLike(Protocol):
    """The fields of a settings entry that resolution reads (see ``settings.FrameworkEntry``)."""

    preset: str | None
    busy_path: str | None
    command: str | list[str] | None
    args: str | list[str] | None
    cwd: str | None
    env: dict[str, str]
    url: str | None
    port: int | None
    health_path: str | None
    ready_pattern: str | None
    stop_signal: str | None


@dataclass(frozen=True)
class FrameworkSpec:
    """Everything needed to run, probe and stop one framework. Immutable."""

    name: str
    preset: str | None
    command: tuple[str, ...]
    cwd: Path | None
    env: Mapping[str, str] = field(repr=False)
    url: str | None
    health_path: str
    ready_pattern: re.Pattern[str] | None
    stop_signal: signal.Signals
    busy_path: str | None = None
    busy_kind: str | None = None
    interrupt: tuple[str, str] | None = None
    clear_queue: tuple[str, str, dict[str, Any] | None] | None = None
    restart_file: Path | None = None
    session_env: str | None = None  # see Preset.session_env

    @property
    def health_url(self) -> str | None:
        return join_url(self.url, self.health_path) if self.url else None

    @cached_property  # in every status snapshot, and the command never changes
    def command_line(self) -> str:
        """The command as a user would type it (env values are never part of it)."""
        return shlex.join(self.command)

    def missing(self) -> str | None:
        """Why this framework cannot start here ("not installed"), or None if it can."""
        if self.cwd is not None and not self.cwd.is_dir():
            return (
                f"not installed: {self.cwd} does not exist (installed elsewhere? set"
                f' "frameworks": {{"{self.name}": {{"cwd": "…"}}}} in settings.local.json)'
            )
        exe = self.command[0] if self.command else ""
        if "/" in exe:
            path = Path(exe) if Path(exe).is_absolute() else (self.cwd or Path.cwd()) / exe
            if not path.is_file():
                return f"not installed: {path} does not exist"
            if not os.access(path, os.X_OK):
                return f"not executable: {path}"
        elif not shutil.which(exe, path=self.env.get("PATH")):
            return f"not installed: {exe} is not on PATH"
        return None


def join_url(base: str, path: str) -> str:
    return base.rstrip("/") + "/" + path.lstrip("/")


def parse_signal(name: str) -> signal.Signals:
    """``"TERM"``, ``"SIGTERM"`` or ``"15"`` → ``signal.SIGTERM``; ValueError otherwise."""
    text = name.strip().upper()
    if text.isdigit():
        return signal.Signals(int(text))
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return signal.Signals[text]
    except KeyError:
        raise ValueError(f"unknown signal {name!r}") from None


def _venv_bin(cwd: Path | None) -> str:
    """``venv/bin/`` or ``.venv/bin/`` of the framework's folder if it has one, else ""."""
    for name in ("venv", ".venv"):
        if cwd is not None and (cwd / name / "bin").is_dir():
            return f"{name}/bin/"
    return ""


def _fill(part: str, values: Mapping[str, str]) -> str:
    # Plain replacement, not str.format: other braces (JSON in an argument) stay as typed.
    for key, value in values.items():
        part = part.replace(key, value)
    return part


def _split(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


def resolve_framework(
    name: str, entry: FrameworkEntryLike, base_dir: Path | None = None
) -> FrameworkSpec:
    """Merge a settings entry over its preset. Paths resolve against ``base_dir``.

    Settings validation has already checked that the preset exists and that an entry
    without a preset has a command and a URL or port.
    """
    preset = PRESETS.get(entry.preset) if entry.preset else None  # "custom": no defaults
    port = entry.port if entry.port is not None else (preset.port if preset else None)
    template = entry.command if entry.command is not None else (preset.command if preset else "")
    cwd_text = entry.cwd if entry.cwd is not None else (preset.cwd if preset else None)
    cwd = None
    if cwd_text:
        cwd = Path(cwd_text).expanduser()
        if not cwd.is_absolute():
            cwd = (base_dir or Path.cwd()) / cwd
    values = {
        "{python}": sys.executable,
        "{demo_app}": str(DEMO_APP),
        "{port}": "" if port is None else str(port),
        "{venv}": _venv_bin(cwd),
    }
    command = [_fill(part, values) for part in _split(template)]
    # The preset's environment only when its command is used: a user's own command
    # (and the address it chose) stays theirs.
    env = (
        {k: _fill(v, values) for k, v in preset.env.items()}
        if preset and entry.command is None
        else {}
    )
    env.update(entry.env)
    if entry.args:
        command += _split(entry.args)

    url = entry.url
    if url is None and port:
        url = f"http://127.0.0.1:{port}"
    health_path = entry.health_path or (preset.health_path if preset else "/")
    pattern = (
        entry.ready_pattern
        if entry.ready_pattern is not None
        else (preset.ready_pattern if preset else None)
    )
    stop = entry.stop_signal or (preset.stop_signal if preset else "SIGTERM")
    busy_path = (
        entry.busy_path if entry.busy_path is not None else (preset.busy_path if preset else None)
    )
    restart = preset.restart_file if preset and preset.restart_file else None
    return FrameworkSpec(
        name=name,
        preset=entry.preset,
        command=tuple(command),
        cwd=cwd,
        env=env,
        url=url.rstrip("/") if url else None,
        health_path=health_path,
        ready_pattern=re.compile(pattern) if pattern else None,
        stop_signal=parse_signal(stop),
        busy_path=busy_path or None,  # "" in the settings turns it off
        busy_kind=preset.busy_kind if preset and busy_path else None,
        interrupt=preset.interrupt if preset else None,
        clear_queue=preset.clear_queue if preset else None,
        restart_file=(cwd or Path.cwd()) / restart if restart else None,
        session_env=preset.session_env if preset else None,
    )
