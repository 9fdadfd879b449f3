"""User keys the P2 service holds for its channels until the device has taken them.

A key arrives from P3 (class 72 methods 7 and 8, P3 §7.1), from `ctl mbus key`, or is
generated at installation; it stays pending until the G meter acknowledges the key change
(P2 Fig. 8), and a complete one is retried at every hourly read-out while it fails.
The key types and attribute 14 live in `twin.p2.keys`; this is the service's bookkeeping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from twin.p2.crypto import KEY_SIZE
from twin.p2.headers import ShortId
from twin.p2.keys import KeyStatus, PendingKey, check_key, key_status, p3_wrapped
from twin.p2.master import MbusMaster

DefaultKeyLookup = Callable[[ShortId], bytes | None]


class PendingKeys:
    """The pending User key of each channel (`pending`, persisted by the service)."""

    def __init__(
        self,
        pending: dict[int, PendingKey],
        urandom: Callable[[int], bytes],
        default_key_for: DefaultKeyLookup | None = None,
    ) -> None:
        self.pending = pending
        self._urandom = urandom
        self._default_key_for = default_key_for or (lambda device: None)

    def get(self, channel: int) -> PendingKey | None:
        return self.pending.get(channel)

    def set(self, channel: int, pending: PendingKey) -> None:
        self.pending[channel] = pending

    def drop(self, channel: int) -> None:
        """The device took the key, or is gone."""
        self.pending.pop(channel, None)

    def generate(self, channel: int, device: ShortId) -> None:
        """A new device's User key; wrapped at once when its Default key is known here."""
        user_key = self._urandom(KEY_SIZE)
        default = self._default_key_for(device)
        wrapped = p3_wrapped(default, user_key) if default else None
        self.pending[channel] = PendingKey(user_key, wrapped, generated=True)

    def with_user_key(self, channel: int, key: bytes) -> PendingKey:
        """Method 7: the E meter's copy of the channel's new User key."""
        old = self.pending.get(channel, PendingKey())
        wrapped = None if old.generated else old.wrapped
        return PendingKey(check_key("User key", key), wrapped)

    def with_wrapped(self, channel: int, wrapped: bytes) -> PendingKey:
        """Method 8: the User key wrapped with the G meter's Default key, MSB first."""
        old = self.pending.get(channel, PendingKey())
        user_key = None if old.generated else old.user_key  # the head end's key replaces ours
        return PendingKey(user_key, check_key("wrapped key", wrapped))

    def with_default(self, channel: int, default_key: bytes, user_key: bytes | None) -> PendingKey:
        """`ctl mbus key`: wrap `user_key` (or the one generated at installation)."""
        pending = self.pending.get(channel, PendingKey())
        key = user_key or pending.user_key or self._urandom(KEY_SIZE)
        return PendingKey(key, p3_wrapped(default_key, key), generated=True)

    def transfer(self, master: MbusMaster, channel: int, now: datetime) -> bytes:
        """The master's first frame of the key change, or b"" with nothing to send."""
        pending = self.pending.get(channel)
        if pending is None or pending.user_key is None or pending.wrapped is None:
            return b""  # already transferred (by an earlier request or the hourly retry)
        return master.transfer_key(channel, pending.wrapped, pending.user_key, now)

    def retries(self, master: MbusMaster) -> Iterator[int]:
        """Channels whose complete key an earlier attempt failed to transfer, now answering."""
        for number, pending in list(self.pending.items()):
            found = master.channel(number)
            if pending.complete and found is not None and found.comm_ok:
                yield number

    def status(self, master: MbusMaster, channel: int) -> KeyStatus:
        """Attribute 14 encryption_key_status of the channel."""
        found = master.channel(channel)
        in_use = found is not None and found.user_key is not None
        return key_status(in_use, self.pending.get(channel))
