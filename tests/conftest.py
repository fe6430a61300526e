"""Shared fixtures: settings on ephemeral ports, supervisors that always shut down,
and a guard that fails any test (and the session) that leaves a process behind.

Every process a test starts inherits ``SDW_TEST_TOKEN`` from this process's
environment, so leftovers are found by that mark alone, however they were started.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from watchdog.runtime.supervisor import Status, Supervisor  # noqa: E402
from watchdog.settings import Settings, load_settings  # noqa: E402

USER, PASSWORD = "admin", "correct horse battery"
FAKES = Path(__file__).parent / "fakes"
# The status object's keys that DESIGN.md promises to scripts.
STATUS_KEYS = frozenset(
    {
        "framework",
        "state",
        "pid",
        "url",
        "is_running",
        "healthy",
        "spawned_secs_ago",
        "restarts",
        "last_exit",
        "APP_CMD",
        "command",  # the same, snake_case
        "frameworks",
    }
)


@pytest.fixture
def fake_nvml(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The pynvml-shaped fake, injected where ``import pynvml`` will find it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("pynvml", FAKES / "fake_pynvml.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    return module


TOKEN = f"SDW_TEST_TOKEN={uuid.uuid4().hex}"
os.environ["SDW_TEST_TOKEN"] = TOKEN.split("=", 1)[1]

FAST_WATCH: dict[str, Any] = {
    "health_interval_s": 0.2,
    "health_timeout_s": 0.3,
    "failure_threshold": 3,
    "startup_timeout_s": 15,
    "stop_timeout_s": 3,
    "backoff_initial_s": 0.1,
    "backoff_max_s": 1,
    "max_restarts": 5,
    "restart_window_s": 60,
    "stable_uptime_s": 0.5,
    "port_free_timeout_s": 3,
}


def leftover_pids() -> list[int]:
    """Live processes (not zombies) carrying this session's token."""
    mark = TOKEN.encode() + b"\0"
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if mark not in Path(f"/proc/{entry}/environ").read_bytes():
                continue
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            found.append(int(entry))
    return found


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    yield
    # A stop in flight may need a moment to finish its work; give it a little.
    deadline = time.monotonic() + 3
    left = leftover_pids()
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = leftover_pids()
    if left:
        described = [_describe(pid) for pid in left]
        kill_pids(left)
        pytest.fail(f"test left processes behind: {described}")


def _describe(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        cmd = "?"
    return f"{pid} {cmd[:120]}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    left = leftover_pids()
    if left:
        kill_pids(left)
        print(f"\nFAILED: processes left alive at the end of the session: {left}")
        session.exitstatus = 1


def run_app(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run ``app.py`` to completion (for invocations that exit by themselves)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "app.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def set_password(settings: Path, user: str = USER, password: str = PASSWORD) -> None:
    """``app.py set-password`` as a user runs it, the password piped in."""
    subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "set-password", user, "--settings", str(settings)],
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )


def demo_servers() -> list[int]:
    """Pids of every live demo server this test run started (it carries the run's
    token): a user's own ``./start.sh`` beside the suite is none of our business."""
    from watchdog.frameworks.presets import DEMO_APP

    out = []
    for pid in leftover_pids():
        try:
            if str(DEMO_APP).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                out.append(pid)
        except OSError:
            continue  # gone since
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def demo(port: int | None = None, *flags: str, **extra: Any) -> dict[str, Any]:
    """A settings entry for the demo framework on ``port`` with fault-mode flags."""
    entry: dict[str, Any] = {"preset": "demo", "port": port or free_port(), "args": list(flags)}
    entry.update(extra)
    return entry


INVOKEAI_DB = "invokeai-queue.json"


def invokeai_demo(folder: Path, seconds: float = 60) -> dict[str, Any]:
    """The ``invokeai`` preset whose process is the demo as InvokeAI, its queue kept in
    ``folder/invokeai-queue.json`` (its "database"), each job taking ``seconds``."""
    command = ["{python}", "{demo_app}", "--port", "{port}", "--impersonate", "invokeai",
               "--queue-db", str(folder / INVOKEAI_DB), "--prompt-s", str(seconds)]  # fmt: skip
    return {"preset": "invokeai", "command": command, "port": free_port(), "cwd": str(folder)}


def invokeai_enqueue(url: str, runs: int) -> None:
    """Queue ``runs`` jobs the way InvokeAI's UI does (``enqueue_batch``)."""
    body = {"batch": {"runs": runs}}
    resp = requests.post(f"{url}/api/v1/queue/default/enqueue_batch", json=body, timeout=10)
    assert resp.json()["enqueued"] == runs


