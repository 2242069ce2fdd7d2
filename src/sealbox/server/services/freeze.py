"""Frozen projects and canaries.

An approver freezes a project (:func:`freeze_project`) when something in it
may be compromised; the release of a canary freezes its project by itself
(:func:`hold_release`).  While a project is frozen:

- every new access or store request naming an item in it is refused before
  any approver is asked (:func:`refuse_frozen`: 403 ``project_frozen``, audited
  as every refusal is), and nothing is created;
- a request already pending in it can no longer be released, nor a store
  completed (:func:`hold_release`, :func:`refuse_frozen` in the transaction
  that would): approvers may still deny them, or let them expire;
- a request released before the freeze is still delivered: an approver said
  yes to it while nothing was frozen;
- approvers still store items themselves (rotating what may have leaked is
  what one does during a freeze).

Consent requests name no project and are not affected.

A canary is an item of type ``canary`` in its approver-signed manifest.  Its
release is granted like any other (by a person, or by an automated
approver's rule that says ``canary = true``) and the value still goes to the
client, so whoever reads it keeps going while the operator investigates; in
the same transaction the relay writes a ``canary.read`` event of severity
``critical`` (item, path, client, request, source address: never a value)
and freezes the project.  Alerts fire from that event.  The relay needs no
plaintext for any of it: the type is in the manifest it stores.  Approvers
see the type in the manifest they verify, so a relay that hid the event
would not hide it from them (``sealbox approver serve --on-canary``).

The refusal tells a client that the project is frozen and how it is lifted,
never why: the reader of a canary is not told that it tripped one.

A client is not told which items are canaries either, as far as the relay can
help it: the item listing reports a canary as ``secret`` to anyone but an
approver (:func:`shown_type`: the relay's word, like the rest of the listing).
Its signed manifest still says ``canary`` (approvers rely on it, and a client
verifies what it is served), so whoever fetches a canary's manifests before a
release has looked at the tripwire: :func:`note_inspected` writes
``canary.inspected`` (critical), and that alone is the alarm.  It does not
freeze: the ordinary client fetches the newest manifest right before it asks,
and the canary's release must still go through (its reader keeps going).
Asking for a canary writes ``canary.requested`` (critical) in the transaction
that creates the request (:func:`note_requested`), so asking and then
cancelling, a deny or an expiry still leaves the alarm.  A client that got a
canary released is not covered: it knows, and it has tripped the canary.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.crypto.encoding import b64u_decode
from sealbox.errors import MalformedInput
from sealbox.protocol import ids
from sealbox.protocol._reader import check_display_text
from sealbox.server.auth.principal import Principal
from sealbox.server.errors import Forbidden, Invalid
from sealbox.server.relay import Relay
from sealbox.server.store import audit
from sealbox.server.store import freeze as store
from sealbox.server.store import items as item_store
from sealbox.server.store import requests as request_store
from sealbox.server.store.freeze import Freeze
from sealbox.server.store.items import ItemRow
from sealbox.server.store.requests import PinnedItem, RequestRow

__all__ = [
    "CANARY",
    "DISGUISE",
    "Changed",
    "ProjectFrozen",
    "check_project",
    "freeze_project",
    "hold_release",
    "list_frozen",
    "lock_paths",
    "note_inspected",
    "note_requested",
    "refuse_frozen",
    "shown_type",
    "unfreeze_project",
]

#: The item type that trips an alarm when it is released.
CANARY = "canary"
#: What a canary is reported as to anyone but an approver.
DISGUISE = "secret"
#: Longest reason an approver may give for a freeze.
REASON_MAX = 500


class ProjectFrozen(Forbidden):
    """A request names an item in a frozen project: refused before any approver is asked."""

    def __init__(self, project: str) -> None:
        super().__init__(
            "project_frozen",
            f"project {project} is frozen: no request for its items is answered until an "
            "approver unfreezes it",
            f"An approver lifts the freeze with `sealbox approver unfreeze {project}` "
            "(`sealbox approver frozen` lists frozen projects).",
        )  # fmt: skip
        self.project = project


@dataclass(frozen=True)
class Changed:
    """A freeze as an approver sees it, and whether the call changed anything."""

    freeze: Freeze | None
    """The project's freeze (after freezing; before unfreezing), or None if there was none."""
    changed: bool


def project_of(path: str) -> str:
    return path.split("/", 1)[0]


def check_project(project: object) -> str:
    """A project name as item paths have it (their first segment)."""
    return ids.check_segment(project, "project")


