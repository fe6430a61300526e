"""The front's one way to the core: its JSON API over the control socket.

Every page refresh, Gradio endpoint, REST route and plain route calls a method here;
nothing in the front opens the core's files or holds its objects. The methods are
those of :class:`~watchdog.control.api.ControlApi`, with the same arguments and the
same :class:`Refused` for anything wrong, so a door does not care which side of the
socket it runs on::

    >>> core = CoreLink(Path("logs/control.sock"))                  # doctest: +SKIP
    >>> core.as_requester("http").switch("comfyui")["state"]
    'STOPPING'

A core that does not answer is a ``Refused`` with status 503, never a hang of the
page: each call has its own connection and timeout. The front keeps at most
``FRONT_IN_FLIGHT`` calls open at once, so the socket always has room for the CLI.
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path
from typing import Any

from ..control.api import REQUESTERS, Refused
from ..control.client import ApiError, ControlClient, NoCore

log = logging.getLogger(__name__)

FRONT_IN_FLIGHT = 24
WAIT_FOR_SLOT_S = 10.0
READ_TIMEOUT_S = 15.0
ACTION_TIMEOUT_S = 40.0  # a switch waits for the command's reply (30 s at most)
JOURNAL_BACKLOG = 1000
NO_ANSWER = "the watchdog's core does not answer; try again in a moment"


class CoreLink:
    """The core's API for the front; ``requested_by`` goes into the journal."""

    def __init__(
        self, path: Path, requested_by: str = "api", *, _slots: threading.Semaphore | None = None
    ) -> None:
        self.path = path
        self.by = requested_by
        self._slots = _slots or threading.BoundedSemaphore(FRONT_IN_FLIGHT)
        self._reads = ControlClient(path, timeout=READ_TIMEOUT_S)
        self._actions = ControlClient(path, timeout=ACTION_TIMEOUT_S)

    def as_requester(self, requested_by: str) -> CoreLink:
        if requested_by not in REQUESTERS:
            raise Refused(f"requested_by must be one of {', '.join(REQUESTERS)}")
        return CoreLink(self.path, requested_by, _slots=self._slots)

    def _call(self, method: str, route: str, body: dict[str, Any] | None = None, **q: Any) -> Any:
        if not self._slots.acquire(timeout=WAIT_FOR_SLOT_S):
            raise Refused("the watchdog is busy with other requests; try again", 503)
        try:
            client = self._actions if method == "POST" else self._reads
            return client.call(method, route, body, **q)
        except ApiError as exc:
            raise Refused(str(exc), exc.status) from None
        except (NoCore, OSError) as exc:
            log.warning("the core does not answer: %s", exc)
            raise Refused(NO_ANSWER, 503) from None
        finally:
            self._slots.release()

    def _act(self, route: str, **body: Any) -> dict[str, Any]:
        return self._call("POST", route, {**body, "requested_by": self.by})

    # ``slot``: which GPU slot (None: the first; without slots there is one).

    def status(self, slot: str | None = None) -> dict[str, Any]:
        """The status object (same as GET /info)."""
        return self._call("GET", "/status", **_slot(slot))

    def frameworks(self) -> list[dict[str, Any]]:
        """Every framework in the settings: name, preset, url, command."""
        return self._call("GET", "/frameworks")

    def start(
        self, framework: str | None = None, force: bool = False, slot: str | None = None
    ) -> dict[str, Any]:
        """Start a framework (default: the chosen one); switches if another runs."""
        return self._act("/start", framework=framework, force=force, **_slot(slot))

    # ``requeue``, ``clear_queue``: see ``ControlApi.stop``.

    def stop(
        self,
        force: bool = False,
        slot: str | None = None,
        requeue: bool = False,
        clear_queue: bool = False,
    ) -> dict[str, Any]:
        """Stop the framework's whole process tree."""
        queue = {"requeue": requeue, "clear_queue": clear_queue}
        return self._act("/stop", force=force, **queue, **_slot(slot))

    def restart(
        self,
        force: bool = False,
        slot: str | None = None,
        requeue: bool = False,
        clear_queue: bool = False,
    ) -> dict[str, Any]:
        """Stop and start the chosen framework again."""
        queue = {"requeue": requeue, "clear_queue": clear_queue}
        return self._act("/restart", force=force, **queue, **_slot(slot))

    def switch(
        self, framework: str | None, force: bool = False, slot: str | None = None
    ) -> dict[str, Any]:
        """Stop what runs, wait for its port (and VRAM), start ``framework``."""
        return self._act("/switch", framework=framework, force=force, **_slot(slot))

    def keep_awake(self, force: bool = False, slot: str | None = None) -> dict[str, Any]:
        """Restart the idle clock; an idle command waiting out its grace will not run."""
        return self._act("/keep-awake", force=force, **_slot(slot))

    def activity(self, slot: str | None = None) -> dict[str, Any]:
        """The framework was used through the door (wakes it if it sleeps)."""
        return self._call("POST", "/activity", {"source": "door", **_slot(slot)})

    def logs(self, stream: str = "both", lines: int = 200, slot: str | None = None) -> str:
        """The last ``lines`` lines of the current run's stdout, stderr or both."""
        return self._call("GET", "/logs", stream=stream, lines=lines, **_slot(slot))

    def follow(
        self, stream: str = "stdout", offset: int = -1, run_id: str = "", slot: str | None = None
    ) -> dict[str, Any]:
        """The current run's ``stream`` from byte ``offset`` on (see ControlApi.follow)."""
        return self._call("GET", "/logs/follow", stream=stream, offset=offset, run_id=run_id,
                          **_slot(slot))  # fmt: skip

    def latest(self, slot: str | None = None) -> str:
        """The newest non-empty line of the current run."""
        return str(self._call("GET", "/logs/latest", **_slot(slot)).get("line", ""))

    def events(
        self, limit: int = 50, framework: str | None = None, slot: str | None = None
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` events, newest first; optionally of one framework."""
        return self._call("GET", "/events", limit=limit, framework=framework, **_slot(slot))

    def gpu(self) -> dict[str, Any]:
        """The latest GPU snapshot (devices and processes; "n/a" where not reported)."""
        return self._call("GET", "/gpu")

    def history(self, minutes: int = 60) -> list[dict[str, Any]]:
        """Samples of GPU / CPU / RAM over the last ``minutes``, at most 400 points."""
        return self._call("GET", "/history", minutes=minutes)

    def metrics(self) -> dict[str, Any]:
        """Status, counters and stored samples for ``/metrics`` (see ControlApi.metrics)."""
        return self._call("GET", "/metrics")


class SlotLink:
    """The core as one slot's door sees it: that slot's status and activity."""

    def __init__(self, core: CoreLink, slot: str | None) -> None:
        self.core = core
        self.slot = slot

    def status(self) -> dict[str, Any]:
        return self.core.status(self.slot)

    def activity(self) -> dict[str, Any]:
        return self.core.activity(self.slot)


def _slot(slot: str | None) -> dict[str, str]:
    """Only a named slot travels: a call without one is what it always was."""
    return {"slot": slot} if slot else {}


class JournalRelay:
    """The front's events (``auth_failed``) on their way to the core's journal.

    ``write`` never blocks the request that refused someone: the event waits in a
    bounded queue for a thread of its own. A flood of refusals beyond the queue is
    dropped and counted, never allowed to slow the page or the core.
    """

    def __init__(self, core: CoreLink) -> None:
        self.core = core
        self.dropped = 0
        self._queue: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue(JOURNAL_BACKLOG)
        self._thread = threading.Thread(target=self._loop, name="journal-relay", daemon=True)
        self._thread.start()

    def write(self, event: str, **fields: Any) -> None:
        try:
            self._queue.put_nowait((event, {k: v for k, v in fields.items() if v is not None}))
        except queue.Full:
            self.dropped += 1

    def _loop(self) -> None:
        while True:
            event, fields = self._queue.get()
            try:
                self.core._call("POST", "/journal", {"event": event, "fields": fields})
            except Refused as exc:
                log.warning("could not journal %s: %s", event, exc)
            finally:
                self._queue.task_done()
