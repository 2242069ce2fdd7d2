"""Alert targets, managed by approvers, and what a delivery's outcome does to its target.

Every change an approver makes is one audited transaction.  A webhook's
signing secret is made here, shown once (in the answer to the approver who
added it) and kept sealed under the vault's alerts data key, so the delivery
loop can sign with it; no answer, event or log carries it afterwards.

What is delivered is the audit event as the log holds it (ids, action,
severity, detail): the audit log never holds a value, a token or a key, so
neither does an alert.  Sending is :mod:`sealbox.server.alert_delivery`'s.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from sealbox.errors import InvalidInput
from sealbox.protocol.alerts import (
    DEFAULT_MIN_SEVERITY,
    backoff_seconds,
    check_patterns,
    check_severity,
)
from sealbox.server import alert_network
from sealbox.server.auth.principal import Principal
from sealbox.server.errors import Conflict, Invalid, NotFound, TooMany
from sealbox.server.relay import Relay
from sealbox.server.store import alerts as store
from sealbox.server.store import audit
from sealbox.server.store.alerts import DISABLED_ACTION, Delivery, Target

__all__ = [
    "DISABLE_AFTER",
    "DROPPED_ACTION",
    "MAX_ADDRESSES",
    "MAX_TARGETS",
    "Outcome",
    "TargetView",
    "add_email",
    "add_webhook",
    "check_addresses",
    "check_url",
    "enable",
    "list_targets",
    "record",
    "remove",
    "secret_of",
    "test",
]

#: Failed deliveries in a row after which a target is disabled (an approver re-enables it).
DISABLE_AFTER = 10
#: The audit action written when deliveries that kept failing are dropped (dead letters).
DROPPED_ACTION = "alert.delivery_dropped"
#: Most targets one vault may have, and most recipients one email target may have.
MAX_TARGETS = 20
MAX_ADDRESSES = 10
#: The pseudo-project whose data key seals webhook secrets (no project name starts with "_").
SECRETS_PROJECT = "_alerts"
TARGET_ID = re.compile(r"alt_[a-z2-7]{26}")

# A plain address: no display name, no comment, no white space, no CR/LF (a header
# injection), one "@", a dotted domain.  Anything fancier is refused rather than parsed.
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")


@dataclass(frozen=True)
class TargetView:
    """A target as approvers see it (never its secret)."""

    id: str
    kind: str
    url: str | None
    addresses: tuple[str, ...]
    events: tuple[str, ...]
    min_severity: str
    enabled: bool
    failures: int
    pending: int
    created_at: int
    created_by: str
    disabled_at: int | None
    delivered_at: int | None
    last_error: str | None


def _view(target: Target) -> TargetView:
    return TargetView(
        target.id, target.kind, target.url, target.addresses, target.events,
        target.min_severity, target.enabled, target.failures, target.pending, target.created_at,
        target.created_by, target.disabled_at, target.delivered_at, target.last_error,
    )  # fmt: skip


def _invalid(code: str, exc: Exception | str, hint: str = "") -> Invalid:
    return Invalid(code, str(exc), hint)


def check_url(url: str, allowed: Sequence[str] = ()) -> str:
    """A webhook URL: http or https, a host, no credentials or fragment, at most 2048 chars.

    Also one httpx sends to (an ASCII or IDNA-encodable host), and, when its host is a
    literal address, a public one or one in ``allowed`` (see
    :mod:`sealbox.server.alert_network`; a host name is checked when it is resolved).
    """
    hint = "Give an absolute http(s) URL, e.g. https://hooks.example.com/sealbox."
    if len(url) > 2048 or any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise _invalid("invalid_webhook_url", "a webhook URL is at most 2048 printable characters",
                       hint)  # fmt: skip
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise _invalid("invalid_webhook_url", "the webhook URL does not parse", hint) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _invalid("invalid_webhook_url", "a webhook URL is http(s) with a host", hint)
    if parts.username or parts.password or parts.fragment:
        # Credentials in a URL end up in listings and logs: use the signature instead.
        raise _invalid(
            "invalid_webhook_url", "a webhook URL has no user, password or fragment",
            "The receiver checks X-Sealbox-Signature to know the relay sent it.",
        )  # fmt: skip
    try:
        # What the delivery loop will send to: httpx refuses some hosts urlsplit takes (a
        # combining mark or a zero-width space that IDNA does not encode).
        host = httpx.URL(url).host
    except (httpx.InvalidURL, ValueError):  # ValueError: idna's own errors come through
        raise _invalid("invalid_webhook_url", "the webhook URL's host is not a valid name",
                       "Write the host in ASCII (or its xn-- form).") from None  # fmt: skip
    address = alert_network.literal_address(host) or alert_network.literal_address(parts.hostname)
    if address is not None:
        try:
            alert_network.check_address(address, allowed)
        except alert_network.RefusedAddress:
            raise _invalid(
                "webhook_address_refused",
                "a webhook may not go to a loopback, private, link-local or reserved address",
                "Use a public address, or ask the relay's operator to allow the network "
                "(--alert-allow-network).",
            ) from None
    return url


def check_addresses(values: Sequence[str]) -> tuple[str, ...]:
    if not values:
        raise _invalid("invalid_email_address", "name at least one address")
    if len(values) > MAX_ADDRESSES:
        raise _invalid("invalid_email_address", f"at most {MAX_ADDRESSES} addresses per target",
                       "Use a list address, or add another email target.")  # fmt: skip
    for value in values:
        if len(value) > 254 or not _ADDRESS.fullmatch(value):
            raise _invalid("invalid_email_address", "an address is name@domain, nothing more",
                           "Write a plain address, e.g. ops@example.com.")  # fmt: skip
    return tuple(dict.fromkeys(values))


def _selection(events: Sequence[str], min_severity: str | None) -> tuple[tuple[str, ...], str]:
    """Action patterns and minimum severity; with neither given, severity ``alert`` and up;
    with patterns only, every severity of those actions."""
    try:
        patterns = check_patterns(events)
        if min_severity is None:
            min_severity = "info" if patterns else DEFAULT_MIN_SEVERITY
        return patterns, check_severity(min_severity)
    except InvalidInput as exc:
        raise _invalid("invalid_alert_selection", exc.message,
                       "e.g. --events 'canary.*' --min-severity alert") from None  # fmt: skip


def new_target_id() -> str:
    import base64

    return "alt_" + base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=").lower()


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


async def _seal(relay: Relay, vault: str, target: str, secret: str) -> bytes:
    dek = await relay.master_key.dek(relay.engine, vault, SECRETS_PROJECT)
    return relay.master_key.seal(dek, secret.encode(), vault, target, "webhook-secret")


async def secret_of(relay: Relay, target: Target) -> str:
    """A webhook's signing secret, opened for the delivery loop (never shown again)."""
    if target.secret_sealed is None:
        raise ValueError("this target has no secret")
    dek = await relay.master_key.dek(relay.engine, target.vault, SECRETS_PROJECT)
    opened = relay.master_key.open(dek, target.secret_sealed, target.vault, target.id,
                                   "webhook-secret")  # fmt: skip
    return opened.decode()


