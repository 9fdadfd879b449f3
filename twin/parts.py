"""The parts of a running twin, as twin/app.py assembles them and the port wirings get them.

A neutral module: the wirings (twin/p2, twin/p3, twin/display) take a `Twin` and add their
services and what they offer the others to it, so no wiring imports twin/app.py or another
port: P2 sets `mbus_port` (the P3 class 72 methods), P3 sets `modem` and `display_lists`
(what the display shows of the communication module and the readout lists the head-end may
rewrite, P3 §5.15). The wirings run in that order (P2, P3, display); the web console (twin/web)
is wired last and reads what the others left here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from twin.clock import Clock
    from twin.config import Config
    from twin.control import ControlServer
    from twin.fast_forward import FastForward
    from twin.metering import Meter
    from twin.p1.recent import RecentTelegrams
    from twin.ports import MbusPort, ModemStatus
    from twin.readout_lists import ReadoutLists
    from twin.store import Store
    from twin.supervisor import Service, Supervisor


@dataclass(slots=True)
class Twin:
    config: Config
    state_dir: Path
    store: Store
    clock: Clock
    meter: Meter
    control: ControlServer
    services: list[Service]
    supervisor: Supervisor
    # `ctl advance`; the wirings register the waypoints of their ports (twin/fast_forward.py).
    fast_forward: FastForward
    # The P2 service's port for the P3 class 72 methods (set by twin/p2 wiring when P2 runs).
    mbus_port: MbusPort | None = None
    # The P3 modem's network state for the display (set by twin/p3 wiring; None without a modem).
    modem: ModemStatus | None = None
    # The display readout lists of the P3 object model (set by twin/p3 wiring when P3 runs).
    display_lists: ReadoutLists | None = None
    # The last P1 telegrams sent (set by the P1 wiring when P1 runs), for the web console.
    telegrams: RecentTelegrams | None = None
