"""The audit log checked by a verifier: every way to tamper with it is caught, naming the seq.

A chain of real events (hashed by the function the relay uses) and real
checkpoints signed by approvers of a verified directory; each case changes
what a hostile relay (or whoever holds an export) would change.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from sealbox.errors import MalformedInput
from sealbox.protocol import audit as au
from sealbox.protocol import ids
from sealbox.protocol.statements import CheckpointStatement, sign_statement

NOW = 1_800_000_000


def chain(n: int, *, start: au.AuditHead | None = None) -> list[au.AuditEvent]:
    prev_seq, prev = (start.seq, start.hash) if start else (0, au.GENESIS)
    out = []
    for seq in range(prev_seq + 1, prev_seq + n + 1):
        row: dict[str, Any] = {
            "seq": seq, "at": NOW + seq, "actor": "apv_x" if seq % 2 else "relay",
            "action": "access.release" if seq % 3 else "item.stored",
            "severity": au.SEVERITIES[seq % 5], "client_id": None if seq % 2 else "cli_y",
            "item_id": None, "source_ip": "10.0.0.1" if seq % 4 == 0 else None,
            "detail": {"n": seq, "path": "app/prod/db", "note": "ünï"},
        }  # fmt: skip
        row["prev_hash"] = prev
        row["hash"] = au.event_hash(prev, row)
        out.append(au.AuditEvent.from_json(row))
        prev = row["hash"]
    return out


def rehash(events: list[au.AuditEvent], begin: int) -> list[au.AuditEvent]:
    """Recompute every hash from index ``begin`` on (a relay covering its tracks)."""
    out = events[:begin]
    prev = out[-1].hash if out else au.GENESIS
    for e in events[begin:]:
        row = e.to_json() | {"prev_hash": prev}
        row["hash"] = au.event_hash(prev, row)
        out.append(au.AuditEvent.from_json(row))
        prev = row["hash"]
    return out


def checkpoint(world: Any, events: list[au.AuditEvent], seq: int, by: int = 0,
               **kw: Any) -> str:  # fmt: skip
    a = world.approvers[by]
    statement = CheckpointStatement(
        vault=kw.get("vault", world.vault), approver=a.id, seq=seq,
        head=au.head_digest(events[seq - 1].hash), at=NOW,
    )  # fmt: skip
    return sign_statement(statement, a.sig, a.id)


def verified(world: Any, tokens: list[str]) -> list[CheckpointStatement]:
    return [au.verify_checkpoint(t, world.directory) for t in tokens]


def broken(match: str, seq: int, fn: Any, *args: Any, **kwargs: Any) -> None:
    with pytest.raises(au.AuditBroken, match=match) as caught:
        fn(*args, **kwargs)
    assert caught.value.seq == seq


def test_an_intact_chain_verifies_with_its_checkpoints(world: Any) -> None:
    events = chain(10)
    cps = verified(world, [checkpoint(world, events, 4), checkpoint(world, events, 10, by=1)])
    check = au.verify_log(events, checkpoints=cps)
    assert check.events == 10
    assert check.head == au.AuditHead(10, events[-1].hash)
    assert [c.seq for c in check.checkpoints] == [4, 10]
    assert au.verify_log([]).head is None


def test_the_store_hashes_with_the_protocol_function() -> None:
    from sealbox.server.store import audit as store

    assert store.event_hash is au.event_hash
    assert store.GENESIS == au.GENESIS


def test_a_deleted_event(world: Any) -> None:
    events = chain(6)
    broken("event 3 is missing", 3, au.verify_log, events[:2] + events[3:])
    # Deleted and every later hash recomputed: the link still breaks nowhere, but the seq does.
    broken("event 3 is missing", 3, au.verify_log, rehash(events[:2] + events[3:], 2))


def test_a_deleted_event_renumbered_is_caught_by_a_checkpoint(world: Any) -> None:
    events = chain(6)
    cp = verified(world, [checkpoint(world, events, 5)])
    squeezed = [dataclasses.replace(e, seq=e.seq - 1) if e.seq > 3 else e
                for e in events if e.seq != 3]  # fmt: skip
    forged = rehash(squeezed, 2)
    au.verify_log(forged)  # a chain on its own: consistent
    broken("event 5 differs from the checkpoint", 5, au.verify_log, forged, checkpoints=cp)


def test_a_changed_event(world: Any) -> None:
    events = chain(6)
    changed = list(events)
    changed[3] = dataclasses.replace(events[3], detail={"n": 4, "path": "app/prod/other"})
    broken("event 4 was changed", 4, au.verify_log, changed)
    edits = (("actor", "apv_z"), ("severity", "info"), ("at", NOW),
             ("source_ip", "1.2.3.4"), ("client_id", None), ("action", "x"))  # fmt: skip
    for name, value in edits:
        changed[3] = dataclasses.replace(events[3], **{name: value})
        broken("event 4 was changed", 4, au.verify_log, changed)


def test_a_changed_event_rehashed_breaks_the_next_link_or_a_checkpoint(world: Any) -> None:
    events = chain(6)
    changed = list(events)
    row = events[3].to_json() | {"severity": "info"}
    row["hash"] = au.event_hash(row["prev_hash"], row)
    changed[3] = au.AuditEvent.from_json(row)
    broken("event 5 does not link to event 4", 5, au.verify_log, changed)
    cp = verified(world, [checkpoint(world, events, 6)])
    broken("event 6 differs from the checkpoint", 6, au.verify_log, rehash(changed, 3),
           checkpoints=cp)  # fmt: skip


def test_reordered_and_inserted_events(world: Any) -> None:
    events = chain(6)
    swapped = [*events[:2], events[3], events[2], *events[4:]]
    broken("event 3 is missing", 3, au.verify_log, swapped)
    repeated = [*events[:3], events[2], *events[3:]]
    broken("event 4 is out of order", 4, au.verify_log, repeated)
    extra = au.AuditEvent.from_json(events[2].to_json() | {"seq": 4})
    broken("event 4 does not link|event 4 was changed", 4, au.verify_log,
           [*events[:3], extra, *events[3:]])  # fmt: skip


def test_truncation_beyond_a_checkpoint_or_a_known_head(world: Any) -> None:
    events = chain(8)
    cp = verified(world, [checkpoint(world, events, 7)])
    broken("event 7 is missing: the log served ends at event 5", 7, au.verify_log, events[:5],
           checkpoints=cp)  # fmt: skip
    known = au.AuditHead(8, events[7].hash)
    broken("event 8 is missing.*verified before", 8, au.verify_log, events[:6], known=[known])
    broken("event 8 is missing", 8, au.verify_log, [], known=[known])
    # A head known with another hash: another history.
    other = au.AuditHead(3, events[4].hash)
    broken("event 3 differs from the head verified before", 3, au.verify_log, events,
           known=[other])  # fmt: skip


def test_verifying_from_a_start_head(world: Any) -> None:
    events = chain(9)
    start = au.AuditHead(4, events[3].hash)
    check = au.verify_log(events[4:], start=start)
    assert check.head == au.AuditHead(9, events[8].hash)
    # Events that do not link to the start are refused.
    broken("event 5 does not link to event 4", 5, au.verify_log, events[4:],
           start=au.AuditHead(4, events[2].hash))  # fmt: skip
    broken("event 5 is missing", 5, au.verify_log, events[5:], start=start)


def test_a_fork_between_two_logs(world: Any) -> None:
    a = chain(8)
    b = rehash([*a[:5], dataclasses.replace(a[5], actor="apv_other"), *a[6:]], 5)
    check_a, check_b = au.verify_log(a), au.verify_log(b)
    broken("event 6 differs between", 6, au.compare_logs, check_a, check_b)
    # An older export (a prefix) is no fork.
    assert au.compare_logs(check_a, au.verify_log(a[:5])) == 5
    # A checkpoint of one contradicted by the other's event.
    b_short = au.verify_log(b[:6])
    cp_a = au.verify_log(a[:4], checkpoints=verified(world, [checkpoint(world, a, 4)]))
    au.compare_logs(cp_a, b_short)  # they agree up to 4
    late = au.verify_log(a, checkpoints=verified(world, [checkpoint(world, a, 6)]))
    broken("event 6", 6, au.compare_logs, late, b_short)


def test_checkpoints_that_do_not_verify(world: Any, fresh_world: Any) -> None:
    events = chain(3)
    token = checkpoint(world, events, 2)
    broken("does not verify", 0, au.verify_checkpoint, token[:-4] + "AAAA", world.directory)
    broken("does not verify", 0, au.verify_checkpoint, "garbage", world.directory)
    # Signed by an approver of another vault's directory: not a current approver here.
    stranger = checkpoint(fresh_world, events, 2)
    with pytest.raises(au.CheckpointSignerUnknown):
        au.verify_checkpoint(stranger, world.directory)
    other_vault = checkpoint(world, events, 2, vault=ids.new_id(ids.VAULT))
    broken("not this vault's", 2, au.verify_checkpoint, other_vault, world.directory)


def _row(**change: Any) -> dict[str, Any]:
    return chain(1)[0].to_json() | change


@pytest.mark.parametrize(
    ("row", "match"),
    [
        (_row(extra=1), "unexpected"),
        ({k: v for k, v in _row().items() if k != "hash"}, "missing"),
        (_row(seq=0), "seq"),
        (_row(seq=True), "seq"),
        (_row(at="1"), "at"),
        (_row(severity="loud"), "severity"),
        (_row(detail=[]), "detail"),
        (_row(detail={"x": 2**60}), "detail"),
        (_row(hash="AB" * 32), "hash"),
        (_row(prev_hash="0" * 63), "prev_hash"),
        (_row(actor=None), "actor"),
        (_row(client_id=5), "client_id"),
    ],
)
def test_events_are_parsed_strictly(row: Any, match: str) -> None:
    with pytest.raises(MalformedInput, match=match):
        au.AuditEvent.from_json(row)


def test_export_files(world: Any) -> None:
    events = chain(3)
    lines = [json.dumps(e.to_json()) for e in events]
    header = au.export_header(vault=world.vault, fingerprint=world.fingerprint,
                              directory=world.links, checkpoints=[], complete=True)  # fmt: skip
    parsed = au.parse_export("\n".join([json.dumps(header), *lines]) + "\n")
    assert parsed.events == tuple(events)
    assert parsed.directory == tuple(world.links)
    plain = au.parse_export("\n".join(lines))
    assert plain.vault is None
    assert plain.complete
    assert not au.parse_export("\n".join(lines[1:])).complete
    for bad, match in (
        (lines[0].replace('"seq": 1', '"seq": 1.0'), "float"),
        (lines[0][:-1] + ', "seq": 1}', "twice"),
        ("{not json", "not JSON"),
        (json.dumps(header | {"format": "other"}) + "\n" + lines[0], "format"),
        (json.dumps(header | {"x": 1}) + "\n" + lines[0], "keys"),
    ):
        with pytest.raises(MalformedInput, match=match):
            au.parse_export(bad)


def test_heads_round_trip() -> None:
    head = au.AuditHead(12, "ab" * 32)
    assert au.parse_head(au.format_head(head)) == head
    for bad in ("12", "x:" + "ab" * 32, "012:" + "ab" * 32, "0:" + "ab" * 32, "3:zz"):
        with pytest.raises(MalformedInput):
            au.parse_head(bad)
