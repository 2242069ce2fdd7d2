"""Per-action consent: issue, verify, and every way a consent must not transfer."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from sealbox.crypto import jws
from sealbox.crypto.encoding import b64u_encode
from sealbox.crypto.keys import SigningKey
from sealbox.errors import (
    BindingMismatch,
    DirectoryBroken,
    DirectoryFork,
    DirectoryRollback,
    Expired,
    MalformedInput,
    NotAuthorized,
    SignatureInvalid,
)
from sealbox.protocol import consent as cs
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.protocol.certificates import CLOCK_SKEW
from sealbox.protocol.statements import ConsentStatement, sign_statement

NOW = 1_800_000_000
DETAILS = {"service": "api", "image": "api:1.4.2", "replicas": 3}


def _issue(world: Any, **kw: Any) -> str:
    a = world.approvers[kw.pop("by", 0)]
    args: dict[str, Any] = {
        "approver": a.id, "key": a.sig, "action": "deploy", "details": DETAILS,
        "client": world.client.id, "scope": "prod", "now": NOW,
    }  # fmt: skip
    args.update(kw)
    return cs.issue_consent(world.directory, **args)


def _verify(world: Any, token: str, **kw: Any) -> ConsentStatement:
    args: dict[str, Any] = {
        "directory": world.directory, "action": "deploy", "details": DETAILS,
        "client": world.client.id, "now": NOW,
    }  # fmt: skip
    args.update(kw)
    return cs.verify_consent(token, **args)


def test_consent_round_trip(world: Any) -> None:
    consent = _verify(world, _issue(world))
    assert consent.action == "deploy"
    assert consent.details == cs.consent_details_hash(DETAILS)
    assert (consent.at, consent.exp) == (NOW, NOW + 300)


def test_details_hash_ignores_key_order_but_not_values() -> None:
    reordered = dict(reversed(list(DETAILS.items())))
    assert cs.consent_details_hash(reordered) == cs.consent_details_hash(DETAILS)
    assert cs.consent_details_hash({**DETAILS, "replicas": 4}) != cs.consent_details_hash(DETAILS)


def test_details_outside_canonical_json_are_refused() -> None:
    with pytest.raises(MalformedInput):
        cs.consent_details_hash({"ratio": 0.5})


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"action": "rollback"}, BindingMismatch),
        ({"details": {**DETAILS, "replicas": 30}}, BindingMismatch),
        ({"client": ids.new_id(ids.CLIENT)}, BindingMismatch),
        ({"now": NOW + 301}, Expired),
        ({"now": NOW - CLOCK_SKEW - 1}, Expired),
    ],
    ids=["other-action", "other-details", "other-client", "expired", "future"],
)
def test_consent_does_not_transfer(world: Any, change: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        _verify(world, _issue(world), **change)


def test_consent_from_a_non_member_or_forged(world: Any) -> None:
    token = _issue(world)
    forged = jws.sign(SigningKey.generate(), "sealbox.consent.v1", world.approvers[0].id, {})
    with pytest.raises(SignatureInvalid):
        _verify(world, forged)
    outsider = ids.new_id(ids.APPROVER)
    with pytest.raises(NotAuthorized):
        _verify(world, jws.sign(SigningKey.generate(), "sealbox.consent.v1", outsider, {}))
    # The honest token still verifies.
    assert _verify(world, token).approver == world.approvers[0].id


def test_consent_signed_for_another_vault_or_approver(world: Any) -> None:
    a = world.approvers[0]
    good = _verify(world, _issue(world))
    other_vault = dataclasses.replace(good, vault=ids.new_id(ids.VAULT))
    with pytest.raises(BindingMismatch, match="vault"):
        _verify(world, sign_statement(other_vault, a.sig, a.id))
    other_approver = dataclasses.replace(good, approver=world.approvers[1].id)
    with pytest.raises(BindingMismatch, match="approver"):
        _verify(world, sign_statement(other_approver, a.sig, a.id))


def test_consent_with_too_long_or_inverted_window(world: Any) -> None:
    a = world.approvers[0]
    good = _verify(world, _issue(world))
    for exp in (NOW + cs.MAX_CONSENT_TTL + 1, NOW - 1):
        token = sign_statement(dataclasses.replace(good, exp=exp), a.sig, a.id)
        with pytest.raises(MalformedInput, match="validity window"):
            _verify(world, token)


def test_issue_refuses_wrong_key_and_bad_ttl(world: Any) -> None:
    with pytest.raises(ValueError, match="directory key"):
        _issue(world, key=SigningKey.generate())
    for ttl in (0, cs.MAX_CONSENT_TTL + 1):
        with pytest.raises(ValueError, match="ttl"):
            _issue(world, ttl=ttl)
    with pytest.raises(MalformedInput):
        _issue(world, action="deploy\x1b[2K")


# --- consent requests, answers and the offline bundle ------------------------------------


def _request(world: Any, **kw: Any) -> cs.ConsentAsk:
    args: dict[str, Any] = {
        "client": world.client.id, "key": world.client.key, "vault": world.vault,
        "action": "deploy", "details": DETAILS, "purpose": "release 1.4.2", "now": NOW,
        "ttl": 120,
    }  # fmt: skip
    args.update(kw)
    return cs.build_consent_request(**args)


def _answered(world: Any, ask: cs.ConsentAsk, *, by: int = 0, **kw: Any) -> str:
    verified = cs.verify_consent_request(ask.token, directory=world.directory,
                                         certificate=world.cert, now=NOW)  # fmt: skip
    a = world.approvers[by]
    return cs.answer_consent(verified, directory=world.directory, approver=a.id, key=a.sig,
                             now=NOW, **kw)  # fmt: skip


def test_request_answer_and_binding(world: Any) -> None:
    ask = _request(world)
    verified = cs.verify_consent_request(ask.token, directory=world.directory,
                                         certificate=world.cert, now=NOW)  # fmt: skip
    assert verified.statement.details == DETAILS
    assert verified.hash == ask.hash
    assert verified.certificate.client.id == world.client.id
    token = _answered(world, ask)
    consent = cs.check_consent_answers(token, directory=world.directory, request=ask.statement,
                                       request_hash=ask.hash, now=NOW)  # fmt: skip
    assert consent.scope == f"consent-request {ask.hash}"
    assert consent.exp - consent.at == 120
    # An approver may shorten the validity asked for, never lengthen it.
    assert cs.verify_consent(_answered(world, ask, ttl=30), directory=world.directory,
                             action="deploy", details=DETAILS, client=world.client.id,
                             now=NOW).exp == NOW + 30  # fmt: skip
    assert cs.verify_consent(_answered(world, ask, ttl=999), directory=world.directory,
                             action="deploy", details=DETAILS, client=world.client.id,
                             now=NOW).exp == NOW + 120  # fmt: skip
    other = _request(world)
    with pytest.raises(BindingMismatch, match="another consent request"):
        cs.check_consent_answers(token, directory=world.directory, request=other.statement,
                                 request_hash=other.hash, now=NOW)  # fmt: skip


def test_request_signed_by_another_key_or_for_another_vault(world: Any) -> None:
    ask = _request(world)
    forged = sign_statement(ask.statement, SigningKey.generate(), world.client.id)
    with pytest.raises(SignatureInvalid):
        cs.verify_consent_request(forged, directory=world.directory, certificate=world.cert,
                                  now=NOW)  # fmt: skip
    elsewhere = _request(world, vault=ids.new_id(ids.VAULT))
    with pytest.raises(BindingMismatch):
        cs.verify_consent_request(elsewhere.token, directory=world.directory,
                                  certificate=world.cert, now=NOW)  # fmt: skip
    with pytest.raises(Expired):
        cs.verify_consent_request(ask.token, directory=world.directory, certificate=world.cert,
                                  now=NOW + 301)  # fmt: skip
    with pytest.raises(ValueError, match="wait"):
        _request(world, wait=cs.MAX_CONSENT_WAIT + 1)
    with pytest.raises(MalformedInput):
        _request(world, details={"blob": "x" * 9000})


def _bundle(world: Any, by: int = 0) -> dict[str, Any]:
    return cs.consent_bundle(_answered(world, _request(world), by=by), world.directory)


def _check_bundle(world: Any, bundle: object, **kw: Any) -> ConsentStatement:
    args: dict[str, Any] = {
        "fingerprint": world.fingerprint, "action": "deploy", "details": DETAILS,
        "client": world.client.id, "now": NOW,
    }  # fmt: skip
    args.update(kw)
    return cs.verify_consent_bundle(bundle, **args)


def test_bundle_verifies_offline(world: Any) -> None:
    bundle = _bundle(world)
    assert set(bundle) == {"format", "consent", "directory"}
    assert _check_bundle(world, bundle).action == "deploy"


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"action": "rollback"}, BindingMismatch),
        ({"details": {**DETAILS, "replicas": 30}}, BindingMismatch),
        ({"client": ids.new_id(ids.CLIENT)}, BindingMismatch),
        ({"now": NOW + 121}, Expired),
        ({"fingerprint": "sha256:" + "A" * 43}, DirectoryBroken),
    ],
    ids=["other-action", "other-details", "other-client", "expired", "other-vault"],
)
def test_bundle_replay_fails(world: Any, change: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        _check_bundle(world, _bundle(world), **change)


def test_tampered_bundles_fail(world: Any, fresh_world: Any) -> None:
    good = _bundle(world)
    token = good["consent"]
    head, payload, sig = token.split(".")
    # The last of 86 characters carries 2 bits and 4 zero bits: "A" keeps it canonical, so
    # the change is a bad signature, never a malformed encoding.
    flipped = sig[:-2] + ("AA" if sig[-2:] != "AA" else "BA")
    cases: list[tuple[object, type]] = [
        ({**good, "consent": f"{head}.{payload}.{flipped}"}, SignatureInvalid),
        # The signer's link cut off the chain: it is not an approver of what remains.
        ({**(late := _bundle(world, by=2)), "directory": late["directory"][:2]}, NotAuthorized),
        ({**good, "directory": list(reversed(good["directory"]))}, DirectoryBroken),
        # Another vault's directory (its link 0 does not match the pinned fingerprint).
        ({**good, "directory": list(fresh_world.links)}, DirectoryBroken),
        ({**good, "format": "sealbox.consent-bundle.v2"}, MalformedInput),
        ({**good, "extra": 1}, MalformedInput),
        ({"format": cs.BUNDLE_FORMAT, "consent": token}, MalformedInput),
        ([token], MalformedInput),
    ]
    for bundle, error in cases:
        with pytest.raises(error):
            _check_bundle(world, bundle)


def _jwk(world: Any, approver_id: str) -> dict[str, str]:
    """The approver's public key as a JWK (OKP, Ed25519), from the verified directory."""
    raw = world.directory.approver(approver_id).sig_pk.raw
    return {"kty": "OKP", "crv": "Ed25519", "x": b64u_encode(raw)}


