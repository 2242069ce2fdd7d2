"""What an approver checks before anyone decides, and the answers it signs.

:func:`review` turns a pending request as the relay serves it into a
:class:`Review` that holds only verified facts: the client's certificate
(name, kind, issuer, scopes) checked against the directory, the statement
signed by that client (purpose, context, items, fields), each manifest
signed by an approver and bound to the asked item and path.  What only the
relay says (the source address) is kept apart, as reported by the server.
Anything that does not verify raises: such a request is never shown as if it
were real.

The answers (:func:`release_token`, :func:`deny_token`, :func:`refusal_token`,
:func:`manifest_token`) are the protocol's, signed with this approver's key;
:func:`release_token` re-checks the wrapped shares and opens exactly the asked
fields.  :mod:`sealbox.approver.answer` sends them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sealbox._relay.text import displayable
from sealbox.approver.keystore import ApproverKeys
from sealbox.approver.policy_seen import PolicySeen
from sealbox.crypto import jws
from sealbox.crypto.encoding import b64u_decode
from sealbox.errors import BindingMismatch, MalformedInput, ManifestMismatch, NotAuthorized
from sealbox.protocol.access import ItemMaterial, VerifiedAccess, deny, release, verify_access
from sealbox.protocol.certificates import verify_enrollment
from sealbox.protocol.directory import Directory
from sealbox.protocol.policies import check_policy, specificity, verify_policy
from sealbox.protocol.policies import describe as describe_policy
from sealbox.protocol.statements import DENY_UNVERIFIABLE, ItemManifest
from sealbox.protocol.store import (
    StoreUpload,
    VerifiedManifests,
    VerifiedStore,
    sign_manifest,
    verify_manifest,
    wrap_hash,
)
from sealbox.protocol.store import verify_store as verify_store_upload

__all__ = [
    "ItemView",
    "PolicyShown",
    "ReportedActivity",
    "Review",
    "deny_token",
    "manifest_token",
    "refusal_token",
    "release_token",
    "reported_activity",
    "review",
]


@dataclass(frozen=True)
class ItemView:
    """One item of a request, as its verified manifest and the statement name it."""

    path: str
    version: int
    fields: tuple[str, ...]
    """The fields asked for (access) or stored (store): names only, never values."""
    type: str
    threshold: int
    holders: int


@dataclass(frozen=True)
class PolicyShown:
    """The policy that applies to one item of a request, as an approver is shown it."""

    path: str
    pattern: str | None
    """The policy's pattern (None: the vault's default policy)."""
    signed_by: str | None
    """The approver whose ``sealbox.policy.v1`` this is, verified against the directory and
    held to this device's clock (windows, destroy date); None: only the relay's word."""
    axes: tuple[str, ...]
    """One phrase per axis that is set (from the signed statement if there is one)."""


@dataclass(frozen=True)
class Review:
    """A pending request, verified; everything here but ``reported_by_server`` is signed."""

    id: str
    kind: str
    """``access`` or ``store``."""
    client_id: str
    client_name: str
    client_kind: str
    issuer: str
    """The approver (or enrollment) that certified the client."""
    scopes: tuple[str, ...]
    purpose: str
    context: Any
    """The signed :class:`~sealbox.protocol.statements.RequestContext`."""
    items: tuple[ItemView, ...]
    at: int
    expires_at: int
    cache_seconds: int
    """How long the client asked to keep the values (access)."""
    cache_scope: str
    cache_until_max: int
    """The latest ``cache_until`` the relay's policy allows (0: no caching)."""
    threshold: int
    approvals: int
    reported_by_server: Mapping[str, Any]
    enrolled_by: str | None = None
    """For a machine certified by an enrollment: the approver that signed the enrollment
    (verified, with the whole chain, against the directory)."""
    access: VerifiedAccess | None = field(default=None, repr=False)
    materials: Mapping[str, ItemMaterial] = field(default_factory=dict, repr=False)
    store: VerifiedStore | None = field(default=None, repr=False)
    policies: tuple[PolicyShown, ...] = ()
    """The policy of each item, signed and checked or as reported by the server."""

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(i.path for i in self.items)

    @property
    def canaries(self) -> tuple[str, ...]:
        """Paths of the canaries among the items, by their verified manifests (or the signed
        store statement): a relay cannot hide that a request reads one."""
        return tuple(i.path for i in self.items if i.type == "canary")


