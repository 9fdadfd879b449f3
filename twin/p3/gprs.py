"""GPRS behaviour of the P3 communication unit (DSMR GPRS CS §3, P3 §8-9).

- Always-on (configuration object 0-1:94.31.3 GPRS_operation_mode 1): the PDP context stays up
  and the DLMS server socket listens all the time (GPRS CS §3.1).
- Triggered (mode 2): nothing listens until a wake-up. An SMS from a listed sender (message
  handler 0-0:2.3.0, P3 §9.1.4) or a CSD call from a listed caller (auto answer 0-0:2.2.0, mode
  200: the call is rejected, not answered; DSMR-G 4.3.4) runs the CSD/SMS push setup 0-2:25.9.0:
  PDP context up, server socket open *first* ("at the same time ... to prevent missing TCP
  connections", GPRS CS §3.1 after Figure 5), then the optional TCP "I am here" message to
  send_destination (P3 §9.3: the push_object_list values as octet strings joined by ','; here
  equipment identifier 0-0:96.1.1 and the logical name of the triggering object), then wait
  `inactivity_time_out` for the CS to connect (GPRS CS Figures 6-7: "also used to check whether
  a TCP connection is set up"), serve the session, close socket and PDP context.
- Connection watchdog 0-1:94.31.2 (P3 §8.2, hours): no CS association for that long resets the
  modem (PDP context and listener re-established). Measured on the meter clock.
- The modem's signal and network feed GPRS network information 0-1:94.31.4 (`ModemStatus`).

The modem is a `GprsModem`: twin/p3/modem_service.py's `ModemService` (the AT driver on a real
modem or on the simulator; wake-ups reach `wakeup()` from its SMS and call indications), or
`NoModem` when p3.modem = "none" (no network information; the OS's network carries P3).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from twin.clock import Clock
from twin.config import P3Config
from twin.p3.cosem import AttributeRef
from twin.p3.objects.base import obis_bytes
from twin.p3.objects.ports import ModemStatus, NetworkInfo
from twin.p3.objects.values import Data, Tag, ValueTypeError
from twin.p3.service import HEARTBEAT_S, P3Service, read_setting

log = logging.getLogger(__name__)

CONFIGURATION = AttributeRef(1, obis_bytes("0-1:94.31.3"), 2)
WATCHDOG = AttributeRef(1, obis_bytes("0-1:94.31.2"), 2)
EQUIPMENT_ID = AttributeRef(1, obis_bytes("0-0:96.1.1"), 2)
PUSH_CSD_SMS = obis_bytes("0-2:25.9.0")
MESSAGE_HANDLER = obis_bytes("0-0:2.3.0")  # SMS trigger (P3 §9.1.4)
AUTO_ANSWER = obis_bytes("0-0:2.2.0")  # CSD trigger (P3 §9.1.3)
SENDERS = {
    "sms": AttributeRef(60, MESSAGE_HANDLER, 4),  # list_of_senders_and_actions
    "csd": AttributeRef(28, AUTO_ANSWER, 8),  # list_of_callers_and_actions
}
PUSH_TIMEOUT_S = 10.0
DEFAULT_WAIT_S = 300  # P3 Table 3-1 default inactivity_time_out


class Mode(enum.IntEnum):
    """GPRS_operation_mode of the configuration object (P3 §8.3)."""

    ALWAYS_ON = 1
    TRIGGERED = 2


class WakeupRefusedError(ValueError):
    """A wake-up that the meter ignores (unknown sender, not in triggered mode)."""


class GprsModem(ModemStatus, Protocol):
    """What the controller drives: the PDP context (GPRS CS §3 steps 1 and 7) and resets."""

    @property
    def pdp_active(self) -> bool: ...

    @property
    def resets(self) -> int: ...

    async def connect(self) -> None:
        """PDP context up; never raises (a modem that is down catches up later)."""
        ...

    async def disconnect(self) -> None: ...

    def reset(self) -> None:
        """The connection watchdog's modem reset (P3 §8.2)."""
        ...


@dataclass(slots=True)
class NoModem:
    """p3.modem = "none": no modem to report (0-1:94.31.4 says no network); only state."""

    pdp_active: bool = False
    resets: int = 0

    def network_info(self) -> NetworkInfo | None:
        return None

    async def connect(self) -> None:
        self.pdp_active = True

    async def disconnect(self) -> None:
        self.pdp_active = False

    def reset(self) -> None:
        self.resets += 1


@dataclass(frozen=True, slots=True)
class Wakeup:
    kind: str  # "sms" or "csd"
    sender: str

    @property
    def trigger(self) -> bytes:
        return MESSAGE_HANDLER if self.kind == "sms" else AUTO_ANSWER


