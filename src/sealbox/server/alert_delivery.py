"""Sending alerts: the relay's background loop over the outbox, webhooks over HTTP, email over SMTP.

The I/O edge of alerts.  Each round the loop claims targets with due
deliveries (:func:`sealbox.server.store.alerts.claim`, a lease), sends each
claimed target's deliveries oldest first until one fails, and records every
attempt (:func:`sealbox.server.services.alerts.record`: backoff, and
disabling after 10 failures in a row).  A delivery is removed from the outbox
only once it was accepted, so a relay stopped or killed with deliveries
waiting sends them when it (or another replica) runs again; a receiver may
see one twice (a crash between sending and recording), and dedupes on the
delivery id.

Webhooks: ``POST`` of the JSON event with ``X-Sealbox-Signature``; a 2xx
answer is acceptance, anything else (a redirect included: none is followed) a
failure; the response body is never read.  A webhook goes only to addresses
:mod:`sealbox.server.alert_network` allows (public ones, or the operator's
allowed networks), checked at send time on the resolved address that is then
connected to.  Each send, webhook or email, has an overall deadline
(:func:`deadline`), and the relay's loop drains each target in its own task.
Email: one message per event over SMTP, upgraded with STARTTLS whenever the
server offers it (required with ``--smtp-require-tls``); a login (user and
``SEALBOX_SMTP_PASSWORD``) is only ever sent over TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import secrets
import smtplib
import ssl
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import httpx

from sealbox import __version__
from sealbox.protocol.alerts import SIGNATURE_HEADER, signature_header
from sealbox.server import alert_network
from sealbox.server.config import Settings
from sealbox.server.relay import Relay
from sealbox.server.services import alerts as service
from sealbox.server.services.alerts import Outcome
from sealbox.server.store import alerts as store
from sealbox.server.store.alerts import Delivery, Target

__all__ = ["Sender", "deliver_once", "deliverer", "email_message", "send_email", "webhook_body"]

log = logging.getLogger("sealbox.relay")

#: Most deliveries one target sends per claim, before its lease is given back.
PER_CLAIM = 50
#: Most targets one round claims.
CLAIMS = 16
#: Where the SMTP login's password comes from (never an option: argv is visible to all).
PASSWORD_ENV = "SEALBOX_SMTP_PASSWORD"  # noqa: S105 - the variable's name, not a password

Sender = Callable[[Relay, Target, Delivery], Awaitable[Outcome]]


def webhook_body(target: Target, delivery: Delivery) -> bytes:
    """The JSON a webhook receives: the event's fields, then which target and delivery."""
    body = {**delivery.event, "target": target.id, "delivery": delivery.delivery_id}
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def deadline(settings: Settings) -> float:
    """Seconds one whole send may take: ``alert_timeout``, but at most half the lease.

    httpx's timeout (and smtplib's) bounds each network read or write, not the
    call: a receiver that trickles a byte every second keeps it alive for ever.
    So each send also runs under this overall deadline, which stays well below
    the lease each send starts under (``alert_lease_seconds``), so a target
    cannot be claimed by another replica while its send is still running.
    """
    return min(settings.alert_timeout, settings.alert_lease_seconds / 2)


async def send_webhook(relay: Relay, target: Target, delivery: Delivery) -> Outcome:
    assert target.url is not None
    secret = await service.secret_of(relay, target)
    body = webhook_body(target, delivery)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"sealbox-relay/{__version__}",
        SIGNATURE_HEADER: signature_header(secret, body, relay.now()),
        "X-Sealbox-Delivery": delivery.delivery_id,
    }
    settings = relay.settings

    async def post() -> int:
        async with (
            httpx.AsyncClient(follow_redirects=False, timeout=settings.alert_timeout,
                              trust_env=False,
                              transport=alert_network.transport(settings.alert_allow_networks),
                              ) as http,
            http.stream("POST", target.url or "", content=body, headers=headers) as response,
        ):  # fmt: skip
            return response.status_code

    # The errors an approver sees (last_error) are coarse on purpose: which of "refused",
    # "connect failed" or "timeout" is all they learn about the network behind the relay.
    try:
        status = await asyncio.wait_for(post(), deadline(settings))
    except alert_network.RefusedAddress:
        return Outcome(False, "refused address")
    except (httpx.InvalidURL, UnicodeError):  # UnicodeError: idna's errors come through
        return Outcome(False, "invalid URL")
    except (TimeoutError, httpx.TimeoutException):
        return Outcome(False, "timeout")
    except httpx.ConnectError:
        return Outcome(False, "connect failed")
    except httpx.HTTPError:
        # Not the exception's text: it can carry the URL (and whatever is in it).
        return Outcome(False, "request failed")
    if 200 <= status < 300:
        return Outcome(True)
    return Outcome(False, f"HTTP {status}")


