"""`ctl gas` checks the whole request before it changes anything (twin and `gasmeter` alike)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hardware.mbus_sim import SimulatedBus
from twin.clock import ManualClock
from twin.control import ControlError
from twin.control_fields import parse_fields
from twin.p2.aio.gas_control import GAS_FIELDS, gas_command
from twin.p2.aio.gasmeter import STATE_SETTING, GasMeterTwin
from twin.p2.messages import SndNke, encode_message
from twin.p2.slave_state import GasMeterIdentity
from twin.store import Store

START = datetime(2026, 10, 23, 12, 0, tzinfo=UTC)
IDENTITY = GasMeterIdentity(19, "TWN", "G0099000000000019", bytes(range(16)))


@pytest.fixture
def gas(tmp_path: Path) -> Any:
    store = Store.open(tmp_path)
    yield GasMeterTwin(
        IDENTITY, SimulatedBus().slave_end(), ManualClock(START), store, rng=random.Random(1)
    )
    store.close()


async def _gas(gas: GasMeterTwin, request: dict[str, Any]) -> object:
    """The request as the control socket hands it over: fields checked, then the command."""
    return await gas_command(gas)(parse_fields({"cmd": "gas", **request}, GAS_FIELDS))


@pytest.mark.parametrize(
    "request_",
    [
        {"fraud": True, "clock_drift_s": "soon"},
        {"fraud": True, "clock_drift_s": float("nan")},
        {"fraud": True, "clock_drift_s": 1e300},  # beyond what a datetime can hold
        {"fraud": True, "clock_drift_s": 80 * 365 * 86400},  # past 2099 (type I dates)
        {"fraud": True, "clock_drift_s": -30 * 365 * 86400},  # before 2000
        {"fraud": True, "attached": "no"},
        {"battery_low": 1, "fraud": True},
    ],
)
async def test_a_bad_request_is_refused_and_changes_nothing(
    gas: GasMeterTwin, request_: dict[str, Any]
) -> None:
    before = gas.status()
    with pytest.raises(ControlError):
        await _gas(gas, request_)
    assert gas.status() == before


async def test_a_good_request_sets_status_bits_clock_and_attachment(gas: GasMeterTwin) -> None:
    status = await _gas(
        gas, {"fraud": True, "battery_low": True, "clock_drift_s": 90, "attached": False}
    )
    assert isinstance(status, dict)
    assert status["status"] == 0x44  # P2 §6.3.3: bit 6 fraud, bit 2 power low
    assert datetime.fromisoformat(status["clock"]) == START.replace(second=30, minute=1)
    assert status["attached"] is False


def test_a_stored_non_primary_address_is_dropped_to_0(tmp_path: Path) -> None:
    # State saved while set-address still accepted 251..255: the meter must not keep
    # answering broadcasts (P2 §3.1.3); at 0 the E meter installs it again (P2 §8.3.1).
    store = Store.open(tmp_path / "old")
    first = GasMeterTwin(
        IDENTITY, SimulatedBus().slave_end(), ManualClock(START), store, rng=random.Random(1)
    )
    first.save()
    saved = store.setting(STATE_SETTING)
    saved["slave"]["address"] = 255
    store.put_setting(STATE_SETTING, saved)
    again = GasMeterTwin(
        IDENTITY, SimulatedBus().slave_end(), ManualClock(START), store, rng=random.Random(1)
    )
    assert again.slave.snapshot.address == 0
    assert again.slave.snapshot.access_number == first.slave.snapshot.access_number  # kept
    assert again.answer(encode_message(SndNke(255))) == b""
    assert again.answer(encode_message(SndNke(0))) == b"\xe5"
    store.close()
