"""HLS pass 3 and 4 (Green Book §9.2.7.4; DSMR P3 §3.2.2 HLS 3, 4 and 5, §3.2.3 "HLS").

While the association is pending, the only service the client may use is the ACTION
reply_to_HLS_authentication (class 15, 0-0:40.0.0.255, method 1) carrying f(StoC):

- mechanism 5 (GMAC): SC || IC || GMAC(SC || AK || StoC), with the client system title;
- mechanism 3 (MD5) / 4 (SHA-1): MD5(StoC || HLS secret) / SHA-1(StoC || HLS secret).

`HlsGate` stands in for the object model in that state: it verifies f(StoC), answers
f(CtoS) (GMAC: with the server system title and a fresh invocation counter; MD5/SHA-1:
the digest of CtoS || HLS secret), and denies everything else (P3 §2.2: read-write-denied).
"""

from __future__ import annotations

import hashlib
import hmac

from twin.p3.dlms.acse import Mechanism
from twin.p3.dlms.axdr import Reader, octet_string
from twin.p3.dlms.cosem import ActionResult, AttributeRef, DataAccessResult, SelectiveAccess
from twin.p3.dlms.errors import ApduError, LocalP3Error
from twin.p3.dlms.security import hls_reply, verify_hls_reply
from twin.p3.server.association import Session
from twin.p3.server.establish import Security
from twin.p3.server.interfaces import ActionOutcome

ASSOCIATION_LN_CLASS = 15
CURRENT_ASSOCIATION = bytes([0, 0, 40, 0, 0, 255])
REPLY_TO_HLS = AttributeRef(ASSOCIATION_LN_CLASS, CURRENT_ASSOCIATION, 1)
_OCTET_STRING = 9
_DIGESTS = {Mechanism.HLS_MD5: "md5", Mechanism.HLS_SHA1: "sha1"}


def secret_digest(mechanism: Mechanism, challenge: bytes, secret: bytes) -> bytes:
    """f(challenge) of HLS 3 / 4: MD5 or SHA-1 over challenge || HLS secret."""
    name = _DIGESTS.get(mechanism)
    if name is None:
        raise LocalP3Error(f"mechanism {mechanism.name} does not digest the HLS secret")
    # MD5 / SHA-1 are what mechanisms 3 and 4 are (Green Book), not our choice; the flag only
    # keeps them available on FIPS-restricted builds.
    return hashlib.new(name, challenge + secret, usedforsecurity=False).digest()


def _octet_string_value(parameters: bytes | None) -> bytes | None:
    if parameters is None:
        return None
    try:
        r = Reader(parameters)
        if r.u8() != _OCTET_STRING:
            return None
        value = r.take(r.length())
        r.expect_end()
    except ApduError:
        return None
    return value


class HlsGate:
    """A `CosemObjects` for the pending association; `passed` tells how HLS went."""

    def __init__(
        self, session: Session, security: Security, counters: tuple[int, int] | None
    ) -> None:
        """`counters`: for GMAC, the IC range f(StoC) may use, from the expected frame
        counter up to the counter of the frame that carries it (see
        `protection.acceptable_counters`); None outside a ciphered frame."""
        self._session = session
        self._security = security
        self._counters = counters
        self.passed: bool | None = None  # None: no reply_to_HLS seen yet

    def get(
        self, client: int, ref: AttributeRef, access: SelectiveAccess | None
    ) -> bytes | DataAccessResult:
        return DataAccessResult.READ_WRITE_DENIED

    def set(
        self, client: int, ref: AttributeRef, access: SelectiveAccess | None, value: bytes
    ) -> DataAccessResult:
        return DataAccessResult.READ_WRITE_DENIED

    def action(self, client: int, ref: AttributeRef, parameters: bytes | None) -> ActionOutcome:
        if ref != REPLY_TO_HLS:
            return ActionOutcome(ActionResult.READ_WRITE_DENIED)
        f_stoc = _octet_string_value(parameters)
        f_ctos = None if f_stoc is None else self._verify(f_stoc)
        if f_ctos is None:
            self.passed = False
            return ActionOutcome(ActionResult.READ_WRITE_DENIED)
        self.passed = True
        return ActionOutcome(ActionResult.SUCCESS, octet_string(f_ctos))

    def _verify(self, f_stoc: bytes) -> bytes | None:
        """f(CtoS) when f(StoC) is right, else None."""
        session, keys = self._session, self._security.keys
        if session.mechanism is Mechanism.HLS_GMAC:
            if not self._counter_ok(f_stoc) or not verify_hls_reply(
                keys, session.client_system_title, session.stoc, f_stoc
            ):
                return None
            ic = self._security.next_ic()
            return hls_reply(keys, self._security.system_title, ic, session.ctos)
        expected = secret_digest(session.mechanism, session.stoc, keys.hls_secret)
        if not keys.hls_secret or not hmac.compare_digest(expected, f_stoc):
            return None
        return secret_digest(session.mechanism, session.ctos, keys.hls_secret)

    def _counter_ok(self, f_stoc: bytes) -> bool:
        if self._counters is None or len(f_stoc) < 5:
            return False
        low, high = self._counters
        return low <= int.from_bytes(f_stoc[1:5], "big") <= high
