"""``python app.py``: the watchdog, and the commands around it.

Global options go before the command (``app.py --settings my.json status``); they
are also accepted after it, as they always were (``app.py set-password admin
--settings my.json``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .. import __version__
from .common import DEFAULT_SETTINGS

CONTROL = ("status", "start", "stop", "restart", "switch", "keep-awake", "logs", "events")


def _global(p: argparse.ArgumentParser, *, top: bool) -> None:
    # Below the top, SUPPRESS: an option given before the command is not reset to None.
    default = None if top else argparse.SUPPRESS
    p.add_argument(
        "--settings",
        type=Path,
        default=default,
        help=f"settings file (default: {DEFAULT_SETTINGS.name} beside app.py, else built-ins)",
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="app.py",
        description=f"sd-watchdog {__version__}: keeps one Stable Diffusion web UI alive."
        " With no command it runs the watchdog; the commands below talk to it.",
    )
    _global(p, top=True)
    p.add_argument(
        "--socket", type=Path, help="control socket (default: control.sock in the logs folder)"
    )
    run = p.add_argument_group("running the watchdog (no command)")
    run.add_argument("--no-server", action="store_true", help="supervise only, serve no page")
    run.add_argument("--no-watch", action="store_true", help="page and logs only, never launch")
    run.add_argument(
        "--public-host", action="store_true", help="serve the page on 0.0.0.0 (needs a password)"
    )
    run.add_argument("--port", type=int, help="port of the control page (default: settings, 5005)")
    run.add_argument(
        "--app-port", type=int, help="port of the door to the framework (default: settings, 5006)"
    )
    run.add_argument(
        "--share", action="store_true", help="also a public gradio.live link (needs a password)"
    )
    run.add_argument(
        "--leave-running",
        action="store_true",
        help="on SIGTERM/SIGINT, exit but leave the framework running",
    )
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help, description=help)
        _global(c, top=False)
        return c

    c = command("status", "what runs, in which state, and why")
    c.add_argument("--json", action="store_true", help="the whole status object as JSON")
    c = command("start", "start a framework (default: the chosen one)")
    c.add_argument("name", nargs="?", help="framework name from the settings")
    c.add_argument("--force", action="store_true", help="interrupt a running generation")
    c = command("stop", "stop the framework's whole process tree")
    c.add_argument("--force", action="store_true", help="interrupt a running generation")
    c.add_argument("--requeue", action="store_true", help="ComfyUI: its queue goes back later")
    c.add_argument("--clear-queue", action="store_true", help="empty its own queue first")
    c = command("restart", "stop and start the chosen framework again")
    c.add_argument("--force", action="store_true", help="interrupt a running generation")
    c.add_argument("--requeue", action="store_true", help="ComfyUI: its queue goes back")
    c.add_argument("--clear-queue", action="store_true", help="empty its own queue first")
    c = command("switch", "stop what runs, wait for its port and VRAM, start NAME")
    c.add_argument("name", help="framework name from the settings")
    c.add_argument("--force", action="store_true", help="interrupt a running generation")
    command("keep-awake", "restart the idle clock; a pending idle command will not run")
    c = command("logs", "the current run's output")
    c.add_argument("-f", "--follow", action="store_true", help="keep printing new output")
    c.add_argument("--stream", choices=("stdout", "stderr", "both"), default="both")
    c.add_argument("-n", "--lines", type=int, default=50, help="how many lines (default 50)")
    c = command("events", "the event journal, oldest first")
    c.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    c.add_argument("-n", "--lines", type=int, default=20, help="how many events (default 20)")
    c.add_argument("--json", action="store_true", help="one JSON object per line")

    for name in CONTROL:  # a machine with GPU slots: which one (default: the first)
        sub.choices[name].add_argument("--slot", help="the GPU slot (from the settings' slots)")
    c = command(
        "set-password",
        "set the user and password of the page, its API and routes (the password is read"
        " from the terminal, or from standard input when piped)",
    )
    c.add_argument("user")
    c = command("install-autostart", "start the watchdog at boot (systemd, or rc.local)")
    c.add_argument("--root", type=Path, default=Path("/"), help="write under this prefix")
    c.add_argument("--rc-local", action="store_true", help="an /etc/rc.local entry instead")
    c.add_argument("--public-host", action="store_true", default=argparse.SUPPRESS)
    c.add_argument("--port", type=int, default=argparse.SUPPRESS, help="port of the page")
    c.add_argument("--user", help="run as this user (it must exist; rc.local runs it with su)")
    command("notify-test", "send a test message to every notify.urls service")
    c = command("uninstall-autostart", "remove the systemd unit or the rc.local entry")
    c.add_argument("--root", type=Path, default=Path("/"), help="write under this prefix")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    command = args.command
    if command in CONTROL:
        from .control import run_control

        return run_control(args)
    if command == "set-password":
        from .admin import set_password

        return set_password(args)
    if command == "notify-test":
        from .notify_test import notify_test

        return notify_test(args)
    if command in ("install-autostart", "uninstall-autostart"):
        from .admin import autostart

        return autostart(args, install=command == "install-autostart")
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from .run import run

    return run(args)
