"""The meter model: integrates household power into the DSMR registers, minute by minute.

Pure: time comes in as arguments (`advance(now)`), randomness from an injected
`random.Random`. The model never does I/O; what it logs (events, profile rows) waits in an
outbox that the store drains and commits.

Accounting rules (documented in docs/meter-model.md):
- Power is constant within each whole UTC minute; the tariff of a minute is the tariff at its
  start. Shift times are whole minutes, so a switch never falls inside an integration step.
- The energy registers integrate the net total over all phases ("saldering" in the meter):
  +A when the sum imports, -A when it exports. Per-phase +P/-P are shown as measured.
- Time is UTC inside; the repeated October hour is two different hours, never counted twice.
"""

from __future__ import annotations

import random
import re
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from twin.clock import is_dst, local
from twin.config import Config
from twin.meter.alarms import error_bits
from twin.meter.events import Event, EventCode
from twin.meter.gas import litres_in_hour
from twin.meter.household import OVERRIDE_TAN_PHI, Household, MinutePower
from twin.meter.profiles import (
    LOAD_PROFILE_ENTRIES,
    LOAD_PROFILE_PERIOD_S,
    STATUS_CAD,
    STATUS_DNV,
    STATUS_DST,
    STATUS_PDN,
    DailyProfileRow,
    LoadProfileRow,
    MbusHourRow,
    MbusHourStatus,
)
from twin.meter.state import (
    REGISTER_CODES,
    FailureRecord,
    GasState,
    MbusReading,
    MeterReading,
    MeterState,
)
from twin.meter.tariff import TariffProgram

FAILURE_LOG_SIZE = 10  # 1-0:99.97.0 profile_entries (P3 §5.9)
SAG_SWELL_DEFAULT_S = 10.0
# P1 Table 5-3 / P3 §5.11: 0-0:96.13.1 is an octet-string of up to 8 characters, "numeric"; the
# P1 §5.13 example sends "01 61 81", so digits grouped with spaces. 0-0:96.13.0: up to 1024
# characters; printable ASCII, as P1 sends it as the hex of ASCII (§5.5).
MESSAGE_CODE_PATTERN = r"[0-9 ]{0,8}"
# Power steps kept for the operators' chart (the web console shows the last hour of meter
# time): one per minute, plus overrides and outages within a minute.
POWER_TRACE_SIZE = 180
MESSAGE_TEXT_PATTERN = r"[\x20-\x7e]{0,1024}"


class ModelError(ValueError):
    """A request the meter model cannot carry out (bad phase, negative duration, ...)."""


@dataclass(slots=True)
class Outbox:
    """What happened since the last drain; the store commits it before anything is published."""

    events: list[Event] = field(default_factory=list)
    load_profile: list[LoadProfileRow] = field(default_factory=list)
    daily_profile: list[DailyProfileRow] = field(default_factory=list)
    monthly_profile: list[DailyProfileRow] = field(default_factory=list)
    mbus_hourly: list[MbusHourRow] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.events
            or self.load_profile
            or self.daily_profile
            or self.monthly_profile
            or self.mbus_hourly
        )

    def extend(self, later: Outbox) -> None:
        """Append what was logged after this outbox, keeping the order of both."""
        self.events.extend(later.events)
        self.load_profile.extend(later.load_profile)
        self.daily_profile.extend(later.daily_profile)
        self.monthly_profile.extend(later.monthly_profile)
        self.mbus_hourly.extend(later.mbus_hourly)


@dataclass(slots=True)
class _Window:
    """A voltage excursion on one phase until `until` (UTC epoch seconds)."""

    until: float
    volts: float


@dataclass(frozen=True, slots=True)
class PowerStep:
    """From `time` (meter time) on, the household drew `consumed` and the PV (or a negative
    load override) gave `generated` watts per phase, until the next step."""

    time: datetime
    consumed: tuple[float, ...]
    generated: tuple[float, ...]


