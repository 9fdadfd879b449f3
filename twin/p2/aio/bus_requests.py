"""Bus work queued for the P2 service's loop: the P3 `MbusPort` side and `ctl mbus`.

Every method returns at once (the DLMS core answers from memory, P3 §3.5); the work is a `Job`
that the loop runs "at the first opportunity" (MAIN DSMR-M 4.4.15), with the master as it is
then. `BusRequests` is the base of `P2Service`, which owns the master and runs the queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from twin.metering import Meter
from twin.p2.aio.clock_sync import ClockSyncs
from twin.p2.aio.keying import PendingKeys
from twin.p2.errors import MbusError
from twin.p2.keys import KeyStatus, PendingKey
from twin.p2.master import MbusMaster
from twin.p2.master_state import Channel

log = logging.getLogger(__name__)

Job = Callable[[MbusMaster, datetime], bytes]  # the master's first frame, or b"" for none


def read_job(channel: int) -> Job:
    """Read the device on `channel` now."""
    return lambda master, now: master.read(channel)


class BusRequests:
    """The class 72 methods (P3 §7.1) and `ctl mbus` commands on the master's channels."""

    def __init__(
        self, meter: Meter, master: MbusMaster, keys: PendingKeys, syncs: ClockSyncs
    ) -> None:
        self.meter = meter
        self.master = master
        self.keys = keys
        self.syncs = syncs
        self._requests: deque[Job] = deque()
        self._wake = asyncio.Event()

    def _request(self, job: Job) -> None:
        self._requests.append(job)
        self._wake.set()

    def slave_install(self) -> None:
        """Method 1: scan address 0 now (P2 §8.3.1.2)."""
        self._request(lambda master, now: master.scan())

    def slave_deinstall(self, channel: int) -> None:
        """Method 2: forget the device, its keys and its value (P3 §7.1)."""
        _check_channel(channel)
        self._request(lambda master, now: self._deinstall(channel))

    def _deinstall(self, channel: int) -> bytes:
        snapshot = self.master.snapshot
        kept = tuple(c for c in snapshot.channels if c.number != channel)
        self.master = MbusMaster(replace(snapshot, channels=kept))
        self.keys.drop(channel)
        self.syncs.forget(channel)
        self.meter.act(lambda model, _now: model.remove_mbus_device(channel))
        log.info("M-Bus channel %d de-installed", channel)
        return b""

    def capture(self, channel: int) -> None:
        """Method 3: read the device now."""
        _check_channel(channel)
        self._request(read_job(channel))

    def reset_alarm(self, channel: int) -> None:
        """Method 4: clear the device's non-permanent status bits (P2 §6.2.3)."""
        _check_channel(channel)
        self._request(lambda master, now: master.clear_status(channel))

    def synchronize_clock(self, channel: int) -> None:
        """Method 5: set the device's clock now (P2 §6.2.1)."""
        _check_channel(channel)
        self._request(lambda master, now: master.sync_clock(channel, now))

    def set_encryption_key(self, channel: int, key: bytes) -> None:
        """Method 7: the E meter's copy of the channel's new User key."""
        _check_channel(channel)
        self._update_key(channel, self.keys.with_user_key(channel, key))

    def transfer_key(self, channel: int, wrapped: bytes) -> None:
        """Method 8: the User key wrapped with the G meter's Default key, MSB first."""
        _check_channel(channel)
        self._update_key(channel, self.keys.with_wrapped(channel, wrapped))

    def key_with_default(self, channel: int, default_key: bytes, user_key: bytes | None) -> None:
        """`ctl mbus key`: wrap `user_key` (or the one generated at installation) and send it."""
        _check_channel(channel)
        self._update_key(channel, self.keys.with_default(channel, default_key, user_key))

    def _update_key(self, channel: int, pending: PendingKey) -> None:
        self.keys.set(channel, pending)
        if pending.complete:
            self._request(lambda master, now: self.keys.transfer(master, channel, now))
        else:
            self._request(lambda master, now: b"")  # persist it

    def key_status(self, channel: int) -> KeyStatus:
        """Attribute 14 encryption_key_status of the channel."""
        return self.keys.status(self.master, channel)

    def channel(self, channel: int) -> Channel | None:
        """The installed device on `channel` (class 72 attributes 5-11), or None."""
        return self.master.channel(channel)

    def clock_changed(self) -> None:
        """Tell the service the E-meter clock was set (it also notices within a second)."""
        self._wake.set()


def _check_channel(channel: int) -> None:
    if not 1 <= channel <= 4:
        raise MbusError(f"M-Bus channel {channel} is not 1..4")