# joserfc flags "EdDSA" as deprecated by RFC 9864; sealbox uses the RFC 8037 name.
@pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning")
def test_independent_jose_libraries_verify_the_consent(world: Any) -> None:
    import jwt as pyjwt
    from joserfc import jws as jose_jws
    from joserfc.jwk import OKPKey

    token = _bundle(world)["consent"]
    jwk = _jwk(world, world.approvers[0].id)
    compact = jose_jws.deserialize_compact(token, OKPKey.import_key(jwk), algorithms=["EdDSA"])
    assert compact.headers()["typ"] == "sealbox.consent.v1"
    assert compact.headers()["alg"] == "EdDSA"
    assert json.loads(compact.payload)["client"] == world.client.id
    key = pyjwt.PyJWK(jwk).key
    claims = pyjwt.decode(token, key, algorithms=["EdDSA"],
                          options={"verify_exp": False, "verify_iat": False})  # fmt: skip
    assert claims["details"] == cs.consent_details_hash(DETAILS)
    other = _jwk(world, world.approvers[1].id)
    with pytest.raises(Exception, match=r"(?i)signature"):
        jose_jws.deserialize_compact(token, OKPKey.import_key(other), algorithms=["EdDSA"])


# --- seeing an approver's removal: the current directory, or a known head ------------------


