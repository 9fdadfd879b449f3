"""Definable load profile 0-1:94.31.6 (P3 §8.6, class 7): the CS chooses the columns.

- capture_objects: the clock {8,0-0:1.0.0.255,2,0} first, then up to 20 readable attributes
  of the object model (data_index 0). A column is accepted when a management GET of it
  succeeds now and encodes in at most 128 bytes (§8.6 sizes an entry for 20 double-long-
  unsigned values); profile buffers (class 7 attribute 2) cannot be captured. A malformed
  value answers type-unmatched, an unusable column other-reason.
- Values are read through the object registry (the path a GET takes) at capture time and
  stored per entry as one encoded A-XDR structure. A column that cannot be read at that
  moment holds null-data. The clock column is the capture time itself.
- Automatic capture at every capture_period boundary of the meter clock, counted in Dutch
  local wall-clock time from 1970-01-01 00:00 (86400 = local midnight, like the daily
  profile; 3600 = whole hours); 0 = no automatic capture. `tick` is called on every request
  and about once a second. If the clock passed several boundaries between two ticks (a
  downtime, a clock set forward), one entry is captured for the latest boundary only: the
  values can only be read now, so entries for the earlier boundaries would all repeat them.
  Boundaries at or before the newest entry (after the clock was set back) are not captured
  again.
- Writing capture_objects or capture_period clears the buffer (Blue Book §4.3.6); so does
  reset (). Boundaries up to that moment are not captured afterwards.
- sort_method 1 (FIFO, oldest first) or 3 (largest value of sort_object first; with the
  clock as sort_object that is newest first). A full buffer drops its oldest entry (FIFO)
  or its smallest (sorted). Changing the sorting re-sorts the buffer; lowering
  profile_entries drops the entries that fall off the end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from twin.clock import AMSTERDAM, local
from twin.p3.dlms.cosem import AttributeRef, DataAccessResult
from twin.p3.objects.base import MANAGEMENT_SAP, ObjectError, Request, obis_bytes
from twin.p3.objects.env import Env
from twin.p3.objects.profile_generic import (
    CLOCK,
    FIFO,
    NO_SORT_OBJECT,
    SORTED_LARGEST,
    Column,
    Profile,
    Row,
    capture_definition,
    column_of,
)
from twin.p3.objects.registry import ObjectRegistry
from twin.p3.objects.simple import Stored
from twin.p3.objects.values import (
    Data,
    Tag,
    ValueTypeError,
    array,
    date_time,
    decode,
    encode,
    enum_,
    null,
    parse_date_time,
    struct,
    u32,
)
from twin.store_profiles import StoredEntry

DEFINABLE = "0-1:94.31.6"
MAX_COLUMNS = 21  # the clock and 20 values (P3 §8.6)
MAX_ENTRIES = 960
MAX_VALUE_BYTES = 128
ARMED_SETTING = "definable_profile_armed"  # meter time (epoch s) captures count from
_WALL_EPOCH = datetime(1970, 1, 1)  # naive on purpose: local wall-clock time
_NUMBERS = frozenset(
    {
        Tag.DOUBLE_LONG,
        Tag.DOUBLE_LONG_UNSIGNED,
        Tag.INTEGER,
        Tag.LONG,
        Tag.UNSIGNED,
        Tag.LONG_UNSIGNED,
        Tag.LONG64,
        Tag.LONG64_UNSIGNED,
        Tag.ENUM,
    }
)


def latest_boundary(now: datetime, period: int) -> datetime:
    """The last capture time at or before `now` for `period` seconds counted in local
    wall-clock time. In the repeated October hour both instants of a wall time are
    boundaries; a boundary inside the skipped March hour falls on the switch itself."""
    wall = int((local(now).replace(tzinfo=None) - _WALL_EPOCH).total_seconds())
    start = _WALL_EPOCH + timedelta(seconds=wall - wall % period)
    instants = [start.replace(tzinfo=AMSTERDAM, fold=f).astimezone(UTC) for f in (0, 1)]
    return max((t for t in instants if t <= now), default=min(instants))


def next_boundary(now: datetime, period: int) -> datetime:
    """A time after `now` with no capture time of `period` seconds (local wall-clock time,
    the boundaries of `latest_boundary`) between the two: the next boundary, or a little
    before it around a DST change (the caller then finds nothing due and asks again).

    In the repeated October hour the wall clock goes back an hour, so the wall boundaries of
    the hour before the current one come again: they are candidates too, in both instants.
    """
    wall = int((local(now).replace(tzinfo=None) - _WALL_EPOCH).total_seconds())
    start = _WALL_EPOCH + timedelta(seconds=wall - wall % period)
    back = -(-3600 // period)  # whole periods in the repeated hour, rounded up
    instants = [
        (start + timedelta(seconds=k * period)).replace(tzinfo=AMSTERDAM, fold=f).astimezone(UTC)
        for k in range(-back, 2)
        for f in (0, 1)
    ]
    return min(t for t in instants if t > now)


class DefinableProfile(Profile):
    """0-1:94.31.6; its settings are persisted attributes, its buffer a store table."""

    def __init__(self, env: Env, registry: ObjectRegistry) -> None:
        rights = dict.fromkeys(range(1, 9), "/RW/") | {1: "/R/", 2: "/R/", 7: "/R/"}
        super().__init__(
            DEFINABLE,
            [CLOCK],
            lambda: [],
            period=0,  # the fixed settings of the base class are not used here
            entries=MAX_ENTRIES,
            reset=self.clear,
            attributes=rights,
            methods={1: "/X/", 2: "/X/"},
        )
        self.env, self.registry = env, registry
        attrs, key = env.attrs, DEFINABLE
        self.capture_objects = Stored(attrs, f"{key}.3", array([capture_definition(CLOCK)]))
        self.capture_period = Stored(attrs, f"{key}.4", u32(86400))
        self.sort_method = Stored(attrs, f"{key}.5", enum_(SORTED_LARGEST))
        self.sort_object = Stored(attrs, f"{key}.6", capture_definition(CLOCK))
        self.profile_entries = Stored(attrs, f"{key}.8", u32(MAX_ENTRIES))
        self._decoded: dict[int, tuple[Data, ...]] = {}
        self._since = self._done_until()  # boundaries up to here are done
        self._quiet: tuple[int, datetime] = (0, self._since)  # (period, no boundary before)

    # ------------------------------------------------------------------ the buffer

    def buffer_columns(self) -> tuple[Column, ...]:
        return tuple(column_of(d) for d in self.capture_objects.get().items)

    def buffer_rows(self) -> list[Row]:
        entries = self._ordered(self.env.meter.store.definable_entries())
        rows = [Row(e.time, self._values(e)) for e in entries]
        self._decoded = {e.id: row.values for e, row in zip(entries, rows, strict=True)}
        return rows

    def _values(self, entry: StoredEntry) -> tuple[Data, ...]:
        """An entry's decoded values. Entries never change once stored and row ids are never
        reused (AUTOINCREMENT), so decodings are kept by id: a read decodes new rows only."""
        values = self._decoded.get(entry.id)
        return decode(entry.entry).items if values is None else values

    def _ordered(self, entries: Sequence[StoredEntry]) -> list[StoredEntry]:
        """Buffer order: capture order (FIFO), or largest sort value first (ties: newest).
        Sorted by the clock, the order needs no decoding: that column is the entry's time."""
        if self.sort_method.get().integer() == FIFO:
            return sorted(entries, key=lambda e: e.id)
        column = self._sort_column()
        if column == 0:
            return sorted(entries, key=lambda e: (e.time, e.id), reverse=True)
        return sorted(
            entries, key=lambda e: (_sort_key(self._values(e)[column]), e.id), reverse=True
        )

    def _sort_column(self) -> int:
        """sort_object's column; the clock when it is "none" or no longer captured."""
        columns = self.buffer_columns()
        wanted = self.sort_object.get()
        if wanted == NO_SORT_OBJECT or column_of(wanted) not in columns:
            return 0
        return columns.index(column_of(wanted))

    def _overflow(self, entries: Sequence[StoredEntry], capacity: int) -> list[StoredEntry]:
        """The entries a buffer of `capacity` drops: the oldest (FIFO) or the smallest."""
        ordered = self._ordered(entries)
        excess = max(len(ordered) - capacity, 0)
        if self.sort_method.get().integer() == FIFO:
            return ordered[:excess]
        return ordered[len(ordered) - excess :]

    # ------------------------------------------------------------------ attributes

    @property
    def getters(self) -> dict[int, Callable[[], Data]]:
        return super().getters | {
            3: self.capture_objects.get,
            4: self.capture_period.get,
            5: self.sort_method.get,
            6: self.sort_object.get,
            8: self.profile_entries.get,
        }

    def write(self, index: int, value: Data, request: Request) -> None:
        if index == 3:
            self._check_columns(value.expect(Tag.ARRAY).items)
            self.clear(request.now)  # first: a crash in between leaves an empty buffer
            self.capture_objects.put(value)
        elif index == 4:
            value.expect(Tag.DOUBLE_LONG_UNSIGNED)
            self.clear(request.now)
            self.capture_period.put(value)
        elif index == 5:
            if value.expect(Tag.ENUM).integer() not in (FIFO, SORTED_LARGEST):
                raise ObjectError(DataAccessResult.OTHER_REASON, "sort_method is 1 or 3")
            self.sort_method.put(value)
        elif index == 6:
            self._check_sort_object(value)
            self.sort_object.put(value)
        elif index == 8:
            self._set_entries(value.expect(Tag.DOUBLE_LONG_UNSIGNED).integer())
            self.profile_entries.put(value)
        else:
            raise ObjectError(DataAccessResult.READ_WRITE_DENIED)

    def _check_columns(self, items: Sequence[Data]) -> None:
        columns = [_definition(d) for d in items]  # type-unmatched if malformed
        if not columns or columns[0] != CLOCK:
            raise ObjectError(DataAccessResult.OTHER_REASON, "the clock is the first column")
        if len(columns) > MAX_COLUMNS:
            raise ObjectError(DataAccessResult.OTHER_REASON, "at most 20 captured values")
        for column in columns[1:]:
            if column[0] == Profile.class_id and column[2] == 2:
                raise ObjectError(DataAccessResult.OTHER_REASON, "profile buffers")
            raw = self._get(column)
            if raw is None or len(raw) > MAX_VALUE_BYTES:
                raise ObjectError(DataAccessResult.OTHER_REASON, f"cannot capture {column}")

    def _check_sort_object(self, value: Data) -> None:
        if value == NO_SORT_OBJECT:
            return
        if _definition(value) not in self.buffer_columns():
            raise ObjectError(DataAccessResult.OTHER_REASON, "sort_object is not captured")

    def _set_entries(self, count: int) -> None:
        if not 1 <= count <= MAX_ENTRIES:
            raise ObjectError(DataAccessResult.OTHER_REASON, f"profile_entries 1..{MAX_ENTRIES}")
        dropped = self._overflow(self.env.meter.store.definable_entries(), count)
        if dropped:
            self.env.meter.store.drop_definable_entries(e.id for e in dropped)

    # ------------------------------------------------------------------ methods and capture

    def invoke(self, index: int, parameters: Data | None, request: Request) -> Data | None:
        if index == 2:  # capture () (Blue Book §4.3.6 method 2): one entry now
            self.capture(request.now.replace(microsecond=0))
            return None
        return super().invoke(index, parameters, request)

    def tick(self, now: datetime) -> None:
        """Capture when a capture_period boundary passed since the newest entry."""
        period = self.capture_period.get().integer()
        if period == 0 or (period == self._quiet[0] and now < self._quiet[1]):
            return  # runs before every request: no local-time arithmetic when nothing is due
        boundary = latest_boundary(now, period)
        if boundary > self._since:
            self.capture(boundary)
        # The next boundary is at least this far on: a DST change shortens the local interval
        # by one hour at most.
        self._quiet = (period, boundary + timedelta(seconds=max(1, period - 3600)))

    def next_capture(self, now: datetime) -> datetime | None:
        """The first capture_period boundary after `now` (UTC), or a little before it around
        a DST change (see `next_boundary`); None while the period is 0. The object model's
        ticker sleeps until then, and a scenario (twin/scenario_p3.py) steps its clock there."""
        period = self.capture_period.get().integer()
        return None if period == 0 else next_boundary(now, period)

    def capture(self, when: datetime) -> None:
        """One entry stamped `when`, values read now; a full buffer drops one entry."""
        values = [date_time(when), *(self._value(c) for c in self.buffer_columns()[1:])]
        entries = self.env.meter.store.definable_entries()
        new_id = max((e.id for e in entries), default=0) + 1
        new = StoredEntry(new_id, when, encode(struct(*values)))
        gone = [e.id for e in self._overflow([*entries, new], self.profile_entries.get().integer())]
        if new_id not in gone:
            self.env.meter.store.add_definable_entry(when, new.entry, gone)
        self._since = max(self._since, when)

    def _value(self, column: Column) -> Data:
        raw = self._get(column)
        if raw is None or len(raw) > MAX_VALUE_BYTES:
            return null()
        return decode(raw)

    def _get(self, column: Column) -> bytes | None:
        """A management GET of `column` through the registry (no comlog: not a session)."""
        class_id, code, index = column
        answer = self.registry.get(
            MANAGEMENT_SAP, AttributeRef(class_id, obis_bytes(code), index), None
        )
        return None if isinstance(answer, DataAccessResult) else answer

    def clear(self, now: datetime) -> None:
        """Empty the buffer; captures count again from `now` (also after a meter reset,
        which puts capture_objects back to the default)."""
        self.env.meter.store.clear_definable_profile()
        self._arm(now)

    def _arm(self, now: datetime) -> None:
        self.env.meter.store.put_setting(ARMED_SETTING, now.timestamp())
        self._since = now

    def _done_until(self) -> datetime:
        """The newer of the arming time and the newest entry. A new meter is armed now: the
        first boundary after the object model first ran is the first capture."""
        store = self.env.meter.store
        armed = store.setting(ARMED_SETTING)
        if armed is None:
            now = self.env.meter.now()
            store.put_setting(ARMED_SETTING, now.timestamp())
            armed = now.timestamp()
        times = [e.time for e in store.definable_entries()]
        return max([datetime.fromtimestamp(float(armed), UTC), *times])


def _definition(value: Data) -> Column:
    """A capture_object_definition {class_id, logical_name, attribute_index, data_index}."""
    items = value.expect(Tag.STRUCTURE).items
    if len(items) != 4:
        raise ValueTypeError("capture object definition has 4 elements")
    tags = (Tag.LONG_UNSIGNED, Tag.OCTET_STRING, Tag.INTEGER, Tag.LONG_UNSIGNED)
    for item, tag in zip(items, tags, strict=True):
        item.expect(tag)
    name = items[1].octets()
    if len(name) != 6:
        raise ValueTypeError("logical name is 6 octets")
    if name[5] != 255 or items[3].integer() != 0:
        raise ObjectError(DataAccessResult.OTHER_REASON, "no such object (F = 255, data_index 0)")
    return column_of(value)


def _sort_key(value: Data) -> tuple[int, float | bytes]:
    """Numbers and date-times compare by value; anything else by its encoding, below them."""
    if value.tag in _NUMBERS:
        return (1, value.integer())
    if value.tag is Tag.OCTET_STRING and len(value.octets()) == 12:
        try:
            when = parse_date_time(value.octets())
        except ValueTypeError:
            when = None
        if when is not None:
            return (1, when.timestamp())
    return (0, encode(value))
