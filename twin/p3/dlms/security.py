"""DLMS/COSEM security suite 0 (Green Book §9.2.3-9.2.7; DSMR P3 §3.2.3): AES-GCM-128 with a
12-byte tag, IV = system title (8) || invocation counter (4), AES-128 key wrap (RFC 3394).

Protected APDUs are modelled by `CipheredApdu`, which covers general-glo-ciphering (0xDB,
carries the sender's system title) and the service-specific glo- APDUs (0x21/0x28 for
Initiate, 0xC8-0xCF for GET/SET/ACTION), which carry only SC || IC || ciphertext.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import ClassVar

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap

from twin.p3.dlms.axdr import Reader, encode_length
from twin.p3.dlms.errors import ApduError, LocalP3Error, SecurityError

TAG_LENGTH = 12  # suite 0: GCM tag truncated to 96 bits (Green Book §9.2.7.2)
_FULL_TAG = 16  # what AESGCM appends
KEY_LENGTH = 16
SYSTEM_TITLE_LENGTH = 8
MAX_INVOCATION_COUNTER = 0xFFFFFFFF

SC_AUTHENTICATED = 0x10
SC_ENCRYPTED = 0x20
SC_AUTH_ENC = SC_AUTHENTICATED | SC_ENCRYPTED  # policy 3 (P3 §3.2.3 item 2), suite 0
SC_AUTH_ONLY = SC_AUTHENTICATED  # f(StoC)/f(CtoS) of HLS-GMAC (Green Book §9.2.7.4)
_SC_RESERVED = 0xC0  # broadcast key and compression: never used by DSMR 4.2.2 (item 5)

GENERAL_GLO_CIPHERING = 0xDB
# plain xDLMS tag -> service-specific global-ciphering tag (Green Book §9.5 XDLMS-APDU).
GLO_TAG = {0x01: 0x21, 0x08: 0x28, 0xC0: 0xC8, 0xC1: 0xC9, 0xC3: 0xCB}
GLO_TAG |= {0xC4: 0xCC, 0xC5: 0xCD, 0xC7: 0xCF}
PLAIN_TAG = {glo: plain for plain, glo in GLO_TAG.items()}


@dataclass(frozen=True, slots=True)
class SecurityKeys:
    """The global keys of the association (DSMR P3 §3.2.3 item 5: global keys only) and the
    HLS secret of association 0-0:40.0.0 (HLS 3 and 4, P3 §3.2.2; empty: none known)."""

    # Keys stay out of reprs (and so out of logs and tracebacks).
    guek: bytes = field(repr=False)  # global unicast encryption key
    gak: bytes = field(repr=False)  # authentication key
    hls_secret: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        if len(self.guek) != KEY_LENGTH or len(self.gak) != KEY_LENGTH:
            raise LocalP3Error("suite 0 keys are 16 bytes")


def _iv(system_title: bytes, invocation_counter: int) -> bytes:
    if len(system_title) != SYSTEM_TITLE_LENGTH:
        raise SecurityError(f"system title of {len(system_title)} bytes, need 8")
    if not 0 <= invocation_counter <= MAX_INVOCATION_COUNTER:
        raise LocalP3Error(f"invocation counter {invocation_counter} outside 32 bits")
    return system_title + invocation_counter.to_bytes(4, "big")


def _check_sc(security_control: int) -> None:
    if security_control & 0x0F != 0 or security_control & _SC_RESERVED:
        raise SecurityError(f"security control 0x{security_control:02X} is not suite 0")
    if not security_control & SC_AUTHENTICATED:
        # Encryption-only is never allowed on P3 (P3 §3.2.2 table: policy 3 or nothing).
        raise SecurityError(f"security control 0x{security_control:02X} lacks authentication")


def protect(
    keys: SecurityKeys, system_title: bytes, ic: int, security_control: int, plain: bytes
) -> bytes:
    """Return ciphered-text || tag for `plain` (auth+enc) or plain || tag (auth only)."""
    _check_sc(security_control)
    # One-shot AEAD calls: a fraction of the cost of the streaming Cipher API per APDU.
    # Suite 0 truncates the GCM tag to its first 12 bytes (NIST SP 800-38D §5.2.1.2).
    aead, iv = AESGCM(keys.guek), _iv(system_title, ic)
    aad = bytes([security_control]) + keys.gak
    if security_control & SC_ENCRYPTED:
        sealed = aead.encrypt(iv, plain, aad)
        return sealed[:-_FULL_TAG] + sealed[-_FULL_TAG:][:TAG_LENGTH]
    return plain + aead.encrypt(iv, b"", aad + plain)[:TAG_LENGTH]


def unprotect(
    keys: SecurityKeys, system_title: bytes, ic: int, security_control: int, text: bytes
) -> bytes:
    """Inverse of `protect`; raises `SecurityError` when the tag does not verify."""
    _check_sc(security_control)
    if len(text) < TAG_LENGTH:
        raise SecurityError("ciphered text shorter than the authentication tag")
    body, tag = text[:-TAG_LENGTH], text[-TAG_LENGTH:]
    aead, iv = AESGCM(keys.guek), _iv(system_title, ic)
    aad = bytes([security_control]) + keys.gak
    if security_control & SC_ENCRYPTED:
        # GCM decryption is the same counter-mode keystream as encryption, and the tag is
        # computed over the ciphertext: encrypting the recovered plaintext again yields this
        # ciphertext and the tag it must carry. The plaintext leaves only once that verifies.
        plain = aead.encrypt(iv, body, aad)[:-_FULL_TAG]
        expected = aead.encrypt(iv, plain, aad)[-_FULL_TAG:][:TAG_LENGTH]
    else:
        plain = body
        expected = aead.encrypt(iv, b"", aad + body)[:TAG_LENGTH]
    if not hmac.compare_digest(expected, tag):
        raise SecurityError("authentication tag does not verify (wrong GUEK/GAK?)")
    return plain


def gmac_tag(keys: SecurityKeys, system_title: bytes, ic: int, challenge: bytes) -> bytes:
    """HLS-GMAC tag: GMAC over SC(0x10) || AK || challenge (Green Book §9.2.7.4)."""
    return protect(keys, system_title, ic, SC_AUTH_ONLY, challenge)[len(challenge) :]


def hls_reply(keys: SecurityKeys, system_title: bytes, ic: int, challenge: bytes) -> bytes:
    """f(challenge) = SC || IC || GMAC, as carried by reply_to_HLS_authentication."""
    tag = gmac_tag(keys, system_title, ic, challenge)
    return bytes([SC_AUTH_ONLY]) + ic.to_bytes(4, "big") + tag


def verify_hls_reply(
    keys: SecurityKeys, system_title: bytes, challenge: bytes, reply: bytes
) -> bool:
    """Check f(StoC) sent by the client; constant-time compare of the tag."""
    if len(reply) != 1 + 4 + TAG_LENGTH or reply[0] != SC_AUTH_ONLY:
        return False
    ic = int.from_bytes(reply[1:5], "big")
    expected = gmac_tag(keys, system_title, ic, challenge)
    return hmac.compare_digest(expected, reply[5:])


def unwrap_key(kek: bytes, wrapped: bytes) -> bytes:
    """RFC 3394 AES key unwrap (suite 0 key transport, P3 §3.2.3 table and §5.1)."""
    if len(kek) != KEY_LENGTH:
        raise LocalP3Error("KEK must be 16 bytes")
    try:
        return aes_key_unwrap(kek, wrapped)
    except (InvalidUnwrap, ValueError) as exc:
        raise SecurityError("key unwrap failed (wrong KEK or corrupted key)") from exc


@dataclass(frozen=True, slots=True)
class CipheredApdu:
    """A glo-ciphered APDU. `system_title` is set only for general-glo-ciphering (0xDB)."""

    GENERAL: ClassVar[int] = GENERAL_GLO_CIPHERING

    tag: int
    security_control: int
    invocation_counter: int
    text: bytes
    system_title: bytes | None = None

    def to_bytes(self) -> bytes:
        content = (
            bytes([self.security_control]) + self.invocation_counter.to_bytes(4, "big") + self.text
        )
        out = bytes([self.tag])
        if self.tag == self.GENERAL:
            title = self.system_title or b""
            out += encode_length(len(title)) + title
        return out + encode_length(len(content)) + content

    @classmethod
    def from_bytes(cls, data: bytes) -> CipheredApdu:
        r = Reader(data)
        tag = r.u8()
        if tag != cls.GENERAL and tag not in PLAIN_TAG:
            raise ApduError(f"tag 0x{tag:02X} is not a glo-ciphered APDU")
        title = r.take(r.length()) if tag == cls.GENERAL else None
        content = Reader(r.take(r.length()))
        r.expect_end()
        sc = content.u8()
        ic = content.u32()
        return cls(tag, sc, ic, content.rest(), title)
