"""The core (``python app.py``): supervisor, control socket, and the front it keeps.

This module and everything it imports stay free of Gradio, uvicorn and FastAPI: the
page runs in the front, a child process (``runtime/front.py``), so no number of
connections to the page can take a file descriptor, a thread or memory from
supervision.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
import threading

from .. import __version__
from ..control.api import ControlApi
from ..control.server import ControlSocket, socket_path
from ..runtime import reaper
from ..runtime.front import FrontKeeper, FrontWatch, bind_page
from ..runtime.instance_lock import AlreadyRunning, InstanceLock
from ..runtime.service import Service
from ..runtime.signals import SignalRoutes
from ..runtime.tls import TlsError, certificate, machine_addresses
from ..settings import Settings
from ..web.auth import CredentialsError, load_credentials
from ..web.config import FrontConfig
from .admin import set_password_hint
from .common import (
    EXIT_LOCKED,
    EXIT_NO_CREDENTIALS,
    EXIT_SERVER,
    EXIT_SETTINGS,
    settings_or_say,
)

log = logging.getLogger("sd-watchdog")


def run(args: argparse.Namespace) -> int:
    """The watchdog itself: supervise, serve the control socket and (unless
    ``--no-server``) the page, until SIGTERM/SIGINT."""
    settings = settings_or_say(args.settings)
    if settings is None:
        return EXIT_SETTINGS
    try:
        creds = load_credentials(settings.auth_path)
    except CredentialsError as exc:
        print(f"sd-watchdog: {exc}: {set_password_hint(args.settings)}", file=sys.stderr)
        return EXIT_NO_CREDENTIALS
    host = "0.0.0.0" if args.public_host else settings.server.host
    exposed = args.share or host not in ("127.0.0.1", "localhost", "::1")
    if exposed and creds is None and not args.no_server:
        print(
            "sd-watchdog: refusing to serve the control page beyond this machine"
            f" ({'--share' if args.share else 'host ' + host}) without a password.\n"
            f"Set one first:\n\n    {set_password_hint(args.settings)}\n",
            file=sys.stderr,
        )
        return EXIT_NO_CREDENTIALS

    lock = InstanceLock(settings.logs_dir / "watchdog.lock")
    try:
        lock.acquire()
    except (AlreadyRunning, OSError) as exc:
        print(f"sd-watchdog: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    # Bound here, before anything is started, and once: a front restart never loses them.
    sock = door_sock = cert = None
    slot_doors: dict[str, socket.socket] = {}
    if not args.no_server:
        port = args.port if args.port is not None else settings.server.port
        app_port = args.app_port if args.app_port is not None else settings.server.app_port
        try:
            cert = certificate(settings)
            where = f"the page on {host}:{port}"
            sock = bind_page(host, port)
            where = f"the door on {host}:{app_port}"
            door_sock = bind_page(host, app_port)
            for index, slot in enumerate(list(settings.slots)[1:], start=1):
                # Each GPU slot's door on the next port (0: any free one).
                slot_port = app_port + index if app_port else 0
                where = f"the door of slot {slot} on {host}:{slot_port}"
                slot_doors[slot] = bind_page(host, slot_port)
        except (OSError, TlsError) as exc:
            why = f"TLS: {exc}" if isinstance(exc, TlsError) else f"cannot serve {where}: {exc}"
            print(f"sd-watchdog: {why}", file=sys.stderr)
            for bound in [sock, door_sock, *slot_doors.values()]:
                if bound is not None:
                    bound.close()
            lock.release()
            return EXIT_SERVER

    # Orphans of a framework's tree come to us, not to init: found, stopped, reaped.
    # As PID 1 in a container, every orphan does. SIGCHLD only wakes the reaper.
    reaper.become_subreaper()
    reaping = reaper.Reaper()
    reaping.start()
    before, after = reaper.raise_open_files_limit()
    if after > before:
        log.info("open-files limit raised from %d to %d", before, after)

    done = threading.Event()

    def on_stop_signal(signum: int) -> None:
        log.info("received %s; shutting down", signal.Signals(signum).name)
        done.set()

    # Installing handlers also matters for the children: a signal we inherited as
    # ignored (started by `cmd &` from a script) would otherwise be ignored by the
    # framework too; handlers are reset to default on exec, SIG_IGN is not.
    signals = SignalRoutes(
        {
            signal.SIGCHLD: lambda _signum: reaping.wake(),
            signal.SIGTERM: on_stop_signal,
            signal.SIGINT: on_stop_signal,
        }
    )
    signals.start()

    service = Service(settings, watch=not args.no_watch)
    status = service.start()
    control = ControlSocket(socket_path(settings.logs_dir), ControlApi(service, "api"))
    try:
        control.start()
    except OSError as exc:  # supervision goes on; only the CLI cannot reach it
        log.error("no control socket at %s: %s", control.path, exc)
    log.info(
        "sd-watchdog %s: settings %s; logs in %s; %s is %s",
        __version__,
        settings.source,
        settings.logs_dir,
        status.framework,
        status.state.value,
    )
    keeper = None
    try:
        if sock is not None:
            config = FrontConfig.from_settings(settings, control.path, host, 0).but(
                share=args.share,
                log_level=args.log_level,
                tls_cert=str(cert.cert) if cert else None,
                tls_key=str(cert.key) if cert else None,
            )
            events = service.events
            keeper = FrontKeeper(config, sock, events, front_watch(settings), door_sock, slot_doors)
            scheme = "https" if cert else "http"
            shown = "127.0.0.1" if host == "0.0.0.0" else host
            shown = f"[{shown}]" if ":" in shown else shown
            service.door_url = f"{scheme}://{shown}:{keeper.app_port}/"
            service.door_urls = {
                service.supervisor.slot: service.door_url,
                **{s: f"{scheme}://{shown}:{p}/" for s, p in keeper.slot_ports.items()},
            }
            # Messages link the page by an address it is served on beyond loopback.
            beyond = [a for a in served_addresses(host) if a not in ("127.0.0.1", "[::1]")]
            service.page_url = f"{scheme}://{beyond[0] if beyond else shown}:{keeper.port}/"
            keeper.start()
            for address in served_addresses(host):
                log.info(
                    "control page: %s://%s:%d/ (%s); the framework: %s://%s:%d/",
                    scheme,
                    address,
                    keeper.port,
                    "password required" if creds else "no password: this machine only",
                    scheme,
                    address,
                    keeper.app_port,
                )
            if cert:
                log.info(
                    "TLS certificate %s%s: %s",
                    cert.cert,
                    " (made now)" if cert.made else "",
                    cert.fingerprint,
                )
            elif exposed:
                log.warning(
                    "serving beyond this machine without TLS: passwords and sessions cross"
                    ' the network in clear text; set "server": {"tls": "self-signed"} or see'
                    " the README's HTTPS section"
                )
        while not done.wait(3600):
            pass
    finally:
        if keeper is not None:
            keeper.stop()
        control.stop()
        service.stop(leave_running=args.leave_running, requested_by="signal")
        reaping.stop()
        signals.stop()
        lock.release()
    return 0


def served_addresses(host: str) -> list[str]:
    """Where a browser finds the page: the bound address, or for 0.0.0.0 (and ::)
    loopback and every address of this machine's interfaces."""
    if host not in ("0.0.0.0", "::", ""):
        return [f"[{host}]" if ":" in host else host]
    _, addresses = machine_addresses()
    ipv4 = [a for a in addresses if "." in a and a != "127.0.0.1"]
    return ["127.0.0.1", *ipv4]


def front_watch(settings: Settings) -> FrontWatch:
    """The front is judged by the same probe numbers as a framework."""
    w = settings.watch
    return FrontWatch(
        interval_s=w.health_interval_s,
        timeout_s=w.health_timeout_s,
        failure_threshold=w.failure_threshold,
        max_rss_mb=settings.server.max_rss_mb,
    )