async def refuse_frozen(
    conn: AsyncConnection, vault: str, paths: Iterable[str], *, lock: bool = False
) -> None:
    """Raise :class:`ProjectFrozen` if an item path of ``paths`` lies in a frozen project.

    ``lock``: in a write transaction that releases or stores, first take the projects'
    freeze locks (:func:`store.lock_projects`), so that a freeze committing meanwhile
    is either seen here or ordered after this transaction.
    """
    projects = {project_of(p) for p in paths}
    if lock:
        await store.lock_projects(conn, vault, projects)
    held = await store.frozen(conn, vault, projects)
    if held:
        raise ProjectFrozen(held[0].project)


def check_reason(reason: str) -> str:
    """A freeze's reason is display text: a control character (a NUL, which PostgreSQL
    cannot store; an ANSI escape, which would rewrite an approver's screen) is refused."""
    try:
        return check_display_text(reason, "reason", max_len=REASON_MAX)
    except MalformedInput:
        raise Invalid(
            "invalid_reason",
            "the reason holds control, format or line-separator characters",
            "Give the reason as one line of plain text.",
        ) from None  # fmt: skip


async def lock_paths(conn: AsyncConnection, vault: str, paths: Iterable[str]) -> None:
    """In a write transaction: take the freeze locks of the projects of ``paths``.

    A release takes them before any row it writes, so that its order of locks is the
    same as a store completion's and a freeze's (project, then rows, then the audit
    chain); taking one again later in the transaction is free.
    """
    await store.lock_projects(conn, vault, {project_of(p) for p in paths})


def _item_type(manifest: str) -> str:
    # The manifest was verified when its version was stored and again when the request
    # pinned it; its type is read from the stored payload, not from anything a client sent.
    payload = json.loads(b64u_decode(manifest.split(".")[1], what="manifest payload"))
    return str(payload.get("type"))


async def _canaries(conn: AsyncConnection, vault: str,
                    pinned: Iterable[PinnedItem]) -> list[PinnedItem]:  # fmt: skip
    entries = list(pinned)
    stored = await item_store.manifests(conn, vault, [(e.item, e.version) for e in entries])
    return [e for e in entries if _item_type(stored[(e.item, e.version)].manifest) == CANARY]


async def hold_release(
    conn: AsyncConnection, *, vault: str, row: RequestRow, released: bool, approver: str,
    now: int,
) -> None:  # fmt: skip
    """In the transaction that records a release: refuse it in a frozen project; and if it
    released a canary, freeze the canary's project and write ``canary.read`` (critical).

    Called after the request's state changed and before the release's own audit event:
    a freeze takes its row before the audit chain's lock, as every writer does.
    """
    pinned = row.access.items
    await refuse_frozen(conn, vault, [entry.path for entry in pinned], lock=True)
    if not released:
        return
    canaries = await _canaries(conn, vault, pinned)
    if not canaries:
        return
    newly = []
    for project in sorted({entry.project for entry in canaries}):
        tripped = Freeze(project=project, frozen_at=now, frozen_by="relay", cause=CANARY,
                         reason=None, request=row.id)  # fmt: skip
        if await store.insert(conn, vault, tripped):
            newly.append(project)
    for entry in canaries:
        await audit.append(
            conn, vault=vault, at=now, actor=row.client_id, action="canary.read",
            severity="critical", client_id=row.client_id, item_id=entry.item,
            source_ip=row.source_ip,
            detail={"request": row.id, "path": entry.path, "version": entry.version,
                    "fields": list(entry.fields), "released_by": approver,
                    "project": entry.project, "frozen": True},
        )  # fmt: skip
    for project in newly:
        await audit.append(
            conn, vault=vault, at=now, actor="relay", action="project.frozen",
            severity="alert", client_id=row.client_id, source_ip=row.source_ip,
            detail={"project": project, "cause": CANARY, "request": row.id},
        )  # fmt: skip


# --- canaries are not shown, and looking at one is an alarm ------------------------------------


def shown_type(item_type: str, principal: Principal) -> str:
    """An item's type as the relay tells ``principal``: only approvers see a canary."""
    if item_type == CANARY and principal.role != "approver":
        return DISGUISE
    return item_type


async def _stored_by(conn: AsyncConnection, vault: str, client: str,
                     manifests: Sequence[str]) -> bool:  # fmt: skip
    # The client whose store request made a version (an agent planting a canary) knows
    # what it is; it verifies the version it stored without tripping anything.
    for token in manifests:
        payload = json.loads(b64u_decode(token.split(".")[1], what="manifest payload"))
        asked = payload.get("store_request")
        if isinstance(asked, str) and await request_store.get(
            conn, vault, asked.removeprefix("sha256:"), kind="store", client_id=client
        ):
            return True
    return False