async def _add(
    relay: Relay, now: int, *, vault: str, kind: str, url: str | None,
    addresses: Sequence[str], events: Sequence[str], min_severity: str | None,
    approver: Principal, source_ip: str | None, secret: str | None,
) -> TargetView:  # fmt: skip
    patterns, least = _selection(events, min_severity)
    target = new_target_id()
    sealed = await _seal(relay, vault, target, secret) if secret is not None else None
    async with relay.tx() as tx:
        if await store.count(tx.conn, vault) >= MAX_TARGETS:
            raise TooMany(
                "too_many_alert_targets", f"a vault has at most {MAX_TARGETS} targets",
                "Remove one you no longer need (`sealbox approver alerts remove`).",
            )  # fmt: skip
        await store.insert(
            tx.conn, vault=vault, id=target, kind=kind, url=url, addresses=addresses,
            secret_sealed=sealed, events=patterns, min_severity=least, now=now, by=approver.id,
        )  # fmt: skip
        detail: dict[str, Any] = {"target": target, "kind": kind, "events": list(patterns),
                                  "min_severity": least}  # fmt: skip
        if url is not None:
            detail["host"] = urlsplit(url).hostname
        else:
            detail["recipients"] = len(addresses)
        await audit.append(tx.conn, vault=vault, at=now, actor=approver.id,
                           action="alert.target_added", severity="notice",
                           source_ip=source_ip, detail=detail)  # fmt: skip
        found = await store.get(tx.conn, vault, target)
    assert found is not None
    return _view(found)


async def add_webhook(
    relay: Relay, now: int, *, vault: str, url: str, events: Sequence[str],
    min_severity: str | None, approver: Principal, source_ip: str | None,
) -> tuple[TargetView, str]:  # fmt: skip
    """Add a webhook; return it and its signing secret (shown once, to this caller)."""
    secret = new_secret()
    checked = check_url(url, relay.settings.alert_allow_networks)
    view = await _add(relay, now, vault=vault, kind="webhook", url=checked, addresses=(),
                      events=events, min_severity=min_severity, approver=approver,
                      source_ip=source_ip, secret=secret)  # fmt: skip
    return view, secret


async def add_email(
    relay: Relay, now: int, *, vault: str, addresses: Sequence[str], events: Sequence[str],
    min_severity: str | None, approver: Principal, source_ip: str | None,
) -> TargetView:  # fmt: skip
    return await _add(relay, now, vault=vault, kind="email", url=None,
                      addresses=check_addresses(addresses), events=events,
                      min_severity=min_severity, approver=approver, source_ip=source_ip,
                      secret=None)  # fmt: skip


async def list_targets(relay: Relay, *, vault: str) -> list[TargetView]:
    async with relay.read() as conn:
        return [_view(t) for t in await store.listing(conn, vault)]


def _check_id(target: str) -> str:
    if not TARGET_ID.fullmatch(target):
        raise _invalid("invalid_alert_target", "an alert target id is alt_ and 26 characters",
                       "See `sealbox approver alerts list`.")  # fmt: skip
    return target


