"""sd-watchdog entry point: parse flags, load settings, supervise, serve the control page.

python app.py                          # supervise the default framework, page on :5005
python app.py --settings my.json --no-server
python app.py --no-watch               # page and logs only, never start or stop
python app.py set-password admin       # credentials for the page, API and routes
"""

from __future__ import annotations

import argparse
import getpass
import logging
import shlex
import signal
import sys
import threading
from pathlib import Path

from watchdog import __version__
from watchdog.runtime import reaper
from watchdog.runtime.instance_lock import AlreadyRunning, InstanceLock
from watchdog.runtime.service import Service
from watchdog.settings import Settings, SettingsError, load_settings
from watchdog.web.auth import (
    Authenticator,
    Credentials,
    CredentialsError,
    load_credentials,
    save_credentials,
)

HERE = Path(__file__).resolve().parent
DEFAULT_SETTINGS = HERE / "settings.json"
EXIT_SETTINGS = 2
EXIT_LOCKED = 3
EXIT_NO_CREDENTIALS = 4
EXIT_SERVER = 5

log = logging.getLogger("sd-watchdog")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="app.py", description="sd-watchdog " + __version__)
    p.add_argument(
        "--settings",
        type=Path,
        help=f"settings file (default: {DEFAULT_SETTINGS.name} beside app.py, else built-ins)",
    )
    p.add_argument("--no-server", action="store_true", help="supervise only, serve no page")
    p.add_argument("--no-watch", action="store_true", help="page and logs only, never launch")
    p.add_argument(
        "--public-host", action="store_true", help="serve the page on 0.0.0.0 (needs a password)"
    )
    p.add_argument("--port", type=int, help="port of the control page (default: settings, 5005)")
    p.add_argument(
        "--share", action="store_true", help="also a public gradio.live link (needs a password)"
    )
    p.add_argument(
        "--leave-running",
        action="store_true",
        help="on SIGTERM/SIGINT, exit but leave the framework running",
    )
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p.parse_args(argv)


def parse_set_password(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="app.py set-password",
        description="Set the user and password for the control page, its API and routes."
        " Reads the password from the terminal, or from standard input when piped.",
    )
    p.add_argument("user")
    p.add_argument("--settings", type=Path, help="settings file whose auth_file to write")
    return p.parse_args(argv)


def settings_from(path: Path | None) -> Settings:
    if path is None and DEFAULT_SETTINGS.exists():
        path = DEFAULT_SETTINGS
    return load_settings(path)


def set_password(argv: list[str]) -> int:
    args = parse_set_password(argv)
    try:
        settings = settings_from(args.settings)
    except SettingsError as exc:
        print(f"sd-watchdog: settings error: {exc}", file=sys.stderr)
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
    print("restart the watchdog for the change to take effect")
    return 0


def parse_autostart(argv: list[str], install: bool) -> argparse.Namespace:
    verb = "install-autostart" if install else "uninstall-autostart"
    p = argparse.ArgumentParser(
        prog=f"app.py {verb}",
        description="Start the watchdog at boot with a systemd unit (Restart=always), or an"
        " /etc/rc.local entry on machines without systemd."
        if install
        else "Remove the systemd unit and the /etc/rc.local entry, whichever exist.",
    )
    p.add_argument("--root", type=Path, default=Path("/"), help="write under this prefix")
    if install:
        p.add_argument("--rc-local", action="store_true", help="an /etc/rc.local entry instead")
        p.add_argument("--settings", type=Path, help="settings file the watchdog will use")
        p.add_argument("--public-host", action="store_true", help="serve the page on 0.0.0.0")
        p.add_argument("--port", type=int, help="port of the control page")
        p.add_argument("--user", help="run as this user (systemd only)")
    return p.parse_args(argv)


def autostart(argv: list[str], install: bool) -> int:
    from watchdog import autostart as boot

    args = parse_autostart(argv, install)
    root = args.root.absolute()
    if not install:
        removed = boot.uninstall(root)
        for path in removed:
            print(f"removed {path}")
        print("nothing to remove" if not removed else "the watchdog no longer starts at boot")
        return 0
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
        app=HERE / "app.py",
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
    cmd = [sys.executable, str(HERE / "app.py"), "set-password", "admin"]
    if settings_path is not None:
        cmd += ["--settings", str(settings_path)]
    return shlex.join(cmd)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["set-password"]:
        return set_password(argv[1:])
    if argv[:1] in (["install-autostart"], ["uninstall-autostart"]):
        return autostart(argv[1:], install=argv[0] == "install-autostart")
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = settings_from(args.settings)
    except SettingsError as exc:
        print(f"sd-watchdog: settings error: {exc}", file=sys.stderr)
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

    # Orphans of a framework's tree come to us, not to init: found, stopped, reaped.
    # As PID 1 in a container, every orphan does. SIGCHLD only wakes the reaper.
    reaper.become_subreaper()
    reaping = reaper.Reaper()
    reaping.start()
    signal.signal(signal.SIGCHLD, lambda _signum, _frame: reaping.wake())
    before, after = reaper.raise_open_files_limit()
    if after > before:
        log.info("open-files limit raised from %d to %d", before, after)

    done = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s; shutting down", signal.Signals(signum).name)
        done.set()

    # Installing handlers also matters for the children: a signal we inherited as
    # ignored (started by `cmd &` from a script) would otherwise be ignored by the
    # framework too; handlers are reset to default on exec, SIG_IGN is not.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    service = Service(settings, watch=not args.no_watch)
    status = service.start()
    log.info(
        "sd-watchdog %s: settings %s; logs in %s; %s is %s",
        __version__,
        settings.source,
        settings.logs_dir,
        status.framework,
        status.state.value,
    )
    server = None
    try:
        if not args.no_server:
            from watchdog.web.server import WebServer, build_app, open_share_link

            auth = Authenticator(
                creds,
                service.supervisor.events,
                settings.server.max_failed_logins,
                settings.server.lockout_s,
            )
            port = args.port if args.port is not None else settings.server.port
            server = WebServer(build_app(service, auth), host, port)
            try:
                bound = server.start()
            except (OSError, TimeoutError) as exc:
                print(
                    f"sd-watchdog: cannot serve the page on {host}:{port}: {exc}", file=sys.stderr
                )
                return EXIT_SERVER
            shown = "127.0.0.1" if host == "0.0.0.0" else host
            log.info(
                "control page: http://%s:%d/ (%s)",
                shown,
                bound,
                "password required" if creds else "no password: this machine only",
            )
            if args.share:
                link = open_share_link(bound)
                if link:
                    log.info("public share link: %s", link)
        while not done.wait(3600):
            pass
    finally:
        if server is not None:
            server.stop()
        service.stop(leave_running=args.leave_running, requested_by="signal")
        reaping.stop()
        lock.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
