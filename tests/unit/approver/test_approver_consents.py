"""The approver's side of consent: what it verifies before showing, and how it prints details."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest

from sealbox.approver import consents
from sealbox.approver.answer import Unverifiable
from sealbox.crypto.keys import HpkePrivateKey, SigningKey
from sealbox.errors import Expired
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.protocol.certificates import issue_certificate
from sealbox.protocol.consent import build_consent_request
from sealbox.protocol.statements import (
    ApproverRecord,
    ClientConstraints,
    ClientInfo,
    sign_statement,
)

NOW = int(time.time())


@dataclasses.dataclass
class Session:
    """What examine needs of an approver session: the verified directory."""

    directory_now: dirs.Directory
    fresh_calls: int = 0

    def directory(self, *, fresh: bool = False) -> dirs.Directory:
        self.fresh_calls += fresh
        return self.directory_now


@pytest.fixture
def world() -> dict[str, Any]:
    sig = SigningKey.generate()
    record = ApproverRecord(
        id=ids.new_id(ids.APPROVER), name="laptop", kind="terminal", tier="device",
        hpke_pk=HpkePrivateKey.generate().public_key(), sig_pk=sig.verify_key(),
    )  # fmt: skip
    vault = ids.new_id(ids.VAULT)
    link0 = dirs.genesis_link(vault, record, sig, now=NOW - 100)
    directory = dirs.verify_directory([link0], pinned=dirs.vault_fingerprint(link0))
    key = SigningKey.generate()
    client = ClientInfo(id=ids.new_id(ids.CLIENT), kind="agent", name="release-bot",
                        sig_pk=key.verify_key())  # fmt: skip
    cert = issue_certificate(
        directory, issuer=record.id, key=sig, client=client, scopes=["read"],
        constraints=ClientConstraints(not_after=NOW + 3600), now=NOW - 50,
    )  # fmt: skip
    return {"directory": directory, "key": key, "client": client, "cert": cert, "vault": vault}


def _entry(w: dict[str, Any], **kw: Any) -> tuple[dict[str, Any], Any]:
    ask = build_consent_request(
        client=w["client"].id, key=w["key"], vault=w["vault"], action="deploy",
        details=kw.pop("details", {"image": "api:1.4.2"}), purpose="release", now=NOW, ttl=60,
    )  # fmt: skip
    entry = {"id": ask.hash.removeprefix("sha256:"), "statement": ask.token,
             "certificate": w["cert"], "enrollment": None,
             "reported_by_server": {"source_ip": "10.0.0.9"}, **kw}  # fmt: skip
    return entry, ask


def test_examine_shows_only_what_verifies(world: dict[str, Any]) -> None:
    session = Session(world["directory"])
    entry, ask = _entry(world)
    rev = consents.examine(session, entry, now=NOW)  # type: ignore[arg-type]
    assert isinstance(rev, consents.ConsentReview)
    assert rev.id == ask.hash.removeprefix("sha256:")
    assert (rev.action, rev.client_name, rev.client_kind, rev.ttl) == (
        "deploy", "release-bot", "agent", 60,
    )  # fmt: skip
    assert rev.details == {"image": "api:1.4.2"}
    assert rev.reported_by_server == {"source_ip": "10.0.0.9"}


@pytest.mark.parametrize("tamper", ["forged", "other-id", "no-certificate"])
def test_a_request_that_does_not_verify_is_unverifiable(world: dict[str, Any], tamper: str) -> None:
    session = Session(world["directory"])
    entry, ask = _entry(world)
    if tamper == "forged":
        entry["statement"] = sign_statement(ask.statement, SigningKey.generate(),
                                            world["client"].id)  # fmt: skip
    elif tamper == "other-id":
        entry["id"] = "A" * 43
    else:
        entry["certificate"] = None
    got = consents.examine(session, entry, now=NOW)  # type: ignore[arg-type]
    assert isinstance(got, Unverifiable)
    assert got.kind == "consent"
    assert session.fresh_calls == 1  # looked again once with a fresh directory


def test_an_expired_request_raises_rather_than_being_refused(world: dict[str, Any]) -> None:
    entry, _ = _entry(world)
    with pytest.raises(Expired):
        consents.examine(Session(world["directory"]), entry, now=NOW + 301)  # type: ignore[arg-type]


def test_details_are_printed_whole_and_harmless() -> None:
    details = {"note": "evil\x1b[2J\u202etxt", "long": "y" * 500, "n": 3}
    lines = consents.details_lines(details)
    text = "\n".join(lines)
    assert "\x1b" not in text
    assert "\u202e" not in text
    assert "\\u001b[2J\ufffdtxt" in text
    assert all(len(line) <= consents.WRAP for line in lines)
    # Nothing is cut: every character of the long value is there, wrapped.
    assert "".join(lines).count("y") == 500


@pytest.mark.parametrize(
    "separator",
    ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\r"],
    ids=["U+2028", "U+2029", "U+0085", "VT", "FF", "FS", "GS", "RS", "CR"],
)
def test_details_cannot_draw_a_line_of_their_own(separator: str) -> None:
    # A line that would look like the approver's own output, were the separator to break it.
    forged = f"x{separator}  action:   read-only check{separator}y"
    lines = consents.details_lines({"note": forged, "key" + separator: 1})
    assert len(lines) == 4, lines  # "{", the two members, "}": nothing else
    assert not any(line.startswith("  action:") for line in lines)
    assert all(line.isprintable() for line in lines)
