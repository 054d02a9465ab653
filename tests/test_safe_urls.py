"""The address policy itself (``core/safe_urls.py``), judged form by form: every way an IPv6 address can
carry an IPv4 one is unwrapped and the IPv4 judged, cloud metadata addresses are refused wherever they
sit, and public addresses (IPv4, IPv6, NAT64 of a public IPv4) still pass. No request is sent: the
end-to-end refusals through each URL field are in ``test_safe_fetching.py``."""

from __future__ import annotations

import ipaddress

import pytest

from pixelgate.core.safe_urls import AddressPolicy

LOOPBACK = "a loopback address"
PRIVATE = "a private address"
LINK_LOCAL = "a link-local address"
METADATA = "a cloud metadata address"
UNSPECIFIED = "the unspecified address"
NOT_PUBLIC = "not a public address"

# (form, address, what the refusal says; None where the address must pass)
FORMS = [
    ("ipv4-public", "93.184.215.14", None),
    ("ipv6-public", "2606:4700:4700::1111", None),
    ("nat64-public", "64:ff9b::808:808", None),
    ("nat64-local-use-public", "64:ff9b:1::808:808", None),
    ("ipv4-mapped-public", "::ffff:8.8.8.8", None),
    ("6to4-public", "2002:808:808::1", None),
    ("ipv4-loopback", "127.0.0.1", LOOPBACK),
    ("ipv4-private", "10.0.0.1", PRIVATE),
    ("ipv4-shared", "100.64.0.1", NOT_PUBLIC),
    ("ipv4-unspecified", "0.0.0.0", UNSPECIFIED),
    ("ipv6-loopback", "::1", LOOPBACK),
    ("ipv6-unspecified", "::", UNSPECIFIED),
    ("ipv6-unique-local", "fd12:3456::1", PRIVATE),
    ("ipv6-link-local", "fe80::1", LINK_LOCAL),
    ("ipv4-mapped-loopback", "::ffff:127.0.0.1", LOOPBACK),
    ("nat64-metadata", "64:ff9b::a9fe:a9fe", METADATA),
    ("nat64-private", "64:ff9b::a00:1", PRIVATE),
    ("nat64-loopback", "64:ff9b::7f00:1", LOOPBACK),
    ("nat64-local-use-private", "64:ff9b:1::a00:1", PRIVATE),
    ("nat64-local-use-48-private", "64:ff9b:1:a00:0:100::", PRIVATE),  # RFC 6052 /48: around the u octet
    ("nat64-local-use-64-private", "64:ff9b:1:0:a:0:100:0", PRIVATE),  # RFC 6052 /64
    ("siit-translated-private", "::ffff:0:a00:1", PRIVATE),
    ("siit-translated-metadata", "::ffff:0:a9fe:a9fe", METADATA),
    ("ipv4-compatible-loopback", "::7f00:1", LOOPBACK),
    ("ipv4-compatible-private", "::a00:1", PRIVATE),
    ("6to4-private", "2002:a00:1::1", PRIVATE),
    ("6to4-metadata", "2002:a9fe:a9fe::1", METADATA),
    ("6to4-loopback", "2002:7f00:1::1", LOOPBACK),
    ("teredo-unspecified-server", "2001::1", UNSPECIFIED),
    ("teredo-private-client", "2001:0:808:808:0:ffff:f5ff:fffe", PRIVATE),  # client 10.0.0.1, obfuscated
    ("metadata-aws-gcp", "169.254.169.254", METADATA),
    ("metadata-aws-ecs", "169.254.170.2", METADATA),
    ("metadata-oracle", "192.0.0.192", METADATA),
    ("metadata-azure-wireserver", "168.63.129.16", METADATA),
    ("metadata-alibaba", "100.100.100.200", METADATA),
    ("metadata-aws-ipv6", "fd00:ec2::254", METADATA),
    ("metadata-azure-ipv4-mapped", "::ffff:168.63.129.16", METADATA),
    ("metadata-oracle-nat64", "64:ff9b::c000:c0", METADATA),
]


@pytest.mark.parametrize(("address", "reason"), [row[1:] for row in FORMS], ids=[row[0] for row in FORMS])
def test_each_form_is_judged_by_the_address_it_reaches(address: str, reason: str | None) -> None:
    refusal = AddressPolicy().refusal("example.com", ipaddress.ip_address(address))
    if reason is None:
        assert refusal is None, refusal
    else:
        assert refusal is not None and reason in refusal, refusal


EMBEDDING = [
    ("nat64", "64:ff9b::a00:1", "10.0.0.1"),
    ("siit-translated", "::ffff:0:a00:1", "10.0.0.1"),
    ("6to4", "2002:a00:1::1", "10.0.0.1"),
    ("teredo", "2001:0:808:808:0:ffff:f5ff:fffe", "10.0.0.1"),
]


@pytest.mark.parametrize(
    ("address", "ipv4"), [row[1:] for row in EMBEDDING], ids=[row[0] for row in EMBEDDING]
)
def test_a_refusal_names_the_embedded_ipv4(address: str, ipv4: str) -> None:
    refusal = AddressPolicy().refusal("example.com", ipaddress.ip_address(address))
    assert refusal is not None and f"which carries {ipv4}" in refusal, refusal


ALLOWED = [
    ("network-ipv4", ["10.0.0.0/8"], "10.0.0.1"),
    ("network-nat64", ["10.0.0.0/8"], "64:ff9b::a00:1"),
    ("network-6to4", ["10.0.0.0/8"], "2002:a00:1::1"),
    ("network-ipv6", ["64:ff9b::/96"], "64:ff9b::a00:1"),
    ("metadata-by-address", ["168.63.129.16"], "168.63.129.16"),
    ("host-name", ["images.internal"], "10.0.0.1"),
]


@pytest.mark.parametrize(
    ("entries", "address"), [row[1:] for row in ALLOWED], ids=[row[0] for row in ALLOWED]
)
def test_the_operators_allow_list_lets_each_form_through(entries: list[str], address: str) -> None:
    policy = AddressPolicy.allowing(entries)
    assert policy.refusal("images.internal", ipaddress.ip_address(address)) is None


def test_an_allowed_network_does_not_let_a_different_embedded_address_through() -> None:
    policy = AddressPolicy.allowing(["10.0.0.0/8"])
    refusal = policy.refusal("example.com", ipaddress.ip_address("64:ff9b::a9fe:a9fe"))
    assert refusal is not None and METADATA in refusal, refusal
