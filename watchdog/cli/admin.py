"""The commands that set the watchdog up: ``set-password``, ``install-autostart``,
``uninstall-autostart``. They run without a core."""

from __future__ import annotations

import argparse
import getpass
import pwd
import shlex
import sys
from pathlib import Path

from ..settings import SettingsError
from ..web.auth import Credentials, CredentialsError, load_credentials, save_credentials
from .common import (
    APP,
    DEFAULT_SETTINGS,
    EXIT_NO_CREDENTIALS,
    EXIT_SETTINGS,
    HERE,
    settings_from,
    settings_or_say,
)


def set_password(args: argparse.Namespace) -> int:
    settings = settings_or_say(args.settings)
    if settings is None:
        return EXIT_SETTINGS
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.user}: ")
        if getpass.getpass("again: ") != password:
            print("the two passwords differ; nothing changed", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        print("use at least 8 characters; nothing changed", file=sys.stderr)
        return 1
    creds, token = Credentials.create(args.user, password)
    save_credentials(settings.auth_path, creds)
    print(f"saved credentials for {args.user!r} in {settings.auth_path} (mode 0600)")
    print(f"API token for scripts (shown once, keep it): {token}")
    print("a running watchdog uses it at once; sessions signed in before are ended")
    return 0


def autostart(args: argparse.Namespace, install: bool) -> int:
    from .. import autostart as boot

    root = args.root.absolute()
    if not install:
        removed = boot.uninstall(root)
        for path in removed:
            print(f"removed {path}")
        print("nothing to remove" if not removed else "the watchdog no longer starts at boot")
        return 0
    if args.user is not None:
        try:
            pwd.getpwnam(args.user)
        except (KeyError, ValueError):
            print(
                f"sd-watchdog: --user {args.user!r}: no such user on this machine",
                file=sys.stderr,
            )
            return EXIT_SETTINGS
    try:
        settings = settings_from(args.settings)
        creds = load_credentials(settings.auth_path)
    except (SettingsError, CredentialsError) as exc:
        print(f"sd-watchdog: {exc}", file=sys.stderr)
        return EXIT_SETTINGS
    if args.public_host and creds is None:
        print(
            "sd-watchdog: a public page needs a password first:\n\n"
            f"    {set_password_hint(args.settings)}\n",
            file=sys.stderr,
        )
        return EXIT_NO_CREDENTIALS
    source = args.settings.absolute() if args.settings else DEFAULT_SETTINGS
    extra = ["--settings", str(source)] if source.exists() else []
    extra += ["--public-host"] if args.public_host else []
    extra += ["--port", str(args.port)] if args.port is not None else []
    launch = boot.Launch(
        python=Path(sys.executable),
        app=APP,
        args=tuple(extra),
        workdir=HERE,
        stop_timeout_s=max(settings.watch_for(n).stop_timeout_s for n in settings.names),
        user=args.user,
    )
    if args.rc_local:
        written = boot.install_rc_local(root, launch, settings.logs_dir / "watchdog.out")
    else:
        written = boot.install_systemd(root, launch)
    for path in written:
        print(f"wrote {path}")
    if not args.rc_local and root == Path("/"):
        print("start it now with: systemctl start sd-watchdog")
    return 0


def set_password_hint(settings_path: Path | None) -> str:
    # The exact command, runnable as printed (this interpreter, this checkout).
    cmd = [sys.executable, str(APP), "set-password", "admin"]
    if settings_path is not None:
        cmd += ["--settings", str(settings_path)]
    return shlex.join(cmd)