def invokeai_db(folder: Path) -> list[dict[str, Any]]:
    """What the demo InvokeAI's database holds, oldest first."""
    return json.loads((folder / INVOKEAI_DB).read_text())


@pytest.fixture
def write_settings(tmp_path: Path) -> Callable[..., Path]:
    def write(
        frameworks: dict[str, Any] | None = None,
        default: str | None = None,
        watch: dict[str, Any] | None = None,
        logs: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        server: dict[str, Any] | None = None,
        notify: dict[str, Any] | None = None,
        idle: dict[str, Any] | None = None,
        slots: dict[str, Any] | None = None,
    ) -> Path:
        frameworks = frameworks or {"demo": demo()}
        data = {
            "default_framework": default or next(iter(frameworks)),
            "frameworks": frameworks,
            "watch": {**FAST_WATCH, **(watch or {})},
            "logs": {"dir": "logs", **(logs or {})},
            "metrics": {"interval_s": 0.5, **(metrics or {})},
            # The page and the door on ephemeral ports unless a test names them: the
            # suite runs beside a user's own watchdog on 5005 and 5006.
            "server": {"port": 0, "app_port": 0, **(server or {})},
            **({"notify": notify} if notify is not None else {}),
            **({"idle": idle} if idle is not None else {}),
            **({"slots": slots} if slots is not None else {}),
        }
        path = tmp_path / "settings.json"
        path.write_text(json.dumps(data, indent=2))
        return path

    return write


@pytest.fixture
def make_settings(write_settings: Callable[..., Path]) -> Callable[..., Settings]:
    def make(**kwargs: Any) -> Settings:
        return load_settings(write_settings(**kwargs))

    return make


@pytest.fixture
def supervise() -> Iterator[Callable[..., Supervisor]]:
    """Build supervisors that are always shut down (their trees stopped) after the test."""
    made: list[Supervisor] = []

    def make(settings: Settings, begin: bool = True, **kwargs: Any) -> Supervisor:
        sup = Supervisor(settings, **kwargs)
        made.append(sup)
        if begin:
            sup.begin()
        return sup

    yield make
    for sup in made:
        sup.shutdown(timeout=60)


@pytest.fixture
def service() -> Iterator[Callable[..., Any]]:
    """Start the core's services (supervisors, sampler, journal) without a front;
    stopped, with every framework, after the test."""
    from watchdog.runtime.service import Service

    started: list[Service] = []

    def start(settings: Settings, reader: Any = None) -> Service:
        svc = Service(settings, reader=reader)
        started.append(svc)
        svc.start()
        return svc

    yield start
    for svc in started:
        svc.stop()


