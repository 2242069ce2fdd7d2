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
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.crypto.encoding import b64u_decode
from sealbox.protocol import ids
from sealbox.server.auth.principal import Principal
from sealbox.server.errors import Forbidden
from sealbox.server.relay import Relay
from sealbox.server.store import audit
from sealbox.server.store import freeze as store
from sealbox.server.store import items as item_store
from sealbox.server.store.freeze import Freeze
from sealbox.server.store.requests import PinnedItem, RequestRow

__all__ = [
    "CANARY",
    "Changed",
    "ProjectFrozen",
    "check_project",
    "freeze_project",
    "hold_release",
    "list_frozen",
    "refuse_frozen",
    "unfreeze_project",
]

#: The item type that trips an alarm when it is released.
CANARY = "canary"
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


async def refuse_frozen(conn: AsyncConnection, vault: str, paths: Iterable[str]) -> None:
    """Raise :class:`ProjectFrozen` if an item path of ``paths`` lies in a frozen project."""
    held = await store.frozen(conn, vault, {project_of(p) for p in paths})
    if held:
        raise ProjectFrozen(held[0].project)


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
    await refuse_frozen(conn, vault, [entry.path for entry in pinned])
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
        reason = reason.strip()[:REASON_MAX] or None
    wanted = Freeze(project=project, frozen_at=now, frozen_by=approver.id, cause="approver",
                    reason=reason, request=None)  # fmt: skip
    async with relay.tx() as tx:
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
