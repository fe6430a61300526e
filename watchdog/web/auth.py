"""Who may use the control page and API: credentials, sessions, lockout, the gate.

Credentials live in ``auth.json`` beside the settings (mode 0600): a user name, a
salted scrypt hash of the password and a SHA-256 of a random API token. The plain
password and token are never stored. ``python app.py set-password USER`` writes it.

With credentials set, :class:`AuthGate` (an ASGI middleware in front of everything,
Gradio included) lets a request through only with one of:

- HTTP Basic (browsers prompt for it; curl ``-u user:pass``),
- ``Authorization: Bearer <token>`` (scripts),
- the session cookie from ``POST /login`` (what ``gradio_client``'s ``auth=`` does).

``/health`` is always open and says nothing but "ok". Wrong credentials are slowed
down, journaled as ``auth_failed`` and, after ``max_failed_logins`` in a row from
one client, locked out for ``lockout_s`` (even the right password), then forgiven.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from ..runtime.events import EventLog

OPEN_PATHS = frozenset({"/health"})
LOGIN_PATHS = frozenset({"/login", "/login/"})
SESSION_COOKIE = "sdw_session"
SESSION_TTL_S = 7 * 24 * 3600
VERIFIED_CACHE_TTL_S = 600
FAILURE_DELAY_S = 0.5
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _hash_password(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, maxmem=64 * 1024 * 1024, **_SCRYPT)


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Credentials:
    user: str
    salt: bytes
    password_hash: bytes
    token_hash: str

    @classmethod
    def create(cls, user: str, password: str) -> tuple[Credentials, str]:
        """New credentials and the API token, which is shown once and never stored."""
        salt = secrets.token_bytes(16)
        token = secrets.token_urlsafe(32)
        return cls(user, salt, _hash_password(password, salt), _hash_token(token)), token

    def check_password(self, user: str, password: str) -> bool:
        expected = _hash_password(password, self.salt)
        return hmac.compare_digest(user.encode(), self.user.encode()) & hmac.compare_digest(
            expected, self.password_hash
        )

    def check_token(self, token: str) -> bool:
        return hmac.compare_digest(_hash_token(token), self.token_hash)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "user": self.user,
            "scrypt": _SCRYPT,
            "salt": self.salt.hex(),
            "password_hash": self.password_hash.hex(),
            "token_sha256": self.token_hash,
        }


class CredentialsError(Exception):
    pass


def load_credentials(path: Path) -> Credentials | None:
    """None when no credentials were set; CredentialsError when the file is damaged."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Credentials(
            str(data["user"]),
            bytes.fromhex(data["salt"]),
            bytes.fromhex(data["password_hash"]),
            str(data["token_sha256"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CredentialsError(
            f"{path} is unreadable ({exc.__class__.__name__}); set the password again"
        ) from None


def save_credentials(path: Path, creds: Credentials) -> None:
    """Write with 0600 from the first byte (no window where others could read it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(creds.to_json(), fh)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


class Authenticator:
    """Checks credentials, issues sessions, counts failures per client. Thread-safe."""

    def __init__(
        self,
        creds: Credentials | None,
        events: EventLog | None = None,
        max_failures: int = 5,
        lockout_s: float = 60,
    ) -> None:
        self.creds = creds
        self.events = events
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self._lock = threading.Lock()
        self._sessions: dict[str, float] = {}
        self._verified: dict[str, float] = {}  # digest of user:password → valid until
        self._failures: dict[str, int] = {}
        self._locked_until: dict[str, float] = {}

    @property
    def enabled(self) -> bool:
        return self.creds is not None

    def locked_for(self, client: str) -> float:
        with self._lock:
            until = self._locked_until.get(client, 0.0)
            left = until - time.monotonic()
            if left <= 0 and client in self._locked_until:
                del self._locked_until[client]  # lock expired: forgiven
                self._failures.pop(client, None)
            return max(0.0, left)

    async def check_password(self, user: str, password: str) -> bool:
        """scrypt costs tens of ms and a browser sends Basic with every request: a
        recent success is remembered, and the hash runs off the event loop."""
        assert self.creds is not None
        digest = hashlib.sha256(f"{user}\0{password}".encode()).hexdigest()
        with self._lock:
            if self._verified.get(digest, 0.0) > time.monotonic():
                return True
        if not await asyncio.to_thread(self.creds.check_password, user, password):
            return False
        with self._lock:
            now = time.monotonic()
            self._verified = {k: v for k, v in self._verified.items() if v > now}
            self._verified[digest] = now + VERIFIED_CACHE_TTL_S
        return True

    def check_token(self, token: str) -> bool:
        assert self.creds is not None
        return self.creds.check_token(token)

    def new_session(self) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            now = time.monotonic()
            self._sessions = {k: v for k, v in self._sessions.items() if v > now}
            self._sessions[token] = now + SESSION_TTL_S
        return token

    def check_session(self, token: str) -> bool:
        with self._lock:
            return self._sessions.get(token, 0.0) > time.monotonic()

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)

    def failed(self, client: str, user: str | None, path: str, how: str) -> None:
        with self._lock:
            count = self._failures.get(client, 0) + 1
            self._failures[client] = count
            locked = count >= self.max_failures
            if locked:
                self._locked_until[client] = time.monotonic() + self.lockout_s
        if self.events is not None:
            self.events.write(
                "auth_failed",
                client=client,
                user=user,
                path=path,
                method=how,
                failures=count,
                locked_for_s=self.lockout_s if locked else None,
            )

    def refused_while_locked(self, client: str, path: str) -> None:
        if self.events is not None:
            self.events.write("auth_failed", client=client, path=path, method="locked out")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


class AuthGate:
    """ASGI middleware: refuses every request without valid credentials (see module doc)."""

    def __init__(self, app: ASGIApp, auth: Authenticator) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self.auth.enabled:
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown", 0))[0]
        locked = self.auth.locked_for(client)
        if locked > 0:
            self.auth.refused_while_locked(client, path)
            await asyncio.sleep(FAILURE_DELAY_S)
            await respond(
                scope,
                send,
                429,
                f"too many failed logins; try again in {locked:.0f} s",
                [(b"retry-after", str(int(locked) + 1).encode())],
            )
            return
        if path in LOGIN_PATHS and scope.get("method") == "POST":
            await self._login(scope, receive, send, client)
            return
        verdict = await self._credentials_ok(scope)
        if verdict is True:
            self.auth.succeeded(client)
            await self.app(scope, receive, send)
            return
        if verdict is not None:  # credentials were offered, and wrong
            self.auth.failed(client, verdict, path, "basic/bearer")
            await asyncio.sleep(FAILURE_DELAY_S)
        await respond(
            scope,
            send,
            401,
            "authentication required",
            [(b"www-authenticate", b'Basic realm="sd-watchdog", charset="UTF-8"')],
        )

    async def _credentials_ok(self, scope: Scope) -> bool | str | None:
        """True if valid; None if none offered; else the user name offered (or "")."""
        header = _header(scope, b"authorization")
        if header:
            kind, _, value = header.partition(" ")
            if kind.lower() == "basic":
                try:
                    user, _, password = base64.b64decode(value).decode().partition(":")
                except (ValueError, UnicodeDecodeError):
                    return ""
                return True if await self.auth.check_password(user, password) else user
            if kind.lower() == "bearer":
                return True if self.auth.check_token(value.strip()) else ""
            return ""
        cookie = _header(scope, b"cookie")
        if cookie:
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(cookie)
            except Exception:  # a malformed cookie header is just "no session"
                return None
            morsel = jar.get(SESSION_COOKIE)
            if morsel is not None:
                return True if self.auth.check_session(morsel.value) else None
        return None

    async def _login(self, scope: Scope, receive: Receive, send: Send, client: str) -> None:
        """``POST /login`` with a form (username, password), as gradio_client sends it."""
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > 16384:
                await respond(scope, send, 413, "login form too large")
                return
            if not message.get("more_body"):
                break
        form = parse_qs(body.decode("utf-8", errors="replace"))
        user = (form.get("username") or [""])[0].strip()
        password = (form.get("password") or [""])[0]
        if await self.auth.check_password(user, password):
            self.auth.succeeded(client)
            session = self.auth.new_session()
            cookie = f"{SESSION_COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/"
            await respond(
                scope,
                send,
                200,
                '{"success": true}',
                [(b"set-cookie", cookie.encode())],
                content_type=b"application/json",
            )
            return
        if user or password:  # an empty form is no attempt at all
            self.auth.failed(client, user, "/login", "login form")
            await asyncio.sleep(FAILURE_DELAY_S)
        await respond(scope, send, 401, '{"detail": "Incorrect credentials."}')


async def respond(
    scope: Scope,
    send: Send,
    status: int,
    text: str,
    headers: list[tuple[bytes, bytes]] | None = None,
    content_type: bytes = b"text/plain; charset=utf-8",
) -> None:
    """Answer at the ASGI level, without the app (a refusal before anything runs)."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 4401 if status == 401 else 4429})
        return
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
