"""Device logins (RFC 8628), stored by the hash of their device code.

Every change of a login's state goes through :data:`sealbox.protocol.state.DEVICE`
and is written as a compare-and-set (``UPDATE … WHERE state = current``): of two
approvers answering one login at once, or two polls taking its tokens, exactly
one takes effect.  No row is ever written as expired: a pending login past its
``expires_at`` *is* expired when read (:meth:`DeviceRow.expired`), and rows are
purged a while later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.crypto import secrets as sx
from sealbox.protocol.state import DEVICE, DeviceEvent, DeviceState
from sealbox.server.store.tables import device_codes

__all__ = [
    "DeviceRow",
    "advance",
    "count_pending",
    "find",
    "find_by_user_code",
    "insert",
    "list_pending",
    "purge_expired",
    "record_poll",
    "user_code_taken",
]


@dataclass(frozen=True)
class DeviceRow:
    code_hash: str
    """The device code's labelled hash (the code itself is never stored)."""
    vault: str
    user_code: str
    client_id: str
    client_name: str
    sig_pk: str
    state: DeviceState
    certificate: str | None
    """The client certificate an approver uploaded, once approved."""
    interval: int
    """Seconds the client must wait between polls (grows with each ``slow_down``)."""
    last_poll: int
    """When the client last polled (0: never)."""
    expires_at: int
    invite_id: str | None = None
    """The invite the login was started with (teams), and the project and role it offers."""
    invite_project: str | None = None
    invite_role: str | None = None

    def expired(self, now: int) -> bool:
        return self.expires_at <= now


def _device(row: Any) -> DeviceRow:
    return DeviceRow(
        row.device_code_hash, row.vault_id, row.user_code, row.client_id, row.client_name,
        row.sig_pk, DeviceState(row.state), row.certificate, row.interval, row.last_poll,
        row.expires_at, row.invite_id, row.invite_project, row.invite_role,
    )  # fmt: skip


async def insert(
    conn: AsyncConnection, *, device_code: str, vault: str, user_code: str, client_id: str,
    client_name: str, sig_pk: str, interval: int, expires_at: int,
    invite: tuple[str, str, str] | None = None,
) -> None:  # fmt: skip
    """Store a new login, pending (the machine's one initial state).

    ``invite`` is the (id, project, role) of the invite it was started with.
    """
    invite_id, project, role = invite or (None, None, None)
    await conn.execute(
        device_codes.insert().values(
            device_code_hash=sx.token_hash(device_code), vault_id=vault, user_code=user_code,
            client_id=client_id, client_name=client_name, sig_pk=sig_pk,
            state=DeviceState.PENDING.value, certificate=None, interval=interval, last_poll=0,
            expires_at=expires_at, invite_id=invite_id, invite_project=project,
            invite_role=role,
        )
    )  # fmt: skip


async def find(conn: AsyncConnection, device_code: str) -> DeviceRow | None:
    """The login of ``device_code``, looked up by its hash and locked for this transaction."""
    row = (
        await conn.execute(
            select(device_codes)
            .where(device_codes.c.device_code_hash == sx.token_hash(device_code))
            .with_for_update()
        )
    ).first()
    return None if row is None else _device(row)


async def find_by_user_code(conn: AsyncConnection, vault: str, user_code: str) -> DeviceRow | None:
    """The vault's login with ``user_code``, locked for this transaction."""
    row = (
        await conn.execute(
            select(device_codes)
            .where(device_codes.c.vault_id == vault, device_codes.c.user_code == user_code)
            .with_for_update()
        )
    ).first()
    return None if row is None else _device(row)


async def user_code_taken(conn: AsyncConnection, user_code: str) -> bool:
    """Whether any login, of any vault, has ``user_code`` (the column is unique)."""
    row = (
        await conn.execute(
            select(device_codes.c.user_code).where(device_codes.c.user_code == user_code)
        )
    ).first()
    return row is not None


def _waiting(vault: str, now: int) -> Any:
    return (
        (device_codes.c.vault_id == vault)
        & (device_codes.c.state == DeviceState.PENDING.value)
        & (device_codes.c.expires_at > now)
    )


async def count_pending(conn: AsyncConnection, vault: str, now: int) -> int:
    """How many logins of the vault wait for an approver (not yet expired)."""
    count = await conn.execute(select(func.count()).select_from(device_codes).where(
        _waiting(vault, now)))  # fmt: skip
    return int(count.scalar_one())


async def list_pending(conn: AsyncConnection, vault: str, now: int) -> list[DeviceRow]:
    """The vault's logins waiting for an approver, soonest to expire first."""
    rows = await conn.execute(
        select(device_codes)
        .where(_waiting(vault, now))
        .order_by(device_codes.c.expires_at, device_codes.c.user_code)
    )
    return [_device(row) for row in rows]


async def purge_expired(conn: AsyncConnection, vault: str, before: int) -> int:
    """Delete the vault's logins that expired before ``before``; return how many."""
    done = await conn.execute(
        delete(device_codes).where(
            device_codes.c.vault_id == vault, device_codes.c.expires_at < before
        )
    )
    return int(done.rowcount or 0)


async def record_poll(
    conn: AsyncConnection, row: DeviceRow, *, now: int, interval: int | None = None
) -> None:
    """Note a poll (and a longer ``interval`` after a ``slow_down``); the state stays as it was."""
    values: dict[str, int] = {"last_poll": now}
    if interval is not None:
        values["interval"] = interval
    await conn.execute(
        update(device_codes)
        .where(
            device_codes.c.device_code_hash == row.code_hash,
            device_codes.c.state == row.state.value,
        )
        .values(**values)
    )


async def advance(
    conn: AsyncConnection, row: DeviceRow, event: DeviceEvent, *, certificate: str | None = None
) -> DeviceState | None:
    """Apply ``event`` to the login as ``row`` saw it, compare-and-set.

    Returns the new state, or ``None`` if the stored state is no longer
    ``row.state`` (someone else answered first; nothing was written).  Raises
    :class:`~sealbox.errors.IllegalTransition` if the state table has no such
    edge.  ``certificate`` is stored with it (an approval).
    """
    new = DEVICE.next(row.state, event)
    values: dict[str, str] = {"state": new.value}
    if certificate is not None:
        values["certificate"] = certificate
    done = await conn.execute(
        update(device_codes)
        .where(
            device_codes.c.device_code_hash == row.code_hash,
            device_codes.c.state == row.state.value,
        )
        .values(**values)
    )
    return new if done.rowcount == 1 else None
