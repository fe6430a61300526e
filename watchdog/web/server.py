"""Assembling and serving the web side: plain routes + Gradio page/API behind the auth gate.

>>> server = WebServer(build_app(core, auth, config), "127.0.0.1", 5005)  # doctest: +SKIP
>>> server.start()          # returns the bound port (useful with port 0)
5005
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import threading
import time

import gradio as gr
import uvicorn
from fastapi import FastAPI

from . import gradio_limits
from .activity import ActivityReporter
from .api import add_routes
from .asgi import ASGIApp
from .auth import Authenticator
from .bounded import BoundedH11Protocol, QuietLoopErrors
from .cards import CSS
from .clients import ClientResolver, HostAllowlist
from .config import FrontConfig
from .defaults import DefaultArgs, defaults_of
from .door import Door
from .door_target import DoorTarget
from .events_view import CSS as EVENTS_CSS
from .gate import DOOR_PATHS, PAGE_PATHS, AuthGate
from .link import CoreLink, SlotLink
from .metrics import DoorStats
from .rest import build_rest
from .rpc import API_NAMES, Rpc
from .ui import build_page
from .uploads import NoUploads

log = logging.getLogger(__name__)

# System fonts only: the page must not fetch anything from the internet.
THEME = gr.themes.Default(
    font=[gr.themes.Font("system-ui"), "sans-serif"],
    font_mono=[gr.themes.Font("ui-monospace"), "monospace"],
)
SHARE_API = ("api.gradio.app", 443)
TICK_S = 1.0
# A page for one person and a few scripts: more than this at once is an attack or a bug.
MAX_CONNECTIONS = 256


def build_app(
    core: CoreLink, auth: Authenticator, config: FrontConfig, door: DoorStats | None = None
) -> ASGIApp:
    """The page, its APIs and routes; ``door``: the door's counts, for ``/metrics``."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    add_routes(app, core, door)
    app.mount("/api/v1", build_rest(core))
    fingerprint = None
    if config.tls_cert:
        from pathlib import Path

        from ..runtime.tls import TlsError
        from ..runtime.tls import fingerprint as fingerprint_of

        try:
            fingerprint = fingerprint_of(Path(config.tls_cert))
        except TlsError as exc:
            log.error("%s", exc)
    page = build_page(core, config.refresh_s, fingerprint)
    gradio_limits.bound(page)
    app.router.lifespan_context = gradio_limits.trimming(page)  # Gradio's own wraps it
    app = gr.mount_gradio_app(
        app,
        page,
        path="/",
        theme=THEME,
        css=CSS + EVENTS_CSS,
        ssr_mode=False,
        mcp_server=False,
        # Defence in depth: Gradio serves only its own cache anyway.
        blocked_paths=[config.auth_path, config.logs_dir, config.base_dir],
    )
    defaults = defaults_of({name: getattr(Rpc, name) for name in API_NAMES})
    return gated(NoUploads(DefaultArgs(app, defaults)), auth, config, door=False)


def build_door(
    core: CoreLink,
    auth: Authenticator,
    config: FrontConfig,
    stats: DoorStats | None = None,
    slot: str | None = None,
) -> ASGIApp:
    """The framework's own UI (of ``slot``: default the first), behind the same gate
    and sessions as the page."""
    clients = ClientResolver(config.trusted_proxies)
    link = SlotLink(core, slot)
    activity = ActivityReporter(link.activity)
    door = Door(DoorTarget(link), clients, tls=config.tls, stats=stats, activity=activity)
    return gated(door, auth, config, door=True)


def gated(app: ASGIApp, auth: Authenticator, config: FrontConfig, door: bool) -> ASGIApp:
    return AuthGate(
        app,
        auth,
        HostAllowlist(config.allowed_hosts, share=config.share),
        ClientResolver(config.trusted_proxies),
        DOOR_PATHS if door else PAGE_PATHS,
        secure=config.tls,
        strip_credentials=door,
    )


class _QuietServer(uvicorn.Server):
    """uvicorn wakes every 0.1 s to refresh its Date header and look for an exit
    request; once a second serves both, and an idle watchdog sleeps ten times longer."""

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        asyncio.get_running_loop().set_exception_handler(QuietLoopErrors())
        await super().serve(sockets)

    async def main_loop(self) -> None:
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 10) % 864000  # on_tick refreshes headers at multiples of 10
            await asyncio.sleep(TICK_S)
            should_exit = await self.on_tick(counter)


class WebServer:
    """uvicorn in a background thread, so the main thread keeps the signals."""

    def __init__(
        self,
        app: ASGIApp,
        host: str,
        port: int,
        sock: socket.socket | None = None,
        tls: tuple[str, str] | None = None,
        name: str = "web",
        date_header: bool = True,
    ) -> None:
        cert, key = tls if tls else (None, None)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            lifespan="on",
            http=BoundedH11Protocol,  # closes connections that send no request head
            limit_concurrency=MAX_CONNECTIONS,  # beyond: 503 at once
            timeout_graceful_shutdown=3,
            ssl_certfile=cert,
            ssl_keyfile=key,
            server_header=False,
            date_header=date_header,  # the door passes the framework's own
            # uvicorn believes X-Forwarded-For from 127.0.0.1 by default: any local
            # user or ssh tunnel could name any client. clients.py decides instead.
            proxy_headers=False,
        )
        self.server = _QuietServer(config)
        self.host = host
        # ``sock``: a socket the core bound (the front's case); else uvicorn binds.
        self._thread = threading.Thread(
            target=self.server.run,
            kwargs={"sockets": [sock]} if sock is not None else {},
            name=name,
            daemon=True,
        )

    def start(self, timeout: float = 30) -> int:
        """Serve; return the bound port once accepting connections."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive():
                raise OSError(f"the web server could not start on {self.host} (see log above)")
            if time.monotonic() > deadline:
                raise TimeoutError("the web server did not start")
            self._thread.join(0.02)
        return self.port

    @property
    def port(self) -> int:
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)


def open_share_link(port: int) -> str | None:
    """A public gradio.live link to the page, or None with the reason logged.

    Checked with a plain connect first, so a VM without internet says so in a second
    instead of hanging. ``GRADIO_SHARE_SERVER_ADDRESS`` (host:port) picks another server.
    """
    from gradio import networking

    address = os.environ.get("GRADIO_SHARE_SERVER_ADDRESS")
    target = SHARE_API
    if address:
        host, _, port_text = address.rpartition(":")
        target = (host, int(port_text or 443))
    try:
        socket.create_connection(target, timeout=5).close()
    except OSError as exc:
        log.error(
            "could not create a share link: the share server %s:%d cannot be reached (%s);"
            " the page is still served locally",
            *target,
            exc.strerror or exc,
        )
        return None
    try:
        return networking.setup_tunnel("127.0.0.1", port, secrets.token_urlsafe(32), address, None)
    except Exception as exc:
        log.error("could not create a share link (%s); the page is still served locally", exc)
        return None
