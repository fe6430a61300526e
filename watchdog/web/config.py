"""What the core tells the front it starts: where things are, and the page's settings.

The core imports this module, so it imports nothing of the web (no Gradio, uvicorn
or FastAPI). It travels as JSON in the front's environment (``SD_WATCHDOG_FRONT``):
the front never reads ``settings.json`` itself, so a settings file edited while the
watchdog runs cannot keep the page from coming back.

    >>> cfg = FrontConfig.from_settings(settings, Path("logs/control.sock"), "127.0.0.1", 5005)
    >>> FrontConfig.from_json(cfg.to_json()) == cfg                  # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ..settings import Settings

ENV = "SD_WATCHDOG_FRONT"


@dataclass(frozen=True)
class FrontConfig:
    socket: str  # the core's control socket: the front's only way to it
    host: str  # where the page is served (for messages; the core binds the socket)
    port: int
    auth_path: str
    logs_dir: str
    base_dir: str
    refresh_s: float = 1.0
    max_failed_logins: int = 5
    lockout_s: float = 60.0
    share: bool = False
    log_level: str = "INFO"
    listen_fd: int | None = None  # the page's listening socket, bound by the core
    core_fd: int | None = None  # read end of a pipe only the core writes: EOF = core gone
    app_port: int | None = None  # the door's port (None: no door)
    door_fd: int | None = None  # the door's listening socket, bound by the core
    # With GPU slots: the door of each slot after the first, (slot, fd, port); the
    # first slot's is app_port / door_fd.
    slot_doors: tuple[tuple[str, int | None, int], ...] = ()
    first_slot: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    tls_cert: str | None = None  # PEM files; both set: the page and the door speak TLS
    tls_key: str | None = None

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert and self.tls_key)

    @classmethod
    def from_settings(cls, settings: Settings, socket: Path, host: str, port: int) -> FrontConfig:
        server = settings.server
        return cls(
            socket=str(socket),
            host=host,
            port=port,
            auth_path=str(settings.auth_path),
            logs_dir=str(settings.logs_dir),
            base_dir=str(settings.base_dir),
            refresh_s=server.refresh_s,
            max_failed_logins=server.max_failed_logins,
            lockout_s=server.lockout_s,
            allowed_hosts=tuple(server.allowed_hosts),
            trusted_proxies=tuple(server.trusted_proxies),
        )

    def but(self, **changes: Any) -> FrontConfig:
        return replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> FrontConfig:
        data = json.loads(text)
        for key in ("allowed_hosts", "trusted_proxies"):
            data[key] = tuple(data.get(key, ()))
        data["slot_doors"] = tuple(tuple(d) for d in data.get("slot_doors", ()))
        return cls(**data)