def email_message(settings: Settings, target: Target, delivery: Delivery) -> EmailMessage:
    """The message an email target receives for one event (plain text, the event as JSON)."""
    event = delivery.event
    message = EmailMessage()
    message["From"] = settings.smtp_from or f"sealbox@{settings.smtp_host or 'localhost'}"
    message["To"] = ", ".join(target.addresses)
    # Short enough never to be folded: the vault and the rest are in the text.
    message["Subject"] = f"[sealbox] {event['severity']}: {event['action']}"
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="sealbox.invalid")
    message["X-Sealbox-Delivery"] = delivery.delivery_id
    lines = [
        f"The sealbox relay at {settings.base_url} recorded an audit event that this alert "
        f"target ({target.id}) selects.",
        "",
        f"Action:   {event['action']}",
        f"Severity: {event['severity']}",
        f"Vault:    {event['vault']}",
        f"Event:    #{event['seq']} at {event['at']} (Unix time), by {event['actor']}",
    ]
    if event.get("client_id"):
        lines.append(f"Client:   {event['client_id']}")
    if event.get("item_id"):
        lines.append(f"Item:     {event['item_id']}")
    lines += [
        "",
        "The event as recorded:",
        json.dumps({**event, "target": target.id, "delivery": delivery.delivery_id},
                   indent=2, sort_keys=True),
        "",
        "This email is not signed: check the event against the vault's audit log.",
    ]  # fmt: skip
    message.set_content("\n".join(lines) + "\n")
    return message


class TLSRequired(RuntimeError):
    """``--smtp-require-tls`` is set and the SMTP server offers no STARTTLS."""


def send_email(settings: Settings, message: EmailMessage, password: str | None) -> None:
    """Send ``message`` through the configured SMTP server (blocking; run it in a thread)."""
    if not settings.smtp_host:
        raise RuntimeError("no SMTP server is configured (--smtp-host)")
    context = ssl.create_default_context(cafile=settings.smtp_ca_file)
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port,
                      timeout=settings.alert_timeout) as smtp:  # fmt: skip
        smtp.ehlo()
        tls = smtp.has_extn("starttls")
        if tls:
            smtp.starttls(context=context)
            smtp.ehlo()
        elif settings.smtp_require_tls:
            # Without TLS a network attacker who strips STARTTLS reads (or drops) the alert.
            raise TLSRequired("the SMTP server offers no STARTTLS and TLS is required")
        if settings.smtp_user:
            if not tls:
                raise RuntimeError("the SMTP server offers no STARTTLS: the login is not sent")
            smtp.login(settings.smtp_user, password or "")
        smtp.send_message(message)


async def send_mail(relay: Relay, target: Target, delivery: Delivery) -> Outcome:
    message = email_message(relay.settings, target, delivery)
    password = os.environ.get(PASSWORD_ENV)
    try:
        # The thread cannot be stopped; it ends at smtplib's own per-operation timeout, but
        # the delivery loop does not wait for it past the deadline.
        await asyncio.wait_for(asyncio.to_thread(send_email, relay.settings, message, password),
                               deadline(relay.settings))  # fmt: skip
    except TLSRequired:
        return Outcome(False, "no STARTTLS (TLS required)")
    except TimeoutError:
        return Outcome(False, "timeout")
    except smtplib.SMTPResponseException as exc:
        return Outcome(False, f"SMTP {exc.smtp_code}")
    except (OSError, smtplib.SMTPException, RuntimeError) as exc:
        return Outcome(False, type(exc).__name__)
    return Outcome(True)


async def send(relay: Relay, target: Target, delivery: Delivery) -> Outcome:
    if target.kind == "webhook":
        return await send_webhook(relay, target, delivery)
    return await send_mail(relay, target, delivery)


def _ms(relay: Relay) -> int:
    return int(relay.clock() * 1000)


def _lease_ms(relay: Relay) -> int:
    return int(relay.settings.alert_lease_seconds * 1000)


