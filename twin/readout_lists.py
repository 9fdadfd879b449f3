"""The display readout lists (P3 §5.15): which OBIS codes the display shows in each mode.

Three class-7 objects carry them: 0-0:21.0.1 auto scroll (general display readout),
0-0:21.0.2 manual scroll (alternate display readout) and 0-0:21.0.3 service mode. Their
capture_objects default to the Standard Readout Object List (P3 Annex B) and the management
client may rewrite them (array[64]). The defaults live here, next to the OBIS catalogue, so the
P3 object model (twin/p3/objects/readout.py) and the display (twin/display/pages.py) share
them without the display importing P3.

Annex B as read from the specification text (numbered entries of each list's numeric row, in
order; symbols and flags are not readout entries and the "display test" is no object):
- auto scroll: 1-0:1.8.1, 1.8.2, 2.8.1, 2.8.2, then the message code 0-0:96.13.1.
- alternate: 1-3:0.2.8, the four energy registers, for each M-Bus channel 1..4 its serial
  number and device type (0-n:24.1.0 attributes 6 and 9, numeric and alphanumeric row of one
  entry; shown only for installed devices, note 2), then the communication session log
  0-0:99.98.4 (entries_in_use: a display row shows one number, not a 2190-entry buffer).
- service: 0-0:1.0.0, the energy registers, the M-Bus channels as above, the firmware
  identifiers and signatures 1-0:0.2.0, 1-0:0.2.8, 1-1:0.2.0, 1-1:0.2.8, then the per-phase
  powers 1-0:21.7.0, 22.7.0 (41.7.0, 42.7.0, 61.7.0, 62.7.0 on polyphase meters, note 1).
Entry 7 of the alternate list and entry 6 of the service list carry no object in the text.
"""

from __future__ import annotations

from typing import Protocol

Column = tuple[int, str, int]  # capture object: class id, OBIS code, attribute index

AUTO_SCROLL, ALTERNATE, SERVICE_MODE = (f"0-0:21.0.{i}" for i in range(1, 4))
DISPLAY_LISTS = (AUTO_SCROLL, ALTERNATE, SERVICE_MODE)

ENERGY: tuple[Column, ...] = tuple((3, f"1-0:{c}", 2) for c in ("1.8.1", "1.8.2", "2.8.1", "2.8.2"))
MBUS: tuple[Column, ...] = tuple(
    (72, f"0-{n}:24.1.0", index) for n in range(1, 5) for index in (6, 9)
)
FIRMWARE: tuple[Column, ...] = tuple(
    (1, code, 2) for code in ("1-0:0.2.0", "1-0:0.2.8", "1-1:0.2.0", "1-1:0.2.8")
)
PHASE_POWER = ("1-0:21.7.0", "1-0:22.7.0", "1-0:41.7.0", "1-0:42.7.0", "1-0:61.7.0", "1-0:62.7.0")


def annex_b(phases: int) -> dict[str, tuple[Column, ...]]:
    """The default capture objects of the three display readout lists (P3 Annex B)."""
    powers = PHASE_POWER if phases >= 3 else PHASE_POWER[:2]  # Annex B note 1
    return {
        AUTO_SCROLL: (*ENERGY, (1, "0-0:96.13.1", 2)),
        ALTERNATE: ((1, "1-3:0.2.8", 2), *ENERGY, *MBUS, (7, "0-0:99.98.4", 7)),
        SERVICE_MODE: (
            (8, "0-0:1.0.0", 2),
            *ENERGY,
            *MBUS,
            *FIRMWARE,
            *((3, code, 2) for code in powers),
        ),
    }


class ReadoutLists(Protocol):
    """Read-only view of the display readout lists, for the display."""

    def codes(self, list_code: str) -> tuple[str, ...]:
        """The OBIS codes of list `list_code` (one of DISPLAY_LISTS), in list order."""
        ...


class DefaultLists:
    """The Annex B lists, for a display without P3 (nobody can rewrite them then)."""

    def __init__(self, phases: int = 3) -> None:
        self._codes = {
            name: tuple(code for _class, code, _index in columns)
            for name, columns in annex_b(phases).items()
        }

    def codes(self, list_code: str) -> tuple[str, ...]:
        return self._codes[list_code]


DEFAULT_LISTS = DefaultLists()
