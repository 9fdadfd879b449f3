"""The P2 service: the E meter's M-Bus master on a byte link, timed by the meter clock.

Thin asyncio glue around the sans-IO `MbusMaster`: timing here, the protocol there:

- Installation (P2 §8.3.1): at start-up ("discover on power on") and for `install_window_s`
  after it, address 0 is scanned once a minute; `slave_install()` (P3 class 72 method 1, or
  `ctl mbus install`) scans at once. A new device gets the next channel 1..4 (installation
  order, P3 §7.1 fn 8), event 1x5 and the "new device" alarm bit, a generated User key
  (os.urandom), and is read at once so P1 has its value straight away, as real E meters do.
- Hourly read-out `read_delay_s` after each whole UTC hour (P2 §4.3, MAIN DSMR-M 4.5.5): the
  value goes to the model with the G meter's UTC capture time; P1/P3 show it in local time.
- Clock sync (P2 §6.2.1, MAIN use case 14): after installation/key change (the master does that
  itself), every 24 h, after each E-meter clock change and DST change, and after every
  communication restart (start-up, or a channel answering again after an error).
- Frame counters are tracked and re-synced by the master (P2 §5.2); its snapshot, the
  pending keys and the last sync times are persisted in the store after every exchange.
- M-Bus events 100-136 go to the M-Bus event log; the model sets their error and alarm
  register bits (P3 §4.2.3-§4.2.4, twin/meter/alarms.py).
- DSMR 4.2.2: never a valve command (the master has none); a 4.0 meter's valve block and
  valve-alarm bit are discarded by the master's read-out summary (P2 §9).

The service also implements the P3 `MbusPort` (class 72 methods) and the `ctl mbus` commands.

This module holds the loop; its parts: `bus_requests` (the queue and the class 72 methods,
the base class), `schedule` (read-out, scan and clock-change times), `clock_sync` (who wants
a sync), `keying` (pending User keys), `exchange` (driving the master over the link),
`event_handling` (the master's events into the meter model), `master_store` (persistence).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from hardware.mbus_link import MbusLink, response_timeout_s
from twin.clock import floor_to
from twin.metering import Meter
from twin.p2.aio.bus_requests import BusRequests, read_job
from twin.p2.aio.clock_sync import ClockSyncs
from twin.p2.aio.event_handling import MasterEventHandler
from twin.p2.aio.exchange import BusExchange
from twin.p2.aio.keying import DefaultKeyLookup, PendingKeys
from twin.p2.aio.master_store import (
    STATE_SETTING,
    load_master,
    save_master,
    save_master_async,
)
from twin.p2.aio.schedule import BusSchedule
from twin.p2.master import MbusMaster
from twin.p2.master_state import Channel

__all__ = ["STATE_SETTING", "P2Service"]

log = logging.getLogger(__name__)

HOUR = timedelta(hours=1)


class P2Service(BusRequests):
    """The E meter's wired M-Bus master (one bus, up to four devices)."""

    def __init__(
        self,
        meter: Meter,
        link: MbusLink,
        *,
        read_delay_s: float = 300,
        install_window_s: float = 3600,
        default_key_for: DefaultKeyLookup | None = None,
        urandom: Callable[[int], bytes] = os.urandom,
        timeout_s: float | None = None,
    ) -> None:
        saved = load_master(meter.store, urandom)
        super().__init__(
            meter,
            MbusMaster(saved.snapshot),
            PendingKeys(saved.pending, urandom, default_key_for),
            ClockSyncs(saved.last_sync),
        )
        self.link = link
        self.schedule = BusSchedule(
            meter.clock, timedelta(seconds=read_delay_s), timedelta(seconds=install_window_s)
        )
        self.events = MasterEventHandler(meter, self.keys, self.syncs, self._requests)
        timeout = response_timeout_s() if timeout_s is None else timeout_s
        self.bus = BusExchange(link, timeout, self._now, self.events.handle)
        self._due: datetime | None = None
        self._discovered = False  # set by discover(): the first run() needs no restart sync
        self._peer: Callable[[bytes], bytes] | None = None  # use_instant_peer

    def _now(self) -> datetime:
        return self.meter.now()

    def _save(self) -> None:
        save_master(self.meter.store, self.master.snapshot, self.keys.pending, self.syncs.last)

    async def _save_async(self) -> None:
        await save_master_async(
            self.meter.store, self.master.snapshot, self.keys.pending, self.syncs.last
        )

    @property
    def channels(self) -> tuple[Channel, ...]:
        return self.master.snapshot.channels

    @property
    def idle(self) -> bool:
        """True while waiting for the next due time with nothing to do (for tests)."""
        return self._due is not None and self._now() < self._due and not self._requests

    @property
    def heartbeat(self) -> float:
        return self.bus.heartbeat

    @property
    def sync_log(self) -> deque[tuple[int, datetime]]:
        """Recent clock synchronisations (channel, meter time), for ctl status and tests."""
        return self.syncs.log

    @property
    def no_answer(self) -> int:
        return self.bus.no_answer

    @property
    def rejected(self) -> int:
        return self.events.rejected

    # ------------------------------------------------------------------ main loop

    async def run(self) -> None:
        """Serve the bus until cancelled; a `PortError` ends it for the supervisor."""
        await self.link.open()
        try:
            self._start()
            while True:
                if self.meter.advancing:
                    # The span's reads are the fast-forward's (twin/p2/aio/fast_forward.py):
                    # a read at the clock's time would hand the model a value from before it.
                    await self.meter.clock.stepped()
                    continue
                await self._cycle()
                await self._sleep(self.schedule.next_due(self._now()))
        finally:
            self._due = None
            await self.link.close()

    def _start(self) -> None:
        self.schedule.start(self._now())
        self._discovered, discovered = False, self._discovered
        # A (re)start is a communication restart: read every device, then sync its clock
        # (not right after discovery, which just did both).
        for channel in () if discovered else self.channels:
            self._requests.append(read_job(channel.number))
            self.syncs.want(channel.number)

    # ------------------------------------------------------------------ stepped (scenarios)

    def use_instant_peer(self, answer: Callable[[bytes], bytes]) -> None:
        """Exchange with `answer`, a peer that replies at once (b"" for silence), instead of
        over the link; `step` then drives the loop. For a runner that moves the meter clock
        itself (twin/scenario_p2.py): every exchange happens at the step's meter time."""
        self._peer = answer

    def due(self) -> datetime | None:
        """The meter time of the next bus work (None before the first step: at once)."""
        if self.schedule.next_read is None:
            return None
        return self.schedule.next_due(self._now())

    def has_work(self) -> bool:
        """Bus work at the clock's time: queued requests, a clock change, a due read or scan."""
        due = self.due()
        return (
            due is None
            or bool(self._requests)
            or self.schedule.clock_moved()
            or (self._now() >= due)
        )

    async def step(self) -> None:
        """One pass of the loop at the clock's time, without waiting (see use_instant_peer)."""
        if self.schedule.next_read is None:
            self._start()
        await self._cycle()

    async def _sleep(self, due: datetime) -> None:
        """Wait for `due`, a request (`_wake`), an E-meter clock set (the meter clock's wait
        ends at one) or a DST change, without polling: a DST change happens only at a whole
        UTC hour (01:00 UTC, EU rule), so the wait also ends at the next one."""
        self._due = due
        try:
            while (
                self._now() < due
                and not self._requests
                and not self.schedule.clock_moved()
                and not self.meter.advancing
            ):
                self.bus.heartbeat = time.monotonic()
                self._wake.clear()
                wake_at = min(due, floor_to(self._now(), 3600) + HOUR)
                waits = [
                    asyncio.ensure_future(self.meter.clock.sleep_until(wake_at)),
                    asyncio.ensure_future(self._wake.wait()),
                ]
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in waits:
                        task.cancel()
                    await asyncio.gather(*waits, return_exceptions=True)
        finally:
            self._due = None

    async def _cycle(self) -> None:
        now = self._now()
        if self.schedule.clock_moved():
            # P2 §6.2.1: "at every time change of the bus master including DST".
            log.info("E-meter clock or DST changed: syncing the M-Bus clocks")
            self.schedule.follow_clock(now)
            self.syncs.wanted.update(c.number for c in self.channels)
        await self._requested()
        if self.schedule.read_due(now):
            await self._hourly(now)
        if self.schedule.scan_due(now):
            await self._run(self.master.scan())
            await self._requested()  # first contact with what the scan installed
        await self._syncs()
        await self._save_async()  # durable, without holding the loop while it is written

    async def _run(self, send: bytes) -> None:
        if self._peer is not None:
            self.bus.run_at_once(self.master, send, self._peer)
        else:
            await self.bus.run(self.master, send)

    async def _requested(self) -> None:
        while self._requests:
            await self._run(self._requests.popleft()(self.master, self._now()))

    async def _hourly(self, now: datetime) -> None:
        for channel in self.channels:
            await self._run(self.master.read(channel.number))
            self.syncs.want_if_stale(channel.number, now)
        for number in self.keys.retries(self.master):  # an earlier attempt failed
            await self._run(self.keys.transfer(self.master, number, self._now()))
        self.schedule.read_done(now)

    async def _syncs(self) -> None:
        for number in sorted(self.syncs.wanted):
            channel = self.master.channel(number)
            if channel is None:
                self.syncs.wanted.discard(number)
            elif channel.comm_ok:  # a silent meter is synced once it answers again
                before = self.syncs.last.get(number)
                await self._run(self.master.sync_clock(number, self._now()))
                if self.syncs.last.get(number) != before:
                    self.syncs.wanted.discard(number)

    def discover(self, answer: Callable[[bytes], bytes]) -> None:
        """Power-up discovery on an in-process bus, before any service runs.

        `answer` is a peer that replies at once (the simulated gas meter): the devices are
        installed, keyed, read and synced synchronously, so the first P1 telegram already
        carries them, as it does on an E meter that has finished booting.
        """

        def run(send: bytes) -> None:
            self.bus.run_at_once(self.master, send, answer)

        run(self.master.scan())
        while self._requests:
            run(self._requests.popleft()(self.master, self._now()))
        for number in sorted(self.syncs.wanted - set(self.syncs.last)):
            run(self.master.sync_clock(number, self._now()))  # none happened yet: sync now
        self.syncs.wanted.clear()
        self._discovered = True
        self._save()

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        """For `ctl status`."""
        next_read = self.schedule.next_read
        return {
            "bus": self.link.description,
            "exchanges": self.bus.exchanges,
            "no_answer": self.bus.no_answer,
            "rejected": self.events.rejected,
            "readings": self.events.readings,
            "next_read": next_read.isoformat() if next_read else None,
            "installing": self.schedule.scanning(self._now()),
            "channels": [self._channel_status(c) for c in self.channels],
        }

    def _channel_status(self, c: Channel) -> dict[str, Any]:
        return {
            "channel": c.number,
            "address": c.address,
            "id": f"{c.device.ident:08d}",
            "manufacturer": c.device.manufacturer,
            "version": c.device.version,
            "device_type": c.device.device_type,
            "key_status": int(self.key_status(c.number)),
            "frame_counter": c.frame_counter,
            "status": c.status,
            "comm_ok": c.comm_ok,
            "last_sync": t.isoformat() if (t := self.syncs.last.get(c.number)) else None,
            "recent_syncs": [t.isoformat() for n, t in self.syncs.log if n == c.number],
        }
