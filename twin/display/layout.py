"""Where every element of the 128x64 meter display sits.

Rectangles are `(left, top, right, bottom)` with both corners inclusive (PIL's convention for
`draw.rectangle`), so a test can count the pixels of one element and nothing else.

    y  0..8    flags row (DSMR-M 4.3.35): OF ON CM L1 L2 L3 SC R1 R2 R3
    y 10..19   symbols (DSMR-M 4.3.36): signal bars, energy direction; tariff; message code
    y 21..29   register label (from the catalogue) and its unit
    y 31..52   register value, the bitmap font at double size
    y 55..63   OBIS code, SERVICE while in service mode, page n/N
"""

from __future__ import annotations

from enum import Enum

WIDTH = 128
HEIGHT = 64

Rect = tuple[int, int, int, int]


class Flag(Enum):
    """The flags of DSMR-M 4.3.35, left to right, with the label drawn in each box."""

    ADMIN_OFF = "OF"  # flag 1: 0-1:94.31.0 attribute 2 == 1 (administrative off)
    ADMIN_ON = "ON"  # flag 2: 0-1:94.31.0 attribute 2 == 2 (default)
    COMM = "CM"  # communication module attached to the network
    L1 = "L1"  # voltage present per phase
    L2 = "L2"
    L3 = "L3"
    SELF_CHECK = "SC"  # successful self-check, only visible in service mode
    RESERVED_1 = "R1"  # "minimal 3 reserved flags for future use"
    RESERVED_2 = "R2"
    RESERVED_3 = "R3"


PHASE_FLAGS = (Flag.L1, Flag.L2, Flag.L3)

FLAG_TOP, FLAG_BOTTOM = 0, 8
FLAG_WIDTH, FLAG_STEP, FLAG_LEFT = 11, 12, 4


def _flag_rect(index: int) -> Rect:
    left = FLAG_LEFT + index * FLAG_STEP
    return (left, FLAG_TOP, left + FLAG_WIDTH - 1, FLAG_BOTTOM)


FLAGS: dict[Flag, Rect] = {flag: _flag_rect(i) for i, flag in enumerate(Flag)}

# DSMR-M 4.3.36 symbols on the second row.
SIGNAL: Rect = (0, 10, 17, 19)
ANTENNA: Rect = (0, 10, 4, 19)
# Four bars of rising height, bottom-aligned; level n fills the first n.
SIGNAL_BARS: tuple[Rect, ...] = tuple((6 + 3 * i, 17 - 2 * i, 7 + 3 * i, 19) for i in range(4))
DIRECTION: Rect = (20, 10, 35, 19)
TARIFF: Rect = (38, 10, 53, 19)
MESSAGE: Rect = (56, 10, 127, 19)

LABEL: Rect = (0, 21, 95, 29)
UNIT: Rect = (96, 21, 127, 29)
VALUE: Rect = (0, 31, 127, 52)
OBIS: Rect = (0, 55, 59, 63)
MODE: Rect = (60, 55, 103, 63)
PAGE: Rect = (104, 55, 127, 63)

ELEMENTS: dict[str, Rect] = {
    **{f"flag.{flag.name.lower()}": rect for flag, rect in FLAGS.items()},
    "signal": SIGNAL,
    "direction": DIRECTION,
    "tariff": TARIFF,
    "message": MESSAGE,
    "label": LABEL,
    "unit": UNIT,
    "value": VALUE,
    "obis": OBIS,
    "mode": MODE,
    "page": PAGE,
}


def inside(rect: Rect, x: int, y: int) -> bool:
    left, top, right, bottom = rect
    return left <= x <= right and top <= y <= bottom
