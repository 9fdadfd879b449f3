"""GPRS behaviour of the P3 communication unit (DSMR GPRS CS §3, P3 §8-9).

- Always-on (configuration object 0-1:94.31.3 GPRS_operation_mode 1): the PDP context stays up
  and the DLMS server socket listens all the time (GPRS CS §3.1).
- Triggered (mode 2): nothing listens until a push opens the connection.
- Pushes (P3 §9): every trigger ends in the push method of a push setup (class 40), which
  reaches this controller as the object model's `PushPort` (`push`, through the wiring's
  relay): invoked by the CS, by the push script table 0-0:10.0.108, or by a trigger's script.
  Triggers (twin/p3/gprs/push_triggers.py, push_wakeup.py), looked at when something they read
  may have changed (an invoked push, committed events, a change of the alarm register, the end of
  an association, a clock set) and when the meter clock reaches the next execution time: the
  push scheduler 0-0:15.0.4 (script 1 -> 0-0:25.9.0); the register monitor 0-0:16.1.0 on the
  alarm register (script 2 -> 0-1:25.9.0), compared afresh at start and after every simulated
  power failure (P3 §9.1.2); an SMS from
  a listed sender (message handler 0-0:2.3.0, §9.1.4) or a CSD call from a listed caller
  (auto answer 0-0:2.2.0, mode 200: rejected, not answered; DSMR-G 4.3.4) runs the sender's
  script (default script 3 -> 0-2:25.9.0). Planning and attempts: twin/p3/gprs/push_runner.py.
- A push starts at its randomised moment within the communication window (P3 §9.3,
  twin/p3/gprs/push_time.py; meter clock) and runs alone: the first push is finalized (sockets
  closed, PDP context down in triggered mode) before the next starts. One attempt: PDP context
  up, server socket open *first* ("at the same time ... to prevent missing TCP connections",
  GPRS CS §3.1 after Figure 5), then the optional TCP message (the push_object_list values
  joined by ',', twin/p3/gprs/push.py) to send_destination; a failed step is retried after
  repetition_delay (network clock) up to number_of_retries times while the window is open.
  In triggered mode the meter then waits `inactivity_time_out` for the CS to connect (GPRS CS
  Figures 6-7), serves the session and closes socket and PDP context; in always-on mode the
  listener simply stays up. An empty destination sends no message; for the alarm setup it
  disables the push (P3 §9.3); the CSD/SMS setup falls back to p3.push_destination.
- Connection watchdog 0-1:94.31.2 (P3 §8.2, hours): no CS association for that long resets the
  modem (PDP context and listener re-established). Measured on the meter clock.
- The modem's signal and network feed GPRS network information 0-1:94.31.4 (`ModemStatus`).

Bad settings never stop the controller: they are logged and the push is skipped. Idle, the
controller sleeps until one of those wake-ups or the connection watchdog's deadline: no poll
(issue 12, cost follows work); the supervisor sees it waiting, not hung (`liveness`).

The modem is a `GprsModem`: twin/p3/gprs/modem_service.py's `ModemService` (the AT driver on a real
modem or on the simulator; wake-ups reach `wakeup()` from its SMS and call indications), or
`NoModem` when p3.modem = "none" (no network information; the OS's network carries P3).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import random
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from twin.clock import Clock
from twin.config import P3Config
from twin.p3.dlms.cosem import ActionResult, AttributeRef
from twin.p3.gprs.push_runner import PushRunner
from twin.p3.gprs.push_wakeup import SENDERS, Wakeup, WakeupRefusedError, listening, sender_script
from twin.p3.objects.base import obis_bytes
from twin.p3.objects.settings import read_data
from twin.p3.objects.values import ValueTypeError
from twin.p3.service import HEARTBEAT_S, P3Service
from twin.ports import ModemStatus, NetworkInfo, PortResult

__all__ = ["SENDERS", "GprsController", "GprsModem", "Mode", "NoModem", "WakeupRefusedError"]

log = logging.getLogger(__name__)

CONFIGURATION = AttributeRef(1, obis_bytes("0-1:94.31.3"), 2)
WATCHDOG = AttributeRef(1, obis_bytes("0-1:94.31.2"), 2)
DEFAULT_WAIT_S = 300  # P3 Table 3-1 default inactivity_time_out


class Mode(enum.IntEnum):
    """GPRS_operation_mode of the configuration object (P3 §8.3)."""

    ALWAYS_ON = 1
    TRIGGERED = 2


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


class GprsController:
    """Drives the P3 listener according to the GPRS mode and runs the pushes; the supervised
    "p3" service and (through `push`) the object model's `PushPort`."""

    def __init__(
        self,
        p3: P3Service,
        config: P3Config,
        *,
        meter_clock: Clock,
        net_clock: Clock,
        equipment_id: str,
        modem: GprsModem | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.p3 = p3
        self.config = config
        self.meter_clock = meter_clock
        self.net_clock = net_clock
        self.equipment_id = equipment_id
        self.modem: GprsModem = modem or NoModem()
        self.pushes = PushRunner(
            p3.objects,
            meter_clock=meter_clock,
            net_clock=net_clock,
            rng=rng or random.Random(),
            equipment_id=equipment_id.encode("ascii", "replace"),
            fallback_destination=config.push_destination,
            powered=p3.meter.is_powered,
            power_ups=lambda: p3.meter.model.state.failures_any,
        )
        self.sessions = 0
        self.heartbeat = time.monotonic()
        self._waiting = False  # asleep until a wake-up: nothing to do, so not hung
        self._offline_mode: Mode | None = None
        self._contact_epoch: datetime | None = None
        self._accepted = asyncio.Event()
        p3.on_accept.append(self._accepted.set)
        # Look at the triggers at once, not at the next heartbeat, when what they read may
        # have changed: the CS wrote settings (execution time, cleared alarms) or the meter
        # logged events (alarm register bits, P3 §9.1.2) — an accelerated meter clock would
        # otherwise run on for many meter minutes first. An association that only read
        # changed nothing they read: it does not wake the controller (a fleet's head-end
        # reads thousands of meters a minute).
        self._written = False  # a SET or ACTION since the last end of an association
        p3.objects.on_change.append(self._cs_wrote)
        p3.on_release.append(self._association_ended)
        p3.meter.on_events.append(self.pushes.arrived.set)

    def _cs_wrote(self) -> None:
        self._written = True

    def _association_ended(self) -> None:
        if self._written:
            self._written = False
            self.pushes.arrived.set()

    # ---- settings ---------------------------------------------------------------------------
    def mode(self) -> Mode:
        if self.config.gprs_mode:
            return Mode.TRIGGERED if self.config.gprs_mode == "triggered" else Mode.ALWAYS_ON
        value = read_data(self.p3.objects, CONFIGURATION)
        try:
            return Mode(value.items[0].integer()) if value is not None else Mode.ALWAYS_ON
        except (ValueTypeError, IndexError, ValueError):
            return Mode.ALWAYS_ON

    def watchdog_hours(self) -> int:
        value = read_data(self.p3.objects, WATCHDOG)
        try:
            return int(value.integer()) if value is not None else 0
        except ValueTypeError:
            return 0

    # ---- triggers ---------------------------------------------------------------------------
    def push(self, setup_logical_name: bytes) -> PortResult:
        """`PushPort` (through the wiring's relay): push method 1 of a push setup."""
        return self.pushes.push(setup_logical_name)

    def wakeup(self, kind: str, sender: str) -> dict[str, Any]:
        """An SMS or CSD call arrived at the modem (forwarded by the modem service)."""
        wakeup = Wakeup(kind, sender)  # WakeupRefusedError for another kind
        if self.mode() is not Mode.TRIGGERED:
            # GPRS CS §3.1: an always-on meter already has its PDP context; nothing to do.
            return {"accepted": False, "reason": "always-on: already online"}
        if not listening(self.p3.objects, wakeup, self.meter_clock.now()):
            log.warning(
                "GPRS wake-up by %s from %s ignored: outside the listening window", kind, sender
            )
            return {"accepted": False, "reason": "outside the listening window"}
        any_sender = self.config.wakeup_any_sender
        script = sender_script(self.p3.objects, wakeup, any_sender=any_sender)
        if script is None:
            log.warning("GPRS wake-up by %s from %s ignored: not on the list", kind, sender)
            return {"accepted": False, "reason": f"{sender} is not an allowed sender"}
        log.info("GPRS wake-up by %s from %s", kind, sender)
        result = self.pushes.run_script(script, self.meter_clock.now(), wakeup.trigger)
        if result is not ActionResult.SUCCESS:
            return {"accepted": False, "reason": f"script {script.selector}: {result.name}"}
        return {"accepted": True, "kind": kind, "sender": sender}

    # ---- main loop --------------------------------------------------------------------------
    async def run(self) -> None:
        self._contact_epoch = self.meter_clock.now()
        try:
            while True:
                self.heartbeat = time.monotonic()
                self.pushes.poll()
                await self._settle(self.mode())
                if await self._check_watchdog():
                    continue  # the modem was reset: back online at once (always-on)
                job = self.pushes.queue.due(self.meter_clock.now())
                if job is not None:
                    await self.pushes.execute(job, self)
                else:
                    await self._pause()
        finally:
            await self.offline()

    async def _settle(self, mode: Mode) -> None:
        """Always-on: online (no AT traffic when already up). Triggered: offline once."""
        if mode is Mode.ALWAYS_ON:
            self._offline_mode = None
            await self.online()
        elif self._offline_mode is not mode:
            self._offline_mode = mode
            await self.offline()

    async def _pause(self) -> None:
        """Sleep until a push is invoked or something the triggers read changed (`arrived`),
        or the next planned push, scheduler execution or connection watchdog deadline (meter
        clock; a clock set ends those waits early, so they are planned again). No poll: an
        idle meter costs nothing (issue 12)."""
        waits: list[Coroutine[Any, Any, object]] = [self.pushes.arrived.wait()]
        wakes = [w for w in (self.pushes.next_wake(), self.watchdog_due()) if w is not None]
        if wakes:
            waits.append(self.meter_clock.sleep_until(min(wakes)))
        self._waiting = True
        try:
            await _first(waits)
        finally:
            self._waiting = False
            self.heartbeat = time.monotonic()

    def liveness(self) -> float:
        """The supervisor's heartbeat (time.monotonic()): infinite while the controller waits
        for a wake-up, since an idle controller is not hung; else its last progress."""
        return math.inf if self._waiting else self.heartbeat

    def watchdog_due(self) -> datetime | None:
        """When the connection watchdog resets the modem without CS contact (meter clock)."""
        hours = self.watchdog_hours()
        last = self.p3.last_contact or self._contact_epoch
        if hours <= 0 or last is None:
            return None
        return last + timedelta(hours=hours)

    async def _check_watchdog(self) -> bool:
        """Reset the modem if the watchdog's deadline passed; True if it did."""
        due = self.watchdog_due()
        if due is None or self.meter_clock.now() < due:
            return False
        # P3 §8.2: "the modem is reset after a defined period of no contact with the CS".
        hours = self.watchdog_hours()
        log.warning("GPRS connection watchdog: no CS contact for %d h, modem reset", hours)
        self.modem.reset()
        await self.offline()
        self._contact_epoch = self.meter_clock.now()
        self.p3.last_contact = None
        return True

    # ---- `Link` for the push attempts -------------------------------------------------------
    def triggered(self) -> bool:
        return self.mode() is Mode.TRIGGERED

    def pdp_active(self) -> bool:
        return self.modem.pdp_active

    async def online(self) -> None:
        self._accepted.clear()  # a CS connection from now on answers this push
        await self.modem.connect()  # no AT traffic when the context is already up
        await self.p3.start_listening()

    async def offline(self) -> None:
        await self.p3.stop_listening()
        await self.modem.disconnect()

    async def serve(self, opened: datetime) -> None:
        """Wait inactivity_time_out from the socket opening for the CS to connect (GPRS CS
        Figures 6-7); the connection's own inactivity timer then guards the session."""
        self.sessions += 1
        timeout = self.p3.inactivity_s() or DEFAULT_WAIT_S
        deadline = opened + timedelta(seconds=timeout)
        while not self._accepted.is_set() and self.net_clock.now() < deadline:
            await self._beat_until(self._accepted, deadline)
        if not self._accepted.is_set():
            log.info("GPRS: no CS connection within %d s", timeout)
            return
        while self.p3.active is not None:  # steps 3-5: the DLMS session
            await self._beat_until(self.p3.idle, None)

    async def sleep(self, until: datetime) -> None:
        never = asyncio.Event()
        while self.net_clock.now() < until:
            await self._beat_until(never, until)

    async def _beat_until(self, event: asyncio.Event, deadline: datetime | None) -> None:
        """Wait for `event`, `deadline` or one heartbeat interval (network clock), whichever
        comes first; the heartbeat shows the supervisor this service is alive, and triggers
        keep being polled (their pushes wait for the running one to finish)."""
        self.heartbeat = time.monotonic()
        self.pushes.poll()
        beat = self.net_clock.now() + timedelta(seconds=HEARTBEAT_S)
        until = beat if deadline is None else min(beat, deadline)
        await _first([event.wait(), self.net_clock.sleep_until(until)])

    def status(self) -> dict[str, Any]:
        info = self.modem.network_info()
        return {
            **self.p3.status(),
            "gprs_mode": self.mode().name.lower().replace("_", "-"),
            "pdp_active": self.modem.pdp_active,
            "signal_dbm": None if info is None else info.signal_strength_dbm,
            "modem_resets": self.modem.resets,
            "wakeup_sessions": self.sessions,
            **self.pushes.status(),
        }


async def _first(waits: list[Coroutine[Any, Any, Any]]) -> None:
    """Run the waits until the first one completes; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
