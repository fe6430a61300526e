"""The gate: an ASGI middleware in front of everything the front serves, page and door.

In order, before anything else runs:

1. ``Host`` must be one this machine answers to (``clients.HostAllowlist``), with or
   without a password: no DNS rebinding. ``/health`` is exempt and says only "ok".
2. With credentials set, a request passes with one of: a session cookie (from the
   sign-in form, or ``POST /login`` as ``gradio_client`` sends it), HTTP Basic
   (``curl -u``), or ``Authorization: Bearer <token>``.
3. A browser without them gets the sign-in form; a script gets 401 and
   ``WWW-Authenticate: Basic``; a client over its limit gets 429 with Retry-After.

Downstream sees ``x-sdw-user`` (the signed-in user; never the client's own header).
On the door, our cookie and our ``Authorization`` are taken out of the request: the
framework never sees the watchdog's credentials.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs

from .asgi import ASGIApp, Receive, Scope, Send, respond
from .auth import SESSION_TTL_S, Authenticator, Verdict
from .clients import ClientResolver, HostAllowlist, header
from .signin import safe_next, signin_page

SESSION_COOKIE = "sdw_session"
USER_HEADER = b"x-sdw-user"
FAILURE_DELAY_S = 0.5
MAX_FORM_BYTES = 16384


@dataclass(frozen=True)
class GatePaths:
    """Where the gate's own pages live on a port (the door keeps out of the
    framework's way under ``/__sdw/``)."""

    login: str
    logout: str
    health: str | None
    what: str  # "the control page", "ComfyUI"… for the sign-in form


PAGE_PATHS = GatePaths("/login", "/logout", "/health", "the control page")
DOOR_PATHS = GatePaths("/__sdw/login", "/__sdw/logout", "/__sdw/health", "the framework")
DOOR_HEALTH = DOOR_PATHS.health


