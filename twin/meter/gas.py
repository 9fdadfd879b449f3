"""A household's gas use, hour by hour: heating in the cold months, hot water all year.

Shared by the gas-meter stand-in of the meter model and the gas-meter twin on the M-Bus.
"""

from __future__ import annotations

import math
import random
from datetime import datetime

from twin.clock import local

BUSY_HOURS = frozenset({6, 7, 8, 17, 18, 19, 20, 21})


def litres_in_hour(start: datetime, rng: random.Random) -> float:
    """Litres of gas used in the hour from `start` (UTC); heating peaks in January mornings."""
    here = local(start)
    season = (math.cos(2 * math.pi * (here.timetuple().tm_yday - 15) / 365) + 1) / 2
    busy = 1.0 if here.hour in BUSY_HOURS else 0.4
    return (25 + 450 * season * busy) * rng.uniform(0.6, 1.4)
