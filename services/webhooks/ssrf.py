"""The SSRF guard: the webhooks service calls URLs its customers name, so it must
not become a way into the network it runs in.

Refused: loopback, private (RFC 1918, ULA), link-local, cloud metadata, unspecified,
multicast and anything else not publicly routable; IPv4 inside IPv6 (mapped, NAT64)
is judged as the IPv4 it carries. Checked when an endpoint is registered and again on
the address actually connected to (the connector's resolver), so a DNS answer cannot
change between check and use. aiohttp does not resolve literal IPs, so those are
checked before the request. SWITCHBOARD_WEBHOOK_ALLOW_HOSTS (host names, IPs, CIDRs)
lets tests and private deployments reach some anyway.
"""

import asyncio
import ipaddress
import socket
from typing import Final
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_METADATA: Final = (ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"))
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")
_SCHEMES: Final = ("http", "https")


class RefusedUrl(OSError):
    """The URL may not be called. An OSError so that, raised in the resolver, aiohttp
    carries it out as the ClientConnectorError's os_error."""


def _unwrap(address: IpAddress) -> IpAddress:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def refusal(address: IpAddress) -> str | None:
    """Why this address may not be called, or None if it is a public one."""
    address = _unwrap(address)
    if address in _METADATA:
        return "a cloud metadata address"
    for kind, flag in (("a loopback", address.is_loopback), ("an unspecified", address.is_unspecified),
                       ("a link-local", address.is_link_local), ("a multicast", address.is_multicast),
                       ("a private", address.is_private)):
        if flag:
            return f"{kind} address"
    if not address.is_global:
        return "a non-public address"
    return None


class AllowList:
    """Host names, addresses and networks the guard lets through."""

    def __init__(self, spec: str = "") -> None:
        names: set[str] = set()
        networks: list[IpNetwork] = []
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item.strip("[]"), strict=False))
            except ValueError:
                names.add(item.lower().rstrip("."))
        self._names = frozenset(names)
        self._networks = tuple(networks)

    def name(self, host: str) -> bool:
        return host.lower().rstrip(".") in self._names

    def address(self, address: IpAddress) -> bool:
        return any(address in network or _unwrap(address) in network for network in self._networks)


def _literal(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


class Guard:
    def __init__(self, allow: AllowList) -> None:
        self._allow = allow

    def check_url(self, url: str) -> str:
        """The URL's host, after the checks that need no DNS; raises RefusedUrl."""
        if any(c.isspace() or not c.isprintable() for c in url):
            raise RefusedUrl("The URL contains whitespace or control characters.")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise RefusedUrl(f"The URL is malformed: {exc}.") from exc
        if parts.scheme.lower() not in _SCHEMES:
            raise RefusedUrl("Only http:// and https:// URLs can receive webhooks.")
        host = parts.hostname or ""
        if not host:
            raise RefusedUrl("The URL has no host.")
        if port == 0:
            raise RefusedUrl("The URL's port must not be 0.")
        literal = _literal(host)
        if literal is not None and not self._allow.address(literal):
            why = refusal(literal)
            if why is not None:
                raise RefusedUrl(f"The URL points at {why} ({host}); webhooks go to public addresses only.")
        return host

    async def check_registration(self, url: str) -> None:
        """check_url, plus what the host name resolves to now (every address must be allowed)."""
        host = self.check_url(url)
        if _literal(host) is not None or self._allow.name(host):
            return
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise RefusedUrl(f"The URL's host {host} does not resolve.") from exc
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            why = None if self._allow.address(address) else refusal(address)
            if why is not None:
                raise RefusedUrl(f"The URL's host {host} resolves to {why}; webhooks go to public addresses only.")

    def resolver(self) -> AbstractResolver:
        return _GuardedResolver(self._allow)


class _GuardedResolver(AbstractResolver):
    """Resolves as usual, then keeps only addresses the guard allows: the address the
    connector then connects to is one that was checked."""

    def __init__(self, allow: AllowList) -> None:
        self._allow = allow
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        if self._allow.name(host):
            return found
        allowed = [r for r in found if self._allow.address(ipaddress.ip_address(r["host"].split("%", 1)[0]))
                   or refusal(ipaddress.ip_address(r["host"].split("%", 1)[0])) is None]
        if not allowed:
            raise RefusedUrl(f"{host} resolves only to non-public addresses; webhooks go to public addresses only.")
        return allowed

    async def close(self) -> None:
        await self._inner.close()
