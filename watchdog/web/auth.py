"""Who may use the page, the API and the door: credential checks and sessions.

One :class:`Authenticator` serves the page's port and the door's, so one sign-in
opens both. It holds no password: it asks a credential source (``auth.json``,
re-read when ``set-password`` changes it) and keeps the sessions it issued, each
tied to the credentials' generation, so a new password ends every older session.

Strangers get little (see ``limits.py``): at most ``max_failures`` credential checks
per client per ``lockout_s`` window, counted before the hash runs; at most
``HASH_WORKERS`` hashes at once and ``MAX_QUEUED_CHECKS`` waiting for one, for all
clients together, so a crowd cannot take the front's CPU; and one journal line per
client per minute with a count. A user name other than the real one is never
journaled: people type passwords into that field.

    >>> auth = Authenticator(CredentialsFile(Path("auth.json")), journal_write)  # doctest: +SKIP
    >>> await auth.check_password("10.0.0.9", "admin", "hunter22")
    Verdict(ok=True, ...)
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .credentials import (  # re-exported: the CLI and tests know them from here
    Credentials,
    CredentialsError,
    CredentialsFile,
    CredentialSource,
    FixedCredentials,
    load_credentials,
    save_credentials,
)
from .limits import AttemptLimiter, RefusalJournal

__all__ = [
    "Authenticator",
    "Credentials",
    "CredentialsError",
    "CredentialsFile",
    "Verdict",
    "load_credentials",
    "save_credentials",
]

SESSION_TTL_S = 7 * 24 * 3600
MAX_SESSIONS = 1000
VERIFIED_CACHE_TTL_S = 600
HASH_WORKERS = 2
MAX_QUEUED_CHECKS = 16


@dataclass(frozen=True)
class Verdict:
    ok: bool
    retry_after: float = 0.0  # > 0: refused unchecked (locked out, or too busy)
    busy: bool = False  # refused because too many checks wait, not for this client

    @property
    def locked(self) -> bool:
        return self.retry_after > 0 and not self.busy


OK = Verdict(True)
WRONG = Verdict(False)


@dataclass(frozen=True)
class Session:
    user: str
    generation: int
    expires: float


class Authenticator:
    """Checks credentials, issues and ends sessions, limits and journals failures."""

    def __init__(
        self,
        creds: CredentialSource | Credentials | None,
        journal: Callable[..., None] | Any | None = None,
        max_failures: int = 5,
        lockout_s: float = 60,
    ) -> None:
        self.source: CredentialSource = (
            FixedCredentials(creds) if creds is None or isinstance(creds, Credentials) else creds
        )
        write = getattr(journal, "write", journal)
        self.refusals = RefusalJournal(write) if write is not None else None
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self.limiter = AttemptLimiter(max_failures, lockout_s)
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._verified: dict[tuple[str, int], float] = {}  # (digest, generation) → until
        self._hashing = ThreadPoolExecutor(HASH_WORKERS, thread_name_prefix="password-check")
        self._queued = 0

    # -- the credentials now -------------------------------------------------------

    @property
    def creds(self) -> Credentials | None:
        return self.source.current()[0]

    @property
    def enabled(self) -> bool:
        return self.creds is not None

    @property
    def user(self) -> str | None:
        creds = self.creds
        return creds.user if creds else None

    # -- checks --------------------------------------------------------------------

    async def check_password(self, client: str, user: str, password: str) -> Verdict:
        """A browser sends Basic with every request: a recent success is remembered
        (for these credentials only); anything else takes a slot first, then hashes."""
        creds, generation = self.source.current()
        if creds is None:
            return OK
        key = (hashlib.sha256(f"{user}\0{password}".encode()).hexdigest(), generation)
        with self._lock:
            if self._verified.get(key, 0.0) > time.monotonic():
                return OK
            if self._queued >= MAX_QUEUED_CHECKS:
                return Verdict(False, retry_after=5.0, busy=True)
        wait = self.limiter.reserve(client)
        if wait > 0:
            return Verdict(False, retry_after=wait)
        with self._lock:
            self._queued += 1
        try:
            loop = asyncio.get_running_loop()
            ok = await loop.run_in_executor(self._hashing, creds.check_password, user, password)
        finally:
            with self._lock:
                self._queued -= 1
        if not ok:
            self._failed(client, user, creds)
            return WRONG
        self.limiter.clear(client)
        with self._lock:
            now = time.monotonic()
            self._verified = {k: v for k, v in self._verified.items() if v > now}
            self._verified[key] = now + VERIFIED_CACHE_TTL_S
        return OK

    def check_token(self, client: str, token: str) -> Verdict:
        creds = self.creds
        if creds is None:
            return OK
        wait = self.limiter.blocked_for(client)
        if wait > 0:
            return Verdict(False, retry_after=wait)
        if creds.check_token(token):
            return OK
        self.limiter.reserve(client)
        self._failed(client, None, creds, how="token")
        return WRONG

    def _failed(
        self, client: str, user: str | None, creds: Credentials, how: str = "password"
    ) -> None:
        if self.refusals is None:
            return
        used = self.limiter.used(client)
        self.refusals.note(
            client,
            f"wrong {how}",
            # The real user name is no secret; anything else may be a password typed
            # into the wrong field.
            user=user if user == creds.user else ("(another name)" if user else None),
            failures=used,
            locked_for_s=self.lockout_s if used >= self.max_failures else None,
        )

    def refused(self, client: str, reason: str, **fields: Any) -> None:
        """Journal (coalesced) a refusal that checked nothing: locked out, bad host."""
        if self.refusals is not None:
            self.refusals.note(client, reason, **fields)

    # -- sessions ------------------------------------------------------------------

    def new_session(self, user: str) -> str:
        token = secrets.token_urlsafe(32)
        generation = self.source.current()[1]
        with self._lock:
            now = time.monotonic()
            for old in [k for k, s in self._sessions.items() if s.expires <= now]:
                del self._sessions[old]
            self._sessions[token] = Session(user, generation, now + SESSION_TTL_S)
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return token

    def session_user(self, token: str) -> str | None:
        """The user of a live session made with the current credentials, else None."""
        generation = self.source.current()[1]
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None
            if session.generation != generation or session.expires <= time.monotonic():
                del self._sessions[token]
                return None
            return session.user

    def end_session(self, token: str) -> None:
        with self._lock:
            self._sessions.pop(token, None)

    def close(self) -> None:
        """Let the hashing threads go (a front that stops, a test that ends)."""
        self._hashing.shutdown(wait=False, cancel_futures=True)
        if self.refusals is not None:
            self.refusals.flush()
