"""Typed settings: load ``settings.json`` (+ ``settings.local.json``), validate, resolve.

Every mistake becomes a :class:`SettingsError` whose message names the file and the
key path (or line and column for broken JSON), so the user can fix it without
reading a traceback::

    >>> load_settings(Path("broken.json"))          # doctest: +SKIP
    SettingsError: broken.json: frameworks.demo.port: Input should be a valid integer
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from .frameworks.presets import CUSTOM, PRESETS, FrameworkSpec, parse_signal, resolve_framework
from .notify.policy import DEFAULT_EVENTS, NOTIFIABLE
from .settings_text import SettingsError, describe, did_you_mean, holds, merge, read_json

FRAMEWORK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class WatchSettings(_Strict):
    """How the framework is watched; any key may be overridden per framework."""

    health_interval_s: float = Field(5, gt=0)
    health_timeout_s: float = Field(5, gt=0)
    failure_threshold: int = Field(3, ge=1)
    # Not ready and no new output for this long: a startup timeout (output resets it) …
    startup_timeout_s: float = Field(900, gt=0)
    # … and never longer than this, however much it prints (3 h).
    startup_max_s: float = Field(10800, gt=0)
    stop_timeout_s: float = Field(20, ge=0)
    backoff_initial_s: float = Field(1, ge=0)
    backoff_max_s: float = Field(60, ge=0)
    max_restarts: int = Field(5, ge=0)
    restart_window_s: float = Field(600, gt=0)
    # A run serving (ready) this long was "stable": its crash restarts at once, resets backoff.
    stable_uptime_s: float = Field(60, ge=0)
    # After a stop, how long to wait for the framework's port to be free again.
    port_free_timeout_s: float = Field(10, ge=0)
    # After a stop (with a GPU): how long to wait for its processes' VRAM to be freed,
    # and what to do if it is not: start the next one anyway, or give up (FATAL).
    vram_release_timeout_s: float = Field(60, ge=0)
    vram_timeout_action: Literal["start", "fatal"] = "start"
    # With max_rss_mb / max_vram_mb set on a framework: above it this long restarts it.
    rss_limit_s: float = Field(60, ge=0)
    # Busy with no progress (no step change, no log output) this long is a hang.
    stall_timeout_s: float = Field(900, gt=0)
    # Restarts the watchdog decides itself (RAM, VRAM limit) wait this long for the
    # queue to drain; what is still queued then goes back after the restart.
    busy_wait_max_s: float = Field(600, ge=0)


# Per-framework overrides of every watch key, all optional. Derived from WatchSettings
# so that a new watch key is overridable without touching this file twice.
_WatchOverrides: type[_Strict] = create_model(  # type: ignore[call-overload]
    "_WatchOverrides",
    __base__=_Strict,
    **{
        name: (
            (Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation)
            | None,
            None,
        )
        for name, info in WatchSettings.model_fields.items()
    },
)


class FrameworkEntry(_WatchOverrides):  # type: ignore[misc, valid-type]
    """One entry of ``frameworks``: a preset plus overrides, or a custom command."""

    preset: str | None = None
    command: str | list[str] | None = None
    args: str | list[str] | None = None
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict, repr=False)
    url: str | None = None
    port: int | None = Field(None, ge=0, le=65535)
    health_path: str | None = None
    ready_pattern: str | None = None
    stop_signal: str | None = None
    # GET path answering whether a generation runs (the preset's; "" turns it off).
    busy_path: str | None = None
    # Restart when the framework's tree uses more RAM than this for rss_limit_s (leaks).
    max_rss_mb: float | None = Field(None, gt=0)
    # The same for the GPU memory its processes hold (NVML's per-process figure).
    max_vram_mb: float | None = Field(None, gt=0)

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str | None) -> str | None:
        if value is not None and value not in PRESETS and value != CUSTOM:
            known = ", ".join(sorted([*PRESETS, CUSTOM]))
            raise ValueError(
                f"unknown preset {value!r}{did_you_mean(value, [*PRESETS, CUSTOM])}"
                f" (known: {known})"
            )
        return value

    @field_validator("ready_pattern")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @field_validator("stop_signal")
    @classmethod
    def _valid_signal(cls, value: str | None) -> str | None:
        if value is not None:
            parse_signal(value)
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must start with http:// or https:// and name a host")
        return value

    def watch_overrides(self) -> dict[str, Any]:
        return {
            k: getattr(self, k) for k in WatchSettings.model_fields if getattr(self, k) is not None
        }


class LogSettings(_Strict):
    dir: str = "logs"
    # Each stream of a run is rotated (copy + truncate) past this size; one old part kept.
    max_bytes: int = Field(50 * 1024 * 1024, ge=4096)
    keep_runs: int = Field(20, ge=1)
    # All runs' logs together; the oldest runs are deleted first.
    max_total_bytes: int = Field(1024**3, ge=8192)


class MetricsSettings(_Strict):
    interval_s: float = Field(5, ge=0.2)
    retention_days: float = Field(7, gt=0)


class NotifySettings(_Strict):
    """Messages to a phone (Apprise URLs: ntfys://…, discord://…, json://…). The URLs
    hold tokens: never shown, only masked."""

    urls: list[str] = Field(default_factory=list, repr=False)
    events: list[str] = Field(default_factory=lambda: list(DEFAULT_EVENTS))
    min_interval_s: float = Field(300, ge=0)

    @field_validator("events")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        for item in value:
            if item not in NOTIFIABLE:
                raise ValueError(f"{item!r} is not an event{did_you_mean(item, NOTIFIABLE)}")
        return value


class IdleSettings(_Strict):
    """Nobody used the framework for ``after_min`` (no generation, no request through
    the door, no action on the page): ``stop`` puts it to sleep until the next request
    through the door; ``command`` warns, waits ``grace_min``, then runs ``command``
    (``sudo poweroff``, a provider's CLI). 0 is off."""

    after_min: float = Field(0, ge=0)
    action: Literal["stop", "command"] = "stop"
    command: str | None = Field(None, repr=False)  # may hold a provider's API key
    grace_min: float = Field(5, ge=0)

    @model_validator(mode="after")
    def _command_given(self) -> IdleSettings:
        if self.action == "command" and not (self.command or "").strip():
            raise ValueError('command: required when action is "command"')
        return self


class SlotSettings(_Strict):
    """One GPU slot (see ``slots.py``): its GPUs, its default framework, its ports."""

    gpus: str = Field(pattern=r"^\d{1,3}(,\d{1,3})*$")  # CUDA_VISIBLE_DEVICES: "0" or "2,3"
    default_framework: str | None = None  # default: the top-level default_framework
    port_offset: int = Field(0, ge=0, le=60000)


class TlsFiles(_Strict):
    """A certificate the user has (e.g. Let's Encrypt's fullchain.pem and privkey.pem)."""

    cert: str
    key: str


class ServerSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(5005, ge=0, le=65535)
    # The door: the current framework's own UI, behind the page's login.
    app_port: int = Field(5006, ge=0, le=65535)
    tls: Literal["off", "self-signed"] | TlsFiles = "off"
    # Reverse proxies (Caddy, nginx) whose X-Forwarded-For is believed; addresses or
    # networks. Anyone else's is ignored: the client is the socket's address.
    trusted_proxies: list[str] = Field(default_factory=list)
    # Names the page and the door answer to besides this machine's own and any IP
    # address (a domain in front of it); "*" turns the check off.
    allowed_hosts: list[str] = Field(default_factory=list)
    # Written by `python app.py set-password USER`; relative to the settings folder.
    auth_file: str = "auth.json"
    max_failed_logins: int = Field(5, ge=1)
    lockout_s: float = Field(60, gt=0)
    refresh_s: float = Field(1.0, ge=0.2)
    # The front (page + APIs) is restarted above this resident memory.
    max_rss_mb: float = Field(400, ge=100)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value


def _default_frameworks() -> dict[str, FrameworkEntry]:
    return {"demo": FrameworkEntry(preset="demo")}


class Settings(_Strict):
    """The whole settings file. ``base_dir`` is where relative paths resolve."""

    default_framework: str = "demo"
    frameworks: dict[str, FrameworkEntry] = Field(default_factory=_default_frameworks)
    watch: WatchSettings = Field(default_factory=WatchSettings)
    logs: LogSettings = Field(default_factory=LogSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    idle: IdleSettings = Field(default_factory=IdleSettings)
    slots: dict[str, SlotSettings] = Field(default_factory=dict)

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _source: str = PrivateAttr(default="built-in defaults")
    # Settings never change after loading, so resolved specs are computed once.
    _specs: dict[str, FrameworkSpec] = PrivateAttr(default_factory=dict)
    _watches: dict[str, WatchSettings] = PrivateAttr(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        return self._base_dir

    @property
    def source(self) -> str:
        return self._source

    @property
    def logs_dir(self) -> Path:
        path = Path(self.logs.dir).expanduser()
        return path if path.is_absolute() else self._base_dir / path

    @property
    def auth_path(self) -> Path:
        path = Path(self.server.auth_file).expanduser()
        return path if path.is_absolute() else self._base_dir / path

    @property
    def names(self) -> list[str]:
        return list(self.frameworks)

    def framework(self, name: str) -> FrameworkSpec:
        """The resolved spec of a framework; KeyError for a name not in the settings."""
        spec = self._specs.get(name)
        if spec is None:
            spec = resolve_framework(name, self.frameworks[name], self._base_dir)
            self._specs[name] = spec
        return spec

    def watch_for(self, name: str) -> WatchSettings:
        """Global watch settings with the framework's own overrides applied."""
        watch = self._watches.get(name)
        if watch is None:
            overrides = self.frameworks[name].watch_overrides()
            watch = self.watch.model_copy(update=overrides) if overrides else self.watch
            self._watches[name] = watch
        return watch

    def _check(self) -> None:
        for name, entry in self.frameworks.items():
            if not FRAMEWORK_NAME.match(name):
                raise SettingsError(
                    f"frameworks.{name}: a framework name may use letters, digits, '_', '.'"
                    " and '-' (at most 64, not starting with a symbol)"
                )
            if entry.preset in (None, CUSTOM):
                if not entry.command:
                    raise SettingsError(
                        f"frameworks.{name}.command: required for a framework without a preset"
                    )
                if entry.url is None and entry.port is None:
                    raise SettingsError(
                        f"frameworks.{name}.url: required (or port) for a framework"
                        " without a preset"
                    )
            try:
                self.framework(name)
            except ValueError as exc:  # e.g. an unbalanced quote in the command
                raise SettingsError(f"frameworks.{name}.command: {exc}") from None
        if not self.frameworks:
            raise SettingsError("frameworks: at least one framework must be defined")
        if self.default_framework not in self.frameworks:
            raise SettingsError(
                f"default_framework: {self.default_framework!r} is not defined in frameworks"
                f"{did_you_mean(self.default_framework, self.frameworks)}"
                f" (defined: {', '.join(self.frameworks)})"
            )


def local_override_path(path: Path) -> Path:
    """``settings.json`` → ``settings.local.json`` beside it."""
    return path.with_name(f"{path.stem}.local{path.suffix or '.json'}")


def check_slots(settings: Settings) -> None:
    from .slots import check  # it derives Settings: imported once those exist

    check(settings)


def parse_settings(
    data: dict[str, Any],
    base_dir: Path,
    source: str,
    local: tuple[str, dict[str, Any]] | None = None,
) -> Settings:
    """``local``: the override file's name and data, to say which file holds a mistake."""
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        lines = []
        for e in exc.errors():
            owner = ""
            if local is not None:
                owner = f"(in {local[0]}) " if holds(local[1], tuple(e["loc"])) else ""
            lines.append(describe(Settings, e, owner))
        raise SettingsError(f"{source}: " + "\n  ".join(lines)) from None
    settings._base_dir = base_dir
    settings._source = source
    try:
        settings._check()
        check_slots(settings)
    except SettingsError as exc:
        raise SettingsError(f"{source}: {exc}") from None
    return settings


def load_settings(path: Path | None) -> Settings:
    """Load and validate settings; a missing file at the default location means defaults.

    ``path`` None means: the built-in defaults (the demo framework), relative paths
    resolved against the current directory.
    """
    if path is None:
        return parse_settings({}, Path.cwd(), "built-in defaults")
    path = path.expanduser().absolute()
    data = read_json(path)
    source = str(path)
    local = local_override_path(path)
    override = None
    if local.exists():
        local_data = read_json(local)
        data = merge(data, local_data)
        source = f"{path} + {local.name}"
        override = (local.name, local_data)
    return parse_settings(data, path.parent, source, override)
