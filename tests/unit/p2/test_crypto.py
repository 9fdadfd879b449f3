"""Mode 15 IV, CBC with the 2F 2F check, and the key-exchange wrap (P2 §5, §6.5)."""

from __future__ import annotations

import pytest

from tests.unit.p2.vectors import DEFAULT_KEY, USER_KEY
from twin.p2 import crypto
from twin.p2.errors import DecryptionError
from twin.p2.headers import ShortId


def test_iv_matches_p2_example_5_2_1() -> None:
    device = ShortId(23456789, "NET", 0x42, 0x03)
    iv = crypto.mode15_iv(device.iv_prefix(), 1)
    assert iv == bytes.fromhex("B438 89674523 42 03 01000000 01000000")


def test_mode5_iv_repeats_the_access_number() -> None:
    prefix = ShortId(55667788, "QDS", 0x55, 0x08).iv_prefix()
    assert crypto.mode5_iv(prefix, 0x2A) == bytes.fromhex("9344 88776655 55 08") + b"\x2a" * 8


def test_wrap_reproduces_app_b11() -> None:
    # ECB(default, user) = 279FB74A..E003 (P2 App. B1.1); P2 sends it fully reversed.
    ecb = bytes.fromhex("279FB74A7572135E8F9B8EF6D1EEE003")
    assert crypto.wrap_user_key(DEFAULT_KEY, USER_KEY) == ecb[::-1]
    assert crypto.unwrap_user_key(DEFAULT_KEY, ecb[::-1]) == USER_KEY


def test_pad_always_leaves_two_leading_fillers_and_whole_blocks() -> None:
    for size in range(40):
        padded = crypto.pad(bytes(size))
        assert padded[:2] == b"\x2f\x2f"
        assert len(padded) % 16 == 0
        assert len(padded) - size - 2 < 16


def test_cbc_round_trip_and_check() -> None:
    iv = bytes(16)
    plain = crypto.pad(b"\x01\xfd\x17\x00")
    cipher = crypto.cbc_encrypt(USER_KEY, iv, plain)
    assert crypto.cbc_decrypt(USER_KEY, iv, cipher) == plain
    with pytest.raises(DecryptionError, match="2F 2F"):
        crypto.cbc_decrypt(DEFAULT_KEY, iv, cipher)
    with pytest.raises(DecryptionError, match="whole blocks"):
        crypto.cbc_decrypt(USER_KEY, iv, cipher[:-1])
    with pytest.raises(DecryptionError, match="16 bytes"):
        crypto.cbc_decrypt(USER_KEY[:15], iv, cipher)


def test_iv_limits() -> None:
    with pytest.raises(DecryptionError):
        crypto.mode15_iv(bytes(8), 1 << 32)
    with pytest.raises(DecryptionError):
        crypto.mode15_iv(bytes(7), 1)
