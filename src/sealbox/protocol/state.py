"""The state machines the relay keeps in its database (DESIGN section 5).

RULE: every state change of an access request, a store request, a device
login or a pairing lives in one of the tables below and nowhere else.  The
relay's store applies them as compare-and-set updates (``WHERE state =
current``), so two concurrent answers can never both take effect.

Access requests::

    pending --release(s) reach threshold--> released --client fetches--> delivered
    pending --deny (any approver)---------> denied
    pending --exp passes------------------> expired
    pending --its client stops waiting----> expired   (no long poll for the waiter grace)
    pending --client cancels--------------> cancelled
    released --not fetched in time--------> expired

Store requests (a client's upload waiting for an approver's manifest)::

    pending --an approver's manifest--> stored
    pending --deny--------------------> denied
    pending --exp passes--------------> expired
    pending --its client stops waiting-> expired

Device logins (RFC 8628)::

    pending --an approver certifies--> approved --the client takes its tokens--> used
    pending --deny-------------------> denied

Pairings (a new approver device)::

    pending --an approver adds it--> approved
    pending --deny-----------------> denied

Machine registrations (a machine that spent a bootstrap token)::

    pending --an approver certifies--> approved
    pending --deny-------------------> denied

Consent requests (a client asking an approver to consent to one action)::

    pending --an approver's consent--> consented --its client takes it--> delivered
    pending --deny--------------------> denied
    pending --exp passes--------------> expired
    pending --its client cancels------> cancelled

A pending login, pairing or machine registration past its expiry is *expired* when read; it is never
written as such (expiry is a property of time, and the rows are purged).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Generic, TypeVar

from sealbox.errors import IllegalTransition

__all__ = [
    "CONSENT",
    "DEVICE",
    "MACHINE_REGISTRATION",
    "PAIRING",
    "STORE",
    "TERMINAL",
    "TRANSITIONS",
    "ConsentEvent",
    "ConsentState",
    "DeviceEvent",
    "DeviceState",
    "Event",
    "Machine",
    "MachineEvent",
    "MachineState",
    "PairingEvent",
    "PairingState",
    "State",
    "StoreEvent",
    "StoreState",
    "next_state",
]

S = TypeVar("S", bound=enum.StrEnum)
E = TypeVar("E", bound=enum.StrEnum)


class Machine(Generic[S, E]):
    """One state table: ``(state, event) -> state``, and nothing else is allowed."""

    def __init__(
        self, name: str, states: type[S], events: type[E], table: Mapping[tuple[S, E], S]
    ) -> None:
        self.name = name
        self.states = states
        self.events = events
        self.table: Final = MappingProxyType(dict(table))
        self.terminal: Final = frozenset(
            s for s in states if not any(src == s for src, _ in self.table)
        )

    def next(self, state: S | str, event: E | str) -> S:
        """The state after ``event``; raise :class:`IllegalTransition` if there is no such edge."""
        try:
            return self.table[(self.states(state), self.events(event))]
        except (KeyError, ValueError):
            raise IllegalTransition(
                f"a {state} {self.name} cannot take the event {event}"
            ) from None

    def sources(self, event: E) -> frozenset[S]:
        """Every state ``event`` may leave."""
        return frozenset(src for src, ev in self.table if ev == event)


# --- access requests --------------------------------------------------------------------------


class State(enum.StrEnum):
    PENDING = "pending"
    RELEASED = "released"
    DELIVERED = "delivered"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Event(enum.StrEnum):
    THRESHOLD_REACHED = "threshold_reached"
    """Enough distinct approvers have released (1 for any-of-N, M for M-of-N), and the
    policy's co-signer on top of them if it names one."""
    FETCHED = "fetched"
    """The requesting client has taken the release envelope(s)."""
    DENIED = "denied"
    """Any approver denied."""
    EXPIRED = "expired"
    """Pending: the request's ``exp`` passed, or its client stopped waiting for the answer.
    Released: the client did not fetch it in time."""
    CANCELLED = "cancelled"
    """The requesting client withdrew it."""


ACCESS: Final = Machine(
    "access request",
    State,
    Event,
    {
        (State.PENDING, Event.THRESHOLD_REACHED): State.RELEASED,
        (State.PENDING, Event.DENIED): State.DENIED,
        (State.PENDING, Event.EXPIRED): State.EXPIRED,
        (State.PENDING, Event.CANCELLED): State.CANCELLED,
        (State.RELEASED, Event.FETCHED): State.DELIVERED,
        (State.RELEASED, Event.EXPIRED): State.EXPIRED,
    },
)
TRANSITIONS: Final = ACCESS.table
#: States no event leaves.  ``released`` is not terminal: it waits for delivery.
TERMINAL: Final = ACCESS.terminal