class MeterModel:
    """One DSMR 4.2.2 E meter."""

    def __init__(
        self, config: Config, rng: random.Random, state: MeterState, program: TariffProgram
    ) -> None:
        self.config = config
        self.state = state
        self.program = program
        self._rng = rng
        self._household = Household(config.load, config.pv, config.meter.phases, rng)
        self._ts = state.time.timestamp()
        self._minute: int | None = None  # epoch minute whose power is cached
        self._power = MinutePower((0.0,) * config.meter.phases, (0.0,) * config.meter.phases)
        self._tariff = program.tariff_at(state.time)
        self._dst = is_dst(state.time)
        self._outage: tuple[float, float] | None = None  # (start, end) epoch seconds
        self._windows: dict[int, _Window] = {}
        self._override_w: float | None = None
        self.mbus_status = MbusHourStatus()  # bits of the running hour, 0-x:96.10.3
        self.outbox = Outbox()
        # The power steps of the last minutes of meter time, keyed by meter time (so a chart
        # of them is right at any clock speed), newest last.
        self.power_trace: deque[PowerStep] = deque(maxlen=POWER_TRACE_SIZE)
        self.state.averages.grid = self._grid_voltages  # voltages of steps without a window

    # ------------------------------------------------------------------ construction

    @staticmethod
    def new_state(config: Config, start: datetime) -> MeterState:
        gas = config.gas
        # The stand-in only while no P2 master reads a (simulated) gas meter on the bus.
        stand_in = gas.enabled and not config.p2.enabled
        return MeterState(
            time=start.astimezone(UTC),
            gas=GasState(gas.channel, gas.equipment_id, gas.start_m3 * 1000) if stand_in else None,
        )

    # ------------------------------------------------------------------ time

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self._ts, UTC)

    def advance(self, now: datetime) -> None:
        """Integrate up to `now`. A `now` in the past is ignored: time never runs back here."""
        target = now.timestamp()
        while self._ts < target:
            boundary = (self._ts // 60 + 1) * 60
            end = min(boundary, target)
            if self._outage is not None and self._ts < self._outage[1] < end:
                # A step ends where the supply returns: the powered rest of it is metered
                # however time was stepped (a scenario's steps, 0.5 s ticks or one jump).
                end = self._outage[1]
            self._integrate(end)
            self._ts = end
            if end == boundary:
                self._on_minute(end)
        self.state.time = self.time

    def _integrate(self, end: float) -> None:
        if self._in_outage(self._ts):
            zero = (0.0,) * self.config.meter.phases  # a dead meter draws nothing
            self._trace(zero, zero)
            return
        minute = int(self._ts // 60)
        if minute != self._minute:
            self._enter_minute(minute)
        self._trace(self._power.consumed, self._power.generated)
        net = sum(self._power.consumed) - sum(self._power.generated)
        # Whole microseconds of each step telescope exactly; milliwatts x microseconds = nJ.
        elapsed_us = round(end * 1e6) - round(self._ts * 1e6)
        direction = "import" if net >= 0 else "export"
        code = REGISTER_CODES[(direction, int(self._tariff))]
        self.state.energy_nj[code] += round(abs(net) * 1000) * elapsed_us
        if self._windows:  # a sag/swell: voltages now, and the window may end mid-step
            cuts = [w.until for w in self._windows.values()]
            self.state.averages.add(self._ts, end, self._power, self._voltages, cuts)
        else:
            self.state.averages.add_steady(self._ts, end, self._power)

    def _enter_minute(self, minute: int) -> None:
        start = datetime.fromtimestamp(minute * 60, UTC)
        here = local(start)
        self._minute = minute
        self._tariff = self.program.tariff_at_local(here)
        drawn = self._household.minute(start, here)
        self._power = drawn if self._override_w is None else self._overridden()

    def _trace(self, consumed: tuple[float, ...], generated: tuple[float, ...]) -> None:
        """A new power step from now on, if the power differs from the last step's."""
        last = self.power_trace[-1] if self.power_trace else None
        if last is None or last.consumed != consumed or last.generated != generated:
            when = datetime.fromtimestamp(self._ts, UTC)
            self.power_trace.append(PowerStep(when, consumed, generated))

    def _forget_power_after(self, new: datetime) -> None:
        """The clock goes to `new`: after a set back the steps from `new` on belong to a time
        line the meter left, so the trace (keyed by meter time) stays in time order. The
        power in force at `new` is traced again from it on."""
        while self.power_trace and self.power_trace[-1].time >= new:
            self.power_trace.pop()

    def _overridden(self) -> MinutePower:
        phases = self.config.meter.phases
        assert self._override_w is not None
        share = abs(self._override_w) / phases
        zero, spread = (0.0,) * phases, (share,) * phases
        if self._override_w < 0:
            return MinutePower(zero, spread)  # generation: unity power factor
        return MinutePower(spread, zero, tuple(s * OVERRIDE_TAN_PHI for s in spread))

    def _voltages(self, ts: float) -> tuple[float, ...]:
        """Phase voltages at `ts`: the grid's, or a sag/swell window's where one is open."""
        volts = self._grid_voltages(self._power, int(ts // 60))
        if not self._windows:
            return volts
        return tuple(
            w.volts if (w := self._windows.get(phase)) is not None and ts < w.until else v
            for phase, v in enumerate(volts)
        )

    def _grid_voltages(self, power: MinutePower, minute: int) -> tuple[float, ...]:
        """Nominal, minus the drop of the load, plus grid ripple: a pure function of the
        minute and its power, so the averages can compute it later (twin/meter/averages.py)."""
        nominal = self.config.meter.nominal_voltage_v
        volts = []
        for phase in range(self.config.meter.phases):
            net_kw = (power.consumed[phase] - power.generated[phase]) / 1000
            # Ripple of +-1 V that is a pure function of the minute: readings never draw
            # from the household's random stream, so sampling cannot change the simulation.
            ripple = ((minute * 2654435761 + phase * 40503) % 2001) / 1000 - 1
            volts.append(round(nominal - 0.6 * net_kw + ripple, 1))
        return tuple(volts)

    def _on_minute(self, ts: float) -> None:
        when = datetime.fromtimestamp(ts, UTC)
        here = local(when)
        if self._in_outage(ts - 1):
            self.state.period_flags |= STATUS_PDN | STATUS_DNV
        dst = bool(here.dst())
        if dst != self._dst:
            # P3 §4.2.1 event 3; the stamp is the time before the change.
            self._log(when - timedelta(seconds=1), EventCode.DST_CHANGE)
            self._dst = dst
        self._end_outage_if_due(ts)
        capturing = self._captures_resume(when)
        if ts % LOAD_PROFILE_PERIOD_S == 0 and capturing:
            self._capture_load_profile(when)
        if ts % 3600 == 0:
            self._capture_gas_hour(when)
            if capturing:
                self._capture_mbus_hour(when)
        if here.hour == 0 and here.minute == 0 and capturing:
            self._capture_daily(when, here.day == 1)

    # ------------------------------------------------------------------ profiles

    def _captures_resume(self, when: datetime) -> bool:
        """False while `when` is at or before the newest capture made before the clock was
        set back (`_hold_captures`): the buffers keep that row, and one row per capture
        period (P3 §6.3, §7.4 "filled monotonously"). The status bits gathered meanwhile
        (CAD|DNV of the set) go to the first row after it."""
        floor = self.state.capture_floor
        if floor is not None and when > floor:
            self.state.capture_floor = floor = None
        return floor is None

    def _hold_captures(self, new: datetime) -> None:
        """The clock goes back to `new`: no profile captures until it passes the time it had
        reached, so no row is captured twice and no interval energy between consecutive
        rows goes negative (the registers never decrease, and rows stay in time order)."""
        reached = self.time
        if new < reached:
            floor = self.state.capture_floor
            self.state.capture_floor = reached if floor is None else max(floor, reached)

    def _status(self, when: datetime) -> int:
        return self.state.period_flags | (STATUS_DST if is_dst(when) else 0)

    def _capture_load_profile(self, when: datetime) -> None:
        e = self.state.registers_wh()
        self.outbox.load_profile.append(
            LoadProfileRow(
                when,
                self._status(when),
                e["1-0:1.8.1"] + e["1-0:1.8.2"],
                e["1-0:2.8.1"] + e["1-0:2.8.2"],
            )
        )
        self.mbus_status.add(self.state.period_flags)
        self.state.period_flags = 0

    def _capture_daily(self, when: datetime, end_of_month: bool) -> None:
        e = self.state.registers_wh()
        mbus = tuple((d.channel, d.value_thousandths, d.capture) for d in self._mbus_readings())
        energy = (e["1-0:1.8.1"], e["1-0:1.8.2"], e["1-0:2.8.1"], e["1-0:2.8.2"])
        row = DailyProfileRow(when, self._status(when), energy, mbus)
        self.outbox.daily_profile.append(row)
        if end_of_month:
            # End of billing period 1 (0-0:15.0.0): midnight of the first day of every month.
            self.outbox.monthly_profile.append(row)

    def _capture_gas_hour(self, when: datetime) -> None:
        gas = self.state.gas
        if gas is None:
            return
        litres = litres_in_hour(when - timedelta(hours=1), self._rng)
        if not self._in_outage(when.timestamp() - 1):
            gas.litres += litres
        gas.capture = when
        gas.captured_litres = int(gas.litres)

    def _capture_mbus_hour(self, when: datetime) -> None:
        """0-x:24.3.0 (P3 §7.4): one row per installed channel at every whole hour, also
        through an outage or downtime (flagged PDN), so the buffer is filled monotonously."""
        rows = self.mbus_status.capture(when, self._mbus_readings(), self.state.period_flags)
        self.outbox.mbus_hourly.extend(rows)

    # ------------------------------------------------------------------ power failures

    def _in_outage(self, ts: float) -> bool:
        return self._outage is not None and self._outage[0] <= ts < self._outage[1]

    def is_powered(self, now: datetime) -> bool:
        return not self._in_outage(now.timestamp())

    def power_returns(self) -> datetime | None:
        """When the supply of the power failure in progress comes back; None if there is none."""
        return None if self._outage is None else datetime.fromtimestamp(self._outage[1], UTC)

    def power_failure(self, now: datetime, seconds: float) -> None:
        """Cut the supply for `seconds` of meter time from `now` (ctl power-failure)."""
        if seconds <= 0:
            raise ModelError("a power failure lasts a positive number of seconds")
        if self._outage is not None:
            raise ModelError("a power failure is already in progress")
        self.advance(now)
        start = now.timestamp()
        self._outage = (start, start + seconds)
        self._log(now, EventCode.POWER_DOWN)
        self.state.period_flags |= STATUS_PDN | STATUS_DNV

    def _end_outage_if_due(self, ts: float) -> None:
        if self._outage is not None and ts >= self._outage[1]:
            start, end = self._outage
            self._outage = None
            self._record_failure(start, end)

    def record_downtime(self, last_seen: datetime, now: datetime) -> None:
        """The twin itself was off from `last_seen` to `now`: a power failure, as on a real meter.

        Missed 15-minute periods are filled with PDN|DNV entries so the load profile keeps
        exactly one entry per capture period (P3 §6.3 attribute 2); the M-Bus hourly profiles
        get one PDN|DNV row per missed hour with the last value known (§7.4 "filled
        monotonously"). The 10 days replayed cover both buffers (960 quarters, 240 hours).
        """
        if now <= last_seen:
            return
        self._log(last_seen, EventCode.POWER_DOWN)
        self._outage = (last_seen.timestamp(), now.timestamp())
        self.state.period_flags |= STATUS_PDN | STATUS_DNV
        gap_start = max(self._ts, now.timestamp() - LOAD_PROFILE_PERIOD_S * LOAD_PROFILE_ENTRIES)
        self._ts = max(self._ts, gap_start - gap_start % 60)
        self.advance(now)
        self._end_outage_if_due(now.timestamp())

    def _record_failure(self, start: float, end: float) -> None:
        duration = round(end - start)
        end_time = datetime.fromtimestamp(end, UTC)
        self.state.failures_any += 1
        if duration > self.config.quality.long_failure_threshold_s:
            self.state.failures_long += 1
            self.state.failure_log.insert(0, FailureRecord(end_time, duration))
            del self.state.failure_log[FAILURE_LOG_SIZE:]
        self._log(end_time, EventCode.POWER_UP)
        self._minute = None  # draw fresh power after the supply returns

    # ------------------------------------------------------------------ operator actions

    def _check_phase(self, phase: int) -> int:
        if not 1 <= phase <= self.config.meter.phases:
            raise ModelError(f"phase must be 1..{self.config.meter.phases}, got {phase}")
        return phase - 1

    def voltage_sag(self, now: datetime, phase: int, seconds: float = SAG_SWELL_DEFAULT_S) -> None:
        index = self._check_phase(phase)
        self.advance(now)
        volts = round(self.config.quality.sag_threshold_v * 0.85, 1)
        self._windows[index] = _Window(now.timestamp() + seconds, volts)
        self.state.sags[index] += 1

    def voltage_swell(
        self, now: datetime, phase: int, seconds: float = SAG_SWELL_DEFAULT_S
    ) -> None:
        index = self._check_phase(phase)
        self.advance(now)
        volts = round(self.config.quality.swell_threshold_v * 1.05, 1)
        self._windows[index] = _Window(now.timestamp() + seconds, volts)
        self.state.swells[index] += 1

    def set_message(self, code: str, text: str) -> None:
        # P1 Table 5-3: code up to 8 characters (S16 hex), text up to 1024 (S2048 hex).
        if not re.fullmatch(MESSAGE_CODE_PATTERN, code):
            raise ModelError("message code is up to 8 digits and spaces")
        if not re.fullmatch(MESSAGE_TEXT_PATTERN, text):
            raise ModelError("message text is up to 1024 printable ASCII characters")
        self.state.message_code = code
        self.state.message_text = text

    def set_load_override(self, now: datetime, watts: float | None) -> None:
        """Force the net power (W, negative = export) until cleared with None."""
        capacity = self.config.meter.max_power_w
        # NaN fails the comparison too: it would stop the integration for good.
        if watts is not None and not -capacity <= watts <= capacity:
            raise ModelError(
                f"the meter carries {capacity:.10g} W at most (phases x Imax x nominal"
                f" voltage), so a load from {-capacity:.10g} to {capacity:.10g} W; got {watts}"
            )
        self.advance(now)
        self._override_w = watts
        self._minute = None

    def tamper(self, now: datetime, code: int = EventCode.TERMINAL_COVER_REMOVED) -> None:
        if not 40 <= code <= 47:
            raise ModelError(f"fraud events are codes 40..47, got {code}")
        self.advance(now)
        self._log(now, code)

    def set_cloudiness(self, now: datetime, cloudiness: float) -> None:
        """The weather for the PV from `now` on (0 clear skies .. 1 heavily clouded); it
        replaces `[pv] cloudiness` until the next start or change."""
        if not 0 <= cloudiness <= 1:  # NaN fails too
            raise ModelError(f"cloudiness is from 0 to 1, got {cloudiness}")
        self.advance(now)
        self._household.set_cloudiness(cloudiness)

    def set_admin_state(self, value: int) -> None:
        if value not in (0, 1, 2):
            raise ModelError("administrative state is 0 (undefined), 1 (off) or 2 (on)")
        self.state.admin_state = value

    def set_tariff_program(self, now: datetime, program: TariffProgram) -> None:
        self.advance(now)
        self.program = program
        self._minute = None
        self._log(now, EventCode.TARIFF_TIMES_ACTIVATED)

    def clock_adjusted(self, old: datetime, new: datetime) -> None:
        """The meter clock was set from `old` to `new` (P3 clock set; events 4 and 5)."""
        self.advance(old)
        self._log(old, EventCode.CLOCK_ADJUSTED_OLD)
        self._log(new, EventCode.CLOCK_ADJUSTED_NEW)
        self.state.period_flags |= STATUS_CAD | STATUS_DNV
        # Energy is not integrated over a jump forward; after a jump back it is integrated
        # again as real time passes, so the registers still never decrease.
        self._hold_captures(new)
        self._forget_power_after(new)
        self._ts = new.timestamp()
        self._minute = None
        self.state.time = self.time

    def clock_moved(self, new: datetime) -> None:
        """A clock synchronisation within the time shift limit: no events, no status bits."""
        self._hold_captures(new)
        self._forget_power_after(new)
        self._ts = new.timestamp()
        self._minute = None
        self.state.time = self.time

    def period_status(self, now: datetime) -> int:
        """AMR profile status of the running 15-minute period (P3 §4.2.5, 0-0:96.10.2)."""
        return self._status(now)

    def mbus_period_status(self, channel: int, now: datetime) -> int:
        """AMR profile status of one M-Bus channel's running hour (P3 §4.2.5, 0-x:96.10.3)."""
        device = next((d for d in self._mbus_readings() if d.channel == channel), None)
        if device is None:
            return 0
        return self.mbus_status.status(channel, now, device.capture, self.state.period_flags)

    def _log(self, when: datetime, code: int) -> None:
        self.outbox.events.append(Event.of(when, code))
        self._flag(code)

    def _flag(self, code: int) -> None:
        """The error and (filtered) alarm register bits of an event (P3 §4.2.3, §4.2.4)."""
        raised, cleared = error_bits(code)
        state = self.state
        state.error_register = (state.error_register | raised) & ~cleared
        state.alarm_register |= raised & state.alarm_filter

    def log_event(self, when: datetime, code: int) -> None:
        """Log an event raised outside the model (M-Bus, communication sessions, P3)."""
        self._log(when, code)
        self.mbus_status.event(code)

    # ------------------------------------------------------------------ M-Bus and alarms

    def set_mbus_value(self, reading: MbusReading) -> None:
        """The value the M-Bus master read from one channel (P2); replaces the previous one."""
        if not 1 <= reading.channel <= 4:
            raise ModelError(f"M-Bus channels are 1..4, got {reading.channel}")
        self.state.mbus[reading.channel] = reading

    def remove_mbus_device(self, channel: int) -> None:
        self.state.mbus.pop(channel, None)

    def set_alarms(self, bits: int) -> None:
        """Raise bits of the alarm register 0-0:97.98.0 (P3 §4.2.4); they stay until cleared.
        Events raise their bits themselves (`log_event`); this is for tests and tools."""
        self.state.alarm_register |= bits

    def clear_alarms(self, mask: int) -> None:
        self.state.alarm_register &= ~mask

    def clear_errors(self, mask: int) -> None:
        """The management client clears error register bits (P3 §4.2.3)."""
        self.state.error_register &= ~mask

    def set_alarm_filter(self, mask: int) -> None:
        """0-0:97.98.10: which events are alarms from now on (bits already raised stay)."""
        self.state.alarm_filter = mask & 0xFFFFFFFF

    def drain(self) -> Outbox:
        out, self.outbox = self.outbox, Outbox()
        return out

    # ------------------------------------------------------------------ snapshot

    def reading(self, now: datetime) -> MeterReading:
        self.advance(now)
        powered = self.is_powered(now)
        phases = self.config.meter.phases
        if powered and self._minute != int(self._ts // 60):
            self._enter_minute(int(self._ts // 60))
        consumed = self._power.consumed if powered else (0.0,) * phases
        generated = self._power.generated if powered else (0.0,) * phases
        net = [c - g for c, g in zip(consumed, generated, strict=True)]
        total = sum(net)
        volts = self._voltages(now.timestamp()) if powered else (0.0,) * phases
        return MeterReading(
            time=now,
            powered=powered,
            phases=phases,
            energy_wh=self.state.registers_wh(),
            tariff=self._tariff if powered else self.program.tariff_at(now),
            import_w=round(max(total, 0.0)),
            export_w=round(max(-total, 0.0)),
            import_w_phase=tuple(round(max(n, 0.0)) for n in net),
            export_w_phase=tuple(round(max(-n, 0.0)) for n in net),
            current_a=tuple(
                round(abs(n) / v) if v > 0 else 0 for n, v in zip(net, volts, strict=True)
            ),
            voltage_v=volts,
            failures_any=self.state.failures_any,
            failures_long=self.state.failures_long,
            failure_log=tuple(self.state.failure_log),
            sags=tuple(self.state.sags[:phases]),
            swells=tuple(self.state.swells[:phases]),
            message_code=self.state.message_code,
            message_text=self.state.message_text,
            admin_state=self.state.admin_state,
            mbus=self._mbus_readings(),
            load_override_w=self._override_w,
            equipment_id=self.config.meter.equipment_id,
            averages=self.state.averages.published(now.timestamp(), phases),
        )

    def _mbus_readings(self) -> tuple[MbusReading, ...]:
        """Devices read over P2, plus the gas stand-in while no P2 master runs."""
        devices = dict(self.state.mbus)
        gas = self.state.gas
        if gas is not None and gas.channel not in devices:
            devices[gas.channel] = MbusReading(
                gas.channel, 3, gas.equipment_id, gas.captured_litres, gas.capture
            )
        return tuple(devices[channel] for channel in sorted(devices))
