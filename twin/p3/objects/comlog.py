"""Communication session log bookkeeping (P3 §4.2.1, §5.10, §8.7).

During a management association every served request is classified; when the association is
released, one entry per detected code goes to the communication session log 0-0:99.98.4 and
the comlog counters 0-1:94.31.7..10 start again from 0.

Classification (P3 §4.2.1 "Communication Sessions Event Log"): only Gets of the value
attribute of the register objects count as 73-76 (readings E / G, interval data E / G);
calls on their other attributes are 71. The "Configuration Items" sheet that assigns 72
(technical maintenance of the grid) per object is not public, so every other call counts as
71 (maintenance of the meter). Every call of the management client
counts, whatever its result ("events are logged when one of the services mentioned in section
2.1.3 is called"); the public client's calls are not logged.

Only calls that come through a `Session` (one per connection, see factory.py) are recorded,
so the service's own reads of settings never count.
"""

from __future__ import annotations

from datetime import UTC, datetime

from twin.meter.events import EventCode, EventLog
from twin.meter.model import MeterModel
from twin.metering import Meter
from twin.p3.dlms.cosem import AttributeRef
from twin.p3.objects.base import MANAGEMENT_SAP, obis_bytes

E_READINGS = frozenset(
    obis_bytes(c)
    for c in ("1-0:1.8.0", "1-0:2.8.0", "1-0:1.8.1", "1-0:1.8.2", "1-0:2.8.1", "1-0:2.8.2")
)
E_INTERVALS = frozenset(obis_bytes(c) for c in ("1-0:99.1.0", "1-0:99.2.0", "0-0:98.1.0"))
G_READINGS = frozenset(obis_bytes(f"0-{c}:24.2.1") for c in range(1, 5))
G_INTERVALS = frozenset(obis_bytes(f"0-{c}:24.3.0") for c in range(1, 5))
VALUE_ATTRIBUTE = {3: 2, 4: 2, 7: 2}  # class id -> the attribute that holds the values
COUNTED = (
    (E_READINGS, EventCode.RETRIEVE_READINGS_E),
    (G_READINGS, EventCode.RETRIEVE_READINGS_G),
    (E_INTERVALS, EventCode.RETRIEVE_INTERVAL_E),
    (G_INTERVALS, EventCode.RETRIEVE_INTERVAL_G),
)
COUNTER_OBJECTS = {
    EventCode.RETRIEVE_READINGS_E: "0-1:94.31.7",
    EventCode.RETRIEVE_READINGS_G: "0-1:94.31.8",
    EventCode.RETRIEVE_INTERVAL_E: "0-1:94.31.9",
    EventCode.RETRIEVE_INTERVAL_G: "0-1:94.31.10",
}


def classify(ref: AttributeRef, *, method: bool) -> EventCode:
    """`method` is True for SET and ACTION calls: only a Get of the value counts as 73-76."""
    for names, code in COUNTED:
        if ref.obis in names:
            value = not method and VALUE_ATTRIBUTE.get(ref.class_id) == ref.index
            return code if value else EventCode.METROLOGICAL_MAINTENANCE
    return EventCode.METROLOGICAL_MAINTENANCE


COUNTS_SETTING = "p3_comlog_counts"  # "<ISO time>|<code>" -> counter value, for 0-0:99.98.4


class ComLog:
    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.counts: dict[EventCode, int] = {}
        # The counter values logged with the entries, as stored (read once; this is the only
        # writer of the setting, so the copy in memory is the authority while it runs).
        self._saved: dict[str, int] | None = None

    def record(self, client: int, ref: AttributeRef, *, method: bool = False) -> None:
        if client == MANAGEMENT_SAP:
            code = classify(ref, method=method)
            self.counts[code] = self.counts.get(code, 0) + 1

    def count(self, code: EventCode) -> int:
        return self.counts.get(code, 0)

    def flush(self) -> None:
        """At the release of the association: one entry per detected code with its counter
        value (0 for 71 and 72, P3 §5.10), then the counters restart (§8.7).

        The entries and their counter values are queued in order, in one transaction, not
        waited for: the RLRE has gone out already, so nobody is answered about them, and a
        wait here would hold the event loop (every meter of a fleet worker) for an fsync. A
        read of the log commits first (`Env.store`), after them, so it sees them."""
        counts, self.counts = self.counts, {}
        if not counts:
            return
        when = self.meter.now()
        saved = self._stored()
        for code, n in counts.items():
            if code in COUNTER_OBJECTS:
                saved[_key(when, code)] = n
        self._saved = dict(list(saved.items())[-EventLog.COMMUNICATION.capacity :])
        # The entries and their counter values in one transaction.
        self.meter.act_soon(
            lambda m, _now: _log(m, when, sorted(counts)), {COUNTS_SETTING: self._saved}
        )

    def counter_of(self, when: datetime, code: int) -> int:
        """The counter value logged with the entry (`when`, `code`)."""
        return int(self._stored().get(_key(when, code), 0))

    def _stored(self) -> dict[str, int]:
        if self._saved is None:
            self._saved = dict(self.meter.store.setting(COUNTS_SETTING) or {})
        return self._saved


def _key(when: datetime, code: int) -> str:
    return f"{when.astimezone(UTC).replace(microsecond=0).isoformat()}|{int(code)}"


def _log(model: MeterModel, when: datetime, codes: list[EventCode]) -> None:
    for code in codes:
        model.log_event(when, code)
