"""Source addresses and the networks they are held to: pure functions, no I/O.

The relay holds requests to networks in three places: a vault's allowlist for
machines and agents, a policy's networks for the items it covers, and a
certificate's signed ``cidrs``.  All three compare the address from
:func:`sealbox.server.auth.peer.source_ip` with networks parsed here, so a
network is written and matched one way everywhere.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
from collections.abc import Iterable, Sequence

__all__ = [
    "Network",
    "address_of",
    "certified_networks",
    "forwarded_source",
    "inside",
    "parse_network",
    "parse_networks",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_network(text: str) -> Network:
    """A CIDR (``10.1.0.0/16``, ``2001:db8::/32``) or one address (a /32 or /128).

    Strict: host bits set under the mask (``10.1.2.3/16``) are refused rather
    than silently widened or narrowed, since which of the two was meant cannot
    be told; a zone index (``fe80::1%eth0``) names no network the relay can see.
    Raises :class:`ValueError` with a message that says what to write instead.
    """
    value = text.strip()
    if not value or "%" in value or len(value) > 64:
        raise ValueError(f"not a network: {text!r} (write e.g. 10.1.0.0/16 or 2001:db8::/32)")
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError:
        pass
    try:
        wide = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(
            f"not a network: {text!r} (write e.g. 10.1.0.0/16 or 2001:db8::/32)"
        ) from None
    raise ValueError(f"{text!r} has host bits set: did you mean {wide}?")


def parse_networks(texts: Iterable[str]) -> tuple[Network, ...]:
    """Several networks, in the order given, each once (by their canonical text)."""
    found: dict[str, Network] = {}
    for text in texts:
        network = parse_network(text)
        found.setdefault(str(network), network)
    return tuple(found.values())


def address_of(text: str | None) -> Address | None:
    """An address as the relay compares it, or None if ``text`` is not one.

    An IPv4 client of a dual-stack listener arrives as ``::ffff:a.b.c.d``; it is
    compared as the IPv4 address it is, so ``10.0.0.0/8`` holds it.
    """
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            return None
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
    return address


@functools.lru_cache(maxsize=1024)
def certified_networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    """A certificate's signed networks, read as the certificate parser accepts them (host bits
    allowed) and matched as every other network is (an IPv4-mapped address counts as IPv4)."""
    found: list[Network] = []
    for cidr in cidrs:
        with contextlib.suppress(ValueError):
            found.append(ipaddress.ip_network(cidr, strict=False))
    return tuple(found)


def inside(source: str | None, networks: Sequence[Network]) -> bool:
    """Whether the address ``source`` is in one of ``networks`` (an unknown address is in none)."""
    address = address_of(source)
    if address is None:
        return False
    return any(address.version == net.version and address in net for net in networks)


def forwarded_source(
    peer: str | None, forwarded_for: Sequence[str], proxies: Sequence[Network]
) -> str | None:
    """The address a request came from, believing ``X-Forwarded-For`` only from trusted proxies.

    ``peer`` is the address of the connection; ``forwarded_for`` the values of
    every ``X-Forwarded-For`` header, in order.  Only when the peer is inside
    ``proxies`` is the header read at all, and then from the right: each
    trusted proxy appends the address it received the request from, so the
    right-most entry that is not itself a trusted proxy is the first hop no
    trusted party vouches for beyond.  Entries to its left were written by
    that sender and may say anything (a spoofed left-most entry is never used).

    A hop that is not an address (``unknown``, a name, garbage) where the walk
    needs one gives ``None``: the source is unknown, and an allowlist refuses it.
    When every entry is a trusted proxy the left-most one is the source.
    """
    if not proxies or not inside(peer, proxies):
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
    hops = [hop for hop in hops if hop]
    if not hops:
        return peer
    for hop in reversed(hops):
        address = address_of(_strip_port(hop))
        if address is None:
            return None
        if not inside(str(address), proxies):
            return str(address)
    return str(address_of(_strip_port(hops[0])))


def _strip_port(hop: str) -> str:
    # Some proxies write "[2001:db8::1]:443" or "192.0.2.1:443"; a bare IPv6 address has
    # several colons and no brackets and is left as it is.
    if hop.startswith("["):
        end = hop.find("]")
        return hop[1:end] if end > 0 else hop
    if hop.count(":") == 1:
        return hop.split(":", 1)[0]
    return hop
