"""Which hosts an agent may reach, checked in ember's process after DNS resolution.

An egress entry is ``host``, ``host:port``, ``[ipv6]:port`` or ``*.domain`` (any host below
the domain, not the domain itself). A name is resolved once (by an injected
:data:`Resolver`; tests map names to addresses without any DNS query), every address it
resolves to is checked, and the caller connects to the first one, so a second resolution
cannot swap the address (DNS rebinding). Loopback, link-local, private, multicast, reserved,
unspecified and other non-global addresses (also inside IPv4-mapped, NAT64, 6to4 and Teredo
IPv6 addresses) are refused unless an entry names the host exactly (no wildcard).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx

from ember.errors import BadRequest, PolicyDenied

__all__ = ["HostRule", "Resolver", "is_public", "pin_address", "system_resolver"]

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``(host, port)`` -> the addresses the host resolves to (text, IPv4 or IPv6)."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


async def system_resolver(host: str, port: int) -> list[str]:
    """The system's resolution of ``host`` (``getaddrinfo``), each address once."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _host(text: str) -> str:
    return text.strip().lower().rstrip(".")


@dataclass(frozen=True)
class HostRule:
    """One parsed egress entry."""

    host: str
    port: int | None = None
    wildcard: bool = False

    @classmethod
    def parse(cls, entry: str) -> HostRule:
        """:raises ValueError: the entry is not a host, ``host:port`` or ``*.domain``."""
        text = entry.strip()
        port: int | None = None
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            if rest:
                if not rest.startswith(":") or not rest[1:].isdigit():
                    raise ValueError(f"egress host {entry!r}: bad port")
                port = int(rest[1:])
        elif text.count(":") == 1:
            host, _, digits = text.partition(":")
            if not digits.isdigit():
                raise ValueError(f"egress host {entry!r}: bad port")
            port = int(digits)
        else:
            host = text
        host = _host(host)
        wildcard = host.startswith("*.")
        if wildcard:
            host = host[2:]
        if not host or any(c in host for c in "/@?#*[] ") or (port is not None and port > 65535):
            raise ValueError(f"egress host {entry!r} is not a host, host:port or *.domain")
        return cls(host, port, wildcard)

    def matches(self, host: str, port: int) -> bool:
        """Whether this entry allows ``host:port``."""
        name = _host(host)
        named = name.endswith(f".{self.host}") if self.wildcard else name == self.host
        return named and self.port in (None, port)

    def names(self, host: str, port: int) -> bool:
        """Whether this entry names ``host`` exactly (which allows private addresses)."""
        return not self.wildcard and self.matches(host, port)

    def covers(self, other: HostRule) -> bool:
        """Whether everything ``other`` allows, this entry allows too."""
        if self.port is not None and other.port != self.port:
            return False
        if self.wildcard:
            return other.host.endswith(f".{self.host}") or (
                other.wildcard and other.host == self.host
            )
        return not other.wildcard and other.host == self.host

    def matches_url(self, url: str) -> bool:
        parsed = httpx.URL(url)
        return self.matches(parsed.host, parsed.port or _default_port(parsed.scheme))


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _embedded(address: IPAddress) -> list[IPAddress]:
    found: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        inner = [address.ipv4_mapped, address.sixtofour]
        inner.append(address.teredo[1] if address.teredo else None)
        if address in _NAT64:
            inner.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        found += [a for a in inner if a is not None]
    return found


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` (and any IPv4 address inside it) is a global unicast address."""
    return all(
        a.is_global
        and not (
            a.is_loopback
            or a.is_link_local
            or a.is_private
            or a.is_multicast
            or a.is_reserved
            or a.is_unspecified
        )
        for a in _embedded(address)
    )


def _address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


async def pin_address(rules: Sequence[HostRule], host: str, port: int, resolver: Resolver) -> str:
    """The address to connect to for ``host:port``: the host must match a rule, and every
    address it resolves to must be public unless a rule names the host exactly.

    :raises PolicyDenied: no rule allows the host, or it resolves to a refused address.
    :raises BadRequest: the host does not resolve.
    """
    name = _host(host)
    if not any(rule.matches(name, port) for rule in rules):
        raise PolicyDenied(
            f"host {name}:{port} is not in the profile's egress_hosts", extra={"host": name}
        )
    named = any(rule.names(name, port) for rule in rules)
    literal = _address(name.strip("[]"))
    if literal is not None:
        texts: Sequence[str] = [str(literal)]
    else:
        try:
            texts = await resolver(name, port)
        except OSError as exc:
            raise BadRequest(f"cannot resolve {name}: {exc}") from exc
    addresses = [_address(text) for text in texts]
    if not addresses or any(address is None for address in addresses):
        raise BadRequest(f"cannot resolve {name} to an address")
    for address in addresses:
        if address is not None and not named and not is_public(address):
            raise PolicyDenied(
                f"host {name} resolves to {address}, which is not a public address; only a "
                "host named exactly in egress_hosts may",
                extra={"host": name},
            )
    return str(addresses[0])
