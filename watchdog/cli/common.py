"""What every command shares: where the checkout is, the settings, the exit codes."""

from __future__ import annotations

from pathlib import Path

from ..settings import Settings, load_settings

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
