"""Who is asking, and for which host: the two facts the gate decides on first.

The client is the socket's address. ``X-Forwarded-For`` is believed only from a peer
in ``server.trusted_proxies`` (and then walked from the right, past every trusted
hop): anyone else could name any address, to guess without limit or to lock the
owner out with the owner's address. IPv6 clients count per /64, the block one
customer gets.

The Host allowlist stops DNS rebinding: a page on ``rebind.attacker.example`` that
the browser resolves to 127.0.0.1 sends that name as Host. Allowed: any IP address
literal (a rebinding attacker can only send a name, and a cloud VM's public address
is often on no interface of its own), ``localhost``, this machine's names, and
``server.allowed_hosts`` (``"*"`` turns the check off).

    >>> hosts = HostAllowlist(["sd.example.org"])
    >>> hosts.allows("sd.example.org:5006"), hosts.allows("rebind.attacker.example")
    (True, False)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from ..runtime.tls import machine_names

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def header(scope: Mapping[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def client_key(address: str) -> str:
    """The unit a limit counts: the address, or its /64 for IPv6."""
    ip = _address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip) if ip is not None else address


class ClientResolver:
    def __init__(self, trusted_proxies: Iterable[str] = ()) -> None:
        self.trusted: tuple[Network, ...] = tuple(
            ipaddress.ip_network(item, strict=False) for item in trusted_proxies
        )

    def from_proxy(self, scope: Mapping[str, Any]) -> bool:
        """The peer is one of ``server.trusted_proxies`` (its X-Forwarded-* are believed)."""
        return bool(self.trusted) and self._is_trusted(str((scope.get("client") or ("", 0))[0]))

    def _is_trusted(self, address: str) -> bool:
        ip = _address(address)
        return ip is not None and any(ip in net for net in self.trusted)

    def address(self, scope: Mapping[str, Any]) -> str:
        """The client's address, as far as it can be known."""
        peer = str((scope.get("client") or ("unknown", 0))[0])
        if not self.trusted or not self._is_trusted(peer):
            return peer
        forwarded = header(scope, b"x-forwarded-for")
        if not forwarded:
            return peer
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        for hop in reversed(hops):  # the rightmost hop a trusted proxy did not add
            if _address(hop) is None:
                return peer  # garbage from a trusted proxy's client: use the proxy
            if not self._is_trusted(hop):
                return hop
        return hops[0] if hops else peer

    def key(self, scope: Mapping[str, Any]) -> str:
        return client_key(self.address(scope))


def host_name(host_header: str) -> str:
    """``[::1]:5005`` → ``::1``; ``Example.org.:80`` → ``example.org``."""
    text = host_header.strip().lower()
    if text.startswith("["):
        return text[1:].split("]", 1)[0]
    if text.count(":") == 1:
        text = text.split(":", 1)[0]
    return text.rstrip(".")


class HostAllowlist:
    def __init__(self, allowed: Iterable[str] = (), share: bool = False) -> None:
        extra = {host_name(h) for h in allowed}
        self.everything = "*" in allowed
        self.names = {n.lower() for n in machine_names()} | extra
        self.share = share  # a gradio.live link arrives under its own name

    def allows(self, host_header: str | None) -> bool:
        if self.everything:
            return True
        if not host_header:
            return False
        name = host_name(host_header)
        if _address(name) is not None:
            return True
        if name in self.names or name.endswith(".localhost"):
            return True
        return self.share and name.endswith(".gradio.live")
