"""sd-watchdog entry point: parse flags, load settings, supervise, (soon) serve the page.

python app.py                          # supervise the default (demo) framework
python app.py --settings my.json --no-server
python app.py --no-watch               # never start or stop anything
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from watchdog import __version__
from watchdog.instance_lock import AlreadyRunning, InstanceLock
from watchdog.settings import SettingsError, load_settings
from watchdog.supervisor import Supervisor

HERE = Path(__file__).resolve().parent
DEFAULT_SETTINGS = HERE / "settings.json"
EXIT_SETTINGS = 2
EXIT_LOCKED = 3

log = logging.getLogger("sd-watchdog")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="app.py", description="sd-watchdog " + __version__)
    p.add_argument(
        "--settings",
        type=Path,
        help=f"settings file (default: {DEFAULT_SETTINGS.name} beside app.py, else built-ins)",
    )
    p.add_argument("--no-server", action="store_true", help="supervise only, serve no page")
    p.add_argument("--no-watch", action="store_true", help="page and logs only, never launch")
    p.add_argument("--public-host", action="store_true", help="bind the page to 0.0.0.0")
    p.add_argument("--port", type=int, help="port of the control page (default: settings)")
    p.add_argument(
        "--leave-running",
        action="store_true",
        help="on SIGTERM/SIGINT, exit but leave the framework running",
    )
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    path = args.settings
    if path is None and DEFAULT_SETTINGS.exists():
        path = DEFAULT_SETTINGS
    try:
        settings = load_settings(path)
    except SettingsError as exc:
        print(f"sd-watchdog: settings error: {exc}", file=sys.stderr)
        return EXIT_SETTINGS

    lock = InstanceLock(settings.logs_dir / "watchdog.lock")
    try:
        lock.acquire()
    except (AlreadyRunning, OSError) as exc:
        print(f"sd-watchdog: {exc}", file=sys.stderr)
        return EXIT_LOCKED

    done = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s; shutting down", signal.Signals(signum).name)
        done.set()

    # Installing handlers also matters for the children: a signal we inherited as
    # ignored (started by `cmd &` from a script) would otherwise be ignored by the
    # framework too; handlers are reset to default on exec, SIG_IGN is not.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    supervisor = Supervisor(settings, watch=not args.no_watch)
    status = supervisor.begin()
    log.info(
        "sd-watchdog %s: settings %s; logs in %s; %s is %s",
        __version__,
        settings.source,
        settings.logs_dir,
        status.framework,
        status.state.value,
    )
    if not args.no_server:
        host = "0.0.0.0" if args.public_host else settings.server.host
        port = args.port if args.port is not None else settings.server.port
        log.info(
            "the control page (%s:%d) is not built yet; supervising only (same as --no-server)",
            host,
            port,
        )
    try:
        while not done.wait(3600):
            pass
    finally:
        supervisor.shutdown(leave_running=args.leave_running, requested_by="signal")
        lock.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
