"""The commands that talk to a running watchdog, like supervisorctl: ``status``,
``start``, ``stop``, ``restart``, ``switch``, ``logs``, ``events``.

    $ python app.py status
    demo: RUNNING  pid 4242, up 3m 12s, 0 restarts
    $ python app.py switch comfyui
    comfyui: STOPPING  pid 4242, up 3m 15s, 0 restarts (switch to comfyui)
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any

from ..control.client import ApiError, ControlClient, NoCore
from ..control.server import socket_path
from .common import EXIT_NO_CORE, EXIT_REFUSED, EXIT_SETTINGS, settings_or_say

FOLLOW_S = 0.5


def run_control(args: argparse.Namespace) -> int:
    """Dispatch a control command; one line and an exit code when it cannot be done."""
    path = args.socket
    if path is None:
        settings = settings_or_say(args.settings)
        if settings is None:
            return EXIT_SETTINGS
        path = socket_path(settings.logs_dir)
    client = ControlClient(Path(path))
    try:
        return COMMANDS[args.command](client, args)
    except NoCore as exc:
        print(f"sd-watchdog: {exc}", file=sys.stderr)
        return EXIT_NO_CORE
    except ApiError as exc:
        print(f"sd-watchdog: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return 0


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    return f"{s // 3600}h {s % 3600 // 60}m"


def describe(status: dict[str, Any]) -> str:
    """The status object in a few lines a person reads at a glance."""
    line = f"{status['framework']}: {status['state']}"
    if status.get("slot"):
        line = f"[{status['slot']}] {line}"
    if status.get("pid"):
        up = _duration(status.get("spawned_secs_ago"))
        line += f"  pid {status['pid']}, up {up}, {status.get('restarts', 0)} restarts"
    out = [line]
    if status.get("busy_detail"):
        out.append(f"  busy: {status['busy_detail']}")
    if status.get("url") and status.get("is_running"):
        out.append(f"  url: {status['url']}")
    if status.get("door_url"):
        out.append(f"  open it at: {status['door_url']} (the door, behind the page's login)")
    if status.get("reason"):
        out.append(f"  why: {status['reason']}")
    idle = idle_line(status.get("idle"))
    if idle:
        out.append(f"  idle: {idle}")
    queue = status.get("queue") or {}
    if queue.get("text"):  # what a crash owes, what InvokeAI resumes, what was set aside
        out.append(f"  queue: {queue['text']}")
    last = status.get("last_exit")
    if last:
        out.append(f"  last exit: {last['reason']} ({last['time']})")
    out += [f"  stderr: {line}" for line in status.get("last_stderr") or []][-5:]
    out += [f"  problem: {e}" for e in status.get("errors") or []]
    return "\n".join(out)


def idle_line(idle: dict[str, Any] | None) -> str | None:
    """``"for 12m 0s; sleeps in 18m 0s"`` (None when the idle policy is off)."""
    if not idle or not idle.get("enabled"):
        return None
    line = f"for {_duration(idle.get('idle_s'))}"
    if idle.get("sleeping"):
        return line + "; asleep: the next request through the door wakes it"
    if idle.get("next_in_s") is not None:
        what = "sleeps" if idle.get("next") == "sleep" else "the idle command runs"
        line += f"; {what} in {_duration(idle['next_in_s'])}"
    return line + (" (grace: `keep-awake` stops it)" if idle.get("grace") else "")


def _slot(args: argparse.Namespace) -> dict[str, str]:
    return {"slot": args.slot} if getattr(args, "slot", None) else {}


def _status(client: ControlClient, args: argparse.Namespace) -> int:
    status = client.call("GET", "/status", **_slot(args))
    every = [status]
    if status.get("slots") and not _slot(args):  # no slot named: each slot, in order
        every = [client.call("GET", "/status", slot=s) for s in status["slots"]]
    if args.json:
        print(json.dumps(every if len(every) > 1 else status, indent=2))
    else:
        print("\n".join(describe(s) for s in every))
    return 0


def _act(client: ControlClient, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"force": getattr(args, "force", False), "requested_by": "cli"}
    body.update(_slot(args))
    for flag in ("requeue", "clear_queue"):
        if getattr(args, flag, False):
            body[flag] = True
    if getattr(args, "name", None):
        body["framework"] = args.name
    status = client.call("POST", f"/{args.command}", body)
    if status.get("note"):
        print(f"nothing to do: {status['note']}")
        return 0
    print(
        describe(status).splitlines()[0]
        + (f" ({status['reason']})" if status.get("reason") else "")
    )
    return 0


def _logs(client: ControlClient, args: argparse.Namespace) -> int:
    slot = _slot(args)
    text = client.call("GET", "/logs", stream=args.stream, lines=args.lines, **slot)
    if text:
        print(text)
    if not args.follow:
        return 0
    streams = ["stdout", "stderr"] if args.stream == "both" else [args.stream]
    at = {s: client.call("GET", "/logs/follow", stream=s, offset=-1, **slot) for s in streams}
    stop = threading.Event()
    while not stop.wait(FOLLOW_S):
        for s in streams:
            got = client.call("GET", "/logs/follow", stream=s, offset=at[s]["offset"],
                              run_id=at[s]["run_id"] or "", **slot)  # fmt: skip
            if got["run_id"] != at[s]["run_id"] and got["run_id"]:
                print(f"── run {got['run_id']} ──", flush=True)
            at[s] = got
            if got["text"]:
                sys.stdout.write(got["text"])
                sys.stdout.flush()
    return 0


def event_line(e: dict[str, Any]) -> str:
    keys = ("slot", "framework", "pid", "state", "requested_by", "reason")
    parts = [f"{k}={e[k]}" for k in keys if e.get(k) not in (None, "")]
    return f"{e.get('ts', '?')} {e.get('event', '?')} " + " ".join(parts)


def _events(client: ControlClient, args: argparse.Namespace) -> int:
    def show(found: list[dict[str, Any]]) -> None:
        for e in found:
            print(json.dumps(e) if args.json else event_line(e), flush=True)

    slot = _slot(args)
    first = list(reversed(client.call("GET", "/events", limit=args.lines, **slot)))
    show(first)
    if not args.follow:
        return 0
    seen = {json.dumps(e, sort_keys=True) for e in first}
    stop = threading.Event()
    while not stop.wait(FOLLOW_S * 2):
        batch = list(reversed(client.call("GET", "/events", limit=200, **slot)))
        keys = [json.dumps(e, sort_keys=True) for e in batch]
        show([e for e, k in zip(batch, keys, strict=True) if k not in seen])
        seen = set(keys)
    return 0


COMMANDS = {
    "status": _status,
    "start": _act,
    "stop": _act,
    "restart": _act,
    "switch": _act,
    "keep-awake": _act,
    "logs": _logs,
    "events": _events,
}
