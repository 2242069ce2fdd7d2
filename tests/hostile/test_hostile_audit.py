"""A hostile relay and the audit log: what it serves is checked by the verifier, not trusted.

The relay holds the log, so it can serve any events it likes.  Each test plays
one thing a relay could do to the log it serves (truncate it, delete, edit,
reorder or insert an event, rewrite it with every hash recomputed, show two
histories, forge or drop checkpoints) and hands the result to the verifier
every device runs (``sealbox._relay.audit.verify_export``: the directory from
the pinned fingerprint, each checkpoint's signature, each event's seq, link and
hash, and the head this device verified before).  Each is refused with
``AuditBroken`` naming the first seq that fails.

What a relay *can* do, and this shows too: withhold everything after the last
checkpoint and the last head a verifier saw (a verifier then sees an older,
consistent log), and withhold checkpoints (then only the heads verifiers
remember catch a truncation).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sealbox._relay.audit import SeenHeads, verify_export, verify_fork
from sealbox.approver.checkpoints import sign_checkpoint
from sealbox.protocol import audit as au
from sealbox.protocol.statements import CheckpointStatement, sign_statement

N = 12


def _chain(world: Any, n: int = N) -> list[au.AuditEvent]:
    prev, out = au.GENESIS, []
    for seq in range(1, n + 1):
        row: dict[str, Any] = {
            "seq": seq, "at": world.now + seq, "actor": world.a[seq % 3].id,
            "action": "access.release", "severity": "notice", "client_id": world.client_id,
            "item_id": world.item1, "source_ip": None, "detail": {"request": f"r{seq}"},
        }  # fmt: skip
        row["prev_hash"] = prev
        row["hash"] = prev = au.event_hash(prev, row)
        out.append(au.AuditEvent.from_json(row))
    return out


def _checkpoint(world: Any, events: list[au.AuditEvent], seq: int, signer: Any = None,
                kid: str | None = None) -> str:  # fmt: skip
    party = signer or world.a[1]
    head = au.head_digest(events[seq - 1].hash)
    statement = CheckpointStatement(vault=world.vault, approver=kid or party.id, seq=seq,
                                    head=head, at=world.now)  # fmt: skip
    return sign_statement(statement, party.sig, kid or party.id)


def _export(world: Any, events: list[au.AuditEvent], checkpoints: list[str]) -> au.AuditExport:
    return au.AuditExport(world.vault, world.fingerprint, world.links, tuple(checkpoints),
                          tuple(events), complete=True)  # fmt: skip


def _rehash(events: list[au.AuditEvent], begin: int) -> list[au.AuditEvent]:
    out = events[:begin]
    prev = out[-1].hash if out else au.GENESIS
    for e in events[begin:]:
        row = e.to_json() | {"prev_hash": prev}
        row["hash"] = prev = au.event_hash(prev, row)
        out.append(au.AuditEvent.from_json(row))
    return out


def _refused(world: Any, export: au.AuditExport, seq: int, match: str,
             known: au.AuditHead | None = None) -> None:  # fmt: skip
    with pytest.raises(au.AuditBroken, match=match) as caught:
        verify_export(export, fingerprint=world.fingerprint, known=known)
    assert type(caught.value) is au.AuditBroken
    assert caught.value.seq == seq


def test_the_honest_log_verifies(world: Any) -> None:
    events = _chain(world)
    verified = verify_export(_export(world, events, [_checkpoint(world, events, 8)]),
                             fingerprint=world.fingerprint)  # fmt: skip
    assert verified.check.head == au.AuditHead(N, events[-1].hash)
    assert [c.seq for c in verified.check.checkpoints] == [8]


def test_truncated_behind_a_checkpoint(world: Any) -> None:
    events = _chain(world)
    cp = _checkpoint(world, events, 10)
    _refused(world, _export(world, events[:7], [cp]), 10, "the log was truncated")


def test_truncated_with_checkpoints_withheld_is_caught_by_the_head_seen(
    world: Any, tmp_path: Path
) -> None:
    events = _chain(world)
    seen = SeenHeads(tmp_path)
    verified = verify_export(_export(world, events, []), fingerprint=world.fingerprint)
    seen.advance(world.vault, verified.check.head)
    assert (tmp_path / f"{world.vault}.json").stat().st_mode & 0o777 == 0o600
    _refused(world, _export(world, events[:9], []), N, "verified before",
             known=seen.get(world.vault))  # fmt: skip
    # What it cannot be caught at: withholding what no checkpoint and no device has seen.
    shorter = verify_export(_export(world, events[:9], []), fingerprint=world.fingerprint)
    assert shorter.check.head == au.AuditHead(9, events[8].hash)


@pytest.mark.parametrize(
    ("name", "seq", "match"),
    [
        ("deleted", 5, "event 5 is missing"),
        ("edited", 5, "event 5 was changed"),
        ("reordered", 5, "event 5 is missing"),
        ("inserted", 5, "event 5 was changed|does not link"),
        ("rewritten", 8, "event 8 differs from the checkpoint"),
    ],
)
def test_events_deleted_edited_reordered_inserted_rewritten(
    world: Any, name: str, seq: int, match: str
) -> None:
    events = _chain(world)
    cp = _checkpoint(world, events, 8)
    tampered = {
        "deleted": events[:4] + events[5:],
        "edited": [*events[:4], dataclasses.replace(events[4], actor=world.relay.id), *events[5:]],
        "reordered": [*events[:4], events[5], events[4], *events[6:]],
        "inserted": [*events[:4], dataclasses.replace(events[4], action="relay.note"),
                     *events[4:]],
        "rewritten": _rehash([*events[:4], dataclasses.replace(events[4], actor=world.relay.id),
                              *events[5:]], 4),
    }[name]  # fmt: skip
    _refused(world, _export(world, tampered, [cp]), seq, match)


def test_a_fork_between_two_exports(world: Any) -> None:
    events = _chain(world)
    cp = _checkpoint(world, events, 6)
    other = _rehash([*events[:9], dataclasses.replace(events[9], actor=world.relay.id),
                     *events[10:]], 9)  # fmt: skip
    a = verify_export(_export(world, events, [cp]), fingerprint=world.fingerprint)
    b = verify_export(_export(world, other, [cp]), fingerprint=world.fingerprint)
    with pytest.raises(au.AuditBroken, match="event 10 differs between a and b") as caught:
        verify_fork(a, b, a_name="a", b_name="b")
    assert caught.value.seq == 10
    # A checkpoint of one contradicted by the other.
    late = verify_export(_export(world, events, [_checkpoint(world, events, 11)]),
                         fingerprint=world.fingerprint)  # fmt: skip
    short = verify_export(_export(world, other[:11], []), fingerprint=world.fingerprint)
    with pytest.raises(au.AuditBroken, match=r"event 10 differs|contradicts the checkpoint"):
        verify_fork(late, short, a_name="a", b_name="b")


def test_checkpoints_the_relay_makes_are_worthless(world: Any) -> None:
    events = _chain(world)
    # Signed with the relay's key under an approver's kid: refused outright.
    forged = _checkpoint(world, events, 5, signer=world.relay, kid=world.a[0].id)
    _refused(world, _export(world, events, [forged]), 0, "does not verify")
    # Signed as the relay's own approver id: not counted, and cannot vouch for a rewrite.
    own = _checkpoint(world, events, 5, signer=world.relay)
    verified = verify_export(_export(world, events, [own]), fingerprint=world.fingerprint)
    assert verified.skipped == 1
    assert verified.check.checkpoints == ()
    # Its directory: a link 0 of its own does not match the pinned fingerprint.
    export = dataclasses.replace(_export(world, events, []), directory=(world.links[1],))
    _refused(world, export, 0, "pinned vault fingerprint")


def test_a_damaged_memory_of_heads_is_no_head(world: Any, tmp_path: Path) -> None:
    seen = SeenHeads(tmp_path)
    (tmp_path / f"{world.vault}.json").write_text('{"seq": 3, "hash": "not hex"}')
    assert seen.get(world.vault) is None
    events = _chain(world)
    seen.advance(world.vault, au.AuditHead(5, events[4].hash))
    seen.advance(world.vault, au.AuditHead(4, events[3].hash))  # never moves back
    assert seen.get(world.vault) == au.AuditHead(5, events[4].hash)


# --- the automated approver's own checkpoints, as the relay lists them ----------------------------


class _Relay:
    """What ``sign_checkpoint`` asks the relay, answered from a log the relay chose."""

    def __init__(self, world: Any, party: Any, events: list[au.AuditEvent],
                 listed: list[str]) -> None:  # fmt: skip
        self.world, self.events, self.listed = world, events, listed
        self.keys = SimpleNamespace(vault=world.vault, sig=party.sig)
        self.id = party.id
        self.filed: list[str] = []

    def directory(self, fresh: bool = False) -> Any:
        return self.world.directory

    def ok(self, method: str, path: str, what: str, json_body: Any = None) -> Any:
        if method == "POST":
            self.filed.append(json_body["statement"])
            return {"created": True}
        if path.startswith("/audit/checkpoints"):
            return {"checkpoints": [{"statement": t} for t in self.listed],
                    "next_after_seq": None}  # fmt: skip
        after = int(path.split("after_seq=")[1].split("&")[0])
        page = [e.to_json() for e in self.events if e.seq > after]
        return {"events": page, "next_after_seq": page[-1]["seq"] if page else after}


def test_an_own_checkpoint_listed_beyond_the_head_remembered_must_link_to_it(
    world: Any, tmp_path: Path
) -> None:
    """The relay rewrote the log from event 1 and got this approver's own signature over the
    rewrite at seq 12 (signed elsewhere, with every checkpoint withheld): the approver, which
    remembers event 10 of the honest log, still checks from there, and signs nothing."""
    me = world.a[1]
    honest = _chain(world, 10)
    seen = SeenHeads(tmp_path)
    seen.advance(world.vault, au.AuditHead(10, honest[9].hash))
    forged = _rehash([dataclasses.replace(honest[0], actor=world.relay.id),
                      *_chain(world, 20)[1:]], 0)  # fmt: skip
    own = _checkpoint(world, forged, 12, signer=me)
    relay = _Relay(world, me, forged, [own])
    with pytest.raises(au.AuditBroken, match="event 11 does not link") as caught:
        sign_checkpoint(relay, seen=seen)  # type: ignore[arg-type]
    assert caught.value.seq == 11
    assert relay.filed == []
    assert seen.get(world.vault) == au.AuditHead(10, honest[9].hash)  # not forgotten


def test_an_own_checkpoint_listed_beyond_the_head_remembered_is_still_checked(
    world: Any, tmp_path: Path
) -> None:
    """The honest case: the checkpoint listed holds on the log from the head remembered on."""
    me = world.a[1]
    events = _chain(world, 20)
    seen = SeenHeads(tmp_path)
    seen.advance(world.vault, au.AuditHead(10, events[9].hash))
    relay = _Relay(world, me, events, [_checkpoint(world, events, 12, signer=me)])
    signed = sign_checkpoint(relay, seen=seen)  # type: ignore[arg-type]
    assert signed is not None
    assert (signed.seq, signed.events) == (20, 10)  # from event 11 on
    assert seen.get(world.vault) == au.AuditHead(20, events[19].hash)
    # A checkpoint of its own contradicting the log it is served is refused, not adopted.
    other = _rehash([*events[:11], dataclasses.replace(events[11], actor=world.relay.id),
                     *events[12:]], 11)  # fmt: skip
    bad = _checkpoint(world, other, 15, signer=me)
    relay = _Relay(world, me, events, [bad])
    seen = SeenHeads(tmp_path / "other")
    seen.advance(world.vault, au.AuditHead(10, events[9].hash))
    with pytest.raises(au.AuditBroken, match="event 15 differs from the checkpoint"):
        sign_checkpoint(relay, seen=seen)  # type: ignore[arg-type]
    assert relay.filed == []


def test_a_known_head_before_the_start_is_not_skipped(world: Any) -> None:
    events = _chain(world)
    start = au.AuditHead(8, events[7].hash)
    with pytest.raises(ValueError, match="before the start"):
        au.verify_log(events[8:], start=start, known=[au.AuditHead(5, events[4].hash)])
    # The start itself (derived from the head known) is checked, not skipped.
    check = au.verify_log(events[8:], start=start, known=[start])
    assert check.head == au.AuditHead(N, events[-1].hash)
    with pytest.raises(au.AuditBroken, match="event 8 differs from the head verified before"):
        au.verify_log(events[8:], start=start, known=[au.AuditHead(8, events[6].hash)])
