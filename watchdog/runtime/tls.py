"""The certificate the page and the door speak TLS with (``server.tls``).

``"self-signed"``: made on first start with ``cryptography`` (an EC P-256 key, valid
for this machine's names and addresses), kept beside ``auth.json`` as
``tls-cert.pem`` and ``tls-key.pem`` (0600) and reused after; its SHA-256
fingerprint is printed at start and shown on the page, so a user can tell their
browser's warning is about their own certificate. ``{"cert", "key"}``: the user's
files (Let's Encrypt's ``fullchain.pem`` and ``privkey.pem``), checked to exist.

    >>> files = certificate(settings)                               # doctest: +SKIP
    >>> files.cert, files.fingerprint[:11]
    (PosixPath('/home/me/sd-watchdog/tls-cert.pem'), 'SHA256 3F:A0')
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from ..settings import Settings, TlsFiles

VALID_DAYS = 3650


class TlsError(Exception):
    pass


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path
    fingerprint: str  # "SHA256 AB:CD:…", as browsers show it
    made: bool = False  # made just now


def certificate(settings: Settings) -> Certificate | None:
    """The certificate to serve with, made if it should be and is not there yet."""
    tls = settings.server.tls
    if tls == "off":
        return None
    if isinstance(tls, TlsFiles):
        cert, key = (_resolve(settings, tls.cert), _resolve(settings, tls.key))
        for path in (cert, key):
            if not path.is_file():
                raise TlsError(f"server.tls names {path}, which is not a readable file")
        return Certificate(cert, key, fingerprint(cert))
    folder = settings.auth_path.parent
    cert, key = folder / "tls-cert.pem", folder / "tls-key.pem"
    made = False
    if not (cert.is_file() and key.is_file()):
        make_self_signed(cert, key)
        made = True
    return Certificate(cert, key, fingerprint(cert), made)


def _resolve(settings: Settings, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else settings.base_dir / path


def fingerprint(cert: Path) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    except (OSError, ValueError) as exc:
        raise TlsError(f"{cert} is not a PEM certificate ({exc})") from None
    digest = hashlib.sha256(loaded.public_bytes(Encoding.DER)).hexdigest().upper()
    return "SHA256 " + ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def machine_names() -> list[str]:
    """The names a browser may use for this machine: localhost, hostname, FQDN."""
    names = {"localhost", socket.gethostname()}
    try:
        names.add(socket.getfqdn())
    except OSError:
        pass
    return sorted(n for n in names if n)


def machine_addresses() -> tuple[list[str], list[str]]:
    """(names, addresses) a browser may use for this machine."""
    import psutil

    addresses = {"127.0.0.1", "::1"}
    for entries in psutil.net_if_addrs().values():
        for entry in entries:
            if entry.family in (socket.AF_INET, socket.AF_INET6):
                addresses.add(entry.address.split("%", 1)[0])
    return machine_names(), sorted(addresses)


def make_self_signed(cert: Path, key: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    names, addresses = machine_addresses()
    private = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, names[-1][:64]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sd-watchdog (self-signed)"),
        ]
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    alt = [x509.DNSName(n) for n in names] + [
        x509.IPAddress(ipaddress.ip_address(a)) for a in addresses
    ]
    built = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    key_bytes = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_private(key, key_bytes)
    _write_private(cert, built.public_bytes(serialization.Encoding.PEM))


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
