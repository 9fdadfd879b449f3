"""The P2 service: the E meter's M-Bus master on a byte link, timed by the meter clock.

Thin asyncio glue around the sans-IO `MbusMaster` (ARCHITECTURE.md rule 4):

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
- M-Bus events 100-136 go to the M-Bus event log; comm error, fraud and new device also set
  their alarm register bits (`registers.alarm_bits`, P3 §4.2.4).
- DSMR 4.2.2: never a valve command (the master has none); a 4.0 meter's valve block and
  valve-alarm bit are discarded by the master's read-out summary (P2 §9).

The service also implements the P3 `MbusPort` (class 72 methods) and the `ctl mbus` commands.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from hardware.mbus_link import MbusLink, response_timeout_s
from twin.clock import floor_to, is_dst
from twin.meter.state import MbusReading
from twin.metering import Meter
from twin.p2.crypto import KEY_SIZE
from twin.p2.errors import MbusError
from twin.p2.headers import ShortId
from twin.p2.keys import KeyStatus, PendingKey, check_key, key_status, p3_wrapped
from twin.p2.master import MbusMaster
from twin.p2.master_events import (
    CommandAcknowledged,
    DeviceInstalled,
    MasterEvent,
    MasterOutput,
    MbusEvent,
    MbusEventKind,
    Reading,
    ResponseRejected,
    ScanFinished,
)
from twin.p2.master_state import Channel, MasterSnapshot
from twin.p2.persist import master_from_json, master_to_json
from twin.p2.registers import alarm_bits

log = logging.getLogger(__name__)

STATE_SETTING = "p2.master"
SCAN_INTERVAL = timedelta(minutes=1)  # P2 §8.3.1: rescans once a minute in installation mode
SYNC_INTERVAL = timedelta(hours=24)  # P2 §6.2.1 / MAIN use case 14: at least daily
POLL_REAL_S = 1.0  # real seconds between checks for an E-meter clock change while idle

DefaultKeyLookup = Callable[[ShortId], bytes | None]
Job = Callable[[datetime], bytes]


class P2Service:
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
        self.meter = meter
        self.link = link
        self.read_delay = timedelta(seconds=read_delay_s)
        self.install_window = timedelta(seconds=install_window_s)
        self._default_key_for = default_key_for or (lambda device: None)
        self._urandom = urandom
        self.timeout_s = response_timeout_s() if timeout_s is None else timeout_s
        self._pending: dict[int, PendingKey] = {}
        self._last_sync: dict[int, datetime] = {}
        # Recent clock synchronisations (channel, meter time), for ctl status and tests.
        self.sync_log: deque[tuple[int, datetime]] = deque(maxlen=32)
        self.master = MbusMaster(self._load())
        self._requests: deque[Job] = deque()
        self._wake = asyncio.Event()
        self._sync_wanted: set[int] = set()
        self._due: datetime | None = None
        self._discovered = False  # set by discover(): the first run() needs no restart sync
        self._next_read: datetime | None = None
        self._scan_until: datetime | None = None
        self._next_scan: datetime | None = None
        self._offset = meter.clock.offset
        self._dst = is_dst(meter.clock.now())
        self.exchanges = 0
        self.no_answer = 0
        self.rejected = 0
        self.readings = 0
        self.heartbeat = time.monotonic()

    # ------------------------------------------------------------------ persistence

    def _load(self) -> MasterSnapshot:
        saved = self.meter.store.setting(STATE_SETTING)
        if not saved:
            return MasterSnapshot(access_number=self._urandom(1)[0])  # EN 13757-3 §5.9
        for number, pending in saved.get("pending", {}).items():
            self._pending[int(number)] = PendingKey(
                bytes.fromhex(pending["user_key"]) if pending["user_key"] else None,
                bytes.fromhex(pending["wrapped"]) if pending["wrapped"] else None,
                bool(pending["generated"]),
            )
        for number, when in saved.get("last_sync", {}).items():
            self._last_sync[int(number)] = datetime.fromisoformat(when)
        return master_from_json(saved["master"])

    def _save(self) -> None:
        pending = {
            str(n): {
                "user_key": p.user_key.hex() if p.user_key else None,
                "wrapped": p.wrapped.hex() if p.wrapped else None,
                "generated": p.generated,
            }
            for n, p in self._pending.items()
        }
        self.meter.store.put_setting(
            STATE_SETTING,
            {
                "master": master_to_json(self.master.snapshot),
                "pending": pending,
                "last_sync": {str(n): t.isoformat() for n, t in self._last_sync.items()},
            },
        )

    # ------------------------------------------------------------------ main loop

    def _now(self) -> datetime:
        return self.meter.now()

    @property
    def channels(self) -> tuple[Channel, ...]:
        return self.master.snapshot.channels

    @property
    def idle(self) -> bool:
        """True while waiting for the next due time with nothing to do (for tests)."""
        return self._due is not None and self._now() < self._due and not self._requests

    async def run(self) -> None:
        """Serve the bus until cancelled; a `PortError` ends it for the supervisor."""
        await self.link.open()
        try:
            now = self._now()
            self._next_read = self._read_time_after(now)
            self._scan_until, self._next_scan = now + self.install_window, now
            self._discovered, discovered = False, self._discovered
            # A (re)start is a communication restart: read every device, then sync its clock
            # (not right after discovery, which just did both).
            for channel in () if discovered else self.channels:
                self._requests.append(functools.partial(self._read, channel.number))
                self._sync_wanted.add(channel.number)
            while True:
                await self._cycle()
                await self._sleep(self._next_due())
        finally:
            self._due = None
            await self.link.close()

    def _read(self, channel: int, now: datetime) -> bytes:
        return self.master.read(channel)

    def _read_time_after(self, now: datetime) -> datetime:
        return floor_to(now - self.read_delay, 3600) + timedelta(hours=1) + self.read_delay

    def _next_due(self) -> datetime:
        assert self._next_read is not None
        due = self._next_read
        if self._scanning(self._now()) and self._next_scan is not None:
            due = min(due, self._next_scan)
        return due

    def _scanning(self, now: datetime) -> bool:
        return self._scan_until is not None and now <= self._scan_until

    async def _sleep(self, due: datetime) -> None:
        self._due = due
        try:
            while self._now() < due and not self._requests and not self._clock_moved():
                self.heartbeat = time.monotonic()
                self._wake.clear()
                waits = [
                    asyncio.ensure_future(self.meter.clock.sleep_until(due)),
                    asyncio.ensure_future(self._wake.wait()),
                ]
                try:
                    await asyncio.wait(
                        waits, timeout=POLL_REAL_S, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    for task in waits:
                        task.cancel()
                    await asyncio.gather(*waits, return_exceptions=True)
        finally:
            self._due = None

    def _clock_moved(self) -> bool:
        """An E-meter clock set (P3) or a DST change since the last check."""
        return self.meter.clock.offset != self._offset or is_dst(self._now()) != self._dst

    async def _cycle(self) -> None:
        now = self._now()
        if self._clock_moved():
            # P2 §6.2.1: "at every time change of the bus master including DST".
            log.info("E-meter clock or DST changed: syncing the M-Bus clocks")
            self._offset, self._dst = self.meter.clock.offset, is_dst(now)
            self._sync_wanted.update(c.number for c in self.channels)
            self._next_read = min(self._next_read or now, self._read_time_after(now))
        await self._requested()
        if self._next_read is not None and now >= self._next_read:
            await self._hourly(now)
        if self._scanning(now) and self._next_scan is not None and now >= self._next_scan:
            self._next_scan = now + SCAN_INTERVAL
            await self._run(self.master.scan())
            await self._requested()  # first contact with what the scan installed
        await self._syncs()
        self._save()

    async def _requested(self) -> None:
        while self._requests:
            await self._run(self._requests.popleft()(self._now()))

    async def _hourly(self, now: datetime) -> None:
        for channel in self.channels:
            await self._run(self.master.read(channel.number))
            last = self._last_sync.get(channel.number)
            if last is None or now - last >= SYNC_INTERVAL:
                self._sync_wanted.add(channel.number)
        for number, pending in list(self._pending.items()):
            found = self.master.channel(number)
            if pending.complete and found is not None and found.comm_ok:
                await self._run(self._transfer(number, self._now()))  # earlier attempt failed
        self._next_read = self._read_time_after(now)

    async def _syncs(self) -> None:
        for number in sorted(self._sync_wanted):
            channel = self.master.channel(number)
            if channel is None:
                self._sync_wanted.discard(number)
            elif channel.comm_ok:  # a silent meter is synced once it answers again
                before = self._last_sync.get(number)
                await self._run(self.master.sync_clock(number, self._now()))
                if self._last_sync.get(number) != before:
                    self._sync_wanted.discard(number)

    def discover(self, answer: Callable[[bytes], bytes]) -> None:
        """Power-up discovery on an in-process bus, before any service runs.

        `answer` is a peer that replies at once (the simulated gas meter): the devices are
        installed, keyed, read and synced synchronously, so the first P1 telegram already
        carries them, as it does on an E meter that has finished booting.
        """

        def run(send: bytes) -> None:
            while send:
                reply = answer(send)
                now = self._now()
                out = self.master.receive(reply, now) if reply else self.master.timeout(now)
                kicked = self._handle(out.events)  # always: the events must not be lost
                send = out.send or kicked

        run(self.master.scan())
        while self._requests:
            run(self._requests.popleft()(self._now()))
        for number in sorted(self._sync_wanted - set(self._last_sync)):
            run(self.master.sync_clock(number, self._now()))  # none happened yet: sync now
        self._sync_wanted.clear()
        self._discovered = True
        self._save()

    # ------------------------------------------------------------------ bus exchanges

    async def _run(self, send: bytes) -> None:
        """Drive the master until it has nothing more to send."""
        while send:
            self.exchanges += 1
            await self.link.send(send)
            out = await self._answer()
            kicked = self._handle(out.events)
            send = out.send or kicked
            self.heartbeat = time.monotonic()

    async def _answer(self) -> MasterOutput:
        """Feed the answer to the master; EN 13757-2 timeout before the first byte and
        between bytes (a long frame lasts longer than the answer window)."""
        events: list[MasterEvent] = []
        while True:
            data = await self.link.receive(self.timeout_s)
            now = self._now()
            out = self.master.receive(data, now) if data else self.master.timeout(now)
            events.extend(out.events)
            if not data:
                self.no_answer += 1
            if out.send or not self.master.busy or not data:
                return MasterOutput(out.send, tuple(events))

    def _handle(self, events: tuple[MasterEvent, ...]) -> bytes:
        kicked = b""
        for event in events:
            if isinstance(event, DeviceInstalled):
                kicked = self._installed(event) or kicked
            elif isinstance(event, Reading):
                self._reading(event)
            elif isinstance(event, MbusEvent):
                kicked = self._event(event) or kicked
            elif isinstance(event, CommandAcknowledged):
                self._acknowledged(event)
            elif isinstance(event, ResponseRejected):
                self.rejected += 1
                log.debug("M-Bus channel %d: %s", event.channel, event.reason)
            elif isinstance(event, ScanFinished) and event.installed:
                log.info("M-Bus scan installed %d device(s)", event.installed)
        return kicked

    def _installed(self, event: DeviceInstalled) -> bytes:
        log.info(
            "M-Bus device %s installed on channel %d (address %d)",
            event.device,
            event.channel,
            event.address,
        )
        user_key = self._urandom(KEY_SIZE)
        default = self._default_key_for(event.device)
        wrapped = p3_wrapped(default, user_key) if default else None
        self._pending[event.channel] = PendingKey(user_key, wrapped, generated=True)
        # The master is still scanning address 0: the first contact waits until it is idle,
        # so a clock sync never carries a time that went stale in the queue.
        self._requests.append(functools.partial(self._first_contact, event.channel))
        return b""

    def _first_contact(self, channel: int, now: datetime) -> bytes:
        """Key (then read and sync, P2 Fig. 8), or read at once so P1 shows the value."""
        self._sync_wanted.add(channel)
        pending = self._pending.get(channel)
        if pending is not None and pending.complete:
            return self._transfer(channel, now)
        return self.master.read(channel)

    def _transfer(self, channel: int, now: datetime) -> bytes:
        pending = self._pending.get(channel)
        if pending is None or pending.user_key is None or pending.wrapped is None:
            return b""  # already transferred (by an earlier request or the hourly retry)
        return self.master.transfer_key(channel, pending.wrapped, pending.user_key, now)

    def _reading(self, event: Reading) -> None:
        self.readings += 1
        log.debug(
            "M-Bus channel %d: %s m3 captured %s, status %02X, FC %s (E time %s)",
            event.channel,
            event.volume_m3,
            event.capture_time,
            event.status,
            event.frame_counter,
            self._now(),
        )
        if event.volume_m3 is None:
            return
        known = self.meter.model.state.mbus.get(event.channel)
        reading = MbusReading(
            channel=event.channel,
            device_type=event.device.device_type,
            equipment_id=event.equipment_id or (known.equipment_id if known else ""),
            value_thousandths=int(event.volume_m3 * 1000),
            capture=event.capture_time,
        )
        self.meter.act(lambda model, now: model.set_mbus_value(reading))

    def _event(self, event: MbusEvent) -> bytes:
        bits = alarm_bits(event.channel, event.kind)

        def log_it(model: Any, now: datetime) -> None:
            model.log_event(now, event.code)
            if bits:
                model.set_alarms(bits)

        self.meter.act(log_it)
        log.info("M-Bus event %d (channel %d, %s)", event.code, event.channel, event.kind.name)
        if event.kind is MbusEventKind.COMMUNICATION_OK:
            self._sync_wanted.add(event.channel)  # P2 §6.2.1: "after any communication restart"
        return b""

    def _acknowledged(self, event: CommandAcknowledged) -> None:
        if event.command == "key":
            self._pending.pop(event.channel, None)
            # The master follows a key change with a read and an encrypted sync (P2 Fig. 8)
            # whose time was taken when the key was queued; sync once more, fresh.
            self._sync_wanted.add(event.channel)
            log.info("M-Bus channel %d: User key in use (mode 15)", event.channel)
        elif event.command == "clock":
            self._last_sync[event.channel] = self._now()
            self.sync_log.append((event.channel, self._now()))

    # ------------------------------------------------------------------ MbusPort (P3 class 72)

    def _request(self, job: Job) -> None:
        self._requests.append(job)
        self._wake.set()

    def slave_install(self) -> None:
        """Method 1: scan address 0 now (P2 §8.3.1.2)."""
        self._request(lambda now: self.master.scan())

    def slave_deinstall(self, channel: int) -> None:
        """Method 2: forget the device, its keys and its value (P3 §7.1)."""
        self._check_channel(channel)

        def deinstall(now: datetime) -> bytes:
            snapshot = self.master.snapshot
            kept = tuple(c for c in snapshot.channels if c.number != channel)
            self.master = MbusMaster(replace(snapshot, channels=kept))
            self._pending.pop(channel, None)
            self._last_sync.pop(channel, None)
            self.meter.act(lambda model, _now: model.remove_mbus_device(channel))
            log.info("M-Bus channel %d de-installed", channel)
            return b""

        self._request(deinstall)

    def capture(self, channel: int) -> None:
        """Method 3: read the device now."""
        self._check_channel(channel)
        self._request(functools.partial(self._read, channel))

    def reset_alarm(self, channel: int) -> None:
        """Method 4: clear the device's non-permanent status bits (P2 §6.2.3)."""
        self._check_channel(channel)
        self._request(lambda now: self.master.clear_status(channel))

    def synchronize_clock(self, channel: int) -> None:
        """Method 5: set the device's clock now (P2 §6.2.1)."""
        self._check_channel(channel)
        self._request(lambda now: self.master.sync_clock(channel, now))

    def set_encryption_key(self, channel: int, key: bytes) -> None:
        """Method 7: the E meter's copy of the channel's new User key."""
        self._check_channel(channel)
        old = self._pending.get(channel, PendingKey())
        wrapped = None if old.generated else old.wrapped
        self._update_key(channel, PendingKey(check_key("User key", key), wrapped))

    def transfer_key(self, channel: int, wrapped: bytes) -> None:
        """Method 8: the User key wrapped with the G meter's Default key, MSB first."""
        self._check_channel(channel)
        old = self._pending.get(channel, PendingKey())
        user_key = None if old.generated else old.user_key  # the head end's key replaces ours
        self._update_key(channel, PendingKey(user_key, check_key("wrapped key", wrapped)))

    def key_with_default(self, channel: int, default_key: bytes, user_key: bytes | None) -> None:
        """`ctl mbus key`: wrap `user_key` (or the one generated at installation) and send it."""
        self._check_channel(channel)
        pending = self._pending.get(channel, PendingKey())
        key = user_key or pending.user_key or self._urandom(KEY_SIZE)
        self._update_key(channel, PendingKey(key, p3_wrapped(default_key, key), generated=True))

    def _update_key(self, channel: int, pending: PendingKey) -> None:
        self._pending[channel] = pending
        if pending.complete:
            self._request(lambda now: self._transfer(channel, now))
        else:
            self._request(lambda now: b"")  # persist it

    def key_status(self, channel: int) -> KeyStatus:
        """Attribute 14 encryption_key_status of the channel."""
        found = self.master.channel(channel)
        in_use = found is not None and found.user_key is not None
        return key_status(in_use, self._pending.get(channel))

    def channel(self, channel: int) -> Channel | None:
        """The installed device on `channel` (class 72 attributes 5-11), or None."""
        return self.master.channel(channel)

    def clock_changed(self) -> None:
        """Tell the service the E-meter clock was set (it also notices within a second)."""
        self._wake.set()

    def _check_channel(self, channel: int) -> None:
        if not 1 <= channel <= 4:
            raise MbusError(f"M-Bus channel {channel} is not 1..4")

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        """For `ctl status`."""
        return {
            "bus": self.link.description,
            "exchanges": self.exchanges,
            "no_answer": self.no_answer,
            "rejected": self.rejected,
            "readings": self.readings,
            "next_read": self._next_read.isoformat() if self._next_read else None,
            "installing": self._scanning(self._now()),
            "channels": [
                {
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
                    "last_sync": t.isoformat() if (t := self._last_sync.get(c.number)) else None,
                    "recent_syncs": [t.isoformat() for n, t in self.sync_log if n == c.number],
                }
                for c in self.channels
            ],
        }
