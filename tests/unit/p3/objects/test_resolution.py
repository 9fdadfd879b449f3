"""Instantaneous voltage and current with a resolution the CS writes (P3 §6.4: scaler_unit of
1-0:32.7.0 and 1-0:31.7.0 and their L2/L3 twins is RW for the management client)."""

from __future__ import annotations

from tests.unit.p3.objects.conftest import Twin, advance, read, ref, write
from twin.p3.objects import values as v

VOLT, AMPERE = 35, 33
OTHER_REASON, TYPE_UNMATCHED, DENIED = 250, 12, 3


def test_factory_resolution_is_whole_volts_and_amperes(twin: Twin) -> None:
    twin.meter.act(lambda m, now: m.set_load_override(now, 6900))  # 2300 W per phase
    advance(twin, 60)
    reading = twin.meter.publish()
    client = twin.management()
    assert read(client, 3, "1-0:32.7.0", 3) == [0, VOLT]
    assert read(client, 3, "1-0:32.7.0", 2) == round(reading.voltage_v[0])
    assert read(client, 3, "1-0:31.7.0", 2) == reading.current_a[0]


def test_a_finer_scaler_shows_the_decimals(twin: Twin) -> None:
    twin.meter.act(lambda m, now: m.set_load_override(now, 6900))
    advance(twin, 60)
    client = twin.management()
    assert write(client, 3, "1-0:52.7.0", 3, v.encode(v.scaler_unit(-1, VOLT))) == 0
    assert write(client, 3, "1-0:51.7.0", 3, v.encode(v.scaler_unit(-2, AMPERE))) == 0
    reading = twin.meter.publish()
    volts = reading.voltage_v[1]
    assert read(client, 3, "1-0:52.7.0", 3) == [-1, VOLT]
    assert read(client, 3, "1-0:52.7.0", 2) == round(volts * 10)  # 0.1 V resolution
    assert read(client, 3, "1-0:51.7.0", 2) == round(2300 / volts * 100)  # |P| / U in 0.01 A
    assert read(client, 3, "1-0:32.7.0", 3) == [0, VOLT]  # L1 keeps its own setting


def test_other_units_scalers_and_shapes_are_refused(twin: Twin) -> None:
    client = twin.management()
    assert write(client, 3, "1-0:32.7.0", 3, v.encode(v.scaler_unit(-1, AMPERE))) == OTHER_REASON
    assert write(client, 3, "1-0:32.7.0", 3, v.encode(v.scaler_unit(-3, VOLT))) == OTHER_REASON
    assert write(client, 3, "1-0:32.7.0", 3, v.encode(v.scaler_unit(1, VOLT))) == OTHER_REASON
    assert write(client, 3, "1-0:32.7.0", 3, v.encode(v.u8(1))) == TYPE_UNMATCHED
    finer = v.encode(v.scaler_unit(-1, VOLT))  # the public client has no SET at all; its
    assert twin.objects.set(16, ref(3, "1-0:32.7.0", 3), None, finer) == DENIED  # rights: R
    assert read(client, 3, "1-0:32.7.0", 3) == [0, VOLT]
