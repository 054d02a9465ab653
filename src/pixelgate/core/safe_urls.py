"""Which addresses pixelgate may connect to when a caller names a URL (a reference image, a webhook):
public ones only, unless the operator allows more.

A URL from a stranger must not reach what only the server can reach: its own loopback, the private
network it sits in, or the cloud metadata service at 169.254.169.254 that hands out credentials. So:

- only ``http`` and ``https``;
- the host is resolved here, and every address it resolves to must be public (a name with one public and
  one private address is refused: which one a client would pick is up to chance);
- the connection goes to the address that was checked, not to a second lookup that could answer otherwise
  (DNS rebinding); TLS still checks the certificate against the host's name;
- each redirect's target goes through the same checks.

"Public" is Python's ``is_global``: not private (10/8, 172.16/12, 192.168/16, fc00::/7), loopback,
link-local (169.254/16, fe80::/10), shared (100.64/10), reserved, documentation or unspecified; and not
multicast. An IPv4 address written as IPv6 (``::ffff:127.0.0.1``) is judged as the IPv4 one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field

import httpx2

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
SCHEMES = ("http", "https")


class UnsafeUrl(ValueError):
    """The URL may not be fetched; the message says why, naming the URL and what is allowed."""


@dataclass(frozen=True)
class AddressPolicy:
    """Public addresses, and the networks and host names the operator allows besides
    (``--fetch-allow 10.1.2.0/24 --fetch-allow images.internal``)."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def allowing(cls, entries: list[str]) -> AddressPolicy:
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in entries:
            entry = entry.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                if not all(part.replace("-", "").isalnum() for part in entry.split(".")):
                    raise ValueError(
                        f"fetch allow-list entry {entry!r} is neither an address, a network (10.0.0.0/8) "
                        "nor a host name (images.internal)"
                    ) from None
                hosts.add(entry.lower())
        return cls(tuple(networks), frozenset(hosts))

    def refusal(self, host: str, address: IPAddress) -> str | None:
        """Why ``address`` (which ``host`` resolved to) may not be reached, or None if it may."""
        if host.lower() in self.hosts or any(address in network for network in self.networks):
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
            if any(address in network for network in self.networks):
                return None
        if address.is_global and not address.is_multicast:
            return None
        if address.is_loopback:
            return "a loopback address"
        if address.is_unspecified:
            return "the unspecified address (which reaches this host)"
        if address.is_link_local:
            return "a link-local address (where cloud metadata services answer)"
        if address.is_private:
            return "a private address"
        return "not a public address"


@dataclass(frozen=True)
class Destination:
    """Where to send a request for a checked URL: the address that was checked, with the host's name
    kept for the ``Host`` header and for TLS."""

    url: httpx2.URL
    headers: dict[str, str]
    extensions: dict[str, str]


async def checked_destination(
    url: str | httpx2.URL, policy: AddressPolicy, *, resolve_timeout: float = 5.0
) -> Destination:
    """Resolve ``url``'s host and check each address, or raise ``UnsafeUrl``."""
    try:
        parsed = httpx2.URL(url)
    except httpx2.InvalidURL:
        raise UnsafeUrl(f"{str(url)!r} is not a URL: give an http(s) URL") from None
    if parsed.scheme not in SCHEMES or not parsed.host:
        raise UnsafeUrl(f"{str(url)!r} is not an http(s) URL: only http:// and https:// can be fetched")
    host = parsed.host
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = await _resolve(host, port, resolve_timeout)
    for address in addresses:
        reason = policy.refusal(host, address)
        if reason is not None:
            named = host if str(address) == host else f"{host} ({address})"
            raise UnsafeUrl(
                f"{str(url)!r} points at {named}, {reason}: only public addresses can be fetched "
                "(an operator can allow more with --fetch-allow)"
            )
    address = addresses[0]
    extensions = {"sni_hostname": host} if parsed.scheme == "https" else {}
    host_header = parsed.netloc.decode("ascii")
    return Destination(parsed.copy_with(host=str(address)), {"Host": host_header}, extensions)


async def _resolve(host: str, port: int, seconds: float) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        async with asyncio.timeout(seconds):
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError):
        raise UnsafeUrl(f"the host {host!r} could not be resolved: give a host name that exists") from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])  # drop an IPv6 zone (fe80::1%eth0)
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeUrl(f"the host {host!r} has no address: give a host name that exists")
    return addresses
