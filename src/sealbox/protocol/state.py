"""The request state machine (DESIGN section 5).

RULE: every state change of a request lives in ``TRANSITIONS`` below and
nowhere else.  The relay applies :func:`next_state` inside one
compare-and-set transaction, so two concurrent approvals or fetches can never
release or deliver twice.

    pending --release(s) reach threshold--> released --client fetches--> delivered
    pending --deny (any approver)---------> denied
    pending --exp passes------------------> expired
    pending --client cancels--------------> cancelled
"""

from __future__ import annotations

import enum
from types import MappingProxyType
from typing import Final

from sealbox.errors import IllegalTransition

__all__ = ["TERMINAL", "TRANSITIONS", "Event", "State", "next_state"]


class State(enum.StrEnum):
    PENDING = "pending"
    RELEASED = "released"
    DELIVERED = "delivered"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Event(enum.StrEnum):
    THRESHOLD_REACHED = "threshold_reached"
    """Enough distinct approvers have released (1 for any-of-N, M for M-of-N)."""
    FETCHED = "fetched"
    """The requesting client has taken the release envelope(s)."""
    DENIED = "denied"
    """Any approver denied."""
    EXPIRED = "expired"
    """The request's ``exp`` passed while it was pending."""
    CANCELLED = "cancelled"
    """The requesting client withdrew it."""


TRANSITIONS: Final = MappingProxyType(
    {
        (State.PENDING, Event.THRESHOLD_REACHED): State.RELEASED,
        (State.PENDING, Event.DENIED): State.DENIED,
        (State.PENDING, Event.EXPIRED): State.EXPIRED,
        (State.PENDING, Event.CANCELLED): State.CANCELLED,
        (State.RELEASED, Event.FETCHED): State.DELIVERED,
    }
)

#: States no event leaves.  ``released`` is not terminal: it waits for delivery.
TERMINAL: Final = frozenset({State.DELIVERED, State.DENIED, State.EXPIRED, State.CANCELLED})


def next_state(state: State, event: Event) -> State:
    """The state after ``event``; raise :class:`IllegalTransition` if the table has no such edge."""
    try:
        return TRANSITIONS[(State(state), Event(event))]
    except (KeyError, ValueError):
        raise IllegalTransition(f"a {state} request cannot take the event {event}") from None
