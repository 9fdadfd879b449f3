"""reset () (method 1, management X) of every profile generic object (Blue Book §4.3.6):
the buffer is cleared durably in the store; an event log restarts with event 255 (P3 §4.2.1)."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import pytest
from dlms_cosem import time as dlms_time

from tests.support import steady_config
from tests.unit.p3.objects.conftest import Twin, advance, method, read, ref, run
from twin.meter.events import EventCode, EventLog, mbus_event_code
from twin.meter.model import Outbox
from twin.meter.profiles import DailyProfileRow
from twin.metering import Meter
from twin.p3.dlms.cosem import ActionResult
from twin.p3.objects import values as v
from twin.store import Store

RESET = v.encode(v.i8(0))


def reset(twin: Twin, code: str) -> None:
    twin.management().action(method(7, code, 1), RESET)


def test_load_profile_reset_also_clears_rows_not_yet_committed(twin: Twin) -> None:
    advance(twin, 3600)
    assert len(twin.meter.store.load_profile()) == 4
    run(twin.clock.advance(3600))  # an hour the model has not even integrated yet
    client = twin.management()
    client.action(method(7, "1-0:99.1.0", 1), RESET)
    assert read(client, 7, "1-0:99.1.0", 2) == []
    assert read(client, 7, "1-0:99.1.0", 7) == 0
    advance(twin, 900)
    assert len(twin.meter.store.load_profile()) == 1  # capturing goes on from the reset


def test_reset_survives_a_restart(tmp_path: Path) -> None:
    from tests.unit.p3.objects.conftest import make_twin

    twin = make_twin(tmp_path)
    advance(twin, 2 * 3600)
    for code in ("1-0:99.1.0", "0-1:24.3.0"):
        reset(twin, code)
    twin.meter.store.close()
    meter = Meter(steady_config(), twin.clock, Store.open(tmp_path), random.Random(1))
    assert meter.store.load_profile() == []
    assert meter.store.mbus_hourly(1) == []
    meter.store.close()


@pytest.mark.parametrize("code", ["1-0:99.2.0", "0-0:98.1.0"])
def test_daily_and_billing_profile_reset(twin: Twin, code: str) -> None:
    now = twin.meter.now()
    row = DailyProfileRow(now, 0, (1, 2, 3, 4), ())
    state = twin.meter.model.state
    twin.meter.store.commit(state, Outbox(daily_profile=[row], monthly_profile=[row]))
    client = twin.management()
    assert read(client, 7, code, 7) == 1
    client.action(method(7, code, 1), RESET)
    assert read(client, 7, code, 2) == []
    other = "0-0:98.1.0" if code == "1-0:99.2.0" else "1-0:99.2.0"
    assert read(client, 7, other, 7) == 1  # only the affected buffer


@pytest.mark.parametrize(
    ("log", "code"),
    [
        (EventLog.STANDARD, EventCode.POWER_DOWN),
        (EventLog.FRAUD, EventCode.METER_COVER_REMOVED),
        (EventLog.MBUS, mbus_event_code(2, 0)),
        (EventLog.COMMUNICATION, EventCode.RETRIEVE_READINGS_E),
    ],
)
def test_event_log_reset_leaves_event_255_first(twin: Twin, log: EventLog, code: int) -> None:
    twin.meter.act(lambda m, now: m.log_event(now, code))
    advance(twin, 60)
    client = twin.management()
    cleared_at = twin.meter.now()
    client.action(method(7, log.obis, 1), RESET)
    rows = read(client, 7, log.obis, 2)
    assert [r[1] for r in rows] == [EventCode.EVENT_LOG_CLEARED]
    assert dlms_time.datetime_from_bytes(bytes(rows[0][0]))[0] == cleared_at.replace(microsecond=0)
    assert read(client, 7, log.obis, 7) == 1
    twin.meter.act(lambda m, now: m.log_event(now, code))
    assert [r[1] for r in read(client, 7, log.obis, 2)] == [255, code]
    for other in (o for o in EventLog if o is not log):  # "only stored in the affected event log"
        assert 255 not in [r[1] for r in read(client, 7, other.obis, 2)]


def test_communication_log_reset_then_the_session_is_logged_after_255(twin: Twin) -> None:
    client = twin.management()
    read(client, 3, "1-0:1.8.1", 2)  # counts as 73 (readings E) in this session
    client.action(method(7, "0-0:99.98.4", 1), RESET)
    twin.objects.association_released()
    rows = read(twin.management(), 7, "0-0:99.98.4", 2)
    assert [r[1] for r in rows[:1]] == [255]
    assert {r[1] for r in rows[1:]} == {71, 73}


def test_power_failure_log_reset_keeps_the_counters(twin: Twin) -> None:
    twin.meter.act(lambda m, now: m.power_failure(now, 600))
    advance(twin, 660)
    client = twin.management()
    assert len(read(client, 7, "1-0:99.97.0", 2)) == 1
    client.action(method(7, "1-0:99.97.0", 1), RESET)
    assert read(client, 7, "1-0:99.97.0", 2) == []
    assert read(client, 7, "1-0:99.97.0", 7) == 0
    assert read(client, 1, "0-0:96.7.9", 2) == 1  # number of long power failures stays
    assert twin.meter.store.load() is not None
    assert twin.meter.store.load().state.failure_log == []  # type: ignore[union-attr]


def test_only_the_management_client_may_reset(twin: Twin) -> None:
    advance(twin, 900)
    outcome = twin.objects.action(16, ref(7, "1-0:99.1.0", 1), RESET)
    assert outcome.result is ActionResult.READ_WRITE_DENIED
    assert len(twin.meter.store.load_profile()) == 1
    assert (
        twin.objects.action(1, ref(7, "1-0:99.1.0", 2), RESET).result
        is not ActionResult.SUCCESS  # capture () is not offered on the fixed profiles
    )


def test_reset_is_not_resurrected_by_the_downtime_fill(tmp_path: Path) -> None:
    """After a reset, a restart fills only the hours of the downtime itself."""
    from tests.unit.p3.objects.conftest import make_twin

    twin = make_twin(tmp_path)
    advance(twin, 3 * 3600)
    reset(twin, "1-0:99.1.0")
    reset(twin, "0-1:24.3.0")
    cleared = twin.meter.now()
    twin.meter.store.close()
    run(twin.clock.set(cleared + timedelta(hours=2)))
    meter = Meter(steady_config(), twin.clock, Store.open(tmp_path), random.Random(1))
    assert all(r.time > cleared for r in meter.store.load_profile())
    assert [r.time - cleared for r in meter.store.mbus_hourly(1)] == [
        timedelta(hours=1),
        timedelta(hours=2),
    ]
    meter.store.close()