async def _drain(
    relay: Relay, owner: str, vault: str, target_id: str, sender: Sender,
    jitter: Callable[[], float],
) -> int:  # fmt: skip
    sent = 0
    try:
        for _ in range(PER_CLAIM):
            async with relay.read() as conn:
                target = await store.get(conn, vault, target_id)
                delivery = await store.next_delivery(conn, vault, target_id) if target else None
            if target is None or delivery is None or not target.enabled:
                break
            # Each send starts under a fresh lease, and deadline() (at most half the lease)
            # bounds the whole send: a claim that ran out while earlier sends were slow is not
            # used twice, and no other replica claims the target while this send runs.
            async with relay.tx() as tx:
                held = await store.renew(tx.conn, owner=owner, vault=vault, target=target_id,
                                         now_ms=_ms(relay), lease_ms=_lease_ms(relay))  # fmt: skip
            if not held:
                return sent
            try:
                outcome = await sender(relay, target, delivery)
            except Exception as exc:
                # Whatever went wrong here (a secret that no longer opens, say) is a failed
                # try like any other: counted, retried with backoff, disabling at 10.
                log.exception("alert delivery %s to %s broke", delivery.delivery_id, target.id)
                outcome = Outcome(False, type(exc).__name__)
            if not outcome.ok:
                log.warning("alert delivery %s to %s failed: %s", delivery.delivery_id,
                            target.id, outcome.error)  # fmt: skip
            go_on = await service.record(
                relay, target=target, delivery=delivery, outcome=outcome, now_ms=_ms(relay),
                random=jitter,
            )  # fmt: skip
            if not go_on:
                break
            sent += 1
    finally:
        async with relay.tx() as tx:
            await store.release(tx.conn, owner=owner, vault=vault, target=target_id)
    return sent


async def _claim(relay: Relay, owner: str, limit: int) -> list[tuple[str, str]]:
    if limit <= 0:
        return []
    async with relay.read() as conn:
        if not await store.any_due(conn, _ms(relay)):
            return []
    async with relay.tx() as tx:
        return await store.claim(tx.conn, owner=owner, now_ms=_ms(relay),
                                 lease_ms=_lease_ms(relay), limit=limit)  # fmt: skip


async def deliver_once(
    relay: Relay, *, owner: str, sender: Sender = send,
    jitter: Callable[[], float] = random.random,
) -> int:  # fmt: skip
    """One round: claim targets with due deliveries, send them; return how many were accepted.

    Waits for every claimed target (tests and one-off runs); the relay's
    :func:`deliverer` does not, so one slow target never holds the others.
    """
    claimed = await _claim(relay, owner, CLAIMS)
    done = await asyncio.gather(
        *(_drain(relay, owner, vault, target, sender, jitter) for vault, target in claimed)
    )
    return sum(done)


async def _drain_logged(relay: Relay, owner: str, vault: str, target: str, sender: Sender) -> int:
    try:
        return await _drain(relay, owner, vault, target, sender, random.random)
    except Exception:
        # The database restarting, say: the outbox keeps everything, the lease runs out.
        log.exception("alert delivery to %s failed; retrying later", target)
        return 0


async def deliverer(relay: Relay, *, sender: Sender = send, every: float | None = None) -> None:
    """Deliver alerts every ``every`` (or ``Settings.alert_poll_seconds``) s until cancelled.

    Each claimed target is drained in its own task, and each poll claims more
    targets while earlier ones are still sending (up to :data:`CLAIMS` at once):
    a receiver that is slow (each send bounded by :func:`deadline`) delays its
    own deliveries only.  On the way out (the relay stopping) this process's
    leases are given back, so another replica, or this relay started again,
    sends at once.
    """
    every = relay.settings.alert_poll_seconds if every is None else every
    owner = "own_" + secrets.token_hex(8)
    running: set[asyncio.Task[int]] = set()
    try:
        while True:
            try:
                # A target being drained holds a live lease, so it is not claimed again.
                for vault, target in await _claim(relay, owner, CLAIMS - len(running)):
                    task = asyncio.create_task(_drain_logged(relay, owner, vault, target, sender))
                    running.add(task)
                    task.add_done_callback(running.discard)
            except Exception:
                # The database restarting, say: the outbox keeps everything for next round.
                log.exception("alert delivery round failed; retrying in %s s", every)
            await asyncio.sleep(every)
    finally:
        for task in list(running):
            task.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.gather(*running, return_exceptions=True)
        with contextlib.suppress(Exception):
            await _release_all(relay, owner)


async def _release_all(relay: Relay, owner: str) -> None:
    async with relay.tx() as tx:
        await store.release(tx.conn, owner=owner)
