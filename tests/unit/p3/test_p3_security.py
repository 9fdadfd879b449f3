"""Suite 0 primitives against dlms-cosem's independent implementation and RFC 3394."""

from __future__ import annotations

import pytest
from dlms_cosem import security as dc

from twin.p3.dlms.errors import LocalP3Error, SecurityError
from twin.p3.dlms.security import (
    SC_AUTH_ENC,
    SC_AUTH_ONLY,
    SecurityKeys,
    gmac_tag,
    hls_reply,
    protect,
    unprotect,
    unwrap_key,
    verify_hls_reply,
)

KEYS = SecurityKeys(
    bytes.fromhex("000102030405060708090A0B0C0D0E0F"),
    bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"),
)
TITLE = bytes.fromhex("4D4D4D0000BC614E")
PLAIN = bytes.fromhex("C001C1000800000100 00FF0200".replace(" ", ""))
DC_SC = dc.SecurityControlField(security_suite=0, authenticated=True, encrypted=True)


def test_protect_matches_dlms_cosem() -> None:
    ours = protect(KEYS, TITLE, 0x01234567, SC_AUTH_ENC, PLAIN)
    theirs = dc.encrypt(DC_SC, TITLE, 0x01234567, KEYS.guek, PLAIN, KEYS.gak)
    assert ours == theirs
    assert unprotect(KEYS, TITLE, 0x01234567, SC_AUTH_ENC, ours) == PLAIN


def test_auth_only_round_trip_keeps_plaintext() -> None:
    text = protect(KEYS, TITLE, 9, SC_AUTH_ONLY, PLAIN)
    assert text[: len(PLAIN)] == PLAIN
    assert unprotect(KEYS, TITLE, 9, SC_AUTH_ONLY, text) == PLAIN


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t[:-1] + bytes([t[-1] ^ 1]),
        lambda t: bytes([t[0] ^ 0x80]) + t[1:],
        lambda t: t[:5],
    ],
    ids=["tag", "body", "short"],
)
def test_tampering_is_detected(mutate: object) -> None:
    text = protect(KEYS, TITLE, 1, SC_AUTH_ENC, PLAIN)
    with pytest.raises(SecurityError):
        unprotect(KEYS, TITLE, 1, SC_AUTH_ENC, mutate(text))  # type: ignore[operator]


def test_wrong_keys_counter_or_title_fail() -> None:
    text = protect(KEYS, TITLE, 1, SC_AUTH_ENC, PLAIN)
    other = SecurityKeys(KEYS.guek, bytes(16))
    for keys, title, ic in ((other, TITLE, 1), (KEYS, bytes(8), 1), (KEYS, TITLE, 2)):
        with pytest.raises(SecurityError):
            unprotect(keys, title, ic, SC_AUTH_ENC, text)


@pytest.mark.parametrize("sc", [0x20, 0x00, 0x31, 0x70, 0xB0])
def test_security_controls_other_than_suite0_auth(sc: int) -> None:
    with pytest.raises(SecurityError):
        protect(KEYS, TITLE, 1, sc, PLAIN)


def test_gmac_matches_dlms_cosem_and_hls_reply_verifies() -> None:
    challenge = bytes(range(32))
    sc = dc.SecurityControlField(security_suite=0, authenticated=True)
    assert gmac_tag(KEYS, TITLE, 77, challenge) == dc.gmac(
        sc, TITLE, 77, KEYS.guek, KEYS.gak, challenge
    )
    reply = hls_reply(KEYS, TITLE, 77, challenge)
    assert reply[:5] == b"\x10\x00\x00\x00\x4d"
    assert verify_hls_reply(KEYS, TITLE, challenge, reply)
    assert not verify_hls_reply(KEYS, TITLE, challenge[:-1] + b"\x00", reply)
    assert not verify_hls_reply(KEYS, TITLE, challenge, reply[:-1])
    assert not verify_hls_reply(KEYS, TITLE, challenge, b"\x30" + reply[1:])


def test_rfc3394_unwrap_vector() -> None:
    # RFC 3394 §4.1: 128-bit key data with a 128-bit KEK
    kek = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
    wrapped = bytes.fromhex("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5")
    assert unwrap_key(kek, wrapped) == bytes.fromhex("00112233445566778899AABBCCDDEEFF")
    with pytest.raises(SecurityError):
        unwrap_key(kek, wrapped[:-1] + b"\x00")
    with pytest.raises(SecurityError):
        unwrap_key(kek, b"short")
    with pytest.raises(LocalP3Error):
        unwrap_key(bytes(8), wrapped)


def test_key_and_counter_validation() -> None:
    with pytest.raises(LocalP3Error):
        SecurityKeys(bytes(15), bytes(16))
    with pytest.raises(LocalP3Error):
        protect(KEYS, TITLE, 2**32, SC_AUTH_ENC, PLAIN)
    with pytest.raises(SecurityError):
        protect(KEYS, TITLE[:7], 1, SC_AUTH_ENC, PLAIN)
