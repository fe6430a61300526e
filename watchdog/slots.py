"""GPU slots: one framework alive per slot, each slot on its own GPUs.

A machine with four GPUs runs up to four frameworks at once, one per slot; each slot
has its own supervisor (state, backoff, restarts, remembered choice), its own log
folder and its own door. Without ``slots`` in the settings there is one slot, unnamed,
and nothing changes.

A slot is the watchdog's settings, seen from that slot (``for_slot``): its default
framework; every framework's port moved by ``port_offset``; ``CUDA_VISIBLE_DEVICES``
set to its GPUs (and ComfyUI's own ``--cuda-device`` for a one-GPU slot, since
ComfyUI sets that variable itself from the flag); its logs under
``<logs>/slots/<name>``; its door on ``app_port`` + its index.

    >>> s = load_settings(Path("settings.json"))                     # doctest: +SKIP
    >>> gpu1 = for_slot(s, "gpu1")
    >>> gpu1.framework("comfyui").env["CUDA_VISIBLE_DEVICES"], gpu1.framework("comfyui").url
    ('1', 'http://127.0.0.1:8288')
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from .frameworks.presets import PRESETS
from .settings import FRAMEWORK_NAME, FrameworkEntry, Settings, SettingsError, did_you_mean

SLOTS_DIR = "slots"
# Presets whose framework picks its device from a flag of its own, by physical index.
DEVICE_FLAG = {"comfyui": "--cuda-device"}


def names(settings: Settings) -> list[str | None]:
    """The slots, in settings order; ``[None]``: no slots, the one unnamed slot."""
    return list(settings.slots) or [None]


def check(settings: Settings) -> None:
    """Mistakes only a whole view shows: an unknown default, two slots on one port or
    on one GPU (one framework per GPU is the point)."""
    idle = settings.idle
    if settings.slots and idle.after_min > 0 and idle.action == "command":
        # Each slot keeps its own idle clock; a machine-wide command would need all of
        # them idle at once, which is not built yet.
        raise SettingsError(
            'idle.action: "command" does not work with slots yet (each slot would run it'
            ' on its own idleness); use "stop", which sleeps each slot by itself'
        )
    seen_gpus: dict[str, str] = {}
    seen_offsets: dict[int, str] = {}
    for name, slot in settings.slots.items():
        where = f"slots.{name}"
        if not FRAMEWORK_NAME.match(name):
            raise SettingsError(f"{where}: a slot name may use letters, digits, '_', '.' and '-'")
        default = slot.default_framework
        if default is not None and default not in settings.frameworks:
            hint = did_you_mean(default, settings.frameworks)
            raise SettingsError(
                f"{where}.default_framework: {default!r} is not defined in frameworks{hint}"
            )
        if slot.port_offset in seen_offsets:
            other = seen_offsets[slot.port_offset]
            raise SettingsError(
                f"{where}.port_offset: {slot.port_offset} is {other}'s too: their frameworks"
                " would fight for one port"
            )
        seen_offsets[slot.port_offset] = name
        for gpu in slot.gpus.split(","):
            if gpu in seen_gpus:
                raise SettingsError(
                    f"{where}.gpus: GPU {gpu} is in {seen_gpus[gpu]} already (one framework"
                    " per GPU)"
                )
            seen_gpus[gpu] = name


def index_of(settings: Settings, slot: str | None) -> int:
    return 0 if slot is None else list(settings.slots).index(slot)


def for_slot(settings: Settings, slot: str | None) -> Settings:
    """The settings as the slot's supervisor sees them (the settings themselves for
    the one unnamed slot)."""
    if slot is None:
        return settings
    spec = settings.slots[slot]
    frameworks = {name: _entry(settings, name, spec.gpus, spec.port_offset)
                  for name in settings.frameworks}  # fmt: skip
    logs_dir = settings.logs_dir / SLOTS_DIR / slot
    app_port = settings.server.app_port
    derived = settings.model_copy(
        update={
            "default_framework": spec.default_framework or settings.default_framework,
            "frameworks": frameworks,
            "logs": settings.logs.model_copy(update={"dir": str(logs_dir)}),
            "server": settings.server.model_copy(
                update={"app_port": app_port + index_of(settings, slot) if app_port else 0}
            ),
        }
    )
    derived._base_dir = settings.base_dir
    derived._source = f"{settings.source} (slot {slot})"
    derived._specs, derived._watches = {}, {}  # resolved anew, with this slot's ports
    return derived


def _entry(settings: Settings, name: str, gpus: str, offset: int) -> FrameworkEntry:
    entry = settings.frameworks[name]
    update: dict[str, object] = {"env": {**entry.env, "CUDA_VISIBLE_DEVICES": gpus}}
    port = entry.port
    if port is None and entry.url is None and entry.preset in PRESETS:
        port = PRESETS[entry.preset].port
    if port:
        update["port"] = port + offset
    if entry.url is not None:
        update["url"] = _moved(entry.url, offset)
    flag = DEVICE_FLAG.get(entry.preset or "")
    if flag and "," not in gpus and entry.command is None:
        args = entry.args or []
        extra = [flag, gpus]
        update["args"] = f"{args} {flag} {gpus}" if isinstance(args, str) else [*args, *extra]
    return entry.model_copy(update=update)


def _moved(url: str, offset: int) -> str:
    parts = urlsplit(url)
    if parts.port is None or not offset:
        return url
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return urlunsplit(parts._replace(netloc=f"{host}:{parts.port + offset}"))
