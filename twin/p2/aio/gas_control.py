"""`ctl gas`: the operator's handle on a gas-meter twin, in a twin or in `dsmr-twin gasmeter`.

The same request drives both: `battery_low` and `fraud` (status bits 2 and 6, P2 §6.3.3),
`clock_drift_s` (the meter clock runs off; > 60 s makes the next sync raise bit 5, P2 §6.2.1)
and `attached` (on or off the bus). The fields are declared (`GAS_FIELDS`) and checked by the
control socket; what depends on the meter's state is checked here, before anything changes, so
a bad request is a `ControlError` and changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from twin.control import ControlError, Handler
from twin.control_fields import flag, number
from twin.p2.aio.gasmeter import GasMeterTwin

# Type I dates (EN 13757-3 Annex A, P2 §6.4.3) carry no century: a P2 clock lives in 2000..2099.
FIRST_YEAR, LAST_YEAR = 2000, 2099
# The gas meter's own clock may run off by up to a day in all: far past the 60 s at which a
# synchronisation flags it (P2 §6.2.1), and always a valid P2 time stamp.
GAS_DRIFT_MAX_S = 86400.0
GAS_FIELDS = (
    flag("battery_low", default=None),
    flag("fraud", default=None),
    number("clock_drift_s", -GAS_DRIFT_MAX_S, GAS_DRIFT_MAX_S, default=None),
    flag("attached", default=None),
)


def gas_command(gas: GasMeterTwin) -> Handler:
    """The `gas` control command for `gas` (fields: `GAS_FIELDS`); answers its status."""

    async def handle(request: Mapping[str, Any]) -> object:
        drift = request["clock_drift_s"]
        if drift is not None:
            _check_drift(gas, drift)
        if request["battery_low"] is not None:
            gas.set_battery_low(request["battery_low"])
        if request["fraud"] is not None:
            gas.set_fraud(request["fraud"])
        if drift is not None:
            gas.drift(drift)
        if request["attached"] is not None:
            gas.set_attached(request["attached"])
        return gas.status()

    return handle


def _check_drift(gas: GasMeterTwin, drift: float) -> None:
    offset = gas.slave.snapshot.clock_offset.total_seconds() + drift
    if abs(offset) > GAS_DRIFT_MAX_S:
        raise ControlError(
            f"the gas meter's clock would be {offset:.0f} s off; at most"
            f" {GAS_DRIFT_MAX_S:.0f} s either way (a synchronisation resets it)"
        )
    year = (gas.slave.clock(gas.clock.now()) + timedelta(seconds=drift)).year
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise ControlError(
            f"'clock_drift_s' {drift:g} takes the gas meter's clock out of "
            f"{FIRST_YEAR}..{LAST_YEAR} (P2 dates carry no century)"
        )
