"""What the P2 service does with the master's events: the meter model, keys, clock syncs.

- A new device (P2 §8.3.1) gets a generated User key and a first contact: keyed (then read
  and synced, P2 Fig. 8) or read at once, so P1 has its value straight away.
- A reading goes to the model with the G meter's UTC capture time (P2 §4.3).
- M-Bus events 100-136 go to the M-Bus event log; the model sets the error and alarm
  register bits of comm error, fraud and new device (twin/meter/alarms.py); a channel
  answering again is a communication restart and wants a clock sync (P2 §6.2.1).
- Acknowledged key changes and clock syncs settle the pending key and the sync bookkeeping.
"""

from __future__ import annotations

import functools
import logging
from collections import deque
from datetime import datetime

from twin.meter.state import MbusReading
from twin.metering import Meter
from twin.p2.aio.bus_requests import Job
from twin.p2.aio.clock_sync import ClockSyncs
from twin.p2.aio.keying import PendingKeys
from twin.p2.master import MbusMaster
from twin.p2.master_events import (
    CommandAcknowledged,
    DeviceInstalled,
    MasterEvent,
    MbusEvent,
    MbusEventKind,
    Reading,
    ResponseRejected,
    ScanFinished,
)

log = logging.getLogger(__name__)


class MasterEventHandler:
    """Handles the master's events; `requests` is the service's job queue."""

    def __init__(
        self, meter: Meter, keys: PendingKeys, syncs: ClockSyncs, requests: deque[Job]
    ) -> None:
        self.meter = meter
        self.keys = keys
        self.syncs = syncs
        self._requests = requests
        self.rejected = 0
        self.readings = 0

    def handle(self, events: tuple[MasterEvent, ...]) -> bytes:
        """Act on `events`; returns a frame to send next, or b""."""
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
        self.keys.generate(event.channel, event.device)
        # The master is still scanning address 0: the first contact waits until it is idle,
        # so a clock sync never carries a time that went stale in the queue.
        self._requests.append(functools.partial(self._first_contact, event.channel))
        return b""

    def _first_contact(self, channel: int, master: MbusMaster, now: datetime) -> bytes:
        """Key (then read and sync, P2 Fig. 8), or read at once so P1 shows the value."""
        self.syncs.want(channel)
        pending = self.keys.get(channel)
        if pending is not None and pending.complete:
            return self.keys.transfer(master, channel, now)
        return master.read(channel)

    def _reading(self, event: Reading) -> None:
        self.readings += 1
        log.debug(
            "M-Bus channel %d: %s m3 captured %s, status %02X, FC %s (E time %s)",
            event.channel,
            event.volume_m3,
            event.capture_time,
            event.status,
            event.frame_counter,
            self.meter.now(),
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
        # A reading is nobody's acknowledgement: queued, so a busy bus never waits on disk.
        self.meter.act_soon(lambda model, now: model.set_mbus_value(reading))

    def _event(self, event: MbusEvent) -> bytes:
        # The model sets the event's error and alarm register bits (twin/meter/alarms.py).
        # Queued at once (events are never held), not waited for: nobody is answered here.
        self.meter.act_soon(lambda model, now: model.log_event(now, event.code))
        log.info("M-Bus event %d (channel %d, %s)", event.code, event.channel, event.kind.name)
        if event.kind is MbusEventKind.COMMUNICATION_OK:
            self.syncs.want(event.channel)  # P2 §6.2.1: "after any communication restart"
        return b""

    def _acknowledged(self, event: CommandAcknowledged) -> None:
        if event.command == "key":
            self.keys.drop(event.channel)
            # The master follows a key change with a read and an encrypted sync (P2 Fig. 8)
            # whose time was taken when the key was queued; sync once more, fresh.
            self.syncs.want(event.channel)
            log.info("M-Bus channel %d: User key in use (mode 15)", event.channel)
        elif event.command == "clock":
            self.syncs.done(event.channel, self.meter.now())
