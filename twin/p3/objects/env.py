"""What every object builder gets: the meter, the persisted attributes and the ports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from twin.meter.state import MeterReading
from twin.metering import Meter
from twin.p3.objects.comlog import ComLog
from twin.p3.objects.ports import KeyService, PushPort
from twin.p3.objects.simple import AttributeStore
from twin.ports import MbusPort, ModemStatus
from twin.store import Store


@dataclass(frozen=True, slots=True)
class Env:
    meter: Meter
    attrs: AttributeStore
    keys: KeyService
    mbus: MbusPort | None
    modem: ModemStatus | None
    state_dir: Path
    comlog: ComLog
    push: PushPort | None = None  # push setups' method 1 (P3 §9.3); None: temporary-failure

    def reading(self) -> MeterReading:
        """A committed snapshot (commit before publish, metering.py)."""
        return self.meter.publish()

    def energy(self) -> dict[str, int]:
        """The committed energy registers (Wh) of that snapshot, without the rest of it."""
        return self.meter.published_energy()

    def store(self) -> Store:
        """The store after everything up to now is committed (profiles, events)."""
        self.meter.publish()
        return self.meter.store
