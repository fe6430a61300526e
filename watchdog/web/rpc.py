"""The RPC layer: Gradio API endpoints (``gradio_client`` / ``/gradio_api/call/<name>``).

Each endpoint is a method of the core's one JSON API (``control.api.ControlApi``):
same arguments, same checks, plain JSON data. Anything wrong is a ``gr.Error`` with a
sentence a person can act on, raised before anything changes::

    >>> from gradio_client import Client                           # doctest: +SKIP
    >>> c = Client("http://127.0.0.1:5005/")
    >>> c.predict("comfyui", False, api_name="/switch")["state"]
    'STOPPING'
"""

# No "from __future__ import annotations": gr.api reads the return hints as real types
# (as strings they show as "Any" in view_api).

import html
import logging
from typing import Any

import gradio as gr

from ..control.api import Refused
from .link import CoreLink

log = logging.getLogger(__name__)

__all__ = ["API_NAMES", "Rpc", "refuse", "register"]


def refuse(message: str) -> gr.Error:
    """The error for bad input: one line in our log, no traceback (an attacker must not
    be able to flood the log), and inert text where Gradio renders it as HTML."""
    message = message if len(message) <= 300 else message[:300] + "…"
    log.warning("API call refused: %s", message)
    return gr.Error(html.escape(message, quote=False), print_exception=False)


class Rpc:
    """The Gradio doors of the core's API: same names, same checks; a refusal is
    a ``gr.Error``."""

    def __init__(self, core: CoreLink, requested_by: str = "api") -> None:
        self.api = core.as_requester(requested_by)

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.api, name)(*args, **kwargs)
        except Refused as exc:
            raise refuse(str(exc)) from None

    # ``slot``: which GPU slot (empty: the first; without slots there is one).

    def status(self, slot: str | None = None) -> dict[str, Any]:
        """The status object (same as GET /info)."""
        return self._call("status", slot or None)

    def frameworks(self) -> list[dict[str, Any]]:
        """Every framework in the settings: name, preset, url, command."""
        return self._call("frameworks")

    def start(
        self, framework: str | None = None, force: bool = False, slot: str | None = None
    ) -> dict[str, Any]:
        """Start a framework (default: the chosen one); switches if another runs."""
        return self._call("start", framework, force, slot or None)

    def stop(
        self,
        force: bool = False,
        slot: str | None = None,
        requeue: bool = False,
        clear_queue: bool = False,
    ) -> dict[str, Any]:
        """Stop the framework's whole process tree (``requeue``: ComfyUI's queue goes
        back once it runs again; ``clear_queue``: its own queue is emptied first)."""
        return self._call("stop", force, slot or None, requeue, clear_queue)

    def restart(
        self,
        force: bool = False,
        slot: str | None = None,
        requeue: bool = False,
        clear_queue: bool = False,
    ) -> dict[str, Any]:
        """Stop and start the chosen framework again (``requeue``, ``clear_queue``: as
        for ``stop``)."""
        return self._call("restart", force, slot or None, requeue, clear_queue)

    def switch(
        self, framework: str | None = None, force: bool = False, slot: str | None = None
    ) -> dict[str, Any]:
        """Stop what runs, wait for its port (and VRAM), start ``framework``."""
        return self._call("switch", framework, force, slot or None)

    def keep_awake(self, slot: str | None = None) -> dict[str, Any]:
        """Restart the idle clock; an idle command waiting out its grace will not run."""
        return self._call("keep_awake", False, slot or None)

    def logs(self, stream: str = "both", lines: int = 200, slot: str | None = None) -> str:
        """The last ``lines`` lines of the current run's stdout, stderr or both."""
        return self._call("logs", stream, lines, slot or None)

    def events(
        self, limit: int = 50, framework: str | None = None, slot: str | None = None
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` events, newest first; optionally of one framework or
        slot."""
        return self._call("events", limit, framework, slot or None)

    def gpu(self) -> dict[str, Any]:
        """The latest GPU snapshot (devices and processes; "n/a" where not reported)."""
        return self._call("gpu")

    def history(self, minutes: int = 60) -> list[dict[str, Any]]:
        """Samples of GPU / CPU / RAM over the last ``minutes``, at most 400 points."""
        return self._call("history", minutes)


API_NAMES = (
    "status",
    "frameworks",
    "start",
    "stop",
    "restart",
    "switch",
    "keep_awake",
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