async def _locked(tx_conn: Any, vault: str, target: str) -> Target:
    found = await store.get(tx_conn, vault, _check_id(target), lock=True)
    if found is None:
        raise NotFound("no_such_alert_target", f"no alert target {target} in this vault",
                       "See `sealbox approver alerts list`.")  # fmt: skip
    return found


async def remove(
    relay: Relay, now: int, *, vault: str, target: str, approver: Principal,
    source_ip: str | None,
) -> TargetView:  # fmt: skip
    """Remove a target and the deliveries still waiting for it."""
    async with relay.tx() as tx:
        found = await _locked(tx.conn, vault, target)
        dropped = await store.delete_target(tx.conn, vault, target)
        # Removing a target silences alerts: a warning, so the other targets hear of it.
        await audit.append(tx.conn, vault=vault, at=now, actor=approver.id,
                           action="alert.target_removed", severity="warning", source_ip=source_ip,
                           detail={"target": target, "kind": found.kind,
                                   "dropped_deliveries": dropped})  # fmt: skip
    return _view(found)


async def enable(
    relay: Relay, now: int, *, vault: str, target: str, approver: Principal,
    source_ip: str | None,
) -> tuple[TargetView, bool]:  # fmt: skip
    """Enable a target again (after it was disabled for failing); ``False``: it was enabled."""
    async with relay.tx() as tx:
        found = await _locked(tx.conn, vault, target)
        if found.enabled:
            return _view(found), False
        await store.set_enabled(tx.conn, vault, target, now)
        # A delivery that already failed DISABLE_AFTER times is a dead letter: sent first again
        # (deliveries go in order), it would disable the target again and hold the rest.
        dropped = await store.drop_dead(tx.conn, vault, target, DISABLE_AFTER)
        await audit.append(tx.conn, vault=vault, at=now, actor=approver.id,
                           action="alert.target_enabled", severity="notice", source_ip=source_ip,
                           detail={"target": target, "kind": found.kind,
                                   "pending": found.pending - dropped})  # fmt: skip
        if dropped:
            # Counts only: what the dropped events were is in this audit log already.
            await audit.append(tx.conn, vault=vault, at=now, actor="relay",
                               action=DROPPED_ACTION, severity="warning",
                               detail={"target": target, "kind": found.kind, "dropped": dropped,
                                       "attempts_at_least": DISABLE_AFTER})  # fmt: skip
        again = await store.get(tx.conn, vault, target)
    assert again is not None
    return _view(again), True


async def test(
    relay: Relay, now: int, *, vault: str, target: str, approver: Principal,
    source_ip: str | None,
) -> str:  # fmt: skip
    """Queue a test event for one target; return its delivery id."""
    async with relay.tx() as tx:
        found = await _locked(tx.conn, vault, target)
        if not found.enabled:
            raise Conflict("alert_target_disabled", f"alert target {target} is disabled",
                           "Enable it first: `sealbox approver alerts enable ID`.")  # fmt: skip
        await audit.append(tx.conn, vault=vault, at=now, actor=approver.id,
                           action="alert.target_tested", severity="info", source_ip=source_ip,
                           detail={"target": target, "kind": found.kind})  # fmt: skip
        event = {
            "vault": vault, "seq": None, "at": now, "action": "alert.test", "severity": "info",
            "actor": approver.id, "client_id": None, "item_id": None,
            "detail": {"test": True}, "hash": None,
        }  # fmt: skip
        return await store.enqueue_one(tx.conn, vault, target, event, now)


# --- delivery outcomes -------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What happened to one delivery attempt."""

    ok: bool
    error: str = ""
    """Why it failed: a status code or an error class, never a response body."""


async def record(
    relay: Relay, *, target: Target, delivery: Delivery, outcome: Outcome, now_ms: int,
    random: Callable[[], float],
) -> bool:  # fmt: skip
    """Record an attempt; on the 10th failure in a row disable the target and audit it.

    Returns whether the target may go on to its next delivery now.
    """
    settings = relay.settings
    now = now_ms // 1000
    async with relay.tx() as tx:
        if outcome.ok:
            await store.delivered(tx.conn, vault=target.vault, target=target.id,
                                  row=delivery.row, now=now)  # fmt: skip
            return True
        failures = target.failures + 1
        wait = backoff_seconds(failures, base=settings.alert_retry_base,
                               cap=settings.alert_retry_cap, random=random)  # fmt: skip
        disable = failures >= DISABLE_AFTER
        await store.failed(
            tx.conn, vault=target.vault, target=target.id, row=delivery.row,
            error=outcome.error, failures=failures, retry_at_ms=now_ms + int(wait * 1000),
            disable_at=now if disable else None,
        )  # fmt: skip
        if disable:
            # Disabled in this transaction before the event is written, so the event's
            # alerts go to every other target that selects it and never to this one.
            await audit.append(
                tx.conn, vault=target.vault, at=now, actor="relay", action=DISABLED_ACTION,
                severity="alert",
                detail={"target": target.id, "kind": target.kind, "failures": failures,
                        "last_error": outcome.error[:200], "pending": target.pending},
            )  # fmt: skip
    return False
