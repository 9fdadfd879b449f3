"""HLS-GMAC pass 3 and 4 (mechanism_id 5; Green Book §9.2.7.4, DSMR P3 §3.2.3 "HLS").

While the association is pending, the only service the client may use is the ACTION
reply_to_HLS_authentication (class 15, 0-0:40.0.0.255, method 1) carrying
f(StoC) = SC || IC || GMAC(SC || AK || StoC). `HlsGate` stands in for the object model in that
state: it verifies f(StoC), answers f(CtoS) computed with the server system title and a fresh
invocation counter, and denies everything else (P3 §2.2: read-write-denied).
"""

from __future__ import annotations

from twin.p3.association import Session
from twin.p3.axdr import Reader, octet_string
from twin.p3.cosem import ActionResult, AttributeRef, DataAccessResult, SelectiveAccess
from twin.p3.errors import ApduError
from twin.p3.establish import Security
from twin.p3.interfaces import ActionOutcome
from twin.p3.security import hls_reply, verify_hls_reply

ASSOCIATION_LN_CLASS = 15
CURRENT_ASSOCIATION = bytes([0, 0, 40, 0, 0, 255])
REPLY_TO_HLS = AttributeRef(ASSOCIATION_LN_CLASS, CURRENT_ASSOCIATION, 1)
_OCTET_STRING = 9


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

    def __init__(self, session: Session, security: Security, counters: tuple[int, int]) -> None:
        """`counters`: the IC range f(StoC) may use, from the expected frame counter up to
        the counter of the frame that carries it (see `DlmsServer._acceptable_counters`)."""
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
        keys = self._security.keys
        session = self._session
        if not self._counter_ok(f_stoc) or not verify_hls_reply(
            keys, session.client_system_title, session.stoc, f_stoc or b""
        ):
            self.passed = False
            return ActionOutcome(ActionResult.READ_WRITE_DENIED)
        self.passed = True
        ic = self._security.next_ic()
        f_ctos = hls_reply(keys, self._security.system_title, ic, session.ctos)
        return ActionOutcome(ActionResult.SUCCESS, octet_string(f_ctos))

    def _counter_ok(self, f_stoc: bytes | None) -> bool:
        if f_stoc is None or len(f_stoc) < 5:
            return False
        low, high = self._counters
        return low <= int.from_bytes(f_stoc[1:5], "big") <= high
