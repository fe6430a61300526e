"""What every command shares: where the checkout is, the settings, the exit codes."""

from __future__ import annotations

import sys
from pathlib import Path

from ..settings import Settings, SettingsError, load_settings

HERE = Path(__file__).resolve().parent.parent.parent  # the checkout: app.py's folder
APP = HERE / "app.py"
DEFAULT_SETTINGS = HERE / "settings.json"

EXIT_NO_CORE = 1  # a control command with no watchdog running
EXIT_SETTINGS = 2
EXIT_LOCKED = 3
EXIT_NO_CREDENTIALS = 4
EXIT_SERVER = 5
EXIT_REFUSED = 6  # the running watchdog refused the command (it says why)


def settings_from(path: Path | None) -> Settings:
    """The settings file named, else ``settings.json`` beside app.py, else built-ins."""
    if path is None and DEFAULT_SETTINGS.exists():
        path = DEFAULT_SETTINGS
    return load_settings(path)


def settings_or_say(path: Path | None) -> Settings | None:
    """``settings_from``, or None after saying on stderr what is wrong with them
    (the caller returns ``EXIT_SETTINGS``)."""
    try:
        return settings_from(path)
    except SettingsError as exc:
        print(f"sd-watchdog: settings error: {exc}", file=sys.stderr)
        return None
