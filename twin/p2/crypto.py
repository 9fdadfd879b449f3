"""DSMR P2 encryption: AES-128-CBC "mode 15" and the key-exchange wrap (P2 §5, §6.5).

Mode 15 is EN 13757-3 mode 5 (AES-128-CBC, no padding, no tag) with a different IV tail:

    mode 15 IV = MAN(2) ID(4) VER DEV FC(4) FC(4)      (P2 §5.2, all low byte first)
    mode 5  IV = MAN(2) ID(4) VER DEV ACC x 8          (EN 13757-3 / OMS Vol.2 §7.2.4.3)

There is no MAC: integrity is the checksum, the leading 2F 2F and the frame counter. CBC only
mixes the IV into the first block, so 2F 2F checks IV bytes 0-1 only; callers must therefore
parse the decrypted records strictly (P2 §5.1 asks both sides to check before processing).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from twin.p2.errors import DecryptionError, ReplayError

BLOCK = 16
KEY_SIZE = 16
FILLER = 0x2F
NO_KEY = bytes(KEY_SIZE)  # P2 §6.5: a User key of all zeros means "no User key"


def _check_key(key: bytes) -> None:
    if len(key) != KEY_SIZE:
        raise DecryptionError(f"AES-128 key must be 16 bytes, got {len(key)}")


def mode15_iv(prefix: bytes, frame_counter: int) -> bytes:
    """IV of P2 §5.2 from the 8-byte MAN|ID|VER|DEV prefix and the frame counter."""
    if len(prefix) != 8:
        raise DecryptionError("IV prefix must be MAN(2) ID(4) VER DEV")
    if not 0 <= frame_counter <= 0xFFFFFFFF:
        raise DecryptionError(f"frame counter {frame_counter} is not a 32-bit value")
    counter = frame_counter.to_bytes(4, "little")
    return prefix + counter + counter


def mode5_iv(prefix: bytes, access_number: int) -> bytes:
    """IV of EN 13757-3 mode 5: the 8-byte prefix and the access number repeated 8 times."""
    if len(prefix) != 8:
        raise DecryptionError("IV prefix must be MAN(2) ID(4) VER DEV")
    return prefix + bytes([access_number & 0xFF]) * 8


def pad(records: bytes) -> bytes:
    """Plaintext for encryption: 2F 2F + records + 2F up to whole blocks (P2 §5.1).

    "at least two filler shall present" is met by the leading pair; trailing fillers only fill
    the last block.
    """
    body = bytes([FILLER, FILLER]) + records
    return body + bytes([FILLER]) * (-len(body) % BLOCK)


def cbc_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    """AES-128-CBC without padding; `plaintext` must already be whole blocks."""
    _check_key(key)
    if len(plaintext) % BLOCK:
        raise DecryptionError("plaintext is not a whole number of AES blocks")
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(plaintext) + encryptor.finalize()


def cbc_decrypt(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    """AES-128-CBC decryption plus the 2F 2F decryption check of P2 §5.1."""
    _check_key(key)
    if not ciphertext or len(ciphertext) % BLOCK:
        raise DecryptionError(f"encrypted part of {len(ciphertext)} bytes is not whole blocks")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    plaintext = decryptor.update(ciphertext) + decryptor.finalize()
    if plaintext[:2] != bytes([FILLER, FILLER]):
        raise DecryptionError("decryption check failed: plaintext does not start with 2F 2F")
    return plaintext


def wrap_user_key(default_key: bytes, user_key: bytes) -> bytes:
    """The 16 key-exchange bytes in P2 wire order (P2 §6.5.1, App. B1.1).

    The User key is encrypted with the Default key as one AES-128 block (ECB); the result, an
    octet string most significant byte first, goes on the wire as two 64-bit integers least
    significant byte first, the low half (DIF 07) before the high half (DIF 47). That is the
    16 bytes fully reversed.
    """
    _check_key(default_key)
    _check_key(user_key)
    encryptor = Cipher(algorithms.AES(default_key), modes.ECB()).encryptor()  # noqa: S305 - P2 §6.5.1 single block
    return (encryptor.update(user_key) + encryptor.finalize())[::-1]


def unwrap_user_key(default_key: bytes, wire: bytes) -> bytes:
    """Inverse of `wrap_user_key`: the User key from the 16 wire bytes."""
    _check_key(default_key)
    if len(wire) != KEY_SIZE:
        raise DecryptionError("wrapped key must be 16 bytes")
    decryptor = Cipher(algorithms.AES(default_key), modes.ECB()).decryptor()  # noqa: S305 - P2 §6.5.1 single block
    return decryptor.update(wire[::-1]) + decryptor.finalize()


def check_counter(received: int | None, validated: int) -> int:
    """P2 §5.2 rule 1: an encrypted message's counter must exceed the last validated one."""
    if received is None:
        raise ReplayError("encrypted message without a frame counter (P2 §5.2)")
    if received <= validated:
        raise ReplayError(f"replayed frame counter {received} <= {validated} (P2 §5.2)")
    return received
