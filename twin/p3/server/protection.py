"""Protection of xDLMS APDUs inside a ciphered association (DSMR P3 §3.2.3): deciphering
with the frame-counter rule, and ciphering the answer in the style the client used.
"""

from __future__ import annotations

from twin.p3.dlms.errors import SecurityError
from twin.p3.dlms.security import GLO_TAG, PLAIN_TAG, SC_AUTH_ENC, CipheredApdu, unprotect
from twin.p3.server.association import Session
from twin.p3.server.establish import Security
from twin.p3.server.interfaces import FirstCounterPolicy

GENERAL_GLO = CipheredApdu.GENERAL
# general-glo-ciphering: tag, title (1+8), content length (<=3), SC, IC (4), GCM tag (12).
CIPHER_OVERHEAD = 30
REQUEST_GLO_TAGS = frozenset(GLO_TAG[tag] for tag in (0xC0, 0xC1, 0xC3))


def acceptable_counters(session: Session, pending_hls: bool) -> tuple[int, ...]:
    """P3 §3.2.3: each frame's counter is exactly the previous one + 1.

    While HLS is pending, f(StoC) carries its own IC. A client that gives it a counter of its
    own (Gurux does; it avoids reusing a GCM nonce) skips one value in the frames, so one
    more value is allowed; `HlsGate` then checks f(StoC) used exactly the skipped value.
    """
    expected = session.next_client_ic
    if expected is None:
        return ()
    return (expected, expected + 1) if pending_hls else (expected,)


def decipher(
    session: Session,
    raw: bytes,
    security: Security,
    *,
    pending_hls: bool,
    first_counter: FirstCounterPolicy,
) -> tuple[bytes, CipheredApdu]:
    """Check and decipher one protected APDU; any failure is a `SecurityError` or an
    `ApduError`, both of which the server turns into a silent release."""
    ciphered = CipheredApdu.from_bytes(raw)
    title = session.client_system_title
    if ciphered.system_title is not None and ciphered.system_title != title:
        raise SecurityError("system title differs from the AARQ calling-AP-title")
    if ciphered.security_control != SC_AUTH_ENC:
        raise SecurityError(f"security control 0x{ciphered.security_control:02X}, policy 3")
    ic = ciphered.invocation_counter
    if ic not in acceptable_counters(session, pending_hls):
        raise SecurityError(f"frame counter {ic}, expected {session.next_client_ic}")
    plain = unprotect(security.keys, title, ic, SC_AUTH_ENC, ciphered.text)
    session.next_client_ic = ic + 1
    first_counter.seen(ic)
    if ciphered.tag != GENERAL_GLO and (not plain or plain[0] != PLAIN_TAG[ciphered.tag]):
        raise SecurityError("service-specific glo tag does not match its content")
    return plain, ciphered


def protect_answer(answer: bytes, general: bool, security: Security) -> bytes:
    """Answer in the style the client used: general-glo-ciphering (0xDB) or the matching
    service-specific glo APDU (the dlms-cosem client parses only 0xDB: its XDlmsApduFactory)."""
    if general or answer[0] not in GLO_TAG:
        return security.cipher(GENERAL_GLO, answer, general=True)
    return security.cipher(GLO_TAG[answer[0]], answer)
