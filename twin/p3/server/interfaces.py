"""The small interfaces the server core calls; the service layer and object model supply them.

Nothing here does I/O: the object model answers from memory, the counter store reserves
invocation counters ahead in its own persistence (P3 §3.2.3 "Frame Counters"), and randomness
for HLS challenges comes from whoever owns the entropy source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from twin.p3.dlms.acse import Mechanism
from twin.p3.dlms.cosem import ActionResult, AttributeRef, DataAccessResult, SelectiveAccess
from twin.p3.dlms.security import SecurityKeys


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """What an ACTION produced: a result and optionally encoded return parameters (Data)."""

    result: ActionResult
    return_value: bytes | None = None


class CosemObjects(Protocol):
    """The object model as the core sees it.

    `client` is the client SAP (16 public, 1 management, 102 pre-established; P3 §2.1), so
    the model applies the P/M/Pr access columns itself and answers READ_WRITE_DENIED for a
    missing right (P3 §2.2). Values cross this boundary as encoded A-XDR `Data` bytes.
    """

    def get(
        self, client: int, ref: AttributeRef, access: SelectiveAccess | None
    ) -> bytes | DataAccessResult:
        """Return the encoded attribute value or why it cannot be read."""
        ...

    def set(
        self, client: int, ref: AttributeRef, access: SelectiveAccess | None, value: bytes
    ) -> DataAccessResult:
        """Write an encoded value; SUCCESS or why not."""
        ...

    def action(self, client: int, ref: AttributeRef, parameters: bytes | None) -> ActionOutcome:
        """Invoke method `ref.index` with encoded parameters (or none)."""
        ...


class CounterReservation(Protocol):
    """Source of the server's invocation counters (the IC half of the GCM IV).

    Each call returns a value never returned before for the current GUEK; the store reserves
    blocks ahead so a crash can never make the core reuse one (AES-GCM nonce reuse).
    """

    def next_invocation_counter(self) -> int: ...


class KeyProvider(Protocol):
    """The current global keys. Read once per request, so a key transferred by a request is
    used from the next message on (P3 §5.1 footnote 4: the ACK still uses the old key)."""

    def keys(self) -> SecurityKeys: ...


class ChallengeSource(Protocol):
    """Random bytes for the StoC challenge of HLS (Green Book §9.2.7.4)."""

    def challenge(self, length: int) -> bytes: ...


class MechanismPolicy(Protocol):
    """Which HLS mechanisms (3 MD5, 4 SHA-1, 5 GMAC) may be used right now.

    On P3 the configuration object 0-1:94.31.3 decides (P3 §8.3 flags HLS_3/4/5_on_P3_enable);
    the core asks at every AARQ, so a change applies from the next association on. A client
    also needs the mechanism in its `ClientPolicy`.
    """

    def enabled_mechanisms(self) -> frozenset[Mechanism]: ...


class LoginPolicy(Protocol):
    """Whether a client that must authenticate may try now (False during a lock-out after
    failed logins; the core then refuses its AARQ without deciphering anything)."""

    def login_allowed(self) -> bool: ...


class AlwaysAllowed:
    """The `LoginPolicy` without lock-out (the core's default)."""

    def login_allowed(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class FixedMechanisms:
    """A constant `MechanismPolicy`; the default matches the default flags of the twin's
    configuration object (objects/abstract.py): HLS 5 only."""

    mechanisms: frozenset[Mechanism] = frozenset({Mechanism.HLS_GMAC})

    def enabled_mechanisms(self) -> frozenset[Mechanism]:
        return self.mechanisms


class FirstCounterPolicy(Protocol):
    """Decides on the first client invocation counter of an association.

    P3 §3.2.3 says the meter "shall not validate the first Frame Counter" (`SpecFirstCounter`,
    what the twin runs); the hook lets the core be driven with a stricter rule.
    """

    def accept_first(self, counter: int) -> bool: ...

    def seen(self, counter: int) -> None:
        """Called for every client counter that passed the checks."""
        ...


class SpecFirstCounter:
    """P3 §3.2.3: the first frame counter of a session is chosen by the CS and not checked."""

    def accept_first(self, counter: int) -> bool:
        return True

    def seen(self, counter: int) -> None:
        return None
