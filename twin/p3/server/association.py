"""Association state machine and the DSMR client table (P3 §2.1, §3.2).

Rule (h11 `_state.py`): every state transition lives in `TRANSITIONS`; nothing else assigns
the state. The table is independent of which client is associated; client differences live
in `ClientPolicy` data.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from twin.p3.dlms.acse import ApplicationContext, Mechanism
from twin.p3.dlms.errors import LocalP3Error
from twin.p3.dlms.initiate import Conformance


class State(enum.Enum):
    IDLE = "idle"  # no application association
    AWAITING_HLS = "awaiting-hls"  # AARE accepted, HLS pass 3 (f(StoC)) outstanding
    ASSOCIATED = "associated"


class Trigger(enum.Enum):
    ACCEPT = "accept"  # AARQ accepted, no further authentication needed
    ACCEPT_PENDING_HLS = "accept-pending-hls"  # AARQ accepted with HLS (mechanisms 3-5)
    HLS_PASSED = "hls-passed"
    HLS_FAILED = "hls-failed"
    RELEASE = "release"  # RLRQ answered with RLRE
    ABORT = "abort"  # silent release (P3 §3.2.3 frame counters) or connection lost


TRANSITIONS: Final = MappingProxyType(
    {
        State.IDLE: {
            Trigger.ACCEPT: State.ASSOCIATED,
            Trigger.ACCEPT_PENDING_HLS: State.AWAITING_HLS,
            Trigger.ABORT: State.IDLE,
        },
        State.AWAITING_HLS: {
            Trigger.HLS_PASSED: State.ASSOCIATED,
            Trigger.HLS_FAILED: State.IDLE,
            Trigger.RELEASE: State.IDLE,
            Trigger.ABORT: State.IDLE,
        },
        State.ASSOCIATED: {Trigger.RELEASE: State.IDLE, Trigger.ABORT: State.IDLE},
    }
)


class AssociationState:
    __slots__ = ("_state",)

    def __init__(self) -> None:
        self._state = State.IDLE

    @property
    def state(self) -> State:
        return self._state

    def fire(self, trigger: Trigger) -> State:
        try:
            self._state = TRANSITIONS[self._state][trigger]
        except KeyError:
            raise LocalP3Error(f"no transition {trigger.value} from {self._state.value}") from None
        return self._state


_C = Conformance
# P3 §2.1.1: Get, block transfer with Get, selective access.
PUBLIC_CONFORMANCE: Final = _C.GET | _C.BLOCK_TRANSFER_WITH_GET | _C.SELECTIVE_ACCESS
# P3 §2.1.3: + Set, Action, with-list, block transfer with Set. General-protection is
# offered so clients that propose it (dlms-cosem does) see it echoed. Block transfer with
# Action goes beyond the P3 minimum: long method parameters or results need it.
MANAGEMENT_CONFORMANCE: Final = (
    PUBLIC_CONFORMANCE
    | _C.SET
    | _C.ACTION
    | _C.MULTIPLE_REFERENCES
    | _C.BLOCK_TRANSFER_WITH_SET
    | _C.BLOCK_TRANSFER_WITH_ACTION
    | _C.GENERAL_PROTECTION
)
# P3 §2.1.2: Set, block transfer with Set, selective access, Action.
PRE_ESTABLISHED_CONFORMANCE: Final = (
    _C.SET | _C.BLOCK_TRANSFER_WITH_SET | _C.SELECTIVE_ACCESS | _C.ACTION
)


@dataclass(frozen=True, slots=True)
class ClientPolicy:
    """How one client SAP may associate (P3 §2.1, §3.2.2 access-security table).

    `mechanism` is the client's own authentication mechanism; `alternatives` are further
    mechanisms it may choose in the AARQ. HLS mechanisms are accepted only while enabled
    (see `MechanismPolicy`)."""

    sap: int
    context: ApplicationContext
    mechanism: Mechanism
    conformance: Conformance
    pre_established: bool = False
    alternatives: frozenset[Mechanism] = frozenset()

    @property
    def ciphered(self) -> bool:
        return self.context is ApplicationContext.LN_CIPHERED

    @property
    def mechanisms(self) -> frozenset[Mechanism]:
        return self.alternatives | {self.mechanism}

    @property
    def authenticated(self) -> bool:
        """The client must authenticate: a refusal of its AARQ is a failed login."""
        return self.mechanism is not Mechanism.NONE


PUBLIC_CLIENT: Final = ClientPolicy(16, ApplicationContext.LN, Mechanism.NONE, PUBLIC_CONFORMANCE)
# P3 §3.2.2: HLS 3, 4 and 5 are allowed with every data security; which of them is enabled
# on P3 the configuration object 0-1:94.31.3 decides (P3 §8.3 HLS_n_on_P3_enable).
MANAGEMENT_CLIENT: Final = ClientPolicy(
    1,
    ApplicationContext.LN_CIPHERED,
    Mechanism.HLS_GMAC,
    MANAGEMENT_CONFORMANCE,
    alternatives=frozenset({Mechanism.HLS_MD5, Mechanism.HLS_SHA1}),
)
PRE_ESTABLISHED_CLIENT: Final = ClientPolicy(
    102, ApplicationContext.LN, Mechanism.NONE, PRE_ESTABLISHED_CONFORMANCE, pre_established=True
)
DSMR_CLIENTS: Final = MappingProxyType(
    {p.sap: p for p in (PUBLIC_CLIENT, MANAGEMENT_CLIENT, PRE_ESTABLISHED_CLIENT)}
)


def _default_clients() -> MappingProxyType[int, ClientPolicy]:
    return DSMR_CLIENTS


@dataclass(frozen=True, slots=True)
class ServerConfig:
    system_title: bytes
    server_sap: int = 1  # management logical device (P3 §2; IEC 62056-47 wPort 1)
    max_receive_pdu_size: int = 1024  # P3 §2.1.3
    max_list_items: int = 16  # P3 §2.1.3: at most 16 references with-list
    challenge_length: int = 16  # StoC length; Green Book allows 8..64
    min_client_pdu_size: int = 64  # smaller PDUs cannot carry a ciphered block
    clients: MappingProxyType[int, ClientPolicy] = field(default_factory=_default_clients)

    def __post_init__(self) -> None:
        if len(self.system_title) != 8:
            raise LocalP3Error("system title must be 8 bytes")
        if not 8 <= self.challenge_length <= 64:
            raise LocalP3Error("challenge length outside 8..64")


@dataclass(slots=True)
class Session:
    """What an accepted AARQ negotiated, plus the running client frame counter."""

    policy: ClientPolicy
    conformance: Conformance
    client_max_pdu: int
    mechanism: Mechanism = Mechanism.NONE  # the one the AARQ chose
    client_system_title: bytes = b""
    ctos: bytes = b""  # client challenge (AARQ calling-authentication-value)
    stoc: bytes = b""  # our challenge (AARE responding-authentication-value)
    next_client_ic: int | None = None  # P3 §3.2.3: each frame exactly previous + 1

    @property
    def client(self) -> int:
        return self.policy.sap
