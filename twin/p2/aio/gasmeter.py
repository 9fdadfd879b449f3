"""The gas-meter twin: a `GasMeterSlave` answering on an M-Bus link (P2 as the G meter sees it).

Runs inside the twin on the simulated bus, or alone (`dsmr-twin gasmeter --port DEVICE`) on a
serial device at 2400 8E1, where any M-Bus master can read it.

- Volume: the household gas profile (`twin.meter.gas.litres_in_hour`), captured on every whole
  UTC hour of the meter's own clock (P2 §6.1). Captures are brought up to date whenever a
  frame arrives, so a read-out right after the hour always sees that hour's value.
- Status bits (01 FD 17, P2 §6.3.3) the operator sets: battery low (bit 2), fraud attempt
  (bit 6), and a clock drift that makes the next sync raise bit 5 (> 60 s, P2 §6.2.1).
- Detach/attach: taken off the bus, the meter hears nothing and answers nothing (the E meter
  logs 1x0 "communication error" at its next read-out and 1x1 once it answers again).
- Timing: an answer leaves no sooner than 11 bit times after the request's last byte
  (EN 13757-2; 4.58 ms at 2400 Bd), counted from when that byte arrived, so the state write
  below counts towards it. The instant simulated bus, which has no line time, uses 0.
- State (address, User key, frame counter, access number, register) is persisted in the store
  before every answer leaves, so a restart never re-installs it and never reuses a counter
  (P2 §5.2, §7.2).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from hardware.mbus_link import MbusLink, min_answer_delay_s, response_timeout_s
from twin.clock import Clock, clamp_carryable, floor_to
from twin.meter.gas import litres_in_hour
from twin.p2.persist import slave_from_json, slave_to_json
from twin.p2.slave import MAX_ADDRESS, GasMeterIdentity, GasMeterSlave, SlaveSnapshot
from twin.p2.slave_events import (
    AddressChanged,
    ClockSynchronised,
    Ignored,
    KeyChanged,
    SlaveEvent,
    StatusCleared,
)
from twin.p2.values import Status

log = logging.getLogger(__name__)

STATE_SETTING = "p2.gasmeter"
DEFAULT_KEY_SETTING = "p2.gasmeter.default_key"
HOUR = timedelta(hours=1)
MAX_CATCH_UP_HOURS = 24 * 366  # beyond a year away from the bus, only the time stamp moves


class Settings(Protocol):
    """What the gas meter needs of `twin.store.Store`."""

    def setting(self, key: str) -> Any: ...

    def put_setting(self, key: str, value: Any) -> None: ...

    async def put_setting_async(self, key: str, value: Any) -> None: ...


def ident_from_equipment_id(equipment_id: str) -> int:
    """P2 §4.2.2: the identification number is the last 8 digits of the serial number."""
    match = re.search(r"(\d{1,8})$", equipment_id)
    return int(match.group(1)) if match else 0


def default_key(
    settings: Settings, configured: str, urandom: Callable[[int], bytes] = os.urandom
) -> bytes:
    """The configured Default key, or one generated once and kept in the store (P2 §6.5)."""
    if configured:
        return bytes.fromhex(configured)
    stored = settings.setting(DEFAULT_KEY_SETTING)
    if stored:
        return bytes.fromhex(str(stored))
    key = urandom(16)
    settings.put_setting(DEFAULT_KEY_SETTING, key.hex())
    return key


class GasMeterTwin:
    """A DSMR 4.x gas meter on one end of an M-Bus link."""

    def __init__(
        self,
        identity: GasMeterIdentity,
        link: MbusLink,
        clock: Clock,
        settings: Settings,
        *,
        rng: random.Random,
        start_litres: float = 0.0,
        address: int | None = None,
        timeout_s: float | None = None,
        answer_delay_s: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        urandom: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.identity = identity
        self._urandom = urandom  # a scenario's seeded stream keeps its runs identical
        self.link = link
        self.clock = clock
        self.settings = settings
        self.rng = rng
        self.timeout_s = response_timeout_s() if timeout_s is None else timeout_s
        # EN 13757-2: 11 bit times at the least; 0 only on the instant simulated bus.
        self.answer_delay_s = min_answer_delay_s() if answer_delay_s is None else answer_delay_s
        self._monotonic = monotonic
        self._sleep = sleep
        self.attached = True
        # While `ctl advance` runs, the span's hours are captured by the fast-forward alone
        # (`capture_span`): a capture at the clock's time, behind them, would move the stamp
        # back and draw those hours again.
        self.held = False
        self.litres = start_litres
        self.slave = GasMeterSlave(identity, self._load(start_litres, address))
        self.opened = False  # the link was opened at least once
        self.frames = 0
        self.answers = 0
        self.heartbeat = time.monotonic()

    # ------------------------------------------------------------------ persistence

    def _load(self, start_litres: float, address: int | None) -> SlaveSnapshot:
        saved = self.settings.setting(STATE_SETTING)
        if saved and saved.get("equipment_id") == self.identity.equipment_id:
            self.litres = float(saved["litres"])
            self.attached = bool(saved["attached"])
            snapshot = slave_from_json(saved["slave"])
            if not 0 <= snapshot.address <= MAX_ADDRESS:
                # Saved while set-address still took 251..255: such a meter answered
                # broadcasts (P2 §3.1.3). At 0 the E meter installs it again (P2 §8.3.1).
                log.warning("stored address %d is no primary address; back to 0", snapshot.address)
                snapshot = replace(snapshot, address=0)
            if address is not None and snapshot.user_key is None:
                snapshot = replace(snapshot, address=address)
            return snapshot
        if saved:
            log.warning("stored gas-meter state belongs to another meter; starting afresh")
        hour = floor_to(clamp_carryable(self.clock.now()), 3600)
        return SlaveSnapshot(
            address=address or 0,
            access_number=self._urandom(1)[0],  # P2 §4.2.4: initialised to a random value
            reading=(int(start_litres), hour),
        )

    def save(self) -> None:
        """Persist the meter's state (called before every answer leaves)."""
        self.settings.put_setting(STATE_SETTING, self._record())

    async def save_async(self) -> None:
        """`save`, awaited without holding the event loop while the store writes."""
        await self.settings.put_setting_async(STATE_SETTING, self._record())

    def _record(self) -> dict[str, Any]:
        return {
            "equipment_id": self.identity.equipment_id,
            "litres": self.litres,
            "attached": self.attached,
            "slave": slave_to_json(self.slave.snapshot),
        }

    # ------------------------------------------------------------------ the bus

    async def run(self) -> None:
        """Answer the bus until cancelled."""
        await self.link.open()
        self.opened = True
        log.info("gas meter %s on %s", self.identity.equipment_id, self.link.description)
        try:
            while True:
                # Only a partial frame needs the line idle time-out (hardware/mbus_link.py);
                # between frames the meter sleeps until bytes come, as a real one does.
                data = await self.link.receive(self.timeout_s if self.slave.mid_frame else None)
                received = self._monotonic()  # the end of these bytes (of a request's last)
                self.heartbeat = time.monotonic()
                if not data:
                    self.slave.timeout()  # the line went idle: drop any partial frame
                    continue
                if self.attached:
                    await self._frame(data, received)
        finally:
            await self.link.close()

    async def _frame(self, data: bytes, received: float) -> None:
        reply, changed = self._receive(data)
        if changed:
            await self.save_async()  # durable before the answer (and its frame counter) leaves
        if reply:
            self.answers += 1
            await self._not_before(received + self.answer_delay_s)
            await self.link.send(reply)

    async def _not_before(self, due: float) -> None:
        """Wait until monotonic time `due` (at once if it has passed)."""
        while (left := due - self._monotonic()) > 0:
            await self._sleep(left)

    def answer(self, data: bytes) -> bytes:
        """Process received bytes at the clock's time; the reply bytes (already persisted)."""
        reply, changed = self._receive(data)
        if changed:
            self.save()  # durable before the answer (and its frame counter) leaves
        if reply:
            self.answers += 1
        return reply

    def _receive(self, data: bytes) -> tuple[bytes, bool]:
        """The reply to `data`, and whether the state to persist before it leaves changed."""
        self.frames += 1
        now = self.clock.now()
        self.capture(now)
        before = self.slave.snapshot
        out = self.slave.receive(data, now)
        self._note(out.events)
        return out.reply, bool(out.reply) or self.slave.snapshot != before

    def _note(self, events: tuple[SlaveEvent, ...]) -> None:
        for event in events:
            if isinstance(event, AddressChanged | KeyChanged | StatusCleared):
                log.info("gas meter: %s", event)
            elif isinstance(event, ClockSynchronised):
                log.info("gas meter clock set %s -> %s", event.old, event.new)
            elif isinstance(event, Ignored):
                log.debug("gas meter ignored a frame: %s", event.reason)

    # ------------------------------------------------------------------ metering

    def capture(self, now: datetime) -> None:
        """Bring the hourly value up to the last whole UTC hour of the meter's clock."""
        if not self.held:
            self.capture_span(now)

    def capture_span(self, now: datetime) -> None:
        """`capture`, also while held (twin/p2/aio/fast_forward.py)."""
        # Its own clock stands still at TIME_MAX like the E meter's: a type I date (EN 13757-3
        # annex A) ends with 2099, so no later capture time could go on the bus.
        hour = floor_to(clamp_carryable(self.slave.clock(now)), 3600)
        reading = self.slave.snapshot.reading
        last = reading[1] if reading else hour
        if hour == last and reading is not None:
            return
        hours = int((hour - last) / HOUR)
        for step in range(max(0, min(hours, MAX_CATCH_UP_HOURS)), 0, -1):
            self.litres += litres_in_hour(hour - step * HOUR, self.rng)
        # A clock set backwards only moves the time stamp: the register never runs back.
        self.slave.update(int(self.litres), hour)

    # ------------------------------------------------------------------ operator (ctl gas)

    def set_battery_low(self, on: bool) -> None:
        self.slave.set_status(Status.POWER_LOW, on)
        self.save()

    def set_fraud(self, on: bool) -> None:
        self.slave.set_status(Status.FRAUD_ATTEMPT, on)
        self.save()

    def drift(self, seconds: float) -> None:
        """Move the meter's own clock by `seconds` (a bad crystal)."""
        self.slave.drift(timedelta(seconds=seconds))
        self.save()

    def set_attached(self, attached: bool) -> None:
        """Put the meter on the bus or take it off."""
        self.attached = attached
        self.link.discard_input()
        self.slave.timeout()
        self.save()
        log.info("gas meter %s the bus", "back on" if attached else "taken off")

    def status(self) -> dict[str, Any]:
        now = self.clock.now()
        self.capture(now)
        snapshot = self.slave.snapshot
        reading = snapshot.reading
        return {
            "equipment_id": self.identity.equipment_id,
            "link": self.link.description,
            "attached": self.attached,
            "state": self.slave.state.value,
            "address": snapshot.address,
            "frame_counter": snapshot.frame_counter,
            "status": snapshot.status,
            "clock": self.slave.clock(now).isoformat(),
            "litres": int(self.litres),
            "capture": reading[1].isoformat() if reading else None,
            "dsmr40": self.identity.dsmr40,
            "frames": self.frames,
            "answers": self.answers,
        }
