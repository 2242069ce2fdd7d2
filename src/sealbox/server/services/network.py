"""A vault's network allowlist: which networks its machines and agents may call from.

Approvers change it; every change is one audited transaction that locks the
vault's row, so two approvers changing it at once both take effect in turn.
Once committed, this process drops its cached copy at once (other replicas
within :data:`sealbox.server.store.network.FRESH_SECONDS`).  Enabled and
empty, it refuses every machine and agent.  The check itself is
:func:`sealbox.server.auth.network.check_network`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sealbox.server.auth.principal import Principal
from sealbox.server.errors import Invalid, NotFound
from sealbox.server.networks import parse_networks
from sealbox.server.relay import Relay
from sealbox.server.store import audit
from sealbox.server.store import network as store
from sealbox.server.store.network import Allowlist

__all__ = [
    "MAX_NETWORKS",
    "NetworkView",
    "allow",
    "check_networks",
    "remove",
    "set_enabled",
    "show",
]

#: Most networks in one vault's allowlist (and on one policy).
MAX_NETWORKS = 256


@dataclass(frozen=True)
class NetworkView:
    """The allowlist as approvers see it."""

    enabled: bool
    cidrs: tuple[str, ...]
    version: int
    changed: bool = True
    """False when the call left it as it was (nothing audited)."""


def _view(allowlist: Allowlist, changed: bool = True) -> NetworkView:
    return NetworkView(allowlist.enabled, allowlist.cidrs, allowlist.version, changed)


def check_networks(values: Sequence[str], *, limit: int = MAX_NETWORKS) -> tuple[str, ...]:
    """CIDRs as given, each checked and in canonical form; refused as a whole if one is bad."""
    try:
        networks = parse_networks(values)
    except ValueError as exc:
        raise Invalid(
            "invalid_network", str(exc),
            "Write networks as CIDRs, e.g. 10.1.0.0/16 or 2001:db8::/32, or one address.",
        ) from None  # fmt: skip
    if len(networks) > limit:
        raise Invalid("too_many_networks", f"at most {limit} networks",
                      "Cover neighbouring networks with one wider CIDR.")  # fmt: skip
    return tuple(str(n) for n in networks)


async def show(relay: Relay, now: int, *, vault: str) -> NetworkView:
    async with relay.read() as conn:
        return _view(await store.load(conn, vault))


async def _change(
    relay: Relay, now: int, vault: str, approver: Principal, source_ip: str | None, *,
    action: str, enabled: bool | None = None, add: Sequence[str] = (), drop: str | None = None,
) -> NetworkView:  # fmt: skip
    async with relay.tx() as tx:
        current = await store.lock(tx.conn, vault, now)
        cidrs = set(current.cidrs) | set(add)
        if drop is not None:
            if drop not in cidrs:
                raise NotFound("no_such_network", f"{drop} is not in the vault's allowlist",
                               "See `sealbox approver network show`.")  # fmt: skip
            cidrs.discard(drop)
        if len(cidrs) > MAX_NETWORKS:
            raise Invalid("too_many_networks", f"an allowlist holds at most {MAX_NETWORKS}",
                          "Cover neighbouring networks with one wider CIDR.")  # fmt: skip
        on = current.enabled if enabled is None else enabled
        if on == current.enabled and cidrs == set(current.cidrs):
            return _view(current, changed=False)
        saved = await store.save(tx.conn, vault, enabled=on, cidrs=sorted(cidrs),
                                 version=current.version, now=now)  # fmt: skip
        detail: dict[str, object] = {"enabled": saved.enabled, "version": saved.version}
        if add:
            detail["added"] = sorted(set(add) - set(current.cidrs))
        if drop is not None:
            detail["removed"] = [drop]
        if saved.enabled and not saved.cidrs:
            detail["denies_all"] = True
        await audit.append(
            tx.conn, vault=vault, at=now, actor=approver.id, action=action,
            severity="notice", source_ip=source_ip, detail=detail,
        )  # fmt: skip
    # Committed: this process enforces it from the next request on.
    relay.allowlists.forget(vault)
    return _view(saved)


async def allow(
    relay: Relay, now: int, *, vault: str, cidrs: Sequence[str], approver: Principal,
    source_ip: str | None,
) -> NetworkView:  # fmt: skip
    """Add networks (already there: no change)."""
    checked = check_networks(cidrs)
    if not checked:
        raise Invalid("invalid_network", "name at least one network")
    return await _change(relay, now, vault, approver, source_ip, action="network.allowed",
                         add=checked)  # fmt: skip


async def remove(
    relay: Relay, now: int, *, vault: str, cidr: str, approver: Principal, source_ip: str | None
) -> NetworkView:
    """Take one network out, written as it was added or in its canonical form."""
    [checked] = check_networks([cidr])
    return await _change(relay, now, vault, approver, source_ip, action="network.removed",
                         drop=checked)  # fmt: skip


async def set_enabled(
    relay: Relay, now: int, *, vault: str, enabled: bool, approver: Principal,
    source_ip: str | None,
) -> NetworkView:  # fmt: skip
    """Turn the allowlist on (enabled and empty: every machine and agent is refused) or off."""
    return await _change(
        relay, now, vault, approver, source_ip,
        action="network.enabled" if enabled else "network.disabled", enabled=enabled,
    )  # fmt: skip
