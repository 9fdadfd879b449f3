"""The meter's persistent state and the read-only snapshot that ports publish.

`MeterState` is everything a checkpoint must keep so a restart continues where the meter was.
`MeterReading` is an immutable view at one instant: the P1 telegram, `ctl status`, P3 and the
display all render from it, through the OBIS catalogue.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from twin.meter.alarms import FACTORY_ALARM_FILTER
from twin.meter.averages import NO_AVERAGES, AverageState, AverageValues
from twin.meter.tariff import Tariff

ADMIN_UNDEFINED = 0
ADMIN_OFF = 1  # P3 0-1:94.31.0 value 1: administratively off (opt out)
ADMIN_ON = 2  # value 2: administratively on (default)

# Energy is kept exactly, as an integer count of nanojoules (mW x us), so no rounding error
# can ever accumulate; registers show whole Wh, floored.
NJ_PER_WH = 3_600 * 10**9

# Registers: (direction, tariff) -> OBIS code of the energy register.
REGISTER_CODES = {
    ("import", 1): "1-0:1.8.1",
    ("import", 2): "1-0:1.8.2",
    ("export", 1): "1-0:2.8.1",
    ("export", 2): "1-0:2.8.2",
}


@dataclass(slots=True)
class FailureRecord:
    """One entry of the long power failure log 1-0:99.97.0: end time and duration."""

    end: datetime
    duration_s: int


@dataclass(slots=True)
class GasState:
    """The stand-in for a gas meter on M-Bus until P2 reads a real one."""

    channel: int
    equipment_id: str
    litres: float
    capture: datetime | None = None  # UTC whole hour of the last hourly value
    captured_litres: int = 0


@dataclass(slots=True)
class MeterState:
    """Everything the store checkpoints. Energy in nJ per register, never decreasing."""

    time: datetime
    energy_nj: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(REGISTER_CODES.values(), 0)
    )
    failures_any: int = 0
    failures_long: int = 0
    failure_log: list[FailureRecord] = field(default_factory=list)
    sags: list[int] = field(default_factory=lambda: [0, 0, 0])
    swells: list[int] = field(default_factory=lambda: [0, 0, 0])
    message_code: str = ""
    message_text: str = ""
    admin_state: int = ADMIN_ON
    gas: GasState | None = None
    mbus: dict[int, MbusReading] = field(default_factory=dict)
    alarm_register: int = 0  # 0-0:97.98.0 (P3 §4.2.4)
    error_register: int = 0  # 0-0:97.97.0 (P3 §4.2.3)
    alarm_filter: int = FACTORY_ALARM_FILTER  # 0-0:97.98.10
    averages: AverageState = field(default_factory=AverageState)  # P3 §6.4, 10-minute values
    # After the clock was set back: the profiles already hold rows up to this time, so no
    # capture happens at or before it (one entry per capture period, P3 §6.3, §7.4).
    capture_floor: datetime | None = None
    # AMR status bits gathered for the running 15-minute period (P3 §4.2.5): a CAD or PDN of
    # the period still reaches its row when the twin restarts before the row is captured.
    period_flags: int = 0

    def wh(self, code: str) -> int:
        """A register in whole Wh, as published."""
        return self.energy_nj[code] // NJ_PER_WH

    def registers_wh(self) -> dict[str, int]:
        return {code: self.wh(code) for code in self.energy_nj}

    def to_record(self) -> dict[str, Any]:
        # Field by field, not asdict(self): that would deep-copy the averages' step records
        # only to replace them, and a commit serializes the state on the event loop.
        record: dict[str, Any] = {
            f.name: getattr(self, f.name) for f in fields(self) if f.name != "averages"
        }
        record["energy_nj"] = dict(self.energy_nj)
        record["sags"], record["swells"] = list(self.sags), list(self.swells)
        record["gas"] = None if self.gas is None else asdict(self.gas)
        record["time"] = self.time.isoformat()
        record["failure_log"] = [
            {"end": f.end.isoformat(), "duration_s": f.duration_s} for f in self.failure_log
        ]
        if self.gas is not None:
            record["gas"]["capture"] = self.gas.capture.isoformat() if self.gas.capture else None
        # Field by field too: asdict deep-copies the capture time only to replace it.
        record["mbus"] = {
            str(channel): {
                "channel": d.channel,
                "device_type": d.device_type,
                "equipment_id": d.equipment_id,
                "value_thousandths": d.value_thousandths,
                "capture": d.capture.isoformat() if d.capture else None,
            }
            for channel, d in self.mbus.items()
        }
        record["averages"] = self.averages.to_record()
        record["capture_floor"] = self.capture_floor.isoformat() if self.capture_floor else None
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> MeterState:
        gas = record.get("gas")
        return cls(
            time=_utc(record["time"]),
            energy_nj={k: int(v) for k, v in record["energy_nj"].items()},
            failures_any=int(record["failures_any"]),
            failures_long=int(record["failures_long"]),
            failure_log=[
                FailureRecord(_utc(f["end"]), int(f["duration_s"])) for f in record["failure_log"]
            ],
            sags=list(record["sags"]),
            swells=list(record["swells"]),
            message_code=str(record["message_code"]),
            message_text=str(record["message_text"]),
            admin_state=int(record["admin_state"]),
            mbus={
                int(channel): MbusReading(
                    channel=int(d["channel"]),
                    device_type=int(d["device_type"]),
                    equipment_id=str(d["equipment_id"]),
                    value_thousandths=int(d["value_thousandths"]),
                    capture=_utc(d["capture"]) if d["capture"] else None,
                )
                for channel, d in record.get("mbus", {}).items()
            },
            alarm_register=int(record.get("alarm_register", 0)),
            error_register=int(record.get("error_register", 0)),
            alarm_filter=int(record.get("alarm_filter", FACTORY_ALARM_FILTER)),
            averages=AverageState.from_record(record.get("averages")),
            capture_floor=_utc(floor) if (floor := record.get("capture_floor")) else None,
            period_flags=int(record.get("period_flags", 0)),
            gas=None
            if gas is None
            else GasState(
                channel=int(gas["channel"]),
                equipment_id=str(gas["equipment_id"]),
                litres=float(gas["litres"]),
                capture=_utc(gas["capture"]) if gas["capture"] else None,
                captured_litres=int(gas["captured_litres"]),
            ),
        )


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class MbusReading:
    """What the E meter knows of one M-Bus device: P1 0-n:24.1.0, 0-n:96.1.0, 0-n:24.2.1."""

    channel: int
    device_type: int  # 3 = gas (EN 13757-3 medium code)
    equipment_id: str
    value_thousandths: int  # m3 * 1000 for gas
    capture: datetime | None


@dataclass(frozen=True, slots=True)
class MeterReading:
    """An immutable snapshot of the meter at `time`, with values at their published resolution."""

    time: datetime
    powered: bool
    phases: int
    energy_wh: dict[str, int]  # OBIS code -> whole Wh (floored, so never above the register)
    tariff: Tariff
    import_w: int  # 1-0:1.7.0
    export_w: int  # 1-0:2.7.0
    import_w_phase: tuple[int, ...]  # 1-0:21.7.0 / 41.7.0 / 61.7.0
    export_w_phase: tuple[int, ...]  # 1-0:22.7.0 / 42.7.0 / 62.7.0
    current_a: tuple[int, ...]  # 1-0:31.7.0 / 51.7.0 / 71.7.0
    voltage_v: tuple[float, ...]
    failures_any: int
    failures_long: int
    failure_log: tuple[FailureRecord, ...]  # most recent first
    sags: tuple[int, ...]
    swells: tuple[int, ...]
    message_code: str
    message_text: str
    admin_state: int
    mbus: tuple[MbusReading, ...]
    load_override_w: float | None
    equipment_id: str
    averages: AverageValues = NO_AVERAGES  # of the last completed 10 minutes (P3 §6.4)
