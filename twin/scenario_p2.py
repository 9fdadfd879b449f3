"""P2 in a scenario run (twin/scenario_run.py): the E meter's M-Bus master and the simulated
gas meter, stepped by the scenario's clock.

The master and the gas-meter twin are the running twin's (twin/p2/aio/wiring.py), but their
frames are exchanged at once, in the runner's own task, at the meter time of a due point: the
installation at the start (P2 §8.3.1, discovery on power-up), the scans of the installation
window, the hourly read-out `read_delay_s` after every whole UTC hour (P2 §4.3, MAIN DSMR-M
4.5.5), the clock synchronisations (P2 §6.2.1) and what an `mbus` event queues. Nothing waits
on the host's time or on another task, so the M-Bus values on P1 (0-n:24.2.1), the M-Bus
hourly rows (0-n:24.3.0) and the M-Bus event log are the same on every run. The keys, the
access number and the gas meter's household draw from streams seeded by the scenario's seed.

A gas meter taken off the bus (`gas` event with `attached = false`) stays silent: the
master's read-out gets no answer and logs its communication error (event 1x0), P1 keeps the
last value with its capture time.
"""

from __future__ import annotations

import random
from datetime import datetime
from pathlib import Path

from twin.config import Config
from twin.control import ControlServer
from twin.metering import Meter
from twin.p2.aio.wiring import p2_parts

# Distinct streams from the one seed: the household's (the model), the gas meter's, the keys'.
GAS_STREAM, KEY_STREAM = "gas meter", "keys"


class ScenarioBus:
    """The scenario's P2: registers `mbus` and `gas` on the control socket."""

    def __init__(
        self, config: Config, meter: Meter, control: ControlServer, state_dir: Path, seed: int
    ) -> None:
        self.meter = meter
        keys = random.Random(f"{KEY_STREAM} {seed}")
        parts = p2_parts(
            config,
            meter,
            control,
            state_dir,
            rng=random.Random(f"{GAS_STREAM} {seed}"),
            urandom=keys.randbytes,
        )
        self.service, self.gas = parts.service, parts.gas
        self.service.use_instant_peer(self._answer)

    def _answer(self, frame: bytes) -> bytes:
        """The gas meter's reply at the clock's time; off the bus (or none), silence."""
        if self.gas is None or not self.gas.attached:
            return b""
        return self.gas.answer(frame)

    def start(self) -> None:
        """Power-up discovery before the first telegram, as the running twin does it."""
        if self.gas is not None and self.gas.attached:
            self.service.discover(self._answer)

    def next_due(self) -> datetime | None:
        """The meter time of the next bus work; None: at once (before the first step)."""
        return self.service.due()

    async def step(self) -> None:
        """What is due on the bus at the clock's time (nothing at all between due points)."""
        if self.service.has_work():
            await self.service.step()
