"""The association state table and the client policy table."""

from __future__ import annotations

import pytest

from twin.p3.dlms.acse import ApplicationContext, Mechanism
from twin.p3.dlms.errors import LocalP3Error
from twin.p3.dlms.initiate import Conformance
from twin.p3.server.association import (
    DSMR_CLIENTS,
    TRANSITIONS,
    AssociationState,
    ServerConfig,
    State,
    Trigger,
)


def test_happy_paths() -> None:
    machine = AssociationState()
    assert machine.fire(Trigger.ACCEPT_PENDING_HLS) is State.AWAITING_HLS
    assert machine.fire(Trigger.HLS_PASSED) is State.ASSOCIATED
    assert machine.fire(Trigger.RELEASE) is State.IDLE
    assert machine.fire(Trigger.ACCEPT) is State.ASSOCIATED
    assert machine.fire(Trigger.ABORT) is State.IDLE


@pytest.mark.parametrize(
    ("state", "trigger"),
    [(s, t) for s in State for t in Trigger if t not in TRANSITIONS[s]],
)
def test_every_missing_transition_is_a_local_error(state: State, trigger: Trigger) -> None:
    machine = AssociationState()
    path = {
        State.IDLE: [],
        State.AWAITING_HLS: [Trigger.ACCEPT_PENDING_HLS],
        State.ASSOCIATED: [Trigger.ACCEPT],
    }
    for step in path[state]:
        machine.fire(step)
    with pytest.raises(LocalP3Error):
        machine.fire(trigger)
    assert machine.state is state


def test_abort_always_goes_idle() -> None:
    assert all(TRANSITIONS[s][Trigger.ABORT] is State.IDLE for s in State)


def test_dsmr_clients() -> None:
    public, management, broadcast = DSMR_CLIENTS[16], DSMR_CLIENTS[1], DSMR_CLIENTS[102]
    assert (public.context, public.mechanism) == (ApplicationContext.LN, Mechanism.NONE)
    assert Conformance.SET not in public.conformance  # P3 §2.1.1
    assert management.ciphered
    assert management.mechanism is Mechanism.HLS_GMAC
    assert Conformance.MULTIPLE_REFERENCES in management.conformance
    assert broadcast.pre_established
    assert Conformance.GET not in broadcast.conformance


def test_config_validation() -> None:
    with pytest.raises(LocalP3Error):
        ServerConfig(b"short")
    with pytest.raises(LocalP3Error):
        ServerConfig(bytes(8), challenge_length=4)
