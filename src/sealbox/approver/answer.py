"""One way for every approver to look at a pending request and answer it.

The terminal approver (a person decides) and the automated approver (rules
decide) both go through here, so they fetch, verify and answer alike:

- :func:`fetch` and :func:`pending` read what the relay says is waiting;
- :func:`examine` verifies one entry (:func:`~sealbox.approver.review.review`,
  once more with a fresh directory if it fails: an approver added a moment
  ago may have signed something in it) and turns a request that does not
  verify into :class:`Unverifiable`;
- :func:`answer` releases, signs a store's manifest, denies, or refuses an
  unverifiable request with a signed deny whose grounds say so (docs/protocol.md,
  section 9), so its client fails at once instead of waiting for the expiry.

Failures are sorted for the callers: a request that ended meanwhile is an
:class:`Outcome` (``ended``), not an error; the relay being unreachable or
overloaded raises an error :func:`transient` recognises, to try again later;
anything else raises and is final.  :func:`describe` puts any of them in words.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from sealbox._relay.calls import refused
from sealbox._relay.drive import describe as describe_transport
from sealbox._relay.drive import reply_of
from sealbox.approver import review as rv
from sealbox.approver.session import ApproverSession
from sealbox.errors import (
    DirectoryBroken,
    Expired,
    MalformedInput,
    RelayRefused,
    RelayUnreachable,
    SealboxError,
    VerificationError,
)
from sealbox.protocol.store import VerifiedManifests

__all__ = [
    "Approve",
    "Backoff",
    "Decision",
    "Deny",
    "Outcome",
    "Refuse",
    "Unverifiable",
    "answer",
    "describe",
    "examine",
    "fetch",
    "pending",
    "transient",
]

#: The request kinds an approver answers, each under its own path (``/{kind}-requests/…``).
KINDS = ("access", "store")


@dataclass(frozen=True)
class Approve:
    """Release the asked fields (access) or sign the new version's manifest (store)."""

    cache_seconds: int | None = None
    """Shorten how long the client may cache the values (access; never lengthens it)."""


@dataclass(frozen=True)
class Deny:
    """Refuse, with a reason the requester is shown."""

    reason: str


@dataclass(frozen=True)
class Refuse:
    """Refuse a request that does not verify, with signed grounds ``unverifiable``."""


Decision = Approve | Deny | Refuse


@dataclass(frozen=True)
class Unverifiable:
    """A pending request that does not verify: what the relay listed, and the failed check.

    Nothing in it is verified; ``id`` and ``kind`` are only what the relay
    listed, which is what a refusal must name for the relay to file it.
    """

    id: str
    kind: str
    """``access`` or ``store`` as listed; empty when the relay listed neither."""
    code: str
    """The failed check's error code (``signature_invalid``, ``manifest_mismatch``, …)."""
    message: str


@dataclass(frozen=True)
class Outcome:
    """What answering did."""

    answer: str
    """``released``, ``stored``, ``denied``, ``refused``, or ``ended``: the request was no longer
    waiting (answered by another approver, withdrawn or expired) and nothing was recorded."""
    state: str | None = None
    """The request's state after the answer, as the relay reports it (``pending`` while an
    M-of-N request waits for more approvers); ``None`` when it ended."""
    code: str | None = None
    """For ``refused``: the failed check's error code."""


# --- what is waiting ----------------------------------------------------------------------------


def fetch(session: ApproverSession, request_id: str) -> dict[str, Any] | None:
    """The pending request as the relay serves it to this approver; ``None`` if it is not waiting.

    Not waiting: answered (by anyone, when that ended it), withdrawn, expired, or
    not this approver's to answer (the relay does not say which).
    """
    response = _call(session, "GET", f"/approvals/{request_id}", "fetching a request")
    if response.status_code == 404:
        return None
    entry = _json(response, "fetching a request", (200,))
    if not isinstance(entry, dict):
        raise MalformedInput("the relay's request is not a JSON object")
    return entry


def pending(session: ApproverSession) -> list[dict[str, Any]]:
    """Every request waiting for this approver, oldest first (``answered``: it already has)."""
    response = _call(session, "GET", "/approvals", "listing requests")
    listed = _json(response, "listing requests", (200,))
    requests = listed.get("requests") if isinstance(listed, dict) else None
    if not isinstance(requests, list):
        raise MalformedInput("the relay's list of requests is malformed")
    return [entry for entry in requests if isinstance(entry, dict) and _id(entry)]


def examine(session: ApproverSession, entry: Mapping[str, Any], *, now: int,
            known: VerifiedManifests | None = None) -> rv.Review | Unverifiable:  # fmt: skip
    """Verify one entry of ``/approvals``; a request that does not verify is :class:`Unverifiable`.

    Raises what is not the request's fault: :class:`~sealbox.errors.Expired`
    (by this device's clock: a matter of clocks, not evidence of tampering),
    :class:`~sealbox.errors.DirectoryBroken` (the directory itself does not
    verify: nothing can be signed under it), and transport errors.
    """
    # The newest signed policies this approver has seen (a test's session may keep none).
    seen = getattr(session, "policies", None)
    try:
        try:
            return rv.review(entry, directory=session.directory(), keys=session.keys, now=now,
                             known=known, seen=seen)  # fmt: skip
        except SealboxError as exc:
            if not _refusable(exc):
                raise
            # Perhaps signed by an approver added a moment ago: look again once.
            return rv.review(entry, directory=session.directory(fresh=True), keys=session.keys,
                             now=now, known=known, seen=seen)  # fmt: skip
    except SealboxError as exc:
        if not _refusable(exc):
            raise
        kind = entry.get("kind")
        return Unverifiable(id=_id(entry), kind=kind if kind in KINDS else "", code=exc.code,
                            message=exc.message)  # fmt: skip


