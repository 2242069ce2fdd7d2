"""Share links: a person's client leaves one sealed value for someone outside the vault.

The relay holds the sender's ciphertext and never its key (that is in the
link's fragment).  Its own part is access control around the ciphertext:

* **create** — only a person's login (a human client): a share is not an item,
  so no grant, scope or machine credential reaches one, and a machine or agent
  does not hand values to people outside the vault either.
  At most :data:`MAX_LIVE_PER_CREATOR` live shares per person (429
  ``too_many_shares``); creates are authenticated calls, so the relay's
  per-caller rate limiter applies to them as to any other.
* **open** — anyone holding the link, once: the call must carry the link's open
  token (derived from the key; the relay stores only its SHA-256, compared in
  constant time), without which the share reads as unknown (404) and nothing
  changes, so its id alone spends nothing.  The first correct open takes the
  ciphertext and the share is spent (a compare-and-set in the store, so two
  viewers at once cannot both get it).  An optional passphrase is checked
  against its Argon2id hash; a wrong one destroys the share.  A call that
  carries a machine's or agent's credential is refused (403) and changes
  nothing.  Opens are rate limited per source address.
* **expiry** — a share past its TTL is refused (410) and its ciphertext
  deleted, at the first open that finds it so or by the sweeper.

Every change is audited (``share.created``, ``share.opened``, ``share.destroyed``,
``share.expired``) with the share's id, TTL, size and whether it has a
passphrase: never the value, the key or the passphrase.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sealbox.crypto import sharelink
from sealbox.errors import MalformedInput, NotAuthorized
from sealbox.protocol import shares as proto
from sealbox.protocol.shares import ShareState
from sealbox.server.auth.principal import Principal
from sealbox.server.errors import Forbidden, Gone, Invalid, NotFound, TooMany
from sealbox.server.relay import Relay
from sealbox.server.store import audit
from sealbox.server.store import shares as store

__all__ = [
    "SHARES_PROJECT",
    "Created",
    "Opened",
    "ShareInfo",
    "create",
    "info",
    "open_share",
    "refuse_machine",
    "sweep",
]

#: The at-rest data key of shares is the vault's key for this name, which no project can
#: have (a project name starts with a letter or digit).
SHARES_PROJECT = "~shares"
#: Most live shares one person may have at once: a link is for one value to one recipient,
#: and without a cap one login could fill the relay's database with ciphertext.
MAX_LIVE_PER_CREATOR = 100
#: Largest ciphertext accepted: the largest value plus the AES-GCM tag.
MAX_CIPHERTEXT = proto.MAX_VALUE_BYTES + sharelink.TAG_BYTES


@dataclass(frozen=True)
class Created:
    id: str
    expires_at: int


@dataclass(frozen=True)
class ShareInfo:
    id: str
    passphrase: bool
    """Whether opening needs a passphrase."""
    expires_at: int


@dataclass(frozen=True)
class Opened:
    id: str
    nonce: bytes
    ciphertext: bytes
    """The sender's ciphertext: only the link's key opens it."""


def _at_rest_row(vault: str, share_id: str) -> tuple[str, str, str]:
    return ("share", vault, share_id)


async def create(
    relay: Relay, *, vault: str, principal: Principal, share_id: str, nonce: bytes,
    ciphertext: bytes, ttl: int, passphrase: str | None, now: int, source_ip: str | None,
    open_token_hash: bytes,
) -> Created:  # fmt: skip
    """Store a live share of ``ciphertext`` for ``ttl`` seconds."""
    if principal.role != "client" or principal.client_kind != "human":
        raise Forbidden(
            "share_people_only", "only a person's login may create a share link",
            "Create share links with `sealbox share create` under your own `sealbox login`.",
        )  # fmt: skip
    try:
        proto.check_share_id(share_id)
        proto.check_ttl(ttl)
    except MalformedInput as exc:
        raise Invalid("invalid_share", exc.message, exc.hint) from None
    if len(nonce) != sharelink.NONCE_BYTES:
        raise Invalid("invalid_share", "the nonce must be 12 bytes")
    if not sharelink.TAG_BYTES < len(ciphertext) <= MAX_CIPHERTEXT:
        raise Invalid(
            "share_too_large" if len(ciphertext) > MAX_CIPHERTEXT else "invalid_share",
            f"a share's ciphertext is 1 to {proto.MAX_VALUE_BYTES} bytes of value plus a "
            f"16-byte tag; this one is {len(ciphertext)} bytes",
            "Share a value of at most 64 KiB.",
        )  # fmt: skip
    if len(open_token_hash) != sharelink.OPEN_TOKEN_BYTES:
        raise Invalid("invalid_share", "the open token hash must be 32 bytes (SHA-256)")
    hashed = None
    if passphrase is not None:
        if not proto.MIN_PASSPHRASE <= len(passphrase) <= proto.MAX_PASSPHRASE:
            raise Invalid(
                "invalid_passphrase",
                f"a share's passphrase is {proto.MIN_PASSPHRASE} to {proto.MAX_PASSPHRASE} "
                "characters", "Choose a longer passphrase.",
            )  # fmt: skip
        # Argon2id takes tens of milliseconds of CPU: not on the event loop.
        hashed = await asyncio.to_thread(sharelink.hash_passphrase, passphrase)
    dek = await relay.master_key.dek(relay.engine, vault, SHARES_PROJECT)
    sealed = relay.master_key.seal(dek, ciphertext, *_at_rest_row(vault, share_id))
    row = store.ShareRow(
        vault=vault, id=share_id, created_by=principal.id, state=ShareState.LIVE.value,
        nonce=nonce, ciphertext=sealed, passphrase_hash=hashed, size=len(ciphertext),
        created_at=now, expires_at=now + ttl, updated_at=now, open_token_hash=open_token_hash,
    )  # fmt: skip
    async with relay.tx() as tx:
        # Counted in the transaction that inserts: on SQLite writes are serialised; on
        # PostgreSQL two creates at once may each see 99 and both pass (a soft cap).
        live = await store.count_live(tx.conn, vault, principal.id, now)
        if live >= MAX_LIVE_PER_CREATOR:
            # Refused, stored nothing: only the refusal is recorded (committed as it ends).
            await audit.append(
                tx.conn, vault=vault, at=now, actor=principal.id, action="share.refused",
                severity="warning", client_id=principal.id, source_ip=source_ip,
                detail={"error": "too_many_shares", "live": live},
            )  # fmt: skip
        else:
            await store.insert(tx.conn, row)
            await audit.append(
                tx.conn, vault=vault, at=now, actor=principal.id, action="share.created",
                client_id=principal.id, source_ip=source_ip,
                detail={"share": share_id, "ttl": ttl, "with_passphrase": hashed is not None,
                        "size": len(ciphertext)},
            )  # fmt: skip
    if live >= MAX_LIVE_PER_CREATOR:
        raise TooMany(
            "too_many_shares",
            f"you have {live} live share links; at most {MAX_LIVE_PER_CREATOR} may be live "
            "at once", "Wait until some are opened or expire (at most 7 days), then retry.",
        )  # fmt: skip
    return Created(share_id, row.expires_at)


def refuse_machine(principal: Principal) -> None:
    """Refuse an open by a caller that authenticated as a machine or an agent."""
    if principal.role == "client" and principal.client_kind in ("machine", "agent"):
        raise Forbidden(
            "share_not_for_machines",
            f"share links are for people: a{'n' if principal.client_kind == 'agent' else ''} "
            f"{principal.client_kind} credential may not open one",
            "Open the link in a browser, or with `sealbox share open` outside any machine "
            "or agent identity; to give a machine a secret, store it as an item and grant it.",
        )  # fmt: skip


def _gone(row: store.ShareRow | None) -> NotFound | Gone:
    if row is None:
        return _unknown()
    if row.state == ShareState.OPENED:
        return Gone(
            "share_opened", "this share link was opened already: it shows its value once",
            "If you did not open it yourself, someone else did: tell the sender.",
        )  # fmt: skip
    if row.state == ShareState.DESTROYED:
        return Gone(
            "share_destroyed", "this share link was destroyed by a wrong passphrase",
            "Ask the sender for a new link.",
        )  # fmt: skip
    return Gone("share_expired", "this share link has expired", "Ask the sender for a new link.")


async def _read(relay: Relay, vault: str, share_id: str) -> store.ShareRow | None:
    try:
        proto.check_share_id(share_id)
    except MalformedInput:
        # Any id that cannot exist reads as one that does not: nothing to learn either way.
        return None
    async with relay.read() as conn:
        return await store.get(conn, vault, share_id)


async def info(relay: Relay, *, vault: str, share_id: str, now: int) -> ShareInfo:
    """A live share's id, expiry and whether it needs a passphrase; changes nothing."""
    row = await _read(relay, vault, share_id)
    if row is None or row.state != ShareState.LIVE or row.expires_at < now:
        raise _gone(None if row is None else _as_read(row, now))
    return ShareInfo(row.id, row.passphrase_hash is not None, row.expires_at)


