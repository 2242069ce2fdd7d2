"""The pieces of sealbox.approver.answer that need no relay: errors in words, what is worth a
retry, and the backoff between attempts.  (Answering itself is tested end to end:
tests/e2e/test_e2e_terminal.py, test_e2e_serve_outage.py, test_e2e_hostile_proxy.py.)"""

from __future__ import annotations

import random

import httpx
import pytest

from sealbox.approver.answer import (
    Approve,
    Backoff,
    Deny,
    Refuse,
    Unverifiable,
    answer,
    describe,
    transient,
)
from sealbox.errors import MalformedInput, RelayRefused, RelayUnreachable, SignatureInvalid


def _refused_by_os() -> httpx.ConnectError:
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as exc:
            raise httpx.ConnectError("[Errno 111] Connection refused") from exc
    except httpx.ConnectError as exc:
        return exc


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (_refused_by_os(), "could not reach the relay: connection refused"),
        (httpx.ConnectError("[Errno -2] Name or service not known"),
         "could not reach the relay: name or service not known"),
        (httpx.ReadTimeout("timed out"),
         "could not reach the relay: it stopped answering (timed out)"),
        (httpx.RemoteProtocolError("Server disconnected without sending a response."),
         "could not reach the relay: the connection was closed before the answer was complete"),
        (httpx.ReadError("[Errno 104] Connection reset by peer"),
         "could not reach the relay: connection reset by peer"),
        (RelayRefused("releasing: the relay refused: no"), "releasing: the relay refused: no"),
    ],
)  # fmt: skip
def test_errors_are_described_in_words(error: BaseException, words: str) -> None:
    assert describe(error) == words
    assert type(error).__name__ not in describe(error)


@pytest.mark.parametrize(
    ("error", "again"),
    [
        (httpx.ConnectError("refused"), True),
        (httpx.ReadTimeout("timed out"), True),
        (RelayUnreachable("down"), True),
        (RelayRefused("x", status=503), True),
        (RelayRefused("x", status=500), True),
        (RelayRefused("x", status=429, retry_after=2.0), True),
        (RelayRefused("x", status=409), False),
        (RelayRefused("x", status=403), False),
        (RelayRefused("x"), False),
        (SignatureInvalid("x"), False),
        (MalformedInput("x"), False),
    ],
)
def test_only_what_may_work_later_is_transient(error: BaseException, again: bool) -> None:
    assert transient(error) is again


def test_backoff_doubles_from_half_a_second_to_ten_with_jitter() -> None:
    backoff = Backoff(random.Random(7))
    waits = [backoff.next() for _ in range(8)]
    nominal = [0.5, 1, 2, 4, 8, 10, 10, 10]
    for wait, top in zip(waits, nominal, strict=True):
        assert 0.75 * top <= wait <= top
    assert len(set(waits)) == len(waits)  # jittered: approvers do not come back in step
    backoff.reset()
    assert 0.375 <= backoff.next() <= 0.5


def test_only_an_unverifiable_request_is_refused_and_it_only_refused() -> None:
    odd = Unverifiable(id="x", kind="access", code="signature_invalid", message="bad")
    for decision in (Approve(), Deny("no")):
        with pytest.raises(ValueError, match="only refused"):
            answer(None, odd, decision, now=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="only a request that does not verify"):
        answer(None, object(), Refuse(), now=0)  # type: ignore[arg-type]
