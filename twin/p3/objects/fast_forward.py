"""The activity calendar through `ctl advance` (twin/fast_forward.py).

A passive calendar whose activate_passive_calendar_time (0-0:13.0.0 attribute 10, P3 §5.4)
falls inside the span is activated at that time, as the object model's tick would have done
while the time passed: the tariff of every minute
after it follows the new program and event 9 is stamped with the activation time.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from twin.p3.objects.tariff import ActivityCalendar

log = logging.getLogger(__name__)


class CalendarFastForward:
    """The `Waypoint` of 0-0:13.0.0's scheduled activation."""

    def __init__(self, calendar: ActivityCalendar) -> None:
        self.calendar = calendar

    def next_due(self, after: datetime) -> datetime | None:
        due = self.calendar.activation_due()  # None too for one it could not run
        return None if due is None else max(due, after)  # already due (no tick since): at once

    def reach(self, when: datetime, passed: timedelta) -> None:
        # As at a tick: a calendar the twin cannot run is refused once and logged.
        self.calendar.activate_at(when)

    def finish(self, passed: timedelta) -> None:
        """Nothing of its own to move: the calendar runs on the meter clock."""
