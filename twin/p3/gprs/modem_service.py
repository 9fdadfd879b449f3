"""The P3 communication unit as a supervised service: the AT modem, polled and listened to.

`ModemService` owns a `hardware.modem.Modem` (p3.modem = "simulated": a `ModemSim` on a pty at
STATE_DIR/modem driven through `AtModem`, so the simulation exercises the real AT driver; a
device path: `AtModem` on that tty) and:

- polls registration, signal (+CSQ) and the serving network (+COPS) every `poll_s` seconds of
  the network clock (real time, whatever the meter clock's speed), and at once when the modem
  reports a registration change (+CREG/+CGREG/+CEREG URCs);
- serves the last snapshot as `ModemStatus` for GPRS network information 0-1:94.31.4 (P3 §8.4)
  and as the display's CM flag and signal bars (DSMR-M 4.3.35-4.3.36, DSMR-G 4.2.12);
- forwards wake-ups to the GPRS controller (DSMR-G 4.3.3-4.3.4): an SMS (message handler
  0-0:2.3.0) and a CSD call, which is rejected with ATH first (auto answer 0-0:2.2.0 mode 200
  never answers; P3 §9.1.3). SMS found on the SIM at start-up (AtModem lists, reports and
  deletes them) take the same path as live ones, but a wake-up SMS older than `max_sms_age`
  (its service centre time stamp against the network clock) is dropped: see MAX_SMS_AGE;
- keeps the PDP context as the GPRS controller wants it (GPRS CS §3 steps 1 and 7) when an APN
  is configured (the simulator always has one); otherwise the OS owns the data link
  (hardware/modem.py) and the DLMS listener binds to whatever interface the OS has.

A lost port (PortError) ends `run()`; the supervisor restarts the service with backoff while
the meter keeps metering. Until the modem is open again `network_info()` is None ("no network").
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hardware.at_codec import RemoteAtError
from hardware.modem import (
    AtModem,
    Domain,
    IncomingCall,
    Modem,
    ModemEvent,
    NetworkInfo,
    Registration,
    RegistrationChanged,
    SignalLevel,
    SignalQuality,
    SmsReceived,
)
from hardware.modem_sim import ModemSim, SimState
from hardware.ports import PortError
from twin import ports
from twin.clock import Clock
from twin.config import P3Config

log = logging.getLogger(__name__)

POLL_S = 10.0  # network clock seconds between polls (a few AT lines; the supervisor's
# hung-service limit is 30 s, so the heartbeat also comes from here)
MAX_POLL_FAILURES = 3  # consecutive bad answers before the port is restarted
WAKEUP_WAIT_S = 5.0  # ctl wakeup: the simulator's URC, AT+CMGR and the forward take ms
SIM_LINK = "modem"  # the simulator's pty link in the state directory
SIM_APN = "twin.lab"  # the simulator's PDP context when no APN is configured
MAX_NUMBER = 20  # 24.008 §10.5.4.7: a called/calling number has at most 20 digits (+ '+')
NO_SIGNAL_DBM = -128  # 0-1:94.31.4 signal_strength when +CSQ says 99 (not known)
# P3 §9.1.4 asks the meter to set up a connection *now*; a head-end whose wake-up went
# unanswered (the meter was off, or out of coverage while the SMSC kept retrying) has moved on.
# One stored for more than this, e.g. by a meter that was powered down for a day, is not
# honoured: the meter calls in at its next scheduled push anyway. An hour covers a restart, a
# slow SMSC and clock skew between SMSC and meter; an SMS without a time stamp, or one from
# the future (skew), is honoured. Sender checks stay with the GPRS controller
# (twin/p3/gprs/controller.py).
MAX_SMS_AGE = timedelta(hours=1)

WakeupHandler = Callable[[str, str], Mapping[str, Any]]


class ModemUnavailableError(RuntimeError):
    """A request the configured modem cannot serve (real, absent or not open)."""


def rssi_for_dbm(dbm: int) -> int:
    """The +CSQ <rssi> nearest to `dbm` (27.007 §8.5: -113 dBm + 2 dB steps, 0..31)."""
    return max(0, min(31, round((dbm + 113) / 2)))


@dataclass(frozen=True, slots=True)
class ModemSnapshot:
    """What the last poll learned; `at` is network-clock time."""

    registration: Registration
    signal: SignalQuality
    network: NetworkInfo | None
    at: datetime

    def network_info(self) -> ports.NetworkInfo | None:
        """0-1:94.31.4 {signal dBm, base stations, network id} while registered (P3 §8.4).

        27.007 reports only the serving cell, so number_of_base_stations is 1 when its signal
        is medium or high (the attribute counts stations "with medium/high signal") else 0.
        network_id is the numeric PLMN (MCC+MNC) as ASCII, per hardware/modem.py's proposal.
        """
        if not self.registration.registered or self.network is None:
            return None
        dbm = self.signal.dbm
        stations = 1 if self.signal.level >= SignalLevel.MEDIUM else 0
        return ports.NetworkInfo(
            NO_SIGNAL_DBM if dbm is None else dbm, stations, self.network.plmn.encode("ascii")
        )


class ModemService:
    """One modem, its simulator if simulated, and the snapshot the twin reads."""

    def __init__(
        self,
        modem: Modem,
        net_clock: Clock,
        *,
        sim: ModemSim | None = None,
        apn: str = "",
        poll_s: float = POLL_S,
        max_sms_age: timedelta = MAX_SMS_AGE,
    ) -> None:
        self.modem = modem
        self.max_sms_age = max_sms_age
        self.sim = sim
        self.net_clock = net_clock
        self.apn = apn
        self.poll_s = poll_s
        self.on_wakeup: WakeupHandler | None = None
        self.snapshot: ModemSnapshot | None = None
        self.up = False
        self.heartbeat = time.monotonic()
        self.polls = 0
        self.poll_errors = 0
        self.resets = 0
        self.rejected_calls = 0
        self.stale_sms = 0
        self.wakeups: list[dict[str, Any]] = []  # the last few, for `ctl status`
        self._pdp_wanted = False
        self._pdp_up = False
        self._pdp_lock = asyncio.Lock()  # the controller and the poll loop both sync it
        self._failures = 0
        self._poll_now = asyncio.Event()
        self._waiting: dict[tuple[str, str], collections.deque[asyncio.Future[Any]]] = {}

    @property
    def description(self) -> str:
        return self.modem.description

    # ---- ModemStatus (0-1:94.31.4) and the display -------------------------------------------
    def network_info(self) -> ports.NetworkInfo | None:
        if not self.up or self.snapshot is None:
            return None
        return self.snapshot.network_info()

    @property
    def registered(self) -> bool:
        """Registered (home or roaming) at the last poll."""
        return self.snapshot is not None and self.snapshot.registration.registered

    # ---- what the GPRS controller drives -----------------------------------------------------
    @property
    def pdp_active(self) -> bool:
        """The PDP context is up (over AT), or wanted when the OS dials (no APN)."""
        return self._pdp_up if self.apn else self._pdp_wanted

    async def connect(self) -> None:
        """GPRS CS §3 step 1: PDP context up; retried by the poll loop if the modem is down."""
        self._pdp_wanted = True
        await self._sync_pdp()

    async def disconnect(self) -> None:
        """GPRS CS §3 step 7: close the PDP context."""
        self._pdp_wanted = False
        await self._sync_pdp()

    def reset(self) -> None:
        """The connection watchdog's modem reset (P3 §8.2); the controller re-dials after it."""
        self.resets += 1
        self._poll_now.set()

    async def _sync_pdp(self) -> None:
        async with self._pdp_lock:
            await self._sync_pdp_locked()

    async def _sync_pdp_locked(self) -> None:
        if not self.apn or not self.up or self._pdp_wanted == self._pdp_up:
            return
        if self._pdp_wanted and not self.registered:
            return  # no network: the poll after the registration URC (or the next) retries
        try:
            if self._pdp_wanted:
                context = await self.modem.activate_pdp(self.apn)
                log.info("P3 modem: PDP context %d up, %s", context.cid, context.address)
            else:
                await self.modem.deactivate_pdp()
                log.info("P3 modem: PDP context down")
            self._pdp_up = self._pdp_wanted
        except PortError as exc:  # refused (+CME ERROR) or port trouble: the next poll retries
            log.warning("P3 modem: PDP context not changed: %s", exc)

    # ---- ctl wakeup -------------------------------------------------------------------------
    async def inject_wakeup(self, kind: str, sender: str) -> Mapping[str, Any]:
        """Make the simulated modem receive an SMS or call and return what P3 made of it.

        The wake-up travels as on a real modem: +CMTI -> AT+CMGR/AT+CMGD, or RING/+CLIP -> ATH.
        """
        if not (0 < len(sender) <= MAX_NUMBER and sender.isascii() and sender.isprintable()):
            raise ValueError(f"sender {sender!r}: 1..{MAX_NUMBER} printable ASCII characters")
        if '"' in sender or "," in sender:
            raise ValueError(f"sender {sender!r}: no quotes or commas (27.007 <number> text)")
        if self.sim is None:
            raise ModemUnavailableError(
                f"p3.modem is a real modem ({self.description}): send it an SMS or call it"
            )
        if not self.up:
            raise ModemUnavailableError(f"{self.description} is not open yet; try again")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        waiting = self._waiting.setdefault((kind, sender), collections.deque())
        waiting.append(future)
        try:
            if kind == "sms":
                self.sim.inject_sms(sender)  # DSMR-G 4.3.3: the wake-up SMS is empty
            else:
                self.sim.inject_call(sender)
            async with asyncio.timeout(WAKEUP_WAIT_S):
                return dict(await future)
        except TimeoutError:
            raise ModemUnavailableError(
                f"{self.description} did not report the {kind} from {sender}"
            ) from None
        finally:
            with contextlib.suppress(ValueError):
                waiting.remove(future)

    # ---- the service ------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            if self.sim is not None:
                await self.sim.open()
            await self.modem.open()
            self.up, self._pdp_up, self._failures = True, False, 0
            await self._serve()
        finally:
            self.up = False
            self._pdp_up = False
            await self.modem.close()
            if self.sim is not None:
                await self.sim.close()

    async def _serve(self) -> None:
        events = asyncio.create_task(self._consume_events(), name="p3-modem.events")
        polls = asyncio.create_task(self._poll_loop(), name="p3-modem.poll")
        try:
            done, _ = await asyncio.wait({events, polls}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a PortError ends the service: the supervisor restarts it
            raise PortError(f"{self.description}: event stream ended")
        finally:
            for task in (events, polls):
                task.cancel()
            await asyncio.gather(events, polls, return_exceptions=True)

    async def _poll_loop(self) -> None:
        while True:
            self.heartbeat = time.monotonic()
            self._poll_now.clear()
            await self.poll()
            self.heartbeat = time.monotonic()  # +CGACT alone may take SLOW_TIMEOUT_S
            await self._sync_pdp()
            await self._wait(self.poll_s)

    async def _wait(self, seconds: float) -> None:
        """One poll interval on the network clock, or less if a poll is asked for."""
        clock = self.net_clock
        sleeper = asyncio.ensure_future(clock.sleep_until(clock.now() + timedelta(seconds=seconds)))
        asked = asyncio.ensure_future(self._poll_now.wait())
        try:
            await asyncio.wait({sleeper, asked}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            asked.cancel()

    async def poll(self) -> None:
        """Registration, signal and network now; a bad answer keeps the old snapshot."""
        try:
            registration = await self.modem.registration(Domain.PACKET)
            if not registration.registered:
                with contextlib.suppress(RemoteAtError):  # a 2G/3G modem has no +CEREG
                    registration = await self.modem.registration(Domain.EPS)
            signal = await self.modem.signal_quality()
            network = await self.modem.network_info() if registration.registered else None
        except RemoteAtError as exc:  # answered badly or not at all: the port is still there
            self.poll_errors += 1
            self._failures += 1
            log.warning("P3 modem poll failed (%d in a row): %s", self._failures, exc)
            if self._failures >= MAX_POLL_FAILURES:
                raise
            return
        self._failures = 0
        self.polls += 1
        if not registration.registered:
            self._pdp_up = False  # a detach drops the PDP context (27.007 §10.1.9)
        self.snapshot = ModemSnapshot(registration, signal, network, self.net_clock.now())

    async def _consume_events(self) -> None:
        async for event in self.modem.events():
            await self._handle(event)

    async def _handle(self, event: ModemEvent) -> None:
        if isinstance(event, RegistrationChanged):
            log.info("P3 modem: %s %s", event.domain.name.lower(), event.state.name.lower())
            self._poll_now.set()
            return
        if isinstance(event, IncomingCall):
            try:
                await self.modem.reject_call()  # DSMR-G 4.3.4: rejected, never answered
                self.rejected_calls += 1
            except RemoteAtError as exc:
                log.warning("P3 modem: could not reject the call: %s", exc)
            kind, sender = "csd", event.caller
        else:  # SmsReceived
            kind, sender = "sms", event.sender
        result = self._stale(event) if isinstance(event, SmsReceived) else None
        if result is None:
            result = self._forward(kind, sender)
        waiting = self._waiting.get((kind, sender))
        if waiting:
            future = waiting.popleft()
            if not future.done():
                future.set_result(result)

    def _stale(self, sms: SmsReceived) -> Mapping[str, Any] | None:
        """The refusal of a wake-up SMS older than `max_sms_age` (MAX_SMS_AGE), else None."""
        if sms.sent is None or self.net_clock.now() - sms.sent <= self.max_sms_age:
            return None
        self.stale_sms += 1
        where = "stored on the SIM" if sms.stored else "delivered late"
        log.info(
            "P3 modem: ignored a stale wake-up SMS from %s sent %s (%s, older than %s)",
            sms.sender,
            sms.sent.isoformat(),
            where,
            self.max_sms_age,
        )
        result = {"accepted": False, "reason": f"stale: sent {sms.sent.isoformat()}"}
        self.wakeups = [*self.wakeups[-4:], {"kind": "sms", "sender": sms.sender, **result}]
        return result

    def _forward(self, kind: str, sender: str) -> Mapping[str, Any]:
        if self.on_wakeup is None:
            result: Mapping[str, Any] = {"accepted": False, "reason": "no GPRS controller"}
        else:
            result = self.on_wakeup(kind, sender)
        self.wakeups = [*self.wakeups[-4:], {"kind": kind, "sender": sender, **result}]
        return result

    def status(self) -> dict[str, Any]:
        snap = self.snapshot
        info = self.network_info()
        network = snap.network if snap is not None else None
        return {
            "device": self.description,
            "simulated": self.sim is not None,
            "up": self.up,
            "registration": None if snap is None else snap.registration.name.lower(),
            "signal_dbm": None if snap is None else snap.signal.dbm,
            "signal_level": None if snap is None else snap.signal.level.name.lower(),
            "operator": None if network is None else network.operator,
            "plmn": None if network is None else network.plmn,
            "technology": None if network is None else network.technology.name,
            "cell_id": None if network is None else network.cell_id,
            "attached": info is not None,
            "apn": self.apn,
            "pdp_active": self.pdp_active,
            "polled_at": None if snap is None else snap.at.isoformat(),
            "polls": self.polls,
            "poll_errors": self.poll_errors,
            "rejected_calls": self.rejected_calls,
            "stale_sms": self.stale_sms,
            "recent_wakeups": list(self.wakeups),
        }


def open_modem_service(config: P3Config, state_dir: Path, net_clock: Clock) -> ModemService | None:
    """The modem p3.modem names, not yet opened (the service opens it); None for "none"."""
    if config.modem == "none":
        return None
    if config.modem == "simulated":
        state = SimState(rssi=rssi_for_dbm(config.signal_dbm))
        sim = ModemSim(state_dir / SIM_LINK, state, now=net_clock.now)  # SMS time stamps
        return ModemService(AtModem(sim.device), net_clock, sim=sim, apn=config.apn or SIM_APN)
    return ModemService(AtModem(config.modem), net_clock, apn=config.apn)
