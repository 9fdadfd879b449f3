"""`ctl gas`: the operator's handle on a gas-meter twin, in a twin or in `dsmr-twin gasmeter`.

The same request drives both: `battery_low` and `fraud` (status bits 2 and 6, P2 §6.3.3),
`clock_drift_s` (the meter clock runs off; > 60 s makes the next sync raise bit 5, P2 §6.2.1)
and `attached` (on or off the bus). Values are checked here, at the authority, so a bad one
is a `ControlError` and changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from twin.control import ControlError, Handler
from twin.p2.aio.gasmeter import GasMeterTwin

# Type I dates (EN 13757-3 Annex A, P2 §6.4.3) carry no century: a P2 clock lives in 2000..2099.
FIRST_YEAR, LAST_YEAR = 2000, 2099


def gas_command(gas: GasMeterTwin) -> Handler:
    """The `gas` control command for `gas`; answers the meter's status afterwards."""

    async def handle(request: Mapping[str, Any]) -> object:
        # Everything is checked before anything changes: a bad request changes nothing.
        flags = {name: _flag(request, name) for name in ("battery_low", "fraud", "attached")}
        drift = _drift(gas, request)
        if flags["battery_low"] is not None:
            gas.set_battery_low(flags["battery_low"])
        if flags["fraud"] is not None:
            gas.set_fraud(flags["fraud"])
        if drift is not None:
            gas.drift(drift)
        if flags["attached"] is not None:
            gas.set_attached(flags["attached"])
        return gas.status()

    return handle


def _flag(request: Mapping[str, Any], name: str) -> bool | None:
    value = request.get(name)
    if value is not None and not isinstance(value, bool):
        raise ControlError(f"{name!r} must be true or false")
    return value


def _drift(gas: GasMeterTwin, request: Mapping[str, Any]) -> float | None:
    drift = request.get("clock_drift_s")
    if drift is None:
        return None
    if isinstance(drift, bool) or not isinstance(drift, int | float) or not math.isfinite(drift):
        raise ControlError("'clock_drift_s' must be a number of seconds")
    now = gas.clock.now()
    try:
        year = (gas.slave.clock(now) + timedelta(seconds=drift)).year
    except OverflowError:
        year = 0
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise ControlError(
            f"'clock_drift_s' {drift:g} takes the gas meter's clock out of "
            f"{FIRST_YEAR}..{LAST_YEAR} (P2 dates carry no century)"
        )
    return float(drift)