@dataclass(frozen=True)
class ReportedActivity:
    """What the relay says of a requester's requests lately: its own count, signed by nobody.

    A relay could make it up (or leave it out); it is shown apart from the verified review,
    as the source address is, to help an approver notice a requester that asks too often.
    """

    window_seconds: int
    requests: int
    """Requests the client made within the window (this one included)."""
    denials: int
    """Of its requests, those denied within the window."""
    locked: bool
    """Whether the relay has locked the client out after denials in a row."""
    counted_up_to: int
    """Each count stops here: this many means this many or more."""


def reported_activity(reported: Mapping[str, Any]) -> ReportedActivity | None:
    """The relay's ``recent`` count from ``reported_by_server``, or None if it sent none.

    One that is malformed is None too: it is no fact to verify, so a bad one is
    shown as absent and never stops an approver from seeing the request.
    """
    recent = reported.get("recent")
    if not isinstance(recent, dict):
        return None
    counts: list[int] = []
    for key in ("window_seconds", "requests", "denials", "counted_up_to"):
        value = recent.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
            return None
        counts.append(value)
    locked = recent.get("locked")
    if not isinstance(locked, bool) or counts[0] == 0:
        return None
    window, asked, denied, most = counts
    return ReportedActivity(window, asked, denied, locked, most)


def _text(entry: Mapping[str, Any], key: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str):
        raise MalformedInput(f"the relay's request has no valid {key!r}")
    return value


def _count(entry: Mapping[str, Any], key: str, default: int) -> int:
    value = entry.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedInput(f"the relay's request has no valid {key!r}")
    return value