class App:
    """``app.py`` in a process of its own; ``port``: with the page and its API."""

    def __init__(self, settings: Path, port: int | None = None, *flags: str) -> None:
        self.settings = settings
        self.logs = settings.parent / "logs"
        self.socket = self.logs / "control.sock"
        self.port = port
        cmd = [sys.executable, str(ROOT / "app.py"), "--settings", str(settings)]
        cmd += ["--port", str(port)] if port else ["--no-server"]
        cmd += list(flags)
        out = open(settings.parent / f"app-{time.monotonic_ns()}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        out.close()

    def wait_page(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/health", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            assert self.proc.poll() is None, "the watchdog died while starting"
            time.sleep(0.2)
        raise AssertionError("the page never came up")

    def wait_socket(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self.socket.exists():
            assert self.proc.poll() is None, "the watchdog died while starting"
            assert time.monotonic() < deadline, "no control socket"
            time.sleep(0.05)

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``app.py --settings S <args>``: a control command, as a user types it."""
        return run_app("--settings", str(self.settings), *args, timeout=timeout)

    def call(self, name: str, *data: object) -> str:
        base = f"http://127.0.0.1:{self.port}/gradio_api/call/{name}"
        r = requests.post(base, json={"data": list(data)}, timeout=30)
        r.raise_for_status()
        return requests.get(f"{base}/{r.json()['event_id']}", timeout=60).text

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def app() -> Iterator[Callable[..., App]]:
    """Start ``app.py`` processes (stopped with SIGTERM after the test)."""
    started: list[App] = []

    def start(settings: Path, port: int | None = None, *flags: str) -> App:
        a = App(settings, port, *flags)
        started.append(a)
        return a

    yield start
    for a in started:
        a.close()


class Web:
    """A running control page: ``url`` (with trailing slash), its supervisor, its token;
    ``door`` the door's URL (with trailing slash) and ``auth`` the front's Authenticator."""

    def __init__(
        self,
        url: str,
        sup: Supervisor,
        token: str | None,
        app: Any,
        service: Any,
        door: str | None = None,
        auth: Any = None,
    ) -> None:
        self.url = url
        self.sup = sup
        self.token = token
        self.app = app
        self.service = service
        self.door = door
        self.auth = auth


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Web]]:
    """The real core (supervisor, sampler, control socket) and the real front app
    (page, API, routes, auth gate) talking to it over the socket, on an ephemeral port."""
    from watchdog.control.api import ControlApi
    from watchdog.control.server import ControlSocket
    from watchdog.runtime.service import Service
    from watchdog.web.auth import Authenticator, Credentials, CredentialsFile, save_credentials
    from watchdog.web.config import FrontConfig
    from watchdog.web.link import CoreLink, JournalRelay
    from watchdog.web.metrics import DoorStats
    from watchdog.web.server import WebServer, build_app, build_door

    started: list[tuple[list[WebServer], ControlSocket, Service, Authenticator]] = []

    def start(
        settings: Settings,
        password: bool = False,
        reader=None,
        door: bool = False,
        config: dict[str, Any] | None = None,
        **auth_kwargs: Any,
    ) -> Web:
        service = Service(settings, reader=reader)
        service.start()
        control = ControlSocket(settings.logs_dir / "control.sock", ControlApi(service))
        control.start()
        core = CoreLink(control.path)
        token = None
        if password:  # a real auth.json, read as the front reads it
            creds, token = Credentials.create(USER, PASSWORD)
            save_credentials(settings.auth_path, creds)
        auth = Authenticator(CredentialsFile(settings.auth_path), JournalRelay(core), **auth_kwargs)
        front = FrontConfig.from_settings(settings, control.path, "127.0.0.1", 0).but(
            **(config or {})
        )
        tls = (front.tls_cert, front.tls_key) if front.tls else None
        stats = DoorStats()
        app = build_app(core, auth, front, stats)
        servers = [WebServer(app, "127.0.0.1", 0, tls=tls)]
        if door:
            door_app = build_door(core, auth, front, stats)
            servers.append(WebServer(door_app, "127.0.0.1", 0, tls=tls))
        started.append((servers, control, service, auth))
        ports = [server.start() for server in servers]
        scheme = "https" if tls else "http"
        door_url = f"{scheme}://127.0.0.1:{ports[1]}/" if door else None
        service.door_url = door_url
        return Web(
            f"{scheme}://127.0.0.1:{ports[0]}/",
            service.supervisor,
            token,
            app,
            service,
            door_url,
            auth,
        )

    yield start
    for servers, control, service, auth in started:
        for server in servers:
            server.stop()
        auth.close()
        control.stop()
        service.stop()


def ts(event: dict[str, Any]) -> float:
    """An event's time stamp as epoch seconds."""
    from datetime import datetime

    return datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()


def events(sup: Supervisor, kind: str | None = None) -> list[dict[str, Any]]:
    """The journal, oldest first (optionally one kind of event)."""
    return list(reversed(sup.events.tail(10_000, event=kind)))


def wait_event(sup: Supervisor, kind: str, timeout: float, count: int = 1) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = events(sup, kind)
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no {count} x {kind!r} within {timeout}s; journal: {events(sup)}")
        time.sleep(0.02)


def journal(logs: Path) -> list[dict[str, Any]]:
    """``events.jsonl`` of a watchdog in another process, oldest first."""
    try:
        lines = (logs / "events.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


def wait_journal(
    logs: Path, kind: str, count: int = 1, timeout: float = 20
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in journal(logs) if e["event"] == kind]
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no {count} x {kind}: {journal(logs)}")


def pid_in_log(path: Path, pattern: str, timeout: float = 5) -> int:
    """The pid in the first line of a log matching ``pattern`` (its group 1)."""
    from watchdog.runtime.logs import tail_lines

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in tail_lines(path, 50):
            m = re.search(pattern, line)
            if m:
                return int(m.group(1))
        time.sleep(0.02)
    raise AssertionError(f"{pattern!r} never appeared in {path}")


def running(status: Status) -> bool:
    return status.state.value == "RUNNING"


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")
