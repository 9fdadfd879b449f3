"""GPRS in a scenario run (twin/scenario_run.py): wake-ups and the chapter 9 pushes.

The scenario's meter has the twin's GPRS controller (twin/p3/gprs/controller.py) on the
scenario's clock, with its push planning and randomisation (P3 §9.3) drawing from a stream of
the scenario's seed, so the pushes are part of the reproducible result:

- `wakeup` events (`kind` = "sms" or "csd", `sender`) go to a simulated modem
  (hardware/modem_sim.py on a pty in the state directory, started by the first wake-up) and
  travel its AT dialogue as on a real modem (+CMTI -> AT+CMGR/AT+CMGD, RING/+CLIP -> ATH) to
  the controller, which answers at the event's meter time: a listed sender (or any, with
  `[config.p3] wakeup_any_sender`) in triggered GPRS mode runs the CSD/SMS setup's push
  0-2:25.9.0 (P3 §9.1.3-§9.1.4); the event's answer says whether the meter took it.
- The push scheduler 0-0:15.0.4, the register monitor on the alarm register (compared afresh
  at the start and after every power failure, P3 §9.1.2) and the push setups' method 1 (by a
  `p3-action`) are polled at every due point of the runner; a planned push's start is a due
  point, so each push happens at its meter time.
- A push's message (the push_object_list values, P3 §9.3) is never sent over the network:
  the runner records it (`PushRecord`; `dsmr-twin run --scenario FILE --pushes FILE` writes one
  JSON line each). The connection steps (PDP context, server socket, the CS session of GPRS CS
  §3) succeed at once and no CS connects; a destination that is not HOST:PORT fails every
  attempt at once. As in the twin, an empty destination sends no message (the alarm setup's
  disables its push), and the CSD/SMS setup falls back to `[config.p3] push_destination`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from twin.clock import SystemClock
from twin.config import Config
from twin.control import ControlError, ControlServer
from twin.metering import Meter
from twin.p3.gprs.controller import GprsController
from twin.p3.gprs.modem_service import ModemService, ModemUnavailableError, open_modem_service
from twin.p3.gprs.push import ln_text
from twin.p3.service import P3Service
from twin.p3.wiring import WAKEUP_FIELDS
from twin.scenario_p3 import ScenarioHeadEnd

PUSH_STREAM = "p3 pushes"  # its own stream of the scenario's seed (push randomisation)
MODEM_START_S = 10.0  # real seconds for the simulated modem's pty to open


@dataclass(frozen=True, slots=True)
class PushRecord:
    """One push message as the meter sent it, at its meter time."""

    at: datetime
    setup: str  # the push setup's logical name, e.g. "0-2:25.9.0"
    destination: str  # send_destination, HOST:PORT
    message: bytes

    def line(self) -> str:
        return json.dumps(
            {
                "at": self.at.isoformat(),
                "setup": self.setup,
                "destination": self.destination,
                "message": self.message.hex().upper(),
            }
        )


class ScenarioGprs:
    """The GPRS controller of the scenario's meter, its push record and `wakeup`."""

    def __init__(
        self,
        config: Config,
        meter: Meter,
        head_end: ScenarioHeadEnd,
        control: ControlServer,
        state_dir: Path,
        *,
        seed: int,
        record: TextIO | None = None,
    ) -> None:
        self.config = config
        self.meter = meter
        self.state_dir = state_dir
        self.record = record
        self.records: list[PushRecord] = []
        # The controller wants a P3 service (its sessions and listener): the `--p3` one, or
        # one that never listens (no CS connects in a scenario).
        service = head_end.service or P3Service(
            meter, head_end.keys, head_end.objects, "127.0.0.1", 0, net_clock=meter.clock
        )
        self.controller = GprsController(
            service,
            config.p3,
            meter_clock=meter.clock,
            net_clock=meter.clock,  # retries and waits on the scenario's clock, not the host's
            equipment_id=config.meter.equipment_id,
            rng=random.Random(f"{PUSH_STREAM} {seed}"),
        )
        self.controller.pushes.deliver = self._deliver
        head_end.relay.attach(self.controller)
        self.modem: ModemService | None = None
        self._modem_task: asyncio.Task[None] | None = None
        control.add_command("wakeup", self._wakeup, WAKEUP_FIELDS)

    # ---- the runner's steps -----------------------------------------------------------------
    def next_due(self) -> datetime | None:
        """The meter time of the next planned push or push scheduler execution, or of the
        supply's return (P3 §9.1.2: the register monitor compares at every power-up)."""
        planned = [self.controller.pushes.next_wake(), self.meter.model.power_returns()]
        return min((when for when in planned if when is not None), default=None)

    async def step(self) -> None:
        """The triggers at this meter time, then every push whose start has come, one at a
        time (P3 §9.3: the first is finalized before the next starts)."""
        pushes = self.controller.pushes
        pushes.poll()
        while (job := pushes.queue.due(self.meter.now())) is not None:
            await pushes.execute(job, self)
            pushes.poll()

    async def close(self) -> None:
        if self._modem_task is not None:
            self._modem_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._modem_task

    # ---- `Link` of the push attempts: the network is always there, no CS connects -----------
    def triggered(self) -> bool:
        return self.controller.triggered()

    def pdp_active(self) -> bool:
        return True

    async def online(self) -> None:
        return None

    async def offline(self) -> None:
        return None

    async def serve(self, opened: datetime) -> None:
        return None

    async def sleep(self, until: datetime) -> None:
        return None  # the scenario's clock stands still during a step: retries follow at once

    async def _deliver(self, setup: bytes, address: tuple[str, int], message: bytes) -> None:
        host, port = address
        destination = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        record = PushRecord(self.meter.now(), ln_text(setup), destination, message)
        self.records.append(record)
        if self.record is not None:
            self.record.write(record.line() + "\n")

    # ---- wakeup -----------------------------------------------------------------------------
    async def _wakeup(self, request: Mapping[str, Any]) -> object:
        """The simulated modem receives the SMS or call; the controller answers at the
        event's meter time (the runner waits for the answer before it moves on)."""
        modem = await self._started_modem()
        try:
            return await modem.inject_wakeup(request["kind"], request["sender"])
        except (ModemUnavailableError, ValueError) as exc:
            raise ControlError(str(exc)) from exc

    async def _started_modem(self) -> ModemService:
        if self.modem is None:
            p3 = dataclasses.replace(self.config.p3, modem="simulated")
            # Its polls and SMS time stamps run on the host's clock: they touch no result.
            modem = open_modem_service(p3, self.state_dir, SystemClock())
            assert modem is not None  # "simulated" always gives one
            modem.on_wakeup = self.controller.wakeup
            self.modem = modem
            self._modem_task = asyncio.create_task(modem.run(), name="simulated modem")
        async with asyncio.timeout(MODEM_START_S):
            while not self.modem.up:
                if self._modem_task is not None and self._modem_task.done():
                    self._modem_task.result()  # its error, e.g. no pty
                    raise ControlError("the simulated modem stopped")
                await asyncio.sleep(0.01)
        return self.modem
