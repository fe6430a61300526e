"""The page's credentials: ``auth.json`` beside the settings, and how a running front
notices that ``set-password`` changed it.

``auth.json`` (mode 0600) holds a user name, a salted scrypt hash of the password and
a SHA-256 of a random API token; the plain password and token are never stored.
``python app.py set-password USER`` writes it.

:class:`CredentialsFile` re-reads it when its inode, size or mtime changes (one
``stat`` per check), so a new password takes effect at once and, with its new
``generation``, ends every session signed in with the old one.

    >>> source = CredentialsFile(Path("auth.json"))                 # doctest: +SKIP
    >>> creds, generation = source.current()
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


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
    """Write with 0600 from the first byte (no window where others could read it), and
    replace atomically: a running front never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(creds.to_json(), fh)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


class CredentialSource(Protocol):
    def current(self) -> tuple[Credentials | None, int]:
        """The credentials now, and a number that changes whenever they do."""


class FixedCredentials:
    """Credentials that never change (tests, and a front started with them)."""

    def __init__(self, creds: Credentials | None) -> None:
        self._creds = creds

    def current(self) -> tuple[Credentials | None, int]:
        return self._creds, 0


class CredentialsFile:
    """``auth.json``, re-read when it changes. A damaged file keeps the last good
    credentials (logged once): a half-edited file must not open the gate."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._creds = load_credentials(path)
        self._generation = 0
        self._stamp = self._stat()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError:
            return self._stamp  # unreadable now: keep what we have
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def current(self) -> tuple[Credentials | None, int]:
        stamp = self._stat()
        with self._lock:
            if stamp != self._stamp:
                try:
                    creds = load_credentials(self.path)
                except CredentialsError as exc:
                    log.error("%s; the previous credentials stay in force", exc)
                else:
                    if stamp is None and self._creds is not None:
                        # Deleted: keep the gate shut rather than open the page to all.
                        log.error("%s was removed; the previous credentials stay", self.path)
                    else:
                        self._creds = creds
                        self._generation += 1
                        log.info("credentials in %s changed; older sessions ended", self.path)
                self._stamp = stamp
            return self._creds, self._generation