def _removed(world: Any, who: int = 2) -> tuple[dict[str, Any], Any]:
    """A consent signed by approver ``who``, bundled with the directory of that moment, and the
    directory after ``who`` was removed (its key stolen, say)."""
    bundle = cs.consent_bundle(_answered(world, _request(world), by=who), world.directory)
    gone = world.approvers[who]
    first = world.approvers[0]
    link = dirs.append_link(world.directory, "remove", gone.record, signer=first.id,
                            key=first.sig, now=NOW)  # fmt: skip
    after = dirs.verify_directory([*world.links, link], pinned=world.fingerprint)
    return bundle, after


def test_a_removed_approver_is_seen_with_the_current_directory_or_a_known_head(
    fresh_world: Any,
) -> None:
    bundle, after = _removed(fresh_world)
    # Offline, from the bundle alone, the removal cannot be seen (the documented limit).
    assert _check_bundle(fresh_world, bundle).approver == fresh_world.approvers[2].id
    # Against the directory the verifier fetched itself: not an approver any more.
    with pytest.raises(NotAuthorized):
        _check_bundle(fresh_world, bundle, current=after)
    # Against a head the verifier already knows: the bundle's chain stops before it.
    with pytest.raises(DirectoryRollback):
        _check_bundle(fresh_world, bundle, head=after.head)
    head_text = cs.format_head(after.head)
    assert cs.parse_head(head_text) == after.head
    # A consent from an approver still in the directory verifies against both.
    kept = cs.consent_bundle(_answered(fresh_world, _request(fresh_world), by=1), after)
    assert _check_bundle(fresh_world, kept, current=after).approver == fresh_world.approvers[1].id
    assert _check_bundle(fresh_world, kept, head=after.head).approver
    # An older bundle still verifies against the current directory when its signer stayed.
    older = cs.consent_bundle(_answered(fresh_world, _request(fresh_world), by=1),
                              fresh_world.directory)  # fmt: skip
    assert _check_bundle(fresh_world, older, current=after).approver


