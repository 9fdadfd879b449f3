"""Hypothesis strategies for P2 messages (shared by the property tests)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import strategies as st

from twin.p2.headers import MODE_5, MODE_15, MODE_NONE, LongHeader, ShortHeader, ShortId
from twin.p2.records import Record
from twin.p2.values import (
    equipment_id_record,
    error_flags_record,
    meter_config_record,
    timestamp_record,
    valve_status_record,
    volume_record,
)

_SIZES = {0x0: 0, 0x1: 1, 0x2: 2, 0x3: 3, 0x4: 4, 0x5: 4, 0x6: 6, 0x7: 8, 0x8: 0}
_SIZES |= {0x9: 1, 0xA: 2, 0xB: 3, 0xC: 4, 0xE: 6}
# VIFs that `interpret` maps to Unknown (energy in Wh/J, HCA), so random data is fine.
_NEUTRAL_VIFS = [*range(0x10), 0x6E]

UTC_TIMES = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2099, 12, 31, 23, 59, 59),
    timezones=st.just(UTC),
).map(lambda when: when.replace(microsecond=0))
KEYS = st.binary(min_size=16, max_size=16)
BYTE = st.integers(0, 255)
COUNTERS = st.integers(0, 0xFFFFFFFF)
LETTERS = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=3)


def _chain(values: list[int]) -> tuple[int, ...]:
    """Extension chain: every byte but the last has bit 7 set."""
    return tuple(v | 0x80 for v in values[:-1]) + tuple(values[-1:])


@st.composite
def generic_records(draw: st.DrawFn) -> Record:
    """Any self-consistent record with a VIF DSMR does not define."""
    coding = draw(st.sampled_from([*_SIZES, 0xD]))
    difes = _chain(draw(st.lists(st.integers(0, 0x7F), max_size=3)))
    vifes = _chain(draw(st.lists(st.integers(0, 0x7F), max_size=3)))
    dif = (0x80 if difes else 0) | draw(st.integers(0, 1)) << 6 | draw(st.integers(0, 3)) << 4
    vif = draw(st.sampled_from(_NEUTRAL_VIFS)) | (0x80 if vifes else 0)
    if coding == 0xD:
        size = draw(st.integers(0, 20))
        data = bytes([size]) + draw(st.binary(min_size=size, max_size=size))
    else:
        data = draw(st.binary(min_size=_SIZES[coding], max_size=_SIZES[coding]))
    return Record(dif | coding, vif, data, difes, vifes)


DSMR_RECORDS = st.one_of(
    st.builds(volume_record, st.integers(0, 10**8 - 1), large_meter=st.booleans()),
    st.builds(timestamp_record, UTC_TIMES),
    st.builds(
        equipment_id_record,
        st.text(
            alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=17, max_size=17
        ),
    ),
    st.builds(error_flags_record, BYTE),
    st.builds(meter_config_record, BYTE),
    st.builds(valve_status_record, st.integers(0, 2)),
)
RECORD_LISTS = st.lists(st.one_of(DSMR_RECORDS, generic_records()), max_size=6).map(tuple)
SHORT_IDS = st.builds(ShortId, st.integers(0, 99_999_999), LETTERS, BYTE, BYTE)
MODES = st.sampled_from([MODE_NONE, MODE_15, MODE_5])


def long_headers(mode: int | None = None) -> st.SearchStrategy[LongHeader]:
    """Long headers with the given (or any) encryption mode."""
    modes = MODES if mode is None else st.just(mode)
    return st.builds(LongHeader, SHORT_IDS, BYTE, BYTE, modes)


def short_headers() -> st.SearchStrategy[ShortHeader]:
    """Short headers with mode 0 or 15."""
    return st.builds(ShortHeader, BYTE, BYTE, st.sampled_from([MODE_NONE, MODE_15]))
