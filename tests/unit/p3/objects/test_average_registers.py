"""10-minute average registers of P3 §6.4 (class 3, long-unsigned, scaler 0) on P3 only."""

from __future__ import annotations

import random
from pathlib import Path

from tests.support import steady_config
from tests.unit.p3.objects.conftest import START, FakeKeyService, FakeMbus, Twin, advance, read
from twin.clock import ManualClock
from twin.metering import Meter
from twin.p1.telegram import TelegramEncoder
from twin.p3.objects import build_objects
from twin.p3.objects.base import obis_bytes
from twin.store import Store

# (C of L1, unit code): U V, I A, +P W, -P W, +Q var, -Q var; L2 = C + 20, L3 = C + 40
AVERAGES = {32: 35, 31: 33, 21: 27, 22: 27, 23: 29, 24: 29}


def codes(phases: int) -> list[str]:
    return [f"1-0:{c + 20 * p}.24.0" for c in AVERAGES for p in range(phases)]


def test_averages_of_the_last_completed_period_on_p3(twin: Twin) -> None:
    twin.meter.act(lambda m, now: m.set_load_override(now, 1500))
    advance(twin, 599)
    client = twin.management()
    assert read(client, 3, "1-0:21.24.0", 2) == 0  # no completed period measured yet
    advance(twin, 1)
    published = twin.meter.publish().averages
    per_phase = {
        32: published.voltage_v,
        31: published.current_a,
        21: published.import_w,
        22: published.export_w,
        23: published.import_var,
        24: published.export_var,
    }
    for c, unit in AVERAGES.items():
        for p in range(3):
            code = f"1-0:{c + 20 * p}.24.0"
            assert read(client, 3, code, 2) == per_phase[c][p], code
            assert read(client, 3, code, 3) == [0, unit], code
    assert [read(client, 3, f"1-0:{c}.24.0", 2) for c in (21, 22, 23)] == [500, 0, 164]


def test_l2_and_l3_averages_exist_on_polyphase_meters_only(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    meter = Meter(steady_config(phases=1), ManualClock(START), store, random.Random(1))
    objects = build_objects(
        meter, keys=FakeKeyService(), mbus=FakeMbus(), modem=None, state_dir=tmp_path
    )
    present = {o.obis for o in objects.objects()}
    single = {obis_bytes(c) for c in codes(1)}
    assert single <= present
    assert not ({obis_bytes(c) for c in codes(3)} - single) & present
    store.close()


def test_averages_are_not_on_p1(twin: Twin) -> None:
    advance(twin, 600)
    telegram = TelegramEncoder("TWN", "DSMR-TWIN-422").encode(twin.meter.publish()).decode()
    assert ".24.0(" not in telegram