def _as_read(row: store.ShareRow, now: int) -> store.ShareRow:
    """A live share past its expiry reads as expired, whether the sweeper ran or not."""
    if row.state == ShareState.LIVE and row.expires_at < now:
        return store.ShareRow(**{**row.__dict__, "state": ShareState.EXPIRED.value})
    return row


async def _spend(
    relay: Relay, row: store.ShareRow, to: ShareState, now: int, *, action: str,
    severity: str, actor: str, source_ip: str | None,
) -> bool:  # fmt: skip
    async with relay.tx() as tx:
        if not await store.spend(tx.conn, row.vault, row.id, to, now):
            return False
        await audit.append(
            tx.conn, vault=row.vault, at=now, actor=actor, action=action, severity=severity,
            source_ip=source_ip,
            detail={"share": row.id, "created_by": row.created_by,
                    "with_passphrase": row.passphrase_hash is not None, "size": row.size},
        )  # fmt: skip
    return True


async def _refused_now(relay: Relay, row: store.ShareRow, now: int) -> NotFound | Gone:
    """Why a share another call spent meanwhile is refused (re-read: it may be gone)."""
    again = await _read(relay, row.vault, row.id)
    return _gone(None if again is None else _as_read(again, now))


def _unknown() -> NotFound:
    return NotFound(
        "share_not_found", "there is no such share link (or it was purged long ago)",
        "Check the link, or ask the sender for a new one.",
    )  # fmt: skip


