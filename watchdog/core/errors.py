"""Refusals a person's command can meet; each message is a sentence for the page."""


class UnknownFramework(ValueError):
    """A framework name that is not in the settings."""


class NotInstalled(ValueError):
    """A framework whose folder or program is missing on this machine."""


class BusyRefused(RuntimeError):
    """A person's stop/restart/switch while a generation runs, without force."""


class WatchDisabled(RuntimeError):
    """A start/stop/switch asked of a watchdog run with ``--no-watch``."""


class ShuttingDown(RuntimeError):
    """A command that arrived while the watchdog was shutting down."""