def test_the_bundles_links_must_agree_with_the_directory_fetched(
    fresh_world: Any, world: Any
) -> None:
    w = fresh_world
    bundle, after = _removed(w)
    first = w.approvers[0]
    # Another link 3 than the vault's (a fork): the bundle is not a prefix of the directory.
    fork = dirs.append_link(w.directory, "remove", w.approvers[1].record, signer=first.id,
                            key=first.sig, now=NOW + 1)  # fmt: skip
    forked = {**bundle, "directory": [*w.links, fork]}
    with pytest.raises(DirectoryFork):
        _check_bundle(w, forked, current=after)
    # The relay serves fewer links than the bundle carries: an older directory.
    longer = {**bundle, "directory": list(after.tokens)}
    with pytest.raises(DirectoryRollback):
        _check_bundle(w, longer, current=w.directory)
    # A directory of another vault, or a known head with another link at its place.
    with pytest.raises(DirectoryBroken):
        _check_bundle(w, bundle, current=world.directory)
    other_head = dirs.DirectoryHead(seq=1, hash=w.directory.head.hash)  # link 2's hash
    with pytest.raises(DirectoryFork):
        _check_bundle(w, bundle, head=other_head)
    with pytest.raises(DirectoryFork):
        _check_bundle(w, bundle, current=after, head=other_head)


@pytest.mark.parametrize(
    "text",
    ["", "3", "3:", "-1:sha256:" + "A" * 43, "03:sha256:" + "A" * 43, "x:sha256:" + "A" * 43,
     "3:sha256:" + "A" * 42, "3:md5:" + "A" * 43, "99999999:sha256:" + "A" * 43, None],
)  # fmt: skip
def test_malformed_heads_are_refused(text: object) -> None:
    with pytest.raises(MalformedInput):
        cs.parse_head(text)
