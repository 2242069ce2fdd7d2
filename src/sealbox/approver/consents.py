"""An approver's side of per-action consent: see what is asked, verified, and answer it.

:func:`examine` turns a consent request as the relay lists it into a
:class:`ConsentReview` holding only verified facts: the client's certificate
checked against the directory, and the action, details and purpose its key
signed.  What only the relay says (the source address) is kept apart.  A
request that does not verify is an :class:`~sealbox.approver.answer.Unverifiable`
and is refused with a signed deny whose grounds say so, never shown.

:func:`answer` signs a ``sealbox.consent.v1`` for exactly the verified request
(:func:`sealbox.protocol.consent.answer_consent`), or a deny of its hash.
The terminal approver (a person decides) and the automated approver (only a
rule that names the action and the client may consent) both go through here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sealbox._relay.text import displayable
from sealbox.approver.answer import (
    Approve,
    Decision,
    Deny,
    Outcome,
    Refuse,
    Unverifiable,
    _call,
    _error_code,
    _json,
)
from sealbox.approver.review import deny_token, refusal_token
from sealbox.approver.session import ApproverSession
from sealbox.errors import DirectoryBroken, Expired, MalformedInput, SealboxError
from sealbox.protocol.certificates import verify_enrollment
from sealbox.protocol.consent import (
    VerifiedConsentRequest,
    answer_consent,
    consent_details_hash,
    verify_consent_request,
)

__all__ = [
    "WRAP",
    "ConsentReview",
    "answer",
    "details_lines",
    "examine",
    "pending",
]

#: Width at which a line of the details is wrapped on a terminal.
WRAP = 160


@dataclass(frozen=True)
class ConsentReview:
    """A pending consent request, verified; everything but ``reported_by_server`` is signed."""

    id: str
    kind: str = field(default="consent", init=False)
    client_id: str = ""
    client_name: str = ""
    client_kind: str = ""
    issuer: str = ""
    """The approver (or enrollment) that certified the client."""
    enrolled_by: str | None = None
    action: str = ""
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)
    details_hash: str = ""
    purpose: str = ""
    ttl: int = 0
    at: int = 0
    expires_at: int = 0
    reported_by_server: Mapping[str, Any] = field(default_factory=dict, hash=False)
    verified: VerifiedConsentRequest | None = field(default=None, repr=False, hash=False)


def pending(session: ApproverSession) -> list[dict[str, Any]]:
    """Every consent request waiting, oldest first."""
    response = _call(session, "GET", "/consent-approvals", "listing consent requests")
    listed = _json(response, "listing consent requests", (200,))
    found = listed.get("consent_requests") if isinstance(listed, dict) else None
    if not isinstance(found, list):
        raise MalformedInput("the relay's list of consent requests is malformed")
    return [e for e in found if isinstance(e, dict) and isinstance(e.get("id"), str)]


def _review(entry: Mapping[str, Any], session: ApproverSession, *, fresh: bool,
            now: int) -> ConsentReview:  # fmt: skip
    directory = session.directory(fresh=fresh)
    statement, certificate = entry.get("statement"), entry.get("certificate")
    if not isinstance(statement, str) or not isinstance(certificate, str):
        raise MalformedInput("the consent request comes without its statement or certificate")
    enrollment = entry.get("enrollment")
    enrollment = enrollment if isinstance(enrollment, str) else None
    verified = verify_consent_request(statement, directory=directory, certificate=certificate,
                                      now=now, enrollment=enrollment)  # fmt: skip
    if verified.hash != "sha256:" + str(entry.get("id")):
        raise MalformedInput("the relay listed the consent request under another id")
    cert = verified.certificate
    enrolled_by = None
    if enrollment is not None:
        enrolled_by = verify_enrollment(enrollment, directory, now=now).issuer
    s = verified.statement
    reported = entry.get("reported_by_server")
    return ConsentReview(
        id=verified.hash.removeprefix("sha256:"), client_id=cert.client.id,
        client_name=cert.client.name, client_kind=cert.client.kind, issuer=cert.issuer,
        enrolled_by=enrolled_by, action=s.action, details=s.details,
        details_hash=consent_details_hash(s.details), purpose=s.purpose, ttl=s.ttl, at=s.at,
        expires_at=s.exp, reported_by_server=reported if isinstance(reported, dict) else {},
        verified=verified,
    )  # fmt: skip


def examine(session: ApproverSession, entry: Mapping[str, Any], *,
            now: int) -> ConsentReview | Unverifiable:  # fmt: skip
    """Verify one listed consent request; one that does not verify is :class:`Unverifiable`.

    Raises :class:`~sealbox.errors.Expired` and :class:`~sealbox.errors.DirectoryBroken`
    (not the request's doing) and transport errors.
    """
    try:
        try:
            return _review(entry, session, fresh=False, now=now)
        except (Expired, DirectoryBroken):
            raise
        except SealboxError:
            # Perhaps certified by an approver added a moment ago: look again once.
            return _review(entry, session, fresh=True, now=now)
    except (Expired, DirectoryBroken):
        raise
    except SealboxError as exc:
        request_id = entry.get("id")
        return Unverifiable(id=request_id if isinstance(request_id, str) else "",
                            kind="consent", code=exc.code, message=exc.message)  # fmt: skip


def answer(session: ApproverSession, request: ConsentReview | Unverifiable, decision: Decision,
           *, now: int) -> Outcome:  # fmt: skip
    """Sign and send this approver's answer: ``consented``, ``denied``, ``refused`` or ``ended``."""
    directory = session.directory()
    keys = session.keys
    if isinstance(request, Unverifiable) or isinstance(decision, Refuse):
        if not (isinstance(request, Unverifiable) and isinstance(decision, Refuse)):
            raise ValueError("only a request that does not verify is refused, and only refused")
        if not request.id:
            raise MalformedInput("the relay's consent request has no id: it cannot be refused")
        token = refusal_token(request.id, code=request.code, directory=directory, keys=keys,
                              now=now)  # fmt: skip
        done = _send(session, request.id, "deny", {"deny": token}, "refused")
        return Outcome(done.answer, done.state, code=request.code)
    if isinstance(decision, Deny):
        token = deny_token(request.id, reason=decision.reason, directory=directory, keys=keys,
                           now=now)  # fmt: skip
        return _send(session, request.id, "deny", {"deny": token}, "denied")
    assert isinstance(decision, Approve)
    assert request.verified is not None
    token = answer_consent(request.verified, directory=directory, approver=session.id,
                           key=keys.sig, now=now)  # fmt: skip
    return _send(session, request.id, "consent", {"consent": token}, "consented")


def _send(session: ApproverSession, request_id: str, action: str, body: Mapping[str, str],
          answered: str) -> Outcome:  # fmt: skip
    what = f"answering consent request {request_id[:12]}"
    response = _call(session, "POST", f"/consent-requests/{request_id}/{action}", what,
                     json_body=dict(body))  # fmt: skip
    if response.status_code in (404, 409) and _error_code(response) in (
        "not_pending", "no_such_request",
    ):  # fmt: skip
        return Outcome("ended")
    result = _json(response, what, (200,))
    state = result.get("state") if isinstance(result, dict) else None
    return Outcome(answered, state if isinstance(state, str) else None)


def details_lines(details: Mapping[str, Any]) -> list[str]:
    """The details as indented JSON lines, safe to print, and all of them.

    Every character a terminal could act on is made displayable (no escape
    sequence or bidi override reaches it); long lines are wrapped, never cut: a
    person consents to what the statement says, so all of it is shown (it is at
    most 8 KiB of canonical JSON).
    """
    text = json.dumps(details, indent=2, sort_keys=True, ensure_ascii=False)
    lines = []
    # Split only where json.dumps broke the line: it leaves U+0085, U+2028 and U+2029 in
    # strings as they are, and str.splitlines() would break on them (and on \x0b, \x0c,
    # \x1c-\x1e), letting the details draw a line of their own on the approver's screen.
    for line in text.split("\n"):
        safe = displayable(line, len(line))
        lines += [safe[i : i + WRAP] for i in range(0, len(safe), WRAP)] or [""]
    return lines