async def open_share(
    relay: Relay, *, vault: str, share_id: str, passphrase: str | None, now: int,
    source_ip: str | None, token: bytes | None = None,
) -> Opened:  # fmt: skip
    """Take a live share's ciphertext, once; see the module's docstring."""
    wait = relay.anonymous_limiter.allow(f"share {source_ip or 'unknown'}")
    if wait:
        raise TooMany("rate_limited", "too many share opens from this address",
                      f"Retry after {wait:.0f} s.", retry_after=wait)  # fmt: skip
    row = await _read(relay, vault, share_id)
    if row is None or row.state != ShareState.LIVE:
        raise _gone(row)
    if row.open_token_hash is None or not sharelink.check_open_token(row.open_token_hash, token):
        # Whoever knows only the id (an audit entry, an access log, a link without its
        # fragment) gets what an unknown id gets, and the share stays live: a wrong token
        # is not a guess at the passphrase, so it destroys nothing.  Audited, changing
        # nothing else, so the sender can see that someone holds the id without the key.
        async with relay.tx() as tx:
            await audit.append(
                tx.conn, vault=row.vault, at=now, actor="anonymous",
                action="share.open_refused", severity="warning", source_ip=source_ip,
                detail={"share": row.id, "created_by": row.created_by,
                        "reason": "missing_token" if token is None else "wrong_token"},
            )  # fmt: skip
        raise _unknown()
    if row.expires_at < now:
        await _spend(relay, row, ShareState.EXPIRED, now, action="share.expired",
                     severity="info", actor="relay", source_ip=None)  # fmt: skip
        raise await _refused_now(relay, row, now)
    if row.passphrase_hash is None and passphrase is not None:
        raise Invalid("share_has_no_passphrase", "this share link has no passphrase",
                      "Open it without one.")  # fmt: skip
    if row.passphrase_hash is not None:
        if passphrase is None:
            raise Forbidden("share_passphrase_required", "this share link needs its passphrase",
                            "The sender tells you the passphrase another way.")  # fmt: skip
        try:
            await asyncio.to_thread(sharelink.verify_passphrase, row.passphrase_hash, passphrase)
        except NotAuthorized:
            # One guess per share: a wrong passphrase destroys it, so guessing gets nowhere
            # and the sender learns (from the recipient, or the audit log) that someone tried.
            if await _spend(relay, row, ShareState.DESTROYED, now, action="share.destroyed",
                            severity="warning", actor="anonymous",
                            source_ip=source_ip):  # fmt: skip
                raise Forbidden("share_destroyed",
                                "wrong passphrase: the share link is destroyed",
                                "Ask the sender for a new link.") from None  # fmt: skip
            raise await _refused_now(relay, row, now) from None
    # Opened at rest before the compare-and-set: a blob that fails to open leaves the
    # share live rather than spending it for nothing.
    assert row.ciphertext is not None
    assert row.nonce is not None
    dek = await relay.master_key.dek(relay.engine, vault, SHARES_PROJECT)
    ciphertext = relay.master_key.open(dek, row.ciphertext, *_at_rest_row(vault, row.id))
    if not await _spend(relay, row, ShareState.OPENED, now, action="share.opened",
                        severity="notice", actor="anonymous", source_ip=source_ip):  # fmt: skip
        raise await _refused_now(relay, row, now)
    return Opened(row.id, row.nonce, ciphertext)


async def sweep(relay: Relay, now: int, batch: int) -> int:
    """Expire live shares past their TTL (deleting their ciphertext), a batch per round;
    then forget spent shares older than the retention.  Return how many expired."""
    total = 0
    while True:
        async with relay.read() as conn:
            due = await store.overdue(conn, now, batch)
        for row in due:
            if await _spend(relay, row, ShareState.EXPIRED, now, action="share.expired",
                            severity="info", actor="relay", source_ip=None):  # fmt: skip
                total += 1
        if len(due) < batch:
            break
        await asyncio.sleep(0)
    async with relay.tx() as tx:
        await store.purge_spent(tx.conn, now - relay.settings.retention_seconds)
    return total
