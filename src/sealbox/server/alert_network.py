"""Where a webhook may go: public addresses only, unless the operator allows a network.

An approver names a webhook URL and the relay sends to it from inside the
operator's network, so without a rule a URL could reach the cloud metadata
service (``169.254.169.254``), the relay's own database (``127.0.0.1:5432``)
or anything else on the private side (server-side request forgery).  So the
relay refuses loopback, link-local, private, shared (CGNAT), multicast,
unspecified and reserved addresses, IPv4-mapped IPv6 ones judged as the IPv4
address they carry, unless one of the operator's ``--alert-allow-network``
networks holds the address.

The rule is applied twice: to a literal address in the URL when the target is
added (also the spellings the OS resolver reads as an IPv4 address, such as
``0x7f000001``, ``2130706433`` or ``127.1``), and to every address the host
name resolves to when a delivery is sent.  At send time the connection goes
to the address that was checked (a DNS answer that changes between the check
and the connection, DNS rebinding, cannot switch it); the HTTP ``Host`` header,
TLS SNI and certificate check still use the URL's host name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from collections.abc import Iterable, Sequence
from typing import Any

import httpcore
import httpx

from sealbox.server.networks import Network, parse_networks

__all__ = [
    "RefusedAddress",
    "check_address",
    "literal_address",
    "networks_setting",
    "require_tls_setting",
    "transport",
]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

NETWORKS_ENV = "SEALBOX_ALERT_ALLOW_NETWORKS"
REQUIRE_TLS_ENV = "SEALBOX_SMTP_REQUIRE_TLS"


class RefusedAddress(Exception):
    """A webhook's host is (or resolves to) an address the relay does not send to."""


def networks_setting(given: Sequence[str] | None) -> tuple[str, ...]:
    """``--alert-allow-network`` values, else ``SEALBOX_ALERT_ALLOW_NETWORKS`` (comma-separated)."""
    if given is None:
        text = os.environ.get(NETWORKS_ENV, "")
        given = [part for part in (p.strip() for p in text.split(",")) if part]
    return tuple(str(network) for network in parse_networks(given))


def require_tls_setting(given: bool | None) -> bool:
    """``--smtp-require-tls``, else ``SEALBOX_SMTP_REQUIRE_TLS`` (1/true/yes or 0/false/no)."""
    if given is not None:
        return given
    text = os.environ.get(REQUIRE_TLS_ENV, "").strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{REQUIRE_TLS_ENV} must be 1/true/yes or 0/false/no, not {text!r}")


def _public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    # is_global is False for loopback, link-local, private, shared, unspecified and the
    # reserved ranges; multicast is checked apart (some multicast ranges count as global).
    return address.is_global and not address.is_multicast


def check_address(address: Address, allowed: Iterable[str]) -> None:
    """Raise :class:`RefusedAddress` unless ``address`` is public or in an allowed network."""
    if _public(address):
        return
    for text in allowed:
        network: Network = ipaddress.ip_network(text)
        if address.version == network.version and address in network:
            return
    raise RefusedAddress(f"{address} is not a public address")


def literal_address(host: str) -> Address | None:
    """The address ``host`` spells, if it spells one, the odd IPv4 forms included; else None."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    # inet_aton reads what the C resolver reads: 0x7f000001, 2130706433, 0177.0.0.1, 127.1.
    if bare and all(ch in "0123456789abcdefxABCDEFX." for ch in bare):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(bare))
        except OSError:
            return None
    return None


async def _resolve(host: str, port: int) -> list[Address]:
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[Address] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


class _CheckedBackend(httpcore.AsyncNetworkBackend):
    """Resolves the host itself, checks every address, then connects to a checked one."""

    def __init__(self, allowed: Sequence[str]) -> None:
        self._allowed = tuple(allowed)
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None,
        local_address: str | None = None, socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:  # fmt: skip
        try:
            addresses = await _resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError("the webhook's host does not resolve") from exc
        if not addresses:
            raise httpcore.ConnectError("the webhook's host does not resolve")
        # Every answer is checked, not just the first: a name that resolves to a public and
        # a private address is refused rather than connected to whichever comes first.
        for address in addresses:
            check_address(address, self._allowed)
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options,
                )  # fmt: skip
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:  # fmt: skip
        raise RefusedAddress("webhooks do not go to Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def transport(allowed: Sequence[str]) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connections go only to addresses :func:`check_address` allows.

    httpcore opens the TCP connection through the backend with the URL's host
    name and then starts TLS with that name (SNI and certificate check) and
    sends ``Host`` from the URL, so only the address connected to is changed.
    """
    made = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx has no public hook for the network backend; its pool is httpcore's, which has.
    made._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(), network_backend=_CheckedBackend(allowed)
    )
    return made
