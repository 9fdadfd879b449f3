"""Clock (P3 §5.3), energy and instantaneous registers (§6.2, §6.4) and the plain data objects
of chapters 5 and 8, read live from the meter through the dlms-cosem client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dlms_cosem import time as dlms_time
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.p3.objects.conftest import Twin, attr, gx_decode, read, ref, run, write
from tests.unit.p3.objects.gurux_reference import gurux_date_time, gurux_encode
from twin.meter.events import EventCode, EventLog
from twin.p3.dlms.cosem import DataAccessResult
from twin.p3.objects import values as v


def test_clock_reads_meter_time(twin: Twin) -> None:
    client = twin.public()
    raw = bytes(read(client, 8, "0-0:1.0.0", 2))
    when, _status = dlms_time.datetime_from_bytes(raw)
    assert when == twin.meter.now()
    management = twin.management()
    assert read(management, 8, "0-0:1.0.0", 3) == -60  # time_zone (P3 §5.3)
    assert read(management, 8, "0-0:1.0.0", 4) == 0  # winter: no DST bit
    assert bytes(read(management, 8, "0-0:1.0.0", 5)).hex() == "ffff03fe07020000ff8000ff"
    assert bytes(read(management, 8, "0-0:1.0.0", 6)).hex() == "ffff0afe07030000ff8000ff"
    assert read(management, 8, "0-0:1.0.0", 7) == 60
    assert read(management, 8, "0-0:1.0.0", 8) is True
    assert read(management, 8, "0-0:1.0.0", 9) == 1
    assert read(management, 3, "1-0:0.9.11", 2) == 60  # clock time shift limit
    assert read(management, 3, "1-0:0.9.11", 3) == [0, 7]


def test_clock_set_moves_the_meter_and_logs_events_4_and_5(twin: Twin) -> None:
    client = twin.management()
    old = twin.meter.now()
    new = old + timedelta(minutes=7)
    result = write(client, 8, "0-0:1.0.0", 2, v.encode(v.date_time(new)))
    assert result == 0
    assert abs(twin.meter.now() - new) < timedelta(seconds=1)
    codes = [e.code for e in twin.meter.store.events(EventLog.STANDARD)]
    assert codes[-2:] == [EventCode.CLOCK_ADJUSTED_OLD, EventCode.CLOCK_ADJUSTED_NEW]
    # the public client may read the time but not set it (it has no SET service either)
    value = v.encode(v.date_time(old))
    assert (
        twin.objects.set(16, ref(8, "0-0:1.0.0", 2), None, value)
        is DataAccessResult.READ_WRITE_DENIED
    )


def test_small_clock_sets_are_not_events(twin: Twin) -> None:
    client = twin.management()
    new = twin.meter.now() + timedelta(seconds=45)  # within the 60 s time shift limit
    assert write(client, 8, "0-0:1.0.0", 2, v.encode(v.date_time(new))) == 0
    assert abs(twin.meter.now() - new) < timedelta(seconds=1)
    assert twin.meter.store.events(EventLog.STANDARD) == []
    assert write(client, 3, "1-0:0.9.11", 2, v.encode(v.u8(10))) == 0
    later = twin.meter.now() + timedelta(seconds=45)  # now above the limit
    assert write(client, 8, "0-0:1.0.0", 2, v.encode(v.date_time(later))) == 0
    assert len(twin.meter.store.events(EventLog.STANDARD)) == 2


def test_clock_set_refuses_wildcards_and_wrong_types(twin: Twin) -> None:
    client = twin.management()
    wildcard = v.encode(v.octets(bytes.fromhex("FFFF03FE07020000FF8000FF")))
    assert write(client, 8, "0-0:1.0.0", 2, wildcard) == 250  # other-reason
    assert write(client, 8, "0-0:1.0.0", 2, v.encode(v.u32(5))) == 12  # type-unmatched
    assert twin.meter.store.events(EventLog.STANDARD) == []


def test_clock_set_refuses_a_time_the_meter_cannot_carry(twin: Twin) -> None:
    """2000-01-01 .. 2099-12-31 local (twin/clock.py): P2 dates end in 2099. A time outside
    is refused and changes nothing; year 1 does not even fit a UTC datetime."""
    client = twin.management()
    before = twin.meter.now()
    for when in (
        datetime(9999, 12, 31, 12, tzinfo=UTC),
        datetime(2099, 12, 31, 23, 0, tzinfo=UTC),  # 2100-01-01 00:00 local
        datetime(1999, 12, 31, 22, 59, 59, tzinfo=UTC),
    ):
        assert write(client, 8, "0-0:1.0.0", 2, v.encode(v.date_time(when))) == 250
    year_1 = bytes.fromhex("00010101FF00000000FFC400")  # 0001-01-01 00:00 local (UTC+1)
    assert write(client, 8, "0-0:1.0.0", 2, v.encode(v.octets(year_1))) == 12  # type-unmatched
    assert twin.meter.now() - before < timedelta(seconds=1)
    assert twin.meter.store.events(EventLog.STANDARD) == []
    last = datetime(2099, 12, 31, 22, 59, 59, tzinfo=UTC)  # 2099-12-31 23:59:59 local
    assert write(client, 8, "0-0:1.0.0", 2, v.encode(v.date_time(last))) == 0
    assert twin.meter.now() - last < timedelta(seconds=1)


def test_energy_registers_equal_what_p1_shows(twin: Twin) -> None:
    twin.meter.act(lambda m, now: m.set_load_override(now, 2500.0))
    run(twin.clock.advance(3 * 3600))
    client = twin.management()
    shown = twin.meter.publish().energy_wh
    assert shown["1-0:1.8.1"] + shown["1-0:1.8.2"] > 0
    for code in ("1-0:1.8.1", "1-0:1.8.2", "1-0:2.8.1", "1-0:2.8.2"):
        raw = client.get(attr(3, code, 2))
        assert raw[0] == 6  # double-long-unsigned (P3 §6.2)
        assert gx_decode(raw) == shown[code]
        assert read(client, 3, code, 3) == [0, 30]  # {0, Wh}
    assert read(client, 3, "1-0:1.8.0", 2) == shown["1-0:1.8.1"] + shown["1-0:1.8.2"]
    assert read(client, 3, "1-0:2.8.0", 2) == shown["1-0:2.8.1"] + shown["1-0:2.8.2"]


def test_instantaneous_power_types_of_4_2_2(twin: Twin) -> None:
    twin.meter.act(lambda m, now: m.set_load_override(now, -1200.0))
    client = twin.management()
    reading = twin.meter.publish()
    plus, minus, net = (client.get(attr(3, c, 2)) for c in ("1-0:1.7.0", "1-0:2.7.0", "1-0:16.7.0"))
    assert plus[0] == 6
    assert minus[0] == 6
    assert net[0] == 5  # 1-0:16.7.0 double-long, signed (4.2.2 fix)
    assert gx_decode(minus) == reading.export_w == 1200
    assert gx_decode(net) == -1200
    assert read(client, 3, "1-0:2.7.0", 3) == [0, 27]  # {0, W}
    l1 = client.get(attr(3, "1-0:22.7.0", 2))
    assert l1[0] == 18
    assert gx_decode(l1) == reading.export_w_phase[0]
    assert read(client, 3, "1-0:32.7.0", 3) == [0, 35]  # {0, V}
    assert read(client, 3, "1-0:31.7.0", 2) == reading.current_a[0]


def test_power_failure_and_quality_objects(twin: Twin) -> None:
    twin.meter.act(lambda m, now: m.power_failure(now, 400))
    run(twin.clock.advance(600))
    twin.meter.act(lambda m, now: m.voltage_sag(now, 1))
    client = twin.management()
    reading = twin.meter.publish()
    assert read(client, 1, "0-0:96.7.21", 2) == reading.failures_any == 1
    assert read(client, 1, "0-0:96.7.9", 2) == reading.failures_long == 1
    assert read(client, 1, "1-0:32.32.0", 2) == 1
    assert read(client, 3, "0-0:96.7.20", 2) == 180
    assert write(client, 3, "0-0:96.7.20", 2, v.encode(v.u16(240))) == 0
    assert read(client, 3, "0-0:96.7.20", 2) == 240
    assert write(client, 3, "0-0:96.7.20", 3, v.encode(v.scaler_unit(0, 7))) == 3
    assert read(client, 3, "1-0:12.31.0", 2) == 207
    log = read(client, 7, "1-0:99.97.0", 2)
    assert [row[1] for row in log] == [400]
    end, _ = dlms_time.datetime_from_bytes(bytes(log[0][0]))
    assert end == reading.failure_log[0].end


def test_tariff_indicator_and_amr_status(twin: Twin) -> None:
    client = twin.management()
    # 2026-11-23 21:00 local, a Monday: normal tariff until 23:00
    assert bytes(read(client, 1, "0-0:96.14.0", 2)) == b"\x00\x02"
    run(twin.clock.set(datetime(2026, 11, 23, 22, 30, tzinfo=UTC)))
    assert bytes(read(client, 1, "0-0:96.14.0", 2)) == b"\x00\x01"
    assert read(twin.public(), 1, "0-0:96.10.2", 2) == 0


def test_direct_date_time_encoding_equals_gurux() -> None:
    from datetime import UTC, datetime, timedelta

    start = datetime(2026, 3, 28, 22, 0, tzinfo=UTC)  # across the spring and autumn changes
    for hours in (*range(0, 12), *range(5040, 5052)):
        when = start + timedelta(hours=hours, seconds=hours * 7)
        assert v.date_time(when) == gurux_date_time(when), when


def _values() -> st.SearchStrategy[v.Data]:
    leaves = st.one_of(
        st.integers(0, 255).map(v.u8),
        st.integers(0, 0xFFFF).map(v.u16),
        st.integers(0, 0xFFFFFFFF).map(v.u32),
        st.integers(-(2**31), 2**31 - 1).map(v.i32),
        st.integers(-128, 127).map(v.i8),
        st.binary(max_size=300).map(v.octets),
        st.booleans().map(v.boolean),
        st.integers(0, 255).map(v.enum_),
        st.just(v.null()),
        st.text("01", max_size=40).map(v.bits),
        st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(
            lambda text: v.Data(v.Tag.VISIBLE_STRING, text)
        ),
    )
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=5).map(lambda xs: v.struct(*xs)),
            st.lists(children, max_size=5).map(v.array),
        ),
        max_leaves=20,
    )


@given(_values())
@settings(max_examples=200, deadline=None)
def test_direct_encoding_equals_gurux(value: v.Data) -> None:
    assert v.encode(value) == gurux_encode(value)
    assert v.decode(v.encode(value)) == value


def test_a_clock_set_while_ctl_advance_runs_is_a_temporary_failure(twin: Twin) -> None:
    client = twin.management()
    before = twin.meter.now()
    twin.meter.advancing = True  # what twin/fast_forward.py sets for the span
    new = before + timedelta(minutes=7)
    result = twin.objects.set(1, ref(8, "0-0:1.0.0", 2), None, v.encode(v.date_time(new)))
    assert result is DataAccessResult.TEMPORARY_FAILURE
    assert twin.meter.now() == before
    assert twin.meter.clock.steps == 0
    twin.meter.advancing = False
    assert write(client, 8, "0-0:1.0.0", 2, v.encode(v.date_time(new))) == 0
