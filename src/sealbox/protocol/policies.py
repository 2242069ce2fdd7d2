"""Signed release policies (``sealbox.policy.v1``): made by an approver, checked by approvers.

An approver signs the policy it sets; the relay stores the statement and serves
it with each pending request it applies to.  Another approver verifies it
against its own verified directory and then holds the request to the axes it
can judge by itself, by its own clock: the time windows and the destroy date.
What it cannot judge (the source network, how often an item was asked for or
released) depends on facts only the relay sees; those stay the relay's word.
A relay that leaves the statement out, or serves an older signed policy, is not
caught here: approvers then show the policy as reported by the server.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sealbox.crypto import jws
from sealbox.crypto.keys import SigningKey
from sealbox.errors import BindingMismatch, VerificationError
from sealbox.protocol import policy_rules, scopes
from sealbox.protocol.directory import Directory
from sealbox.protocol.statements import PolicyStatement, sign_statement, verify_statement

__all__ = [
    "PolicyBreached",
    "PolicyUnreadable",
    "check_policy",
    "describe",
    "sign_policy",
    "specificity",
    "verify_policy",
]


class PolicyBreached(VerificationError):
    """A request breaks the signed policy that applies to it: the relay should have refused.

    ``code`` names the axis (``policy_outside_hours``, ``item_destroyed``), as the
    relay's own refusal would.
    """

    code = "policy_breached"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, hint="The relay let through a request its policy forbids; "
                         "it was refused.")  # fmt: skip
        self.code = code


class PolicyUnreadable(VerificationError):
    """A signed policy this device cannot evaluate (a zone it does not know, a date it cannot
    show): the request is refused as unverifiable rather than left unanswered."""

    code = "policy_unreadable"

    def __init__(self, message: str) -> None:
        super().__init__(message, hint="Sign the policy again with a zone and dates every "
                         "approver can read.")  # fmt: skip


def specificity(pattern: str) -> tuple[int, int, str]:
    """How specific a pattern is; of the patterns matching a path, the largest applies.

    Longest pattern wins; on equal length, the one with fewer wildcards; the pattern text
    breaks the last tie so the choice never depends on order.  The relay
    (:func:`sealbox.server.policy.policy_for`) and approvers use this one rule.
    """
    wildcards = pattern.count("*") + pattern.count("?")
    return (len(pattern), -wildcards, pattern)


def sign_policy(statement: PolicyStatement, key: SigningKey) -> str:
    return sign_statement(statement, key, statement.approver)


def verify_policy(token: str, directory: Directory, *, path: str | None = None) -> PolicyStatement:
    """A policy signed by a current approver of ``directory`` for this vault (and, with
    ``path``, one whose pattern covers it); raise if not."""
    signer = directory.approver(jws.read_header(token).kid)
    statement = verify_statement(token, PolicyStatement, signer.sig_pk, signer.id)
    if statement.approver != signer.id or statement.vault != directory.vault:
        raise BindingMismatch("the policy's approver or vault does not match its signature")
    if path is not None and not scopes.matches(path, statement.pattern):
        raise BindingMismatch(f"the relay served a policy for {statement.pattern}, not {path}")
    return statement


def _when(at: int) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def check_policy(statement: PolicyStatement, path: str, now: int) -> None:
    """Refuse by this device's clock what the relay should have refused: past the destroy date,
    or outside every time window."""
    if statement.destroy_at is not None and now >= statement.destroy_at:
        raise PolicyBreached(
            "item_destroyed",
            f"{path} is past its signed destroy date ({_when(statement.destroy_at)})",
        )
    try:
        windows = policy_rules.parse_windows(statement.hours)
        inside = policy_rules.in_windows(windows, now)
    except (ValueError, OverflowError, OSError, KeyError) as exc:
        raise PolicyUnreadable(f"the signed policy for {path} cannot be evaluated here: "
                               f"{str(exc)[:200]}") from None  # fmt: skip
    if not inside:
        raise PolicyBreached(
            "policy_outside_hours",
            f"{path} may be asked for only within: {'; '.join(statement.hours)}",
        )


def describe(statement: PolicyStatement) -> Sequence[str]:
    """The signed axes that are set, one phrase each (for approvers' screens and logs)."""
    try:
        return _describe(statement)
    except (ValueError, OverflowError, OSError) as exc:
        raise PolicyUnreadable(f"the signed policy for {statement.pattern} cannot be shown "
                               f"here: {str(exc)[:200]}") from None  # fmt: skip


def _describe(statement: PolicyStatement) -> Sequence[str]:
    out = [f"{statement.threshold} of {len(statement.approvers)}"]
    if statement.cosigner:
        out.append(f"co-signer {statement.cosigner}")
    if statement.hours:
        out.append("hours " + "; ".join(statement.hours))
    if statement.cidrs:
        out.append("networks " + ", ".join(statement.cidrs))
    if statement.max_reads:
        out.append(f"at most {statement.max_reads}")
    if statement.destroy_at is not None:
        out.append(f"destroyed {_when(statement.destroy_at)}")
    if statement.rotate_after is not None:
        out.append(f"rotate after {statement.rotate_after}")
    return out
