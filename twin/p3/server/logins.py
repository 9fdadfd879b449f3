"""Failed-login bookkeeping of the P3 service: a lock-out and one event 46 per burst.

DSMR P3 §4.2.1 defines fraud event 46 "failed login attempt" (intrusion detection) but no
rate: logged per attempt, a peer without keys could fill the fraud detection log (30 entries,
P3 §4.2.1) with event 46 in a fraction of a second, pushing real tamper events out, and make
the meter write its store for every attempt. Certified meters bound this with a lock-out after
wrong credentials: Landis+Gyr E350 locks an interface for a configurable time (default 60 s,
up to 255 s) after a wrong password and refuses even the right one meanwhile; the Elgama G1B
blocks for 24 h after more than four wrong passwords in a row. The twin does the same for the
management client:

- `THRESHOLD` failed logins in a row lock logins out for `BASE_LOCKOUT_S`; every further
  failure after a lock-out locks again for twice as long, up to `MAX_LOCKOUT_S`. While locked
  out, the core refuses the AARQ unread (`LoginPolicy`).
- Event 46 is logged once per burst: at its first failure. A burst ends with the next
  successful management login (the head-end then reads the fraud log anyway); a persistent
  attacker therefore adds one entry, not one per attempt.

Sans-IO: the clock is injected (the service uses its network clock, real time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

THRESHOLD = 5  # like the Elgama G1B: a lock-out after more than four in a row
BASE_LOCKOUT_S = 60.0  # the E350's default lock-out time
MAX_LOCKOUT_S = 3600.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the service does about one failed login."""

    first_of_burst: bool  # log event 46 (and a warning) for this one
    locked_for_s: float | None  # a lock-out begins now, for this long


class LoginGuard:
    """A `LoginPolicy` for the core plus the bookkeeping of failed logins."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now
        self._in_a_row = 0  # failures since the last success or lock-out
        self._lockouts = 0  # lock-outs since the last success
        self._locked_until: datetime | None = None
        self._burst_reported = False
        self.refused = 0  # AARQs refused during a lock-out

    def login_allowed(self) -> bool:
        if self._locked_until is not None and self._now() < self._locked_until:
            self.refused += 1
            return False
        return True

    @property
    def locked_until(self) -> datetime | None:
        locked = self._locked_until
        return locked if locked is not None and self._now() < locked else None

    def failed(self) -> Verdict:
        first = not self._burst_reported
        self._burst_reported = True
        self._in_a_row += 1
        # After a lock-out one more failure is enough to lock again.
        if self._in_a_row < (THRESHOLD if self._lockouts == 0 else 1):
            return Verdict(first, None)
        delay = min(BASE_LOCKOUT_S * 2**self._lockouts, MAX_LOCKOUT_S)
        self._lockouts += 1
        self._in_a_row = 0
        self._locked_until = self._now() + timedelta(seconds=delay)
        return Verdict(first, delay)

    def succeeded(self) -> None:
        self._in_a_row = self._lockouts = 0
        self._locked_until = None
        self._burst_reported = False
