"""The RPC layer: Gradio API endpoints (``gradio_client`` / ``/gradio_api/call/<name>``).

Each endpoint checks its arguments, calls the supervisor and returns plain JSON
data. Anything wrong is a ``gr.Error`` with a sentence a person can act on, raised
before anything changes::

    >>> from gradio_client import Client                           # doctest: +SKIP
    >>> c = Client("http://127.0.0.1:5005/")
    >>> c.predict("comfyui", False, api_name="/switch")["state"]
    'STOPPING'
"""

from __future__ import annotations

import html
import logging
from typing import Any

import gradio as gr

from ..core.errors import BusyRefused, NotInstalled, UnknownFramework, WatchDisabled
from ..runtime.logs import STREAMS, tail_text
from ..runtime.service import Service

log = logging.getLogger(__name__)

MAX_LINES = 10_000
MAX_EVENTS = 1_000
MAX_HISTORY_MINUTES = 7 * 24 * 60


def refuse(message: str) -> gr.Error:
    """The error for bad input: one line in our log, no traceback (an attacker must not
    be able to flood the log), and inert text where Gradio renders it as HTML."""
    message = message if len(message) <= 300 else message[:300] + "…"
    log.warning("API call refused: %s", message)
    return gr.Error(html.escape(message, quote=False), print_exception=False)


def _int(value: Any, name: str, low: int, high: int) -> int:
    # bool is an int to Python, never to a person typing "lines".
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise refuse(f"{name} must be a whole number from {low} to {high}, not {value!r:.40}")
    if isinstance(value, float) and not value.is_integer():
        raise refuse(f"{name} must be a whole number, not {value}")
    number = int(value)
    if not low <= number <= high:
        raise refuse(f"{name} must be from {low} to {high}, not {number}")
    return number


def _name(value: Any, *, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            raise refuse("a framework name is required")
        return None
    if not isinstance(value, str):
        raise refuse(f"framework must be a name (text), not {type(value).__name__}")
    return value


class Rpc:
    """The endpoints, bound to one supervisor; ``requested_by`` goes into the journal."""

    def __init__(self, service: Service, requested_by: str = "api") -> None:
        self.service = service
        self.sup = service.supervisor
        self.by = requested_by

    def _act(self, fn: Any, *args: Any, force: Any = False) -> dict[str, Any]:
        if not isinstance(force, bool):
            raise refuse(f"force must be true or false, not {force!r:.40}")
        try:
            return fn(*args, requested_by=self.by, force=force).to_dict()
        except (
            UnknownFramework,
            NotInstalled,
            BusyRefused,
            WatchDisabled,
            RuntimeError,
            TimeoutError,
        ) as exc:
            raise refuse(str(exc)) from None

    def status(self) -> dict[str, Any]:
        """The status object (same as GET /info)."""
        return self.sup.status().to_dict()

    def frameworks(self) -> list[dict[str, Any]]:
        """Every framework in the settings: name, preset, url, command."""
        out = []
        for name in self.sup.settings.frameworks:
            spec = self.sup.settings.framework(name)
            missing = spec.missing()
            out.append(
                {
                    "name": name,
                    "preset": spec.preset,
                    "url": spec.url,
                    "command": spec.command_line,
                    "installed": missing is None,
                    "missing": missing,
                }
            )
        return out

    # Stop, restart and switch are refused while a generation runs, unless force=True:
    # then the framework's interrupt endpoint is called before it is stopped.

    def start(self, framework: str | None = None, force: bool = False) -> dict[str, Any]:
        """Start a framework (default: the chosen one); switches if another runs."""
        return self._act(self.sup.start, _name(framework, required=False), force=force)

    def stop(self, force: bool = False) -> dict[str, Any]:
        """Stop the framework's whole process tree."""
        return self._act(self.sup.stop, force=force)

    def restart(self, force: bool = False) -> dict[str, Any]:
        """Stop and start the chosen framework again."""
        return self._act(self.sup.restart, force=force)

    def switch(self, framework: str, force: bool = False) -> dict[str, Any]:
        """Stop what runs, wait for its port (and VRAM), start ``framework``."""
        return self._act(self.sup.switch, _name(framework, required=True), force=force)

    def logs(self, stream: str = "stdout", lines: int = 200) -> str:
        """The last ``lines`` lines of the current run's stdout, stderr or both."""
        if stream not in STREAMS:
            raise refuse(f"stream must be one of {', '.join(STREAMS)}, not {stream!r:.40}")
        count = _int(lines, "lines", 1, MAX_LINES)
        return tail_text(self.sup.status().logs, stream, count)

    def events(self, limit: int = 50, framework: str | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` events, newest first; optionally of one framework."""
        count = _int(limit, "limit", 1, MAX_EVENTS)
        name = _name(framework, required=False)
        if name is not None and name not in self.sup.settings.frameworks:
            raise refuse(f"unknown framework {name!r}")
        return self.sup.events.tail(count, framework=name)

    def gpu(self) -> dict[str, Any]:
        """The latest GPU snapshot (devices and processes; "n/a" where not reported)."""
        return self.service.sampler.snapshot_dict()

    def history(self, minutes: int = 60) -> list[dict[str, Any]]:
        """Samples of GPU / CPU / RAM over the last ``minutes``, at most 400 points."""
        return self.service.history.window(_int(minutes, "minutes", 1, MAX_HISTORY_MINUTES))


API_NAMES = (
    "status",
    "frameworks",
    "start",
    "stop",
    "restart",
    "switch",
    "logs",
    "events",
    "gpu",
    "history",
)


def register(rpc: Rpc) -> None:
    """Declare every endpoint inside the current ``gr.Blocks`` context."""
    for name in API_NAMES:
        # Reads may run side by side; state changes are serialized by the supervisor.
        gr.api(getattr(rpc, name), api_name=name, concurrency_limit=None)