def next_state(state: State | str, event: Event | str) -> State:
    """The access request's state after ``event``; raise :class:`IllegalTransition` if none."""
    return ACCESS.next(state, event)


# --- store requests ---------------------------------------------------------------------------


class StoreState(enum.StrEnum):
    PENDING = "pending"
    STORED = "stored"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class StoreEvent(enum.StrEnum):
    MANIFEST = "manifest"
    """An approver signed the manifest that makes the upload a stored version."""
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    """The requesting client withdrew it (it stopped waiting): it is never stored after."""


STORE: Final = Machine(
    "store request",
    StoreState,
    StoreEvent,
    {
        (StoreState.PENDING, StoreEvent.MANIFEST): StoreState.STORED,
        (StoreState.PENDING, StoreEvent.DENIED): StoreState.DENIED,
        (StoreState.PENDING, StoreEvent.EXPIRED): StoreState.EXPIRED,
        (StoreState.PENDING, StoreEvent.CANCELLED): StoreState.CANCELLED,
    },
)


# --- device logins ----------------------------------------------------------------------------


class DeviceState(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    USED = "used"


class DeviceEvent(enum.StrEnum):
    CERTIFIED = "certified"
    """An approver uploaded the client certificate it signed."""
    DENIED = "denied"
    TOKENS_TAKEN = "tokens_taken"
    """The client exchanged its device code for its first tokens."""


DEVICE: Final = Machine(
    "device login",
    DeviceState,
    DeviceEvent,
    {
        (DeviceState.PENDING, DeviceEvent.CERTIFIED): DeviceState.APPROVED,
        (DeviceState.PENDING, DeviceEvent.DENIED): DeviceState.DENIED,
        (DeviceState.APPROVED, DeviceEvent.TOKENS_TAKEN): DeviceState.USED,
    },
)


# --- pairings ---------------------------------------------------------------------------------


class PairingState(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"


class PairingEvent(enum.StrEnum):
    ADDED = "added"
    """A directory link added the device's record."""
    DENIED = "denied"


PAIRING: Final = Machine(
    "pairing",
    PairingState,
    PairingEvent,
    {
        (PairingState.PENDING, PairingEvent.ADDED): PairingState.APPROVED,
        (PairingState.PENDING, PairingEvent.DENIED): PairingState.DENIED,
    },
)


# --- machine registrations --------------------------------------------------------------------


class MachineState(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"


class MachineEvent(enum.StrEnum):
    CERTIFIED = "certified"
    """An approver uploaded the machine certificate it signed (and the relay added the grants)."""
    DENIED = "denied"


MACHINE_REGISTRATION: Final = Machine(
    "machine registration",
    MachineState,
    MachineEvent,
    {
        (MachineState.PENDING, MachineEvent.CERTIFIED): MachineState.APPROVED,
        (MachineState.PENDING, MachineEvent.DENIED): MachineState.DENIED,
    },
)


# --- consent requests -------------------------------------------------------------------------


class ConsentState(enum.StrEnum):
    PENDING = "pending"
    CONSENTED = "consented"
    DELIVERED = "delivered"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class ConsentEvent(enum.StrEnum):
    CONSENTED = "consented"
    """An approver uploaded the consent it signed for exactly this request."""
    FETCHED = "fetched"
    """The requesting client has taken the consent."""
    DENIED = "denied"
    EXPIRED = "expired"
    """The request's ``exp`` passed unanswered."""
    CANCELLED = "cancelled"
    """The requesting client withdrew it."""


CONSENT: Final = Machine(
    "consent request",
    ConsentState,
    ConsentEvent,
    {
        (ConsentState.PENDING, ConsentEvent.CONSENTED): ConsentState.CONSENTED,
        (ConsentState.PENDING, ConsentEvent.DENIED): ConsentState.DENIED,
        (ConsentState.PENDING, ConsentEvent.EXPIRED): ConsentState.EXPIRED,
        (ConsentState.PENDING, ConsentEvent.CANCELLED): ConsentState.CANCELLED,
        (ConsentState.CONSENTED, ConsentEvent.FETCHED): ConsentState.DELIVERED,
    },
)
