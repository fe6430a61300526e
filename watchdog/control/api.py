"""The one JSON API of the core, whatever door a call comes through.

The control socket, the Gradio API and (later) REST all call these methods: each
checks its arguments, asks the supervisor, and returns plain JSON data. Anything
wrong is a :class:`Refused` with a sentence a person can act on and an HTTP status,
raised before anything changes.

    >>> api = ControlApi(service, requested_by="cli")              # doctest: +SKIP
    >>> api.switch("comfyui")["state"]
    'STOPPING'
    >>> api.logs(stream="sideways")
    Refused: stream must be one of stdout, stderr, both, not 'sideways'
"""

from __future__ import annotations

import json
from typing import Any

from ..core.errors import BusyRefused, NotInstalled, UnknownFramework, WatchDisabled
from ..core.status import iso
from ..runtime.logorder import tail_text
from ..runtime.logs import STREAMS, latest_line, read_from
from ..runtime.service import Service
from ..runtime.supervisor import Supervisor

MAX_LINES = 10_000
MAX_EVENTS = 1_000
MAX_HISTORY_MINUTES = 7 * 24 * 60
MAX_FOLLOW_BYTES = 64 * 1024
REQUESTERS = ("api", "ui", "cli", "http")
# What the front may write into the journal: its own refusals, never a framework's events.
FRONT_EVENTS = ("auth_failed",)
FRONT_FIELDS = (
    "client",
    "user",
    "path",
    "method",
    "failures",
    "locked_for_s",
    "reason",
    "count",
    "window_s",
    "host",
)