def _sender_text(item: Data) -> str | None:
    try:
        first = item.items[0] if item.tag is Tag.STRUCTURE else item
        return first.octets().decode("ascii", "replace")
    except ValueTypeError:
        return None


class GprsController:
    """Drives the P3 listener according to the GPRS mode; the supervised "p3" service."""

    def __init__(
        self,
        p3: P3Service,
        config: P3Config,
        *,
        meter_clock: Clock,
        net_clock: Clock,
        equipment_id: str,
        modem: GprsModem | None = None,
    ) -> None:
        self.p3 = p3
        self.config = config
        self.meter_clock = meter_clock
        self.net_clock = net_clock
        self.equipment_id = equipment_id
        self.modem: GprsModem = modem or NoModem()
        self.wakeups: asyncio.Queue[Wakeup] = asyncio.Queue()
        self.pushes_sent = 0
        self.push_failures = 0
        self.sessions = 0
        self.heartbeat = time.monotonic()
        self._contact_epoch: datetime | None = None
        self._accepted = asyncio.Event()
        p3.on_accept.append(self._note_accept)

    # ---- settings ---------------------------------------------------------------------------
    def mode(self) -> Mode:
        if self.config.gprs_mode:
            return Mode.TRIGGERED if self.config.gprs_mode == "triggered" else Mode.ALWAYS_ON
        value = read_setting(self.p3.objects, CONFIGURATION)
        try:
            return Mode(value.items[0].integer())
        except (AttributeError, ValueTypeError, IndexError, ValueError):
            return Mode.ALWAYS_ON

    def watchdog_hours(self) -> int:
        value = read_setting(self.p3.objects, WATCHDOG)
        try:
            return int(value.integer()) if value is not None else 0
        except ValueTypeError:
            return 0

    def allowed(self, wakeup: Wakeup) -> bool:
        """Sender/caller on the white list (P3 §9.1.3-9.1.4); an empty list accepts anyone
        when `wakeup_any_sender` is set (a lab meter with no provisioned list)."""
        value = read_setting(self.p3.objects, SENDERS[wakeup.kind])
        items = value.items if value is not None and value.tag is Tag.ARRAY else ()
        if not items:
            return self.config.wakeup_any_sender
        return wakeup.sender in {_sender_text(i) for i in items}

    # ---- ctl --------------------------------------------------------------------------------
    def wakeup(self, kind: str, sender: str) -> dict[str, Any]:
        """An SMS or CSD call arrived at the modem (forwarded by the modem service)."""
        if kind not in SENDERS:
            raise WakeupRefusedError(f"wake-up kind {kind!r} is not sms or csd")
        wakeup = Wakeup(kind, sender)
        if self.mode() is not Mode.TRIGGERED:
            # GPRS CS §3.1: an always-on meter already has its PDP context; nothing to do.
            return {"accepted": False, "reason": "always-on: already online"}
        if not self.allowed(wakeup):
            log.warning("GPRS wake-up by %s from %s ignored: not on the list", kind, sender)
            return {"accepted": False, "reason": f"{sender} is not an allowed sender"}
        self.wakeups.put_nowait(wakeup)
        return {"accepted": True, "kind": kind, "sender": sender}

    # ---- main loop --------------------------------------------------------------------------
    async def run(self) -> None:
        self._contact_epoch = self.meter_clock.now()
        try:
            while True:
                self.heartbeat = time.monotonic()
                if self.mode() is Mode.ALWAYS_ON:
                    await self._online()
                    await self._check_watchdog()
                    await self._pause()
                else:
                    await self._offline()
                    await self._triggered_round()
        finally:
            await self._offline()

    async def _pause(self) -> None:
        """Wait one heartbeat (network clock) or until a wake-up arrives."""
        clock = self.net_clock
        sleeper = asyncio.ensure_future(
            clock.sleep_until(clock.now() + timedelta(seconds=HEARTBEAT_S))
        )
        getter = asyncio.ensure_future(self.wakeups.get())
        try:
            await asyncio.wait({sleeper, getter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, getter):
                task.cancel()
            if getter.done() and not getter.cancelled():
                self.wakeups.put_nowait(getter.result())

    async def _online(self) -> None:
        await self.modem.connect()  # no AT traffic when the context is already up
        await self.p3.start_listening()

    async def _offline(self) -> None:
        await self.p3.stop_listening()
        await self.modem.disconnect()

    async def _check_watchdog(self) -> None:
        hours = self.watchdog_hours()
        last = self.p3.last_contact or self._contact_epoch
        if hours <= 0 or last is None:
            return
        if self.meter_clock.now() - last >= timedelta(hours=hours):
            # P3 §8.2: "the modem is reset after a defined period of no contact with the CS".
            log.warning("GPRS connection watchdog: no CS contact for %d h, modem reset", hours)
            self.modem.reset()
            await self._offline()
            self._contact_epoch = self.meter_clock.now()
            self.p3.last_contact = None

    async def _triggered_round(self) -> None:
        while True:
            self.heartbeat = time.monotonic()
            await self._pause()
            if self.mode() is not Mode.TRIGGERED:
                return
            await self._check_watchdog()
            if not self.wakeups.empty():
                await self._session(self.wakeups.get_nowait())

    async def _session(self, wakeup: Wakeup) -> None:
        """One triggered session (GPRS CS Figures 2-5, steps 1-7)."""
        self.sessions += 1
        log.info("GPRS wake-up by %s from %s", wakeup.kind, wakeup.sender)
        self._accepted.clear()
        await self._online()  # steps 1-2: PDP context, server socket first
        await self._push(wakeup)  # steps 2a-2c: the optional "I am here" message
        # Wait inactivity_time_out for the CS to connect (GPRS CS Figures 6-7); the
        # connection's own inactivity timer then guards the session itself.
        timeout = self.p3.inactivity_s() or DEFAULT_WAIT_S
        deadline = self.net_clock.now() + timedelta(seconds=timeout)
        while not self._accepted.is_set() and self.net_clock.now() < deadline:
            await self._beat_until(self._accepted, deadline)
        if self._accepted.is_set():
            while self.p3.active is not None:  # steps 3-5: the DLMS session
                await self._beat_until(self.p3.idle, None)
        else:
            log.info("GPRS: no CS connection within %d s", timeout)
        await self._offline()  # steps 6-7: close the server socket and the PDP context

    async def _beat_until(self, event: asyncio.Event, deadline: datetime | None) -> None:
        """Wait for `event`, `deadline` or one heartbeat interval (network clock), whichever
        comes first; the heartbeat shows the supervisor this service is alive."""
        self.heartbeat = time.monotonic()
        beat = self.net_clock.now() + timedelta(seconds=HEARTBEAT_S)
        until = beat if deadline is None else min(beat, deadline)
        waiter = asyncio.ensure_future(event.wait())
        sleeper = asyncio.ensure_future(self.net_clock.sleep_until(until))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            sleeper.cancel()

    def _note_accept(self) -> None:
        self._accepted.set()

    # ---- push ("I am here") -----------------------------------------------------------------
    def push_message(self, wakeup: Wakeup) -> bytes:
        """P3 §9.3: the push_object_list values as octet strings joined by ','."""
        value = read_setting(self.p3.objects, EQUIPMENT_ID)
        try:
            equipment = value.octets() if value is not None else b""
        except ValueTypeError:
            equipment = b""
        return (equipment or self.equipment_id.encode("ascii")) + b"," + wakeup.trigger

    def destination(self) -> tuple[str, int] | None:
        value = read_setting(self.p3.objects, AttributeRef(40, PUSH_CSD_SMS, 3))
        text = ""
        try:
            if value is not None:
                text = value.items[1].octets().decode("ascii", "replace")
        except (ValueTypeError, IndexError):
            text = ""
        text = text or self.config.push_destination
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit():
            return None
        return host.strip("[]"), int(port)

    async def _push(self, wakeup: Wakeup) -> None:
        destination = self.destination()
        if destination is None:
            return
        message = self.push_message(wakeup)
        try:
            async with asyncio.timeout(PUSH_TIMEOUT_S):
                _reader, writer = await asyncio.open_connection(*destination)
                writer.write(message)
                await writer.drain()
                writer.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.wait_closed()
            self.pushes_sent += 1
            log.info("GPRS push to %s:%d: %r", *destination, message)
        except (TimeoutError, ConnectionError, OSError) as exc:
            self.push_failures += 1
            log.warning("GPRS push to %s:%d failed: %s", *destination, exc)

    def status(self) -> dict[str, Any]:
        info = self.modem.network_info()
        return {
            **self.p3.status(),
            "gprs_mode": self.mode().name.lower().replace("_", "-"),
            "pdp_active": self.modem.pdp_active,
            "signal_dbm": None if info is None else info.signal_strength_dbm,
            "modem_resets": self.modem.resets,
            "wakeup_sessions": self.sessions,
            "pushes_sent": self.pushes_sent,
            "push_failures": self.push_failures,
        }
