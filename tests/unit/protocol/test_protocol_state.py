"""The request state table: exactly the listed edges, nothing else."""

from __future__ import annotations

import itertools

import pytest

from sealbox.errors import IllegalTransition
from sealbox.protocol.state import (
    DEVICE,
    PAIRING,
    STORE,
    TERMINAL,
    TRANSITIONS,
    DeviceEvent,
    DeviceState,
    Event,
    Machine,
    PairingEvent,
    PairingState,
    State,
    StoreEvent,
    StoreState,
    next_state,
)

# The table of DESIGN section 5, written out independently of the module.
EXPECTED = {
    (State.PENDING, Event.THRESHOLD_REACHED): State.RELEASED,
    (State.PENDING, Event.DENIED): State.DENIED,
    (State.PENDING, Event.EXPIRED): State.EXPIRED,
    (State.PENDING, Event.CANCELLED): State.CANCELLED,
    (State.RELEASED, Event.FETCHED): State.DELIVERED,
    # A release nobody fetches in time must not wait forever.
    (State.RELEASED, Event.EXPIRED): State.EXPIRED,
}

ALL_PAIRS = list(itertools.product(State, Event))


def test_the_table_is_exactly_the_design_table() -> None:
    assert dict(TRANSITIONS) == EXPECTED


def test_the_table_cannot_be_changed_at_run_time() -> None:
    with pytest.raises(TypeError):
        TRANSITIONS[(State.DENIED, Event.FETCHED)] = State.DELIVERED  # type: ignore[index]


@pytest.mark.parametrize(("state", "event"), ALL_PAIRS)
def test_every_state_event_pair(state: State, event: Event) -> None:
    if (state, event) in EXPECTED:
        assert next_state(state, event) is EXPECTED[(state, event)]
    else:
        with pytest.raises(IllegalTransition):
            next_state(state, event)


@pytest.mark.parametrize(("state", "event"), ALL_PAIRS)
def test_plain_strings_are_accepted_like_the_enums(state: State, event: Event) -> None:
    if (state, event) in EXPECTED:
        assert next_state(str(state), str(event)) is EXPECTED[(state, event)]  # type: ignore[arg-type]
    else:
        with pytest.raises(IllegalTransition):
            next_state(str(state), str(event))  # type: ignore[arg-type]


def test_terminal_states_have_no_outgoing_edges() -> None:
    assert frozenset({State.DELIVERED, State.DENIED, State.EXPIRED, State.CANCELLED}) == TERMINAL
    for state in TERMINAL:
        for event in Event:
            with pytest.raises(IllegalTransition):
                next_state(state, event)
    assert not any(state in TERMINAL for state, _ in TRANSITIONS)


def test_released_goes_to_delivered_or_expires() -> None:
    outgoing = {e: t for (s, e), t in TRANSITIONS.items() if s is State.RELEASED}
    assert outgoing == {Event.FETCHED: State.DELIVERED, Event.EXPIRED: State.EXPIRED}
    assert State.RELEASED not in TERMINAL


def test_every_non_terminal_state_is_reachable_and_can_end() -> None:
    targets = set(TRANSITIONS.values())
    assert targets | {State.PENDING} == set(State)
    assert {s for s, _ in TRANSITIONS} == set(State) - TERMINAL


@pytest.mark.parametrize(
    ("state", "event"),
    [
        ("bogus", Event.FETCHED),
        (State.PENDING, "bogus"),
        ("PENDING", "threshold_reached"),
        ("", ""),
        (None, None),
    ],
)
def test_invalid_values_raise_illegal_transition(state: object, event: object) -> None:
    with pytest.raises(IllegalTransition, match="cannot take the event"):
        next_state(state, event)  # type: ignore[arg-type]


# The other machines, written out independently of the module.
OTHER_TABLES: list[tuple[Machine, dict]] = [  # type: ignore[type-arg]
    (
        STORE,
        {
            (StoreState.PENDING, StoreEvent.MANIFEST): StoreState.STORED,
            (StoreState.PENDING, StoreEvent.DENIED): StoreState.DENIED,
            (StoreState.PENDING, StoreEvent.EXPIRED): StoreState.EXPIRED,
            (StoreState.PENDING, StoreEvent.CANCELLED): StoreState.CANCELLED,
        },
    ),
    (
        DEVICE,
        {
            (DeviceState.PENDING, DeviceEvent.CERTIFIED): DeviceState.APPROVED,
            (DeviceState.PENDING, DeviceEvent.DENIED): DeviceState.DENIED,
            (DeviceState.APPROVED, DeviceEvent.TOKENS_TAKEN): DeviceState.USED,
        },
    ),
    (
        PAIRING,
        {
            (PairingState.PENDING, PairingEvent.ADDED): PairingState.APPROVED,
            (PairingState.PENDING, PairingEvent.DENIED): PairingState.DENIED,
        },
    ),
]


@pytest.mark.parametrize(
    ("machine", "expected"), OTHER_TABLES, ids=lambda m: getattr(m, "name", "")
)
def test_every_other_machine_is_exactly_its_table(machine: Machine, expected: dict) -> None:  # type: ignore[type-arg]
    assert dict(machine.table) == expected
    for state, event in itertools.product(machine.states, machine.events):
        if (state, event) in expected:
            assert machine.next(state, event) is expected[(state, event)]
            assert machine.next(str(state), str(event)) is expected[(state, event)]
        else:
            with pytest.raises(IllegalTransition, match=machine.name):
                machine.next(state, event)
    # Terminal: the states no edge leaves.
    assert machine.terminal == frozenset(machine.states) - {s for s, _ in expected}


def test_a_store_request_is_never_released_or_delivered() -> None:
    # A store is its own kind: its states say "stored", never "released"/"delivered".
    assert {str(s) for s in StoreState} == {"pending", "stored", "denied", "expired", "cancelled"}
    assert STORE.sources(StoreEvent.MANIFEST) == {StoreState.PENDING}
