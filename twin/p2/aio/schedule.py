"""When the P2 service has bus work of its own: read-outs, installation scans, clock changes.

- Hourly read-out `read_delay` after each whole UTC hour (P2 §4.3, MAIN DSMR-M 4.5.5).
- Installation (P2 §8.3.1): for `install_window` after start-up ("discover on power on")
  address 0 is scanned once a minute.
- An E-meter clock set (P3) or a DST change is noticed here, so the service can sync the
  M-Bus clocks (P2 §6.2.1) and read out at the next whole hour of the new time.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from twin.clock import OffsetClock, floor_to, is_dst

SCAN_INTERVAL = timedelta(minutes=1)  # P2 §8.3.1: rescans once a minute in installation mode


class BusSchedule:
    """The next read-out and scan times, and the E-meter clock they were planned on."""

    def __init__(
        self, clock: OffsetClock, read_delay: timedelta, install_window: timedelta
    ) -> None:
        self.clock = clock
        self.read_delay = read_delay
        self.install_window = install_window
        self.next_read: datetime | None = None
        self.scan_until: datetime | None = None
        self.next_scan: datetime | None = None
        self._offset = clock.offset
        self._dst = is_dst(clock.now())

    def start(self, now: datetime) -> None:
        """A (re)start: plan the next read-out and open the installation window."""
        self.next_read = self.read_time_after(now)
        self.scan_until, self.next_scan = now + self.install_window, now

    def read_time_after(self, now: datetime) -> datetime:
        return floor_to(now - self.read_delay, 3600) + timedelta(hours=1) + self.read_delay

    def next_due(self, now: datetime) -> datetime:
        assert self.next_read is not None
        due = self.next_read
        if self.scanning(now) and self.next_scan is not None:
            due = min(due, self.next_scan)
        return due

    def scanning(self, now: datetime) -> bool:
        return self.scan_until is not None and now <= self.scan_until

    def read_due(self, now: datetime) -> bool:
        return self.next_read is not None and now >= self.next_read

    def read_done(self, now: datetime) -> None:
        self.next_read = self.read_time_after(now)

    def scan_due(self, now: datetime) -> bool:
        """True when a scan is due now; the next one is then booked a minute later."""
        if self.scanning(now) and self.next_scan is not None and now >= self.next_scan:
            self.next_scan = now + SCAN_INTERVAL
            return True
        return False

    def clock_moved(self) -> bool:
        """An E-meter clock set (P3) or a DST change since the last check."""
        return self.clock.offset != self._offset or is_dst(self.clock.now()) != self._dst

    def follow_clock(self, now: datetime) -> None:
        """Take the moved clock as the new reference; read out at its next hour at the latest."""
        self._offset, self._dst = self.clock.offset, is_dst(now)
        self.next_read = min(self.next_read or now, self.read_time_after(now))