async def note_inspected(
    relay: Relay, *, vault: str, principal: Principal, item: ItemRow, manifests: Sequence[str],
    endpoint: str, now: int, source_ip: str | None,
) -> None:  # fmt: skip
    """Before a release, a non-approver was served a canary's manifests: ``canary.inspected``.

    Critical, at most one a minute per client and item (a flood is counted, as refusals
    are).  Nothing is frozen (see the module's docstring).
    """
    if principal.role == "approver" or not any(_item_type(m) == CANARY for m in manifests):
        return
    async with relay.read() as conn:
        if await _stored_by(conn, vault, principal.id, manifests):
            return
    held_back = relay.refusal_audit.admit(("canary.inspected", vault, principal.id, item.id), now)
    if held_back is None:
        return
    async with relay.tx() as tx:
        await audit.append(
            tx.conn, vault=vault, at=now, actor=principal.id, action="canary.inspected",
            severity="critical", client_id=principal.id, item_id=item.id, source_ip=source_ip,
            detail={"path": item.path, "project": project_of(item.path), "endpoint": endpoint,
                    "frozen": False, **({"suppressed": held_back} if held_back else {})},
        )  # fmt: skip


async def note_requested(
    conn: AsyncConnection, *, vault: str, row: RequestRow, manifests: Sequence[str], now: int
) -> None:
    """In the transaction that creates an access request: ``canary.requested`` (critical)
    for each canary it names (``manifests``: the pinned versions', in the same order)."""
    for entry, token in zip(row.access.items, manifests, strict=True):
        if _item_type(token) != CANARY:
            continue
        await audit.append(
            conn, vault=vault, at=now, actor=row.client_id, action="canary.requested",
            severity="critical", client_id=row.client_id, item_id=entry.item,
            source_ip=row.source_ip,
            detail={"request": row.id, "path": entry.path, "version": entry.version,
                    "fields": list(entry.fields), "project": entry.project},
        )  # fmt: skip


# --- approvers freeze, unfreeze, list -----------------------------------------------------------


async def list_frozen(relay: Relay, *, vault: str) -> list[Freeze]:
    async with relay.read() as conn:
        return await store.list_frozen(conn, vault)


async def freeze_project(
    relay: Relay, *, vault: str, project: str, reason: str | None, approver: Principal, now: int,
    source_ip: str | None,
) -> Changed:  # fmt: skip
    """Freeze ``project``; already frozen: nothing changes (the first freeze is kept)."""
    project = check_project(project)
    if reason is not None:
        reason = check_reason(reason).strip()[:REASON_MAX] or None
    wanted = Freeze(project=project, frozen_at=now, frozen_by=approver.id, cause="approver",
                    reason=reason, request=None)  # fmt: skip
    async with relay.tx() as tx:
        # Ordered with every release in the project: none checked before this commits
        # and committed after it.
        await store.lock_projects(tx.conn, vault, [project])
        if not await store.insert(tx.conn, vault, wanted):
            [held] = await store.frozen(tx.conn, vault, [project])
            return Changed(held, changed=False)
        await audit.append(
            tx.conn, vault=vault, at=now, actor=approver.id, action="project.frozen",
            severity="alert", source_ip=source_ip,
            detail={"project": project, "cause": "approver",
                    **({"reason": reason} if reason else {})},
        )  # fmt: skip
    return Changed(wanted, changed=True)


async def unfreeze_project(
    relay: Relay, *, vault: str, project: str, approver: Principal, now: int,
    source_ip: str | None,
) -> Changed:  # fmt: skip
    """Lift the freeze of ``project``; not frozen: nothing changes."""
    project = check_project(project)
    async with relay.tx() as tx:
        lifted = await store.remove(tx.conn, vault, project)
        if lifted is None:
            return Changed(None, changed=False)
        await audit.append(
            tx.conn, vault=vault, at=now, actor=approver.id, action="project.unfrozen",
            severity="warning", source_ip=source_ip,
            detail={"project": project, "cause": lifted.cause, "frozen_at": lifted.frozen_at,
                    "frozen_by": lifted.frozen_by,
                    **({"request": lifted.request} if lifted.request else {})},
        )  # fmt: skip
    return Changed(lifted, changed=True)