def _cookie(scope: Scope) -> str | None:
    raw = header(scope, b"cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:  # a malformed cookie header is just "no session"
        return None
    morsel = jar.get(SESSION_COOKIE)
    return morsel.value if morsel is not None else None


def _wants_html(scope: Scope) -> bool:
    accept = header(scope, b"accept") or ""
    return scope["type"] == "http" and scope.get("method") == "GET" and "text/html" in accept


class AuthGate:
    def __init__(
        self,
        app: ASGIApp,
        auth: Authenticator,
        hosts: HostAllowlist | None = None,
        clients: ClientResolver | None = None,
        paths: GatePaths = PAGE_PATHS,
        secure: bool = False,
        strip_credentials: bool = False,
    ) -> None:
        self.app = app
        self.auth = auth
        self.hosts = hosts or HostAllowlist()
        self.clients = clients or ClientResolver()
        self.paths = paths
        self.secure = secure
        self.strip = strip_credentials

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path == self.paths.health:
            if path == DOOR_HEALTH:  # answered here: the framework's paths are not ours
                await respond(
                    scope, send, 200, '{"status": "ok"}', content_type=b"application/json"
                )
            else:
                await self.app(scope, receive, send)
            return
        client = self.clients.key(scope)
        host = header(scope, b"host")
        if not self.hosts.allows(host):
            self.auth.refused(client, "host not allowed", host=(host or "(none)")[:100])
            await respond(
                scope,
                send,
                421,
                f"this server does not answer to the name {(host or '(none)')[:100]!r};"
                " add it to server.allowed_hosts in settings.json if it is yours",
            )
            return
        headers = [(k, v) for k, v in scope.get("headers", []) if k != USER_HEADER]
        if not self.auth.enabled:
            await self.app({**scope, "headers": headers}, receive, send)
            return
        if path == self.paths.login and scope.get("method") == "POST":
            await self._login(scope, receive, send, client)
            return
        if path == self.paths.logout:
            await self._logout(scope, send)
            return
        if path == self.paths.login and scope["type"] == "http":
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            await self._form(scope, send, 200, (query.get("next") or ["/"])[0])
            return
        user, verdict = await self._identify(scope, client)
        if user is not None:
            if self.strip:  # the door: the framework learns nothing of ours
                headers = _without_our_credentials(headers)
            else:
                headers.append((USER_HEADER, user.encode("utf-8", "replace")))
            await self.app({**scope, "headers": headers}, receive, send)
            return
        await self._refuse(scope, send, client, verdict)

    async def _identify(self, scope: Scope, client: str) -> tuple[str | None, Verdict | None]:
        """(user, None) when let in; (None, verdict) when credentials were offered and
        refused; (None, None) when none were offered (no failed login at all)."""
        creds = self.auth.creds
        authorization = header(scope, b"authorization")
        if authorization:
            kind, _, value = authorization.partition(" ")
            if kind.lower() == "basic":
                try:
                    user, _, password = base64.b64decode(value).decode().partition(":")
                except (ValueError, UnicodeDecodeError):
                    user, password = "", ""
                verdict = await self.auth.check_password(client, user, password)
                return (user if verdict.ok else None), verdict
            if kind.lower() == "bearer":
                verdict = self.auth.check_token(client, value.strip())
                return (creds.user if verdict.ok and creds else None), verdict
        token = _cookie(scope)
        if token:
            user = self.auth.session_user(token)
            if user is not None:
                return user, None
        return None, None

    async def _refuse(self, scope: Scope, send: Send, client: str, verdict: Verdict | None) -> None:
        if verdict is not None and verdict.retry_after > 0:
            await self._too_many(scope, send, client, verdict)
            return
        if verdict is not None:  # offered, and wrong: already journaled
            await asyncio.sleep(FAILURE_DELAY_S)
        if _wants_html(scope):
            target = scope.get("path", "/")
            query = scope.get("query_string", b"").decode("latin-1")
            await self._form(scope, send, 401, target + (f"?{query}" if query else ""))
            return
        await respond(
            scope,
            send,
            401,
            "authentication required",
            [(b"www-authenticate", b'Basic realm="sd-watchdog", charset="UTF-8"')],
        )

    async def _too_many(self, scope: Scope, send: Send, client: str, verdict: Verdict) -> None:
        wait = int(verdict.retry_after) + 1
        if verdict.busy:
            await respond(
                scope,
                send,
                503,
                "too many sign-ins at once; try again shortly",
                [(b"retry-after", str(wait).encode())],
            )
            return
        # No delay: nothing was checked, and a wait would only hold a connection of ours.
        self.auth.refused(client, "locked out", path=scope.get("path", "")[:200])
        await respond(
            scope,
            send,
            429,
            f"too many failed sign-ins; try again in {wait} s",
            [(b"retry-after", str(wait).encode())],
        )

    async def _form(
        self,
        scope: Scope,
        send: Send,
        status: int,
        next_path: str,
        message: str = "",
        user: str = "",
    ) -> None:
        page = signin_page(self.paths.login, next_path, self.paths.what, message, user)
        await respond(scope, send, status, page, content_type=b"text/html; charset=utf-8")

    async def _login(self, scope: Scope, receive: Receive, send: Send, client: str) -> None:
        """``POST`` of the sign-in form (it has ``next``: answered with a redirect) or
        of ``gradio_client``'s login (answered with JSON)."""
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > MAX_FORM_BYTES:
                await respond(scope, send, 413, "sign-in form too large")
                return
            if not message.get("more_body"):
                break
        form = parse_qs(body.decode("utf-8", errors="replace"))
        user = (form.get("username") or [""])[0].strip()
        password = (form.get("password") or [""])[0]
        browser = "next" in form
        target = safe_next((form.get("next") or ["/"])[0])
        if not user and not password:  # an empty form is no attempt at all
            verdict = Verdict(False)
        else:
            verdict = await self.auth.check_password(client, user, password)
        if verdict.ok:
            cookie = self._session_cookie(self.auth.new_session(user))
            if browser:
                headers = [(b"set-cookie", cookie), (b"location", target.encode())]
                await respond(scope, send, 303, "signed in", headers)
            else:
                await respond(
                    scope,
                    send,
                    200,
                    '{"success": true}',
                    [(b"set-cookie", cookie)],
                    content_type=b"application/json",
                )
            return
        if verdict.retry_after > 0:
            if not browser:
                await self._too_many(scope, send, client, verdict)
                return
            if not verdict.busy:
                self.auth.refused(client, "locked out", path=self.paths.login)
            text = f"Too many failed sign-ins: try again in {int(verdict.retry_after) + 1} s."
            await self._form(scope, send, 429, target, text, user)
            return
        if user or password:
            await asyncio.sleep(FAILURE_DELAY_S)
        if browser:
            await self._form(scope, send, 401, target, "Wrong user name or password.", user)
        else:
            await respond(
                scope,
                send,
                401,
                json.dumps({"detail": "Incorrect credentials."}),
                content_type=b"application/json",
            )

    async def _logout(self, scope: Scope, send: Send) -> None:
        """Ends the session on the server (a copied cookie stops working too)."""
        token = _cookie(scope)
        if token:
            self.auth.end_session(token)
        gone = f"{SESSION_COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0"
        headers = [(b"set-cookie", gone.encode()), (b"location", self.paths.login.encode())]
        await respond(scope, send, 303, "signed out", headers)

    def _session_cookie(self, token: str) -> bytes:
        cookie = (
            f"{SESSION_COOKIE}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={SESSION_TTL_S}"
        )
        return (cookie + ("; Secure" if self.secure else "")).encode()


def _without_our_credentials(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The request as the framework should see it: no password, token or session of ours."""
    out = []
    for key, value in headers:
        if key == b"authorization":
            continue
        if key == b"cookie":
            kept = [
                part
                for part in value.split(b";")
                if part.strip() and part.strip().split(b"=", 1)[0] != SESSION_COOKIE.encode()
            ]
            if not kept:
                continue
            value = b";".join(kept).strip()
        out.append((key, value))
    return out
