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
multicast; and not a cloud metadata address (``METADATA``: some sit outside link-local, Azure's on a public
address). An IPv6 address that carries an IPv4 one is judged by the IPv4 it carries, whatever Python's
version thinks of the IPv6 prefix (``embedded_ipv4``): IPv4-mapped ``::ffff:a.b.c.d``, SIIT-translated
``::ffff:0:a.b.c.d``, IPv4-compatible ``::a.b.c.d``, NAT64 ``64:ff9b::a.b.c.d`` and the local-use
``64:ff9b:1::/48`` (each RFC 6052 layout), 6to4 ``2002:AABB:CCDD::/48`` and Teredo ``2001::/32`` (its
server and its obfuscated client). An operator's NAT64 under a prefix of its own cannot be told from an
ordinary IPv6 address; such a network is the operator's to list as refused upstream of pixelgate.
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

# Cloud metadata services, which hand out the instance's credentials: AWS/GCP/Azure IMDS and AWS ECS task
# metadata (link-local anyway), Oracle Cloud (192.0.0.192), Azure's WireServer (168.63.129.16, public),
# Alibaba Cloud (100.100.100.200, shared space anyway) and AWS's IPv6 IMDS (fd00:ec2::254).
METADATA: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",
        "169.254.170.2",
        "192.0.0.192",
        "168.63.129.16",
        "100.100.100.200",
        "fd00:ec2::254",
    )
)

_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT (RFC 6145)
_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated IPv4-compatible (RFC 4291)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the well-known prefix (RFC 6052)
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # local-use (RFC 8215), any RFC 6052 length
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_TEREDO = ipaddress.ip_network("2001::/32")


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
        if host.lower() in self.hosts or self._listed(address):
            return None
        embedded = embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
        if embedded is None:
            return self._judge(address)
        form, ipv4s = embedded
        for ipv4 in ipv4s:
            reason = None if self._listed(ipv4) else self._judge(ipv4)
            if reason is not None:
                return f"{form} address which carries {ipv4}, {reason}"
        return None

    def _listed(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)

    @staticmethod
    def _judge(address: IPAddress) -> str | None:
        if address in METADATA:
            return "a cloud metadata address"
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


def embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[str, tuple[ipaddress.IPv4Address, ...]] | None:
    """The IPv4 addresses an IPv6 address carries, with the name of the form, or None if it carries none.

    ``::`` and ``::1`` are the IPv6 unspecified and loopback addresses, not IPv4-compatible ones.
    """
    value = int(address)
    low32 = ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if address in _MAPPED:
        return "an IPv4-mapped", (low32,)
    if address in _TRANSLATED:
        return "a SIIT-translated", (low32,)
    if address in _COMPATIBLE and value > 1:
        return "an IPv4-compatible", (low32,)
    if address in _NAT64:
        return "a NAT64", (low32,)
    if address in _NAT64_LOCAL:
        return "a local-use NAT64", _rfc6052_candidates(value)
    if address in _SIX_TO_FOUR:
        return "a 6to4", (ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF),)
    if address in _TEREDO:
        server = ipaddress.IPv4Address((value >> 64) & 0xFFFFFFFF)
        client = ipaddress.IPv4Address(~value & 0xFFFFFFFF)
        return "a Teredo", (server, client)
    return None


def _rfc6052_candidates(value: int) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 an address under the local-use NAT64 prefix carries, for each RFC 6052 prefix length whose
    layout it fits (the u octet, bits 64-71, and the suffix are zero). Which length the network uses is not
    known here, so each one that fits is judged; one that fits none is judged as the 96-bit layout."""
    u_octet = (value >> 56) & 0xFF
    layouts = (  # (the IPv4's 32 bits, whether the other bits are zero), for /48, /56, /64 and /96
        (((value >> 64) & 0xFFFF) << 16 | (value >> 40) & 0xFFFF, not u_octet and not value & (1 << 40) - 1),
        (((value >> 64) & 0xFF) << 24 | (value >> 32) & 0xFFFFFF, not u_octet and not value & 0xFFFFFFFF),
        ((value >> 24) & 0xFFFFFFFF, not u_octet and not value & 0xFFFFFF),
        (value & 0xFFFFFFFF, not (value >> 32) & (1 << 48) - 1),
    )
    found = [ipaddress.IPv4Address(ipv4) for ipv4, fits in layouts if fits]
    return tuple(dict.fromkeys(found)) or (ipaddress.IPv4Address(value & 0xFFFFFFFF),)


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