def _refusable(exc: SealboxError) -> bool:
    """Whether a failed review is the request's own doing: answered with a signed refusal."""
    if isinstance(exc, Expired | DirectoryBroken):
        return False
    return isinstance(exc, VerificationError | MalformedInput)


def _id(entry: Mapping[str, Any]) -> str:
    value = entry.get("id")
    return value if isinstance(value, str) else ""


# --- answering ----------------------------------------------------------------------------------


def answer(session: ApproverSession, request: rv.Review | Unverifiable, decision: Decision, *,
           now: int, known: VerifiedManifests | None = None) -> Outcome:  # fmt: skip
    """Sign and send this approver's answer to one request; see :class:`Outcome`.

    A verified request is approved or denied; an :class:`Unverifiable` one is
    only ever refused.  Approving can still find what review could not (a
    share that does not open as its manifest says): that request is refused
    instead, and the outcome says so.
    """
    if isinstance(request, Unverifiable) or isinstance(decision, Refuse):
        if not (isinstance(request, Unverifiable) and isinstance(decision, Refuse)):
            raise ValueError("only a request that does not verify is refused, and only refused")
        return _refuse(session, request, now=now)
    directory = session.directory()
    keys = session.keys
    if isinstance(decision, Deny):
        token = rv.deny_token(request.id, reason=decision.reason, directory=directory, keys=keys,
                              now=now)  # fmt: skip
        return _send(session, request.kind, request.id, "deny", {"deny": token}, "denied",
                     "denying")  # fmt: skip
    try:
        if request.kind == "access":
            token = rv.release_token(request, directory=directory, keys=keys, now=now,
                                     cache_seconds=decision.cache_seconds,
                                     known=known)  # fmt: skip
        else:
            token = rv.manifest_token(request, directory=directory, keys=keys, now=now)
    except VerificationError as exc:
        # Opening the shares found what review could not: the relay's doing all the same.
        return _refuse(session, Unverifiable(request.id, request.kind, exc.code, exc.message),
                       now=now)  # fmt: skip
    if request.kind == "access":
        return _send(session, "access", request.id, "release", {"release": token}, "released",
                     "releasing")  # fmt: skip
    return _send(session, "store", request.id, "manifest", {"manifest": token}, "stored",
                 "approving a store")  # fmt: skip


def _refuse(session: ApproverSession, request: Unverifiable, *, now: int) -> Outcome:
    if request.kind not in KINDS:
        # Nowhere to file it: the relay listed no kind an answer could go to.
        raise MalformedInput("the relay's request names no kind: it cannot be refused")
    token = rv.refusal_token(request.id, code=request.code, directory=session.directory(),
                             keys=session.keys, now=now)  # fmt: skip
    done = _send(session, request.kind, request.id, "deny", {"deny": token}, "refused",
                 "refusing an unverifiable request")  # fmt: skip
    return Outcome(done.answer, done.state, code=request.code)


def _send(session: ApproverSession, kind: str, request_id: str, action: str,
          body: Mapping[str, str], answered: str, what: str) -> Outcome:  # fmt: skip
    response = _call(session, "POST", f"/{kind}-requests/{request_id}/{action}", what,
                     json_body=dict(body))  # fmt: skip
    if response.status_code in (404, 409) and _error_code(response) in (
        "not_pending", "no_such_request",
    ):  # fmt: skip
        return Outcome("ended")
    result = _json(response, what, (200, 201))
    state = result.get("state") if isinstance(result, dict) else None
    return Outcome(answered, state if isinstance(state, str) else None)


# --- talking to the relay -----------------------------------------------------------------------


def _call(session: ApproverSession, method: str, path: str, what: str, *,
          json_body: Any = None) -> httpx.Response:  # fmt: skip
    try:
        return session.request(method, path, json_body=json_body)
    except RelayUnreachable as exc:
        raise RelayUnreachable(f"{what}: {exc.message}") from exc


def _error_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) else None


def _json(response: httpx.Response, what: str, expect: tuple[int, ...]) -> Any:
    if response.status_code not in expect:
        raise _refused(response, what)
    try:
        return response.json()
    except ValueError:
        raise MalformedInput(f"{what}: the relay's answer is not JSON") from None


def _refused(response: httpx.Response, what: str) -> RelayRefused:
    """The relay's error as :class:`RelayRefused`, with its status, code and ``Retry-After``."""
    return refused(reply_of(response), what)


def transient(exc: BaseException) -> bool:
    """Whether trying again later may work: the relay unreachable, overloaded or failing."""
    if isinstance(exc, RelayUnreachable | httpx.TransportError):
        return True
    if isinstance(exc, RelayRefused) and exc.status is not None:
        return exc.status == 429 or exc.status >= 500
    return False


def describe(exc: BaseException) -> str:
    """An error in words for a person or a log ("could not reach the relay: connection refused")."""
    if isinstance(exc, SealboxError):
        return exc.message
    if isinstance(exc, httpx.HTTPError):
        return f"could not reach the relay: {describe_transport(exc)}"
    return str(exc) or type(exc).__name__


class Backoff:
    """Waits between attempts: 0.5 s doubling to 10 s, each with up to 25 % jitter.

    Jitter keeps many approvers that lost the same relay from coming back in step.
    (Hand-written: a few lines, and the callers interleave the waits with their own
    stop events, which retry libraries do not.)
    """

    FIRST = 0.5
    LONGEST = 10.0

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._next = self.FIRST

    def reset(self) -> None:
        self._next = self.FIRST

    def next(self) -> float:
        """The next wait, in seconds; each one is about twice the last."""
        wait = self._next
        self._next = min(self._next * 2, self.LONGEST)
        return wait * (1 - 0.25 * self._rng.random())
