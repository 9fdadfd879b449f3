"""User keys of the M-Bus channels on the E-meter side (P2 §6.5, P3 §7.1 class 72).

The head end sends a new User key twice: plain for the E meter (`set_encryption_key`, method
7) and wrapped with the G meter's Default key for the G meter (`transfer_key`, method 8); the
E meter forwards the wrapped one at the first opportunity (MAIN DSMR-M 4.4.15). The twin also
generates a User key itself when a device is installed (os.urandom), so the operator (or the
twin, for its own simulated gas meter whose Default key it knows) only has to wrap it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from twin.p2.crypto import KEY_SIZE, wrap_user_key
from twin.p2.errors import MbusError


class KeyStatus(IntEnum):
    """M-Bus Client Setup attribute 14 encryption_key_status (P3 §7.1)."""

    NO_KEY = 0
    SET = 1
    TRANSFERRED = 2
    SET_AND_TRANSFERRED = 3
    IN_USE = 4


@dataclass(frozen=True, slots=True)
class PendingKey:
    """A User key on its way to a channel.

    `user_key` is the E meter's copy, `wrapped` the P3 octet string (MSB first) for the G
    meter; `generated` marks a key the twin made itself, which a head end's own key replaces.
    """

    user_key: bytes | None = field(default=None, repr=False)  # a key: out of logs
    wrapped: bytes | None = None
    generated: bool = False

    @property
    def complete(self) -> bool:
        return self.user_key is not None and self.wrapped is not None


def check_key(name: str, key: bytes) -> bytes:
    """`key` if it is 16 bytes (AES-128, P2 §6.5), else `MbusError`."""
    if len(key) != KEY_SIZE:
        raise MbusError(f"{name} must be {KEY_SIZE} bytes, got {len(key)}")
    return key


def p3_wrapped(default_key: bytes, user_key: bytes) -> bytes:
    """The `transfer_key` octet string: AES-128-ECB(Default key, User key), MSB first.

    The master reverses it for the wire (P2 §6.5.1, App. B1.1; P3 §3.2.3 "Transfer Key handling").
    """
    return wrap_user_key(check_key("Default key", default_key), check_key("User key", user_key))[
        ::-1
    ]


def key_status(in_use: bool, pending: PendingKey | None) -> KeyStatus:
    """Attribute 14 for a channel."""
    if pending is None or not (pending.user_key or pending.wrapped):
        return KeyStatus.IN_USE if in_use else KeyStatus.NO_KEY
    if pending.complete:
        return KeyStatus.SET_AND_TRANSFERRED
    return KeyStatus.SET if pending.user_key else KeyStatus.TRANSFERRED
