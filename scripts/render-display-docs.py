#!/usr/bin/env python3
"""Render the display screenshots in docs/display/ from a fixed example reading.

    .venv/bin/python scripts/render-display-docs.py [--out docs/display] [--scale 4]

The frames are what `dsmr-twin ctl screenshot` saves (128x64, 1 bit), enlarged `--scale` times
with square pixels so they stay readable in a browser; `--scale 1` gives the panel's pixels.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from twin.display.render import DisplayState, render  # noqa: E402
from twin.meter.state import ADMIN_ON, MbusReading, MeterReading  # noqa: E402
from twin.meter.tariff import Tariff  # noqa: E402
from twin.readout_lists import DEFAULT_LISTS, SERVICE_MODE  # noqa: E402

NOW = datetime(2026, 3, 2, 11, 0, 0, tzinfo=UTC)

EXAMPLE = MeterReading(
    time=NOW,
    powered=True,
    phases=3,
    energy_wh={
        "1-0:1.8.1": 4_321_987,
        "1-0:1.8.2": 3_456_789,
        "1-0:2.8.1": 812_345,
        "1-0:2.8.2": 1_234_567,
    },
    tariff=Tariff.NORMAL,
    import_w=1_193,
    export_w=0,
    import_w_phase=(412, 388, 393),
    export_w_phase=(0, 0, 0),
    current_a=(2, 2, 2),
    voltage_v=(230.4, 229.8, 231.1),
    failures_any=4,
    failures_long=2,
    failure_log=(),
    sags=(0, 0, 0),
    swells=(0, 0, 0),
    message_code="",
    message_text="",
    admin_state=ADMIN_ON,
    mbus=(MbusReading(1, 3, "G0099000000000019", 1_234_567, NOW),),
    load_override_w=None,
    equipment_id="E0099000000000018",
)

SCREENS = {
    # Auto scroll, first page: T1 import, signal 3 of 4, importing.
    "default": DisplayState(EXAMPLE, comm_attached=True, signal_level=3),
    # Service mode (list 0-0:21.0.3) on the L1 power page: the self-check flag is shown
    # (DSMR-M 4.3.35).
    "service-mode": DisplayState(
        EXAMPLE,
        comm_attached=True,
        signal_level=4,
        service_mode=True,
        page=6,
        codes=DEFAULT_LISTS.codes(SERVICE_MODE),
    ),
    # A consumer message code, exporting (PV), no modem signal, phase L2 down; auto scroll on
    # its message page (Annex B entry 6).
    "message": DisplayState(
        dataclasses.replace(
            EXAMPLE,
            message_code="00000123",
            import_w=0,
            export_w=2_350,
            voltage_v=(231.0, 0.0, 230.2),
            tariff=Tariff.LOW,
        ),
        comm_attached=False,
        signal_level=0,
        page=4,
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "display")
    parser.add_argument("--scale", type=int, default=4, choices=range(1, 9), metavar="1..8")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, state in SCREENS.items():
        image = render(state)
        size = (image.width * args.scale, image.height * args.scale)
        path = args.out / f"{name}.png"
        image.resize(size, Image.Resampling.NEAREST).save(path, format="PNG")
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
