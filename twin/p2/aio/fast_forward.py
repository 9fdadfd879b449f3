"""The simulated gas meter through `ctl advance` (twin/fast_forward.py).

The span passes for the gas meter as for the E meter: its own clock moves the same span, it
captures its value at every whole hour of that clock from the household gas profile, drawn
hour by hour in order from its own random stream (`GasMeterTwin.capture`, as when it runs), and
the E meter takes each value at the hourly read-out time, `read_delay` after the hour (P2
§4.3, MAIN DSMR-M 4.5.5), as the master's read would. So the M-Bus hourly rows (0-x:24.3.0,
P3 §7.4) and the daily values hold the increasing values the bus would have carried.

The frames themselves are not exchanged during the span: no frame counter or access number
moves, which P2 §5.2 allows (a counter only has to increase from one frame to the next), and
no AES work or store write per hour slows the span down. The master's next real read, right
after the span, continues the exchange. A gas meter that is off the bus (`ctl gas detach`)
is not read: its rows keep the last value, flagged DNV as an unrefreshed value always is.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from twin.clock import OffsetClock
from twin.meter.state import MbusReading
from twin.metering import Meter
from twin.p2.aio.gasmeter import GasMeterTwin
from twin.p2.aio.service import P2Service
from twin.store import StoreError

log = logging.getLogger(__name__)


class GasFastForward:
    """The `Waypoint` (twin/fast_forward.py) of the P2 master reading the simulated gas meter."""

    def __init__(
        self, gas: GasMeterTwin, gas_clock: OffsetClock, service: P2Service, meter: Meter
    ) -> None:
        self.gas = gas
        self.gas_clock = gas_clock
        self.service = service
        self.meter = meter

    def next_due(self, after: datetime) -> datetime | None:
        return self.service.schedule.read_time_after(after)

    def reach(self, when: datetime, passed: timedelta) -> None:
        device = self.gas.identity.device
        channel = next((c for c in self.service.channels if c.device == device), None)
        if channel is None or not self.gas.attached:
            return
        self.gas.held = True
        # The gas meter's time at E-meter time `when`: both clocks run on the same base (the
        # gas meter's own offset is its drift, kept by the slave), neither has moved yet.
        self.gas.capture_span(when + (self.gas_clock.now() - self.meter.clock.now()))
        reading = self.gas.slave.snapshot.reading
        if reading is None:
            return
        litres, captured = reading
        value = MbusReading(
            channel.number,
            channel.device.device_type,
            channel.equipment_id or self.gas.identity.equipment_id,
            litres,
            captured,
        )
        self.meter.model.set_mbus_value(value)

    def finish(self, passed: timedelta) -> None:
        self.gas.held = False
        if passed <= timedelta(0):
            return
        self.gas_clock.pass_time(passed)
        try:
            self.gas.save()
        except StoreError as err:
            # The gas meter saves again before its next answer leaves; nothing it sent is lost.
            log.warning("gas meter state not saved after the advance: %s", err)
