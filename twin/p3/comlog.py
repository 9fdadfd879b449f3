"""Communication-session event detection (P3 §4.2.1 codes 71-76, §4.2.2, §5.10, §8.7).

`SessionRecorder` sits between the DLMS core and the object model and classifies every
service call of the management client (the services of P3 §2.1.3):

- 73 retrieve meter readings E: Get of the value of an electricity energy register;
- 74 retrieve meter readings G: Get of the value of an M-Bus master value 0-x:24.2.1;
- 75 retrieve interval data E: Get of the buffer of 1-0:99.1.0, 1-0:99.2.0 or 0-0:98.1.0;
- 76 retrieve interval data G: Get of the buffer of an M-Bus profile 0-x:24.3.0;
- 71 metrological maintenance: every other call ("service calls on the other attributes of
  these OBIS objects will be regarded as event 71", §4.2.2).

72 (technical maintenance of the grid) is assigned per object in DSMR's "Configuration Items"
sheet, which is not public; this twin does not raise it. The counts of 73-76 are the comlog
counters 0-1:94.31.7..10 of the session; they reset after the entries are written (§8.7).
"""

from __future__ import annotations

from twin.p3.association import MANAGEMENT_CLIENT
from twin.p3.cosem import AttributeRef, DataAccessResult, SelectiveAccess
from twin.p3.interfaces import ActionOutcome, CosemObjects

METROLOGICAL = 71
READINGS_E = 73
READINGS_G = 74
INTERVAL_E = 75
INTERVAL_G = 76
_E_PROFILES = frozenset({bytes([1, 0, 99, 1, 0, 255]), bytes([1, 0, 99, 2, 0, 255])})
_E_PROFILES |= {bytes([0, 0, 98, 1, 0, 255])}


def classify_get(ref: AttributeRef) -> int:
    """The comlog code of one Get (P3 §4.2.2)."""
    a, b, c, d, e, _f = ref.obis
    if ref.index != 2:
        return METROLOGICAL
    if ref.class_id in (3, 4) and a == 1 and d == 8:  # 1-0:x.8.y energy registers
        return READINGS_E
    if ref.class_id == 4 and a == 0 and 1 <= b <= 4 and (c, d, e) == (24, 2, 1):
        return READINGS_G
    if ref.class_id == 7 and ref.obis in _E_PROFILES:
        return INTERVAL_E
    if ref.class_id == 7 and a == 0 and 1 <= b <= 4 and (c, d, e) == (24, 3, 0):
        return INTERVAL_G
    return METROLOGICAL


class SessionRecorder:
    """A `CosemObjects` that forwards to the object model and counts comlog codes."""

    def __init__(self, objects: CosemObjects) -> None:
        self._objects = objects
        self.counts: dict[int, int] = {}

    def _count(self, client: int, code: int) -> None:
        if client == MANAGEMENT_CLIENT.sap:
            self.counts[code] = self.counts.get(code, 0) + 1

    def get(
        self, client: int, ref: AttributeRef, access: SelectiveAccess | None
    ) -> bytes | DataAccessResult:
        self._count(client, classify_get(ref))
        return self._objects.get(client, ref, access)

    def set(
        self, client: int, ref: AttributeRef, access: SelectiveAccess | None, value: bytes
    ) -> DataAccessResult:
        self._count(client, METROLOGICAL)
        return self._objects.set(client, ref, access, value)

    def action(self, client: int, ref: AttributeRef, parameters: bytes | None) -> ActionOutcome:
        self._count(client, METROLOGICAL)
        return self._objects.action(client, ref, parameters)

    def drain(self) -> list[tuple[int, int]]:
        """(code, counter) per detected code, in code order; then the counters reset (§8.7).
        The counter is 0 for 71/72 (§5.10 capture_objects)."""
        out = [(code, 0 if code < READINGS_E else n) for code, n in sorted(self.counts.items())]
        self.counts.clear()
        return out