class Refused(ValueError):
    """A call that changes nothing: bad arguments, or a state that forbids it."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message if len(message) <= 300 else message[:300] + "…")
        self.status = status


def json_object(raw: bytes) -> dict[str, Any]:
    """A request body: a JSON object, or nothing at all (``{}``)."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # "[[[[…" is too deep for json
        raise Refused("the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise Refused("the body must be a JSON object")
    return data


def whole(value: Any, name: str, low: int, high: int) -> int:
    """A whole number from ``low`` to ``high`` (``20`` and ``20.0`` yes, ``True`` no)."""
    # bool is an int to Python, never to a person typing "lines".
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Refused(f"{name} must be a whole number from {low} to {high}, not {value!r:.40}")
    if isinstance(value, float) and not value.is_integer():
        raise Refused(f"{name} must be a whole number, not {value}")
    number = int(value)
    if not low <= number <= high:
        raise Refused(f"{name} must be from {low} to {high}, not {number}")
    return number


def whole_chars(data: bytes) -> bytes:
    """``data`` less a UTF-8 character cut off at its end (``b"a\\xc3"`` → ``b"a"``)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # ASCII or the lead byte of a character
            need = 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 else 4
            return data[:-back] if 0xC0 <= byte <= 0xF4 and need > back else data
    return data


def name_of(value: Any, *, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            raise Refused("a framework name is required")
        return None
    if not isinstance(value, str):
        raise Refused(f"framework must be a name (text), not {type(value).__name__}")
    return value


def flag(value: Any, name: str = "force") -> bool:
    if not isinstance(value, bool):
        raise Refused(f"{name} must be true or false, not {value!r:.40}")
    return value


# What a refusal of the supervisor's means for a client.
STATUS_OF = {UnknownFramework: 404, NotInstalled: 409, BusyRefused: 409, WatchDisabled: 409}


class ControlApi:
    """The endpoints, bound to one service; ``requested_by`` goes into the journal."""

    def __init__(self, service: Service, requested_by: str = "api") -> None:
        self.service = service
        self.sup = service.supervisor
        self.by = requested_by

    def as_requester(self, requested_by: str) -> ControlApi:
        if requested_by not in REQUESTERS:
            raise Refused(f"requested_by must be one of {', '.join(REQUESTERS)}")
        return ControlApi(self.service, requested_by)

    def _sup(self, slot: Any) -> Supervisor:
        """The supervisor of ``slot``; none named: the first (the only one without
        slots)."""
        if slot is None or slot == "":
            return self.service.supervisor
        if not isinstance(slot, str):
            raise Refused(f"slot must be a name (text), not {type(slot).__name__}")
        if slot not in self.service.supervisors:
            known = ", ".join(s for s in self.service.supervisors if s)
            where = f"slots: {known}" if known else "this watchdog has no slots"
            raise Refused(f"unknown slot {slot!r:.40} ({where})", 404)
        return self.service.supervisors[slot]

    def _act(self, fn: Any, *args: Any, force: Any = False, **more: Any) -> dict[str, Any]:
        sup: Supervisor = fn.__self__
        more = {k: flag(v, k) for k, v in more.items()}
        try:
            status = fn(*args, requested_by=self.by, force=flag(force), **more)
            return self._with_door(status.to_dict(), sup.slot)
        except (UnknownFramework, NotInstalled, BusyRefused, WatchDisabled) as exc:
            raise Refused(str(exc), STATUS_OF[type(exc)]) from None
        except (RuntimeError, TimeoutError) as exc:
            raise Refused(str(exc) or "the supervisor did not answer", 503) from None

    def status(self, slot: str | None = None) -> dict[str, Any]:
        """The status object (same as GET /info); of ``slot`` (default: the first)."""
        sup = self._sup(slot)
        return self._with_door(sup.status().to_dict(), sup.slot)

    def _with_door(self, info: dict[str, Any], slot: str | None) -> dict[str, Any]:
        """The door's URL (None without a front): the framework as users open it.
        With slots: which slot this is, and every slot's name."""
        info["door_url"] = self.service.door_urls.get(slot, self.service.door_url)
        if self.service.settings.slots:
            info["slot"] = slot or self.service.supervisor.slot
            info["slots"] = list(self.service.settings.slots)
        return info

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

    # ``slot``: which GPU slot (default: the first; without slots there is one).

    def start(
        self, framework: str | None = None, force: bool = False, slot: str | None = None
    ) -> dict[str, Any]:
        """Start a framework (default: the chosen one); switches if another runs."""
        name = name_of(framework, required=False)
        return self._act(self._sup(slot).start, name, force=force)

    # ``requeue``: ComfyUI's queue goes back once it runs again (a person's stop or
    # restart otherwise leaves it lost, as ComfyUI would). ``clear_queue``: the
    # framework's own queue is emptied first (InvokeAI's otherwise resumes at start).

    def stop(
        self,
        force: bool = False,
        slot: str | None = None,
        requeue: bool = False,
        clear_queue: bool = False,
    ) -> dict[str, Any]:
        """Stop the framework's whole process tree."""
        sup = self._sup(slot)
        return self._act(sup.stop, force=force, requeue=requeue, clear_queue=clear_queue)

    def restart(
        self,
        force: bool = False,
        slot: str | None = None,
        requeue: bool = False,
        clear_queue: bool = False,
    ) -> dict[str, Any]:
        """Stop and start the chosen framework again."""
        sup = self._sup(slot)
        return self._act(sup.restart, force=force, requeue=requeue, clear_queue=clear_queue)

    def switch(
        self, framework: str, force: bool = False, slot: str | None = None
    ) -> dict[str, Any]:
        """Stop what runs, wait for its port (and VRAM), start ``framework``."""
        name = name_of(framework, required=True)
        return self._act(self._sup(slot).switch, name, force=force)

    def keep_awake(self, force: bool = False, slot: str | None = None) -> dict[str, Any]:
        """Restart the idle clock; an idle command waiting out its grace will not run."""
        return self._act(self._sup(slot).keep_awake, force=force)

    def activity(self, source: str = "door", slot: str | None = None) -> dict[str, Any]:
        """The front's word that the framework was used through the door (wakes it if
        it sleeps). Only the front reaches the control socket."""
        if source != "door":
            raise Refused(f"source must be door, not {source!r:.40}")
        self._sup(slot).report_activity(source)
        return {"ok": True}

    def logs(self, stream: str = "both", lines: int = 200, slot: str | None = None) -> str:
        """The last ``lines`` lines of the current run's stdout, stderr or both."""
        if stream not in STREAMS:
            raise Refused(f"stream must be one of {', '.join(STREAMS)}, not {stream!r:.40}")
        count = whole(lines, "lines", 1, MAX_LINES)
        return tail_text(self._sup(slot).status().logs, stream, count)

    def follow(
        self, stream: str = "stdout", offset: int = -1, run_id: str = "", slot: str | None = None
    ) -> dict[str, Any]:
        """What the current run wrote to ``stream`` from byte ``offset`` on (at most 64 KB
        a call; ``offset`` -1: from the end). Another ``run_id`` than the current run's
        starts over at 0 of the current run: ``logs -f`` goes on across restarts."""
        if stream not in ("stdout", "stderr"):
            raise Refused(f"stream must be stdout or stderr, not {stream!r:.40}")
        at = whole(offset, "offset", -1, 2**62)
        logs = self._sup(slot).status().logs
        if logs is None:
            return {"run_id": None, "offset": 0, "text": ""}
        if run_id and run_id != logs.run_id:
            at = 0
        path = logs.stdout if stream == "stdout" else logs.stderr
        data, end, size = read_from(path, at, MAX_FOLLOW_BYTES)
        cut = whole_chars(data)  # a character split between two calls would be lost
        data, end = cut, end - (len(data) - len(cut))
        return {
            "run_id": logs.run_id,
            "offset": end,
            "size": size,
            "text": data.decode("utf-8", "replace"),
        }

    def latest(self, slot: str | None = None) -> dict[str, Any]:
        """The newest non-empty line of the current run, from either stream."""
        return {"line": latest_line(self._sup(slot).status().logs)}

    def journal(self, event: str, fields: Any = None) -> dict[str, Any]:
        """Write one of the front's own events (``auth_failed``) into the journal."""
        if event not in FRONT_EVENTS:
            raise Refused(f"event must be one of {', '.join(FRONT_EVENTS)}, not {event!r:.40}")
        fields = fields if fields is not None else {}
        if not isinstance(fields, dict) or set(fields) - set(FRONT_FIELDS):
            raise Refused(f"fields must be an object with keys among {', '.join(FRONT_FIELDS)}")
        clean = {k: v if isinstance(v, (int, float)) else str(v)[:200] for k, v in fields.items()}
        self.service.events.write(event, **clean)
        return {"ok": True}

    def events(
        self, limit: int = 50, framework: str | None = None, slot: str | None = None
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` events, newest first; optionally of one framework, or
        of one slot (default: every slot's, each event naming its slot)."""
        count = whole(limit, "limit", 1, MAX_EVENTS)
        name = name_of(framework, required=False)
        if name is not None and name not in self.sup.settings.frameworks:
            raise Refused(f"unknown framework {name!r:.80}", 404)
        if slot is not None and slot != "":
            return self._sup(slot).events.tail(count, framework=name)
        return self.service.events.tail(count, framework=name)

    def gpu(self) -> dict[str, Any]:
        """The latest GPU snapshot (devices and processes; "n/a" where not reported)."""
        snap = self.service.sampler.snapshot_dict()
        if isinstance(snap.get("taken_at"), float):
            snap["taken_at"] = iso(snap["taken_at"])
        if snap.get("sample"):
            snap["sample"] = {**snap["sample"], "ts": iso(snap["sample"]["ts"])}
        return snap

    def metrics(self) -> dict[str, Any]:
        """What ``/metrics`` shows: the status, the journal's counters since the core
        started, the sampler's stored GPU snapshot and latest sample (no NVML call)."""
        snap = self.service.sampler.snapshot_dict()
        statuses = [self._with_door(sup.status().to_dict(), sup.slot)
                    for sup in self.service.supervisors.values()]  # fmt: skip
        return {
            "status": statuses[0],
            "statuses": statuses,  # one per GPU slot (the same one without slots)
            "counters": self.service.counters.snapshot(),
            "gpu": {k: snap.get(k) for k in ("available", "devices")},
            "sample": snap.get("sample"),
        }

    def history(self, minutes: int = 60) -> list[dict[str, Any]]:
        """Samples of GPU / CPU / RAM over the last ``minutes``, at most 400 points;
        ``ts`` in ISO 8601 (UTC), as everywhere in the API."""
        rows = self.service.history.window(whole(minutes, "minutes", 1, MAX_HISTORY_MINUTES))
        return [{**row, "ts": iso(row["ts"])} for row in rows]
