"""DLMS/COSEM over TCP for the DSMR 4.2.2 P3 port, one folder per layer (lowest first):

- `dlms/`: the wire, sans-IO: COSEM wrapper (IEC 62056-47), ACSE and xDLMS APDUs, A-XDR and
  BER, security suite 0 (Green Book §9.2-§9.5).
- `server/`: the sans-IO server: associations and their clients (DSMR P3 §2.1, §3.2), AARQ
  evaluation, HLS, ciphered APDUs, the GET/SET/ACTION service providers with block transfer;
  `DlmsServer` (bytes in, events out).
- `objects/`: the DSMR COSEM object model (DSMR P3 chapters 4-9, Blue Book classes).
- `gprs/`: the communication unit: modem, GPRS connection behaviour and the pushes
  (GPRS CS §3, DSMR P3 chapters 8-9).
- here: `service` (the asyncio TCP service around `DlmsServer`), `keys` (the security
  material in the store), `wiring` (into a running twin) and `cli` (`dsmr-twin keys`).

The core has no I/O, no clock, no randomness: the service layer feeds bytes into `DlmsServer`
and acts on the events it returns; keys, invocation counters, challenges and the object model
come in through the Protocols in `twin.p3.server.interfaces`. This package exports the core's
names (nothing of the object model, the service or the GPRS side is loaded by importing it).

Decisions where the texts leave room (each is also commented where it is implemented):

- First client frame counter of an AA: not validated (P3 §3.2.3, `SpecFirstCounter`); the
  `FirstCounterPolicy` hook lets a caller refuse it.
- Frame counter not exactly +1, wrong security control, wrong system title, a tag that does
  not verify, an unprotected APDU or RLRQ in the ciphered AA: silent release
  (`Released(graceful=False)` + `CloseConnection`, nothing sent; P3 §3.2.3).
- Wrong GUEK/GAK already at the AARQ: there is no AA to release yet, so the AARQ is refused
  (AARE rejected-permanent, no-reason-given, plain ConfirmedServiceError
  application-reference/deciphering-error) and `AuthenticationFailed` is emitted.
- HLS-GMAC: f(StoC) may use the frame's own counter (dlms-cosem) or the one just before it
  (Gurux); a failed f(StoC) gets action-result read-write-denied and the AA falls back idle.
- Unknown APDU: ExceptionResponse service-unknown; undecodable request: service-not-allowed /
  other-reason; service outside the negotiated conformance: service-not-supported; no AA or
  more than 16 with-list items: operation-not-possible; APDU over 1024 bytes: pdu-too-long.
"""

from __future__ import annotations

from twin.p3.dlms.cosem import ActionResult, AttributeRef, DataAccessResult, SelectiveAccess
from twin.p3.dlms.errors import LocalP3Error, P3Error, RemoteP3Error
from twin.p3.dlms.security import SecurityKeys, unwrap_key
from twin.p3.server.association import (
    DSMR_CLIENTS,
    MANAGEMENT_CLIENT,
    PRE_ESTABLISHED_CLIENT,
    PUBLIC_CLIENT,
    ClientPolicy,
    ServerConfig,
    State,
)
from twin.p3.server.connection import DlmsServer
from twin.p3.server.counters import BlockReservation
from twin.p3.server.events import (
    Associated,
    AuthenticationFailed,
    CloseConnection,
    Released,
    ServerEvent,
    Transmit,
)
from twin.p3.server.interfaces import (
    ActionOutcome,
    ChallengeSource,
    CosemObjects,
    CounterReservation,
    FirstCounterPolicy,
    KeyProvider,
    SpecFirstCounter,
)

__all__ = [
    "DSMR_CLIENTS",
    "MANAGEMENT_CLIENT",
    "PRE_ESTABLISHED_CLIENT",
    "PUBLIC_CLIENT",
    "ActionOutcome",
    "ActionResult",
    "Associated",
    "AttributeRef",
    "AuthenticationFailed",
    "BlockReservation",
    "ChallengeSource",
    "ClientPolicy",
    "CloseConnection",
    "CosemObjects",
    "CounterReservation",
    "DataAccessResult",
    "DlmsServer",
    "FirstCounterPolicy",
    "KeyProvider",
    "LocalP3Error",
    "P3Error",
    "Released",
    "RemoteP3Error",
    "SecurityKeys",
    "SelectiveAccess",
    "ServerConfig",
    "ServerEvent",
    "SpecFirstCounter",
    "State",
    "Transmit",
    "unwrap_key",
]