def _mapping(entry: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = entry.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedInput(f"the relay's request has no valid {key!r}")
    return value


def _blobs(value: object, what: str) -> dict[str, bytes]:
    """A relay-served map of names to base64url blobs; anything else is malformed."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedInput(f"the relay's request has no valid {what}")
    return {str(k): b64u_decode(v, what=what) for k, v in value.items()}


def _reported_axes(policy: Mapping[str, Any]) -> tuple[str, ...]:
    """The relay's unsigned description of a policy, as display text (never trusted)."""
    out = [f"{_count(policy, 'threshold', 0)} of {len(policy.get('approvers') or ())}"]
    for key, label in (
        ("cosigner", "co-signer"),
        ("max_reads", "at most"),
        ("rotate_after", "rotate after"),
        ("destroy_at", "destroyed at"),
    ):
        if policy.get(key) is not None:
            out.append(f"{label} {displayable(str(policy[key]), 64)}")
    for key, label in (("hours", "hours"), ("cidrs", "networks")):
        values = policy.get(key)
        if isinstance(values, list) and values:
            out.append(f"{label} " + "; ".join(displayable(str(v), 100) for v in values[:16]))
    return tuple(out)


#: What an approver shows (and the automated approver logs) when no signed policy is served.
NO_SIGNED_POLICY = "no signed policy served"


def _served_tokens(policy: Mapping[str, Any]) -> list[str]:
    """Every signed statement served for a path: the relay serves each one whose pattern
    matches (``statements``), and the one it applies (``statement``)."""
    tokens = [t for t in policy.get("statements") or () if isinstance(t, str)]
    token = policy.get("statement")
    if isinstance(token, str) and token not in tokens:
        tokens.append(token)
    return tokens[:64]


def _policies(entry: Mapping[str, Any], paths: tuple[str, ...], directory: Directory,
              now: int, seen: PolicySeen | None = None) -> tuple[PolicyShown, ...]:  # fmt: skip
    """Each item's policy; a signed one is verified and held to this device's clock.

    Of the signed statements served for a path, this approver picks the most specific itself
    (the relay's own rule, :func:`~sealbox.protocol.policies.specificity`), so a relay cannot
    steer it to a broader one while the more specific one is served; and with ``seen``, one
    older than a statement for its pattern seen before is refused
    (:class:`~sealbox.approver.policy_seen.PolicyRollback`).

    Raises :class:`~sealbox.protocol.policies.PolicyBreached` (naming the axis) for a
    request outside the signed windows or past the signed destroy date, and a verification
    error for a signed policy that does not verify or does not cover the item.  A policy
    signed by an approver no longer in the directory is shown as the relay's word; a path
    with no signed policy served says so (:data:`NO_SIGNED_POLICY`).
    """
    served = _mapping(entry, "policies")
    out = []
    newest: dict[str, int] = {}
    for path in paths:
        policy = served.get(path)
        if not isinstance(policy, dict):
            # An older relay, or one that hides it: nothing to check, and said so.
            out.append(PolicyShown(path, None, None, (NO_SIGNED_POLICY,)))
            continue
        pattern = policy.get("pattern")
        pattern = displayable(pattern, 200) if isinstance(pattern, str) else None
        signed_ones = []
        for token in _served_tokens(policy):
            try:
                directory.approver(jws.read_header(token).kid)
            except NotAuthorized:
                continue  # signed by an approver no longer here: only the relay's word
            signed = verify_policy(token, directory, path=path)
            if seen is not None:
                seen.check(directory.vault, signed.pattern, signed.at)
            newest[signed.pattern] = max(newest.get(signed.pattern, -1), signed.at)
            signed_ones.append(signed)
        if signed_ones:
            top = max(specificity(s.pattern) for s in signed_ones)
            # One statement per pattern applies: the newest served for the most specific one.
            chosen = max((s for s in signed_ones if specificity(s.pattern) == top),
                         key=lambda s: s.at)  # fmt: skip
            check_policy(chosen, path, now)
            out.append(PolicyShown(path, chosen.pattern, chosen.approver,
                                   tuple(describe_policy(chosen))))  # fmt: skip
            continue
        out.append(PolicyShown(path, pattern, None, (NO_SIGNED_POLICY, *_reported_axes(policy))))
    if seen is not None and newest:
        seen.remember(directory.vault, newest)
    return tuple(out)


def review(entry: Mapping[str, Any], *, directory: Directory, keys: ApproverKeys, now: int,
           known: VerifiedManifests | None = None, seen: PolicySeen | None = None,
           ) -> Review:  # fmt: skip
    """Verify one entry of ``/approvals``; raise if anything in it does not verify.

    ``known``: manifests already verified by this process (an automated
    approver sees the same ones on every request), looked up instead of
    verified again; every binding of a manifest to the request is checked anyway.
    """
    kind = _text(entry, "kind")
    request_id = _text(entry, "id")
    certificate = _text(entry, "certificate")
    enrollment = entry.get("enrollment")
    enrolled_by = None
    if enrollment is not None and jws.read_header(certificate).kid.startswith("enr_"):
        # A delegated certificate: the whole chain is verified with the statement below;
        # this names the approver at its end.
        enrolled_by = verify_enrollment(enrollment, directory, now=now).issuer
    common: dict[str, Any] = {
        "id": request_id, "kind": kind,
        "threshold": _count(entry, "threshold", 1) or 1,
        "approvals": _count(entry, "approvals", 0),
        "reported_by_server": _mapping(entry, "reported_by_server"),
        "enrolled_by": enrolled_by,
    }  # fmt: skip
    if kind == "access":
        verified = verify_access(_text(entry, "statement"), directory=directory,
                                 certificate=certificate, now=now,
                                 enrollment=enrollment)  # fmt: skip
        if verified.hash != "sha256:" + request_id:
            raise BindingMismatch("the relay filed this statement under another request id")
        served = entry.get("items")
        if not isinstance(served, dict):
            raise MalformedInput("the relay's request has no items")
        materials: dict[str, ItemMaterial] = {}
        views = []
        for asked in verified.statement.items:
            material = served.get(asked.item)
            if not isinstance(material, dict):
                raise BindingMismatch(f"the relay served nothing for {asked.item}")
            token = _text(material, "manifest")
            manifest: ItemManifest = (
                verify_manifest(token, directory)
                if known is None
                else known.verify(token, directory)
            )
            if manifest.item != asked.item or manifest.path != asked.path:
                raise BindingMismatch(f"the relay served another item's manifest for {asked.path}")
            if asked.version is not None and manifest.version != asked.version:
                raise BindingMismatch(f"the relay served another version of {asked.path}")
            wraps = material.get("wraps")
            if not isinstance(wraps, dict):
                raise MalformedInput("the relay's request has no wraps")
            mine = manifest.keyset.wraps.get(keys.record.id)
            if mine is None:
                raise NotAuthorized(f"{keys.record.id} holds no share of {asked.path}")
            opened = _blobs(wraps, "wraps")
            for name in asked.fields:
                # Checked before anyone is shown the request: a wrap the manifest does not
                # vouch for is the relay's doing, never something to approve.
                if name not in opened or wrap_hash(opened[name]) != mine.get(name):
                    raise ManifestMismatch(f"the wrap of {asked.path}/{name} is not the signed one")
            materials[asked.item] = ItemMaterial(manifest=material["manifest"], wraps=opened)
            views.append(ItemView(
                path=manifest.path, version=manifest.version, fields=asked.fields,
                type=manifest.type, threshold=manifest.keyset.threshold,
                holders=len(manifest.keyset.approvers),
            ))  # fmt: skip
        s, cert = verified.statement, verified.certificate
        return Review(
            **common, client_id=cert.client.id, client_name=cert.client.name,
            client_kind=cert.client.kind, issuer=cert.issuer, scopes=tuple(cert.scopes),
            purpose=s.purpose, context=s.context, items=tuple(views), at=s.at,
            expires_at=s.exp, cache_seconds=s.cache.seconds, cache_scope=s.cache.scope,
            cache_until_max=_count(entry, "cache_until_max", 0), access=verified,
            materials=materials,
            policies=_policies(entry, tuple(v.path for v in views), directory, now, seen),
        )  # fmt: skip
    if kind == "store":
        upload = StoreUpload(
            statement=_text(entry, "statement"),
            ciphertexts=_blobs(entry.get("ciphertexts"), "ciphertexts"),
            wraps={str(a): _blobs(fs, "wraps") for a, fs in _mapping(entry, "wraps").items()},
        )  # fmt: skip
        stored = verify_store_upload(
            upload, directory=directory, approver=keys.record.id, hpke_key=keys.hpke,
            certificate=certificate, now=now, prev_manifest=entry.get("prev_manifest"),
            enrollment=enrollment,
        )  # fmt: skip
        if stored.hash != "sha256:" + request_id:
            raise BindingMismatch("the relay filed this statement under another request id")
        st, cert = stored.statement, stored.certificate
        view = ItemView(
            path=st.path,
            version=st.version,
            fields=tuple(st.fields),
            type=st.type,
            threshold=st.keyset.threshold,
            holders=len(st.keyset.approvers),
        )
        return Review(
            **common, client_id=cert.client.id, client_name=cert.client.name,
            client_kind=cert.client.kind, issuer=cert.issuer, scopes=tuple(cert.scopes),
            purpose=st.purpose, context=st.context, items=(view,), at=st.at, expires_at=st.exp,
            cache_seconds=0, cache_scope="none", cache_until_max=0, store=stored,
            policies=_policies(entry, (view.path,), directory, now, seen),
        )  # fmt: skip
    raise MalformedInput(f"unknown request kind {kind!r}")


def release_token(rev: Review, *, directory: Directory, keys: ApproverKeys, now: int,
                  cache_seconds: int | None = None,
                  known: VerifiedManifests | None = None) -> str:  # fmt: skip
    """Release this approver's shares of an access request.

    ``cache_until`` is what the client asked for, cut to the policy's limit
    and to ``cache_seconds`` from now if given (an approver may shorten the
    window, never extend it).
    """
    assert rev.access is not None
    cache_until = 0
    if rev.cache_seconds:
        cache_until = min(rev.at + rev.cache_seconds, rev.cache_until_max)
        if cache_seconds is not None:
            cache_until = min(cache_until, now + cache_seconds)
        cache_until = max(cache_until, 0) if cache_until > now else 0
    return release(rev.access, materials=rev.materials, directory=directory,
                   approver=keys.record.id, hpke_key=keys.hpke, key=keys.sig, now=now,
                   cache_until=cache_until, verified_manifests=known)  # fmt: skip


def deny_token(request_id: str, *, reason: str, directory: Directory, keys: ApproverKeys,
               now: int) -> str:  # fmt: skip
    return deny("sha256:" + request_id, directory=directory, approver=keys.record.id,
                key=keys.sig, reason=reason[:500], now=now)  # fmt: skip


def refusal_token(request_id: str, *, code: str, directory: Directory, keys: ApproverKeys,
                  now: int) -> str:  # fmt: skip
    """Refuse a request that does not verify: a deny with grounds ``unverifiable``.

    ``request_id`` is the id the relay listed (nothing else about the request can be
    trusted); ``code`` is the failed check's error code, for the requester to see.
    """
    return deny("sha256:" + request_id, directory=directory, approver=keys.record.id,
                key=keys.sig, reason=f"the request does not verify: {code}"[:500], now=now,
                grounds=DENY_UNVERIFIABLE)  # fmt: skip


def manifest_token(rev: Review, *, directory: Directory, keys: ApproverKeys, now: int) -> str:
    assert rev.store is not None
    return sign_manifest(rev.store, directory=directory, approver=keys.record.id, key=keys.sig,
                         now=now)  # fmt: skip
