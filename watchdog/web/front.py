"""The front process (``python -m watchdog.web``): the page, the Gradio API, REST and
the plain routes, started and watched by the core (``runtime/front.py``).

It holds no state of the watchdog's: it asks the core over the control socket for
everything (``link.py``), so killing it, or a flood that uses up its file
descriptors, loses nothing and never reaches the framework. It serves on the
listening socket the core bound and passed down, and it leaves by itself within a
moment when the core dies (the core-alive pipe reads EOF), so a new core can bind
the port again.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ..runtime.signals import SignalRoutes
from .config import ENV, FrontConfig

if TYPE_CHECKING:  # imported late in main(): the core-alive watch starts first
    from .link import CoreLink

log = logging.getLogger("sd-watchdog.front")

EXIT_CONFIG = 2
EXIT_NO_CORE = 3
EXIT_SERVER = 5
CORE_WAIT_S = 30.0


def leave_with_the_core(fd: int) -> None:
    """A thread that ends this process when the core's end of the pipe closes: the
    core is gone (killed, crashed or exited), and the page has nothing to serve."""

    def wait() -> None:
        try:
            while os.read(fd, 1):
                pass
        except OSError:
            pass
        log.warning("the core is gone; the front leaves too")
        logging.shutdown()
        os._exit(0)

    threading.Thread(target=wait, name="core-alive", daemon=True).start()


def main() -> int:
    try:
        config = FrontConfig.from_json(os.environ[ENV])
    except (KeyError, ValueError, TypeError) as exc:
        print(f"sd-watchdog front: no usable {ENV} ({exc}); the core starts this", file=sys.stderr)
        return EXIT_CONFIG
    logging.basicConfig(
        level=config.log_level,
        format="%(asctime)s %(levelname)s front %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the door: a line per request
    if config.core_fd is not None:
        leave_with_the_core(config.core_fd)
    # Ctrl-C in a terminal reaches the whole group: the core stops us in its own order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    done = threading.Event()
    signals = SignalRoutes({signal.SIGTERM: lambda _signum: done.set()})
    signals.start()

    from .auth import Authenticator, CredentialsError, CredentialsFile
    from .link import CoreLink, JournalRelay
    from .metrics import DoorStats
    from .server import WebServer, build_app, build_door, open_share_link

    try:
        creds = CredentialsFile(Path(config.auth_path))  # re-read when set-password runs
    except CredentialsError as exc:
        log.error("%s", exc)
        return EXIT_CONFIG
    core = CoreLink(Path(config.socket))
    if not _core_answers(core, done):
        log.error("the core does not answer on %s", config.socket)
        return EXIT_NO_CORE
    auth = Authenticator(creds, JournalRelay(core), config.max_failed_logins, config.lockout_s)
    tls = (config.tls_cert, config.tls_key) if config.tls_cert and config.tls_key else None
    sock = socket.socket(fileno=config.listen_fd) if config.listen_fd is not None else None
    stats = DoorStats()  # counted by the door, shown by the page's /metrics
    page = build_app(core, auth, config, stats)
    servers = [WebServer(page, config.host, config.port, sock, tls)]
    if config.app_port is not None:
        door_sock = socket.socket(fileno=config.door_fd) if config.door_fd is not None else None
        door = build_door(core, auth, config, stats)
        door_server = WebServer(door, config.host, config.app_port, door_sock, tls, "door", False)
        servers.append(door_server)
    for slot, fd, port in config.slot_doors:  # one door per GPU slot
        slot_sock = socket.socket(fileno=fd) if fd is not None else None
        slot_door = build_door(core, auth, config, stats, slot)
        servers.append(WebServer(slot_door, config.host, port, slot_sock, tls, "door", False))
    try:
        ports = [server.start() for server in servers]
    except (OSError, TimeoutError) as exc:
        log.error("cannot serve the page on %s:%d: %s", config.host, config.port, exc)
        return EXIT_SERVER
    log.info(
        "serving the page on port %d, the door on %s (pid %d)",
        ports[0],
        ports[1] if len(ports) > 1 else "none",
        os.getpid(),
    )
    if config.share:
        link = open_share_link(ports[0])
        if link:
            log.info("public share link: %s", link)
    try:
        while not done.wait(3600):
            pass
    finally:
        for server in servers:  # all at once: each takes up to a tick to notice
            server.server.should_exit = True
        for server in servers:
            server.stop()
        auth.close()
    return 0


def _core_answers(core: CoreLink, done: threading.Event) -> bool:
    """The core started us, so it answers; unless it is slow to start its socket."""
    from ..control.api import Refused

    waited = 0.0
    while waited < CORE_WAIT_S and not done.is_set():
        try:
            core.status()
            return True
        except Refused:
            done.wait(0.5)
            waited += 0.5
    return False
