"""Starting the watchdog at boot: a systemd unit, or an ``/etc/rc.local`` entry.

Both are written under a ``root`` prefix (``/`` on a real machine, a temp dir in
tests) and both are idempotent: installing twice leaves one unit, one entry.

The unit uses ``KillMode=process``: ``systemctl stop`` sends SIGTERM to the watchdog
alone, which stops the framework's tree itself (cleanly, with its stop signal and
timeout), while a *crashed* watchdog leaves the framework running, so the watchdog
that ``Restart=always`` brings back adopts it instead of starting a second copy.
(``control-group`` or ``mixed`` would kill the framework with every watchdog crash.)
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

UNIT = "sd-watchdog.service"
WANTS = "multi-user.target.wants"
BEGIN = "# >>> sd-watchdog >>>"
END = "# <<< sd-watchdog <<<"


@dataclass(frozen=True)
class Launch:
    """How to start the watchdog: interpreter, app.py, its arguments, where."""

    python: Path
    app: Path
    args: tuple[str, ...]
    workdir: Path
    stop_timeout_s: float
    user: str | None = None

    @property
    def argv(self) -> list[str]:
        return [str(self.python), str(self.app), *self.args]

    @property
    def command(self) -> str:
        """For a POSIX shell (rc.local)."""
        return shlex.join(self.argv)

    @property
    def exec_start(self) -> str:
        """For systemd, whose quoting is its own: ``%`` is a specifier and ``$`` a
        variable unless doubled, and only double quotes group words."""
        return " ".join(systemd_quote(a) for a in self.argv)


def systemd_quote(word: str) -> str:
    """One word of an ``ExecStart=`` line, taken literally by systemd."""
    escaped = word.replace("%", "%%").replace("$", "$$")
    if escaped and not any(c in escaped for c in " \t\"'\\;"):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _under(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


def unit_text(launch: Launch) -> str:
    user = f"User={launch.user}\n" if launch.user else ""
    # Room for the framework's own stop (stop signal, timeout, SIGKILL, sweep).
    timeout = int(launch.stop_timeout_s) + 30
    return f"""[Unit]
Description=sd-watchdog: keeps a Stable Diffusion web UI alive
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
{user}WorkingDirectory={str(launch.workdir).replace("%", "%%")}
ExecStart={launch.exec_start}
Restart=always
RestartSec=3
# Only the watchdog gets SIGTERM on stop; it stops the framework itself. A crashed
# watchdog leaves the framework running, and the restarted one adopts it.
KillMode=process
KillSignal=SIGTERM
TimeoutStopSec={timeout}
# systemd's default soft limit is 1024 open files: a flood of idle connections to the
# page could use them up. The watchdog also raises its soft limit to the hard one.
LimitNOFILE=65536
Environment=PYTHONUNBUFFERED=1

[Install]
WantedBy=multi-user.target
"""


def _systemctl(root: Path, *args: str) -> None:
    # Only on the real machine: a test root has no systemd to talk to.
    if root == Path("/") and shutil.which("systemctl"):
        subprocess.run(["systemctl", *args], check=False)


def install_systemd(root: Path, launch: Launch) -> list[Path]:
    unit = _under(root, f"/etc/systemd/system/{UNIT}")
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_text(unit_text(launch))
    link = unit.parent / WANTS / UNIT
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(Path("..") / UNIT)  # what `systemctl enable` does
    _systemctl(root, "daemon-reload")
    return [unit, link]


def rc_local_block(launch: Launch, log_file: Path) -> str:
    """rc.local runs as root, before any login: the log's folder is made first (a
    fresh clone has none), and with ``user`` the watchdog runs as that user (``su``
    gives it that user's HOME, so ``~`` in the settings is theirs)."""
    q = shlex.quote
    run = (
        f"mkdir -p {q(str(log_file.parent))} && cd {q(str(launch.workdir))} && "
        f"exec nohup {launch.command} >> {q(str(log_file))} 2>&1"
    )
    line = f"su -s /bin/sh {q(launch.user)} -c {q(run)} &" if launch.user else f"({run}) &"
    return f"{BEGIN}\n{line}\n{END}\n"


def _without_block(text: str) -> str:
    out, skipping = [], False
    for line in text.splitlines(keepends=True):
        if line.strip() == BEGIN:
            skipping = True
        elif line.strip() == END:
            skipping = False
        elif not skipping:
            out.append(line)
    return "".join(out)


def install_rc_local(root: Path, launch: Launch, log_file: Path) -> list[Path]:
    path = _under(root, "/etc/rc.local")
    text = path.read_text() if path.exists() else "#!/bin/sh\n\nexit 0\n"
    text = _without_block(text)
    block = rc_local_block(launch, log_file)
    lines = text.splitlines(keepends=True)
    # Before the final `exit 0`, which would end the script before us.
    at = next(
        (i for i in range(len(lines) - 1, -1, -1) if lines[i].strip() == "exit 0"), len(lines)
    )
    lines.insert(at, block)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines))
    os.chmod(path, 0o755)
    return [path]


def uninstall(root: Path) -> list[Path]:
    """Remove the unit, its enable link and the rc.local entry, whichever exist."""
    removed = []
    unit = _under(root, f"/etc/systemd/system/{UNIT}")
    for path in (unit.parent / WANTS / UNIT, unit):
        if path.is_symlink() or path.exists():
            if path == unit:
                _systemctl(root, "disable", UNIT)
            path.unlink()
            removed.append(path)
    rc = _under(root, "/etc/rc.local")
    if rc.exists():
        text = rc.read_text()
        cleaned = _without_block(text)
        if cleaned != text:
            rc.write_text(cleaned)
            removed.append(rc)
    if removed:
        _systemctl(root, "daemon-reload")
    return removed
