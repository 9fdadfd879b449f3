"""Assemble a running twin from its configuration: store, clock, meter, ports, supervisor."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twin.clock import Clock, SimulatedClock, SystemClock
from twin.config import Config
from twin.control import SOCKET_NAME, ControlError, ControlServer
from twin.metering import Meter
from twin.sdnotify import Notifier
from twin.store import Checkpoint, Store
from twin.supervisor import Service, Supervisor

if TYPE_CHECKING:
    from twin.p3.objects.ports import MbusPort

log = logging.getLogger(__name__)

TICK_S = 0.5  # real seconds between metering ticks (events are committed within one tick)


def make_clock(config: Config, checkpoint: Checkpoint | None) -> Clock:
    """The meter's clock.

    Speed 1 without a configured start is the host's clock. Otherwise meter time is simulated:
    a new meter starts at the configured start (or now); an existing one continues its own
    timeline, the downtime passing at the configured speed like any other meter time.
    """
    speed, start = config.clock.speed, config.clock.start_time()
    if speed == 1 and start is None:
        return SystemClock()
    if checkpoint is not None:
        downtime = max(0.0, time.time() - checkpoint.real_time) * speed
        return SimulatedClock(checkpoint.state.time + timedelta(seconds=downtime), speed)
    return SimulatedClock(start or datetime.now(UTC), speed)


class MeterLoop:
    """Keeps the model current and checkpoints it on the configured interval."""

    def __init__(
        self,
        meter: Meter,
        checkpoint_interval_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.meter = meter
        self.checkpoint_interval_s = checkpoint_interval_s
        self._monotonic = monotonic  # the supervisor's clock: a test drives a stall with its own
        self.last_tick = monotonic()

    async def run(self) -> None:
        last_checkpoint = self._monotonic()
        while True:
            self.meter.tick()
            self.last_tick = self._monotonic()
            if self.last_tick - last_checkpoint >= self.checkpoint_interval_s:
                self.meter.commit()
                last_checkpoint = self.last_tick
            await asyncio.sleep(TICK_S)

    def alive(self) -> bool:
        """The systemd watchdog is fed only while metering ticks."""
        return self._monotonic() - self.last_tick < 10 * TICK_S + 5


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
    # The P2 service's port for the P3 class 72 methods (set by twin/p2 wiring when P2 runs).
    mbus_port: MbusPort | None = None


def build(config: Config, state_dir: Path, rng: random.Random | None = None) -> Twin:
    store = Store.open(state_dir)
    clock = make_clock(config, store.load())
    meter = Meter(config, clock, store, rng or random.Random(config.meter.seed))
    control = ControlServer(meter, state_dir / SOCKET_NAME)
    metering = MeterLoop(meter, config.store.checkpoint_interval_s)
    services = [Service("meter", metering.run), Service("control", control.run)]
    supervisor = Supervisor(services, Notifier(), metering.alive)
    twin = Twin(config, state_dir, store, meter.clock, meter, control, services, supervisor)
    services.extend(_p1_services(twin))
    services.extend(_port_services(twin))
    control.ports["supervisor"] = lambda: {s.name: s.status() for s in services}
    return twin


def _port_services(twin: Twin) -> list[Service]:
    """P2 and P3 are wired by their own packages, imported only when configured."""
    services: list[Service] = []
    if twin.config.p2.enabled:
        from twin.p2.wiring import p2_services

        services.extend(p2_services(twin))
    if twin.config.p3.endpoint:
        from twin.p3.wiring import p3_services

        services.extend(p3_services(twin))
    if twin.config.display.device != "none":
        from twin.display.wiring import display_services

        services.extend(display_services(twin, twin.config.display))
    return services


def _p1_services(twin: Twin) -> list[Service]:
    from hardware.registry import open_p1_sink, open_request_line
    from hardware.request_line import SimulatedRequestLine
    from twin.p1.service import P1Service
    from twin.p1.telegram import TelegramEncoder

    p1 = twin.config.p1
    request = open_request_line(p1.request, p1.request_active_high)
    service = P1Service(
        twin.meter,
        TelegramEncoder(twin.config.meter.manufacturer, twin.config.meter.identification),
        open_p1_sink(p1.endpoint, twin.state_dir),
        request,
        twin.clock,
        interval_s=p1.interval_s,
    )
    twin.control.ports["p1"] = service.status
    if isinstance(request, SimulatedRequestLine):
        simulated = request

        async def set_request(req: Mapping[str, Any]) -> object:
            raised = req.get("raised")
            if not isinstance(raised, bool):
                raise ControlError("'raised' must be true or false")
            simulated.set(raised)
            return {"raised": raised}

        twin.control.add_command("request", set_request)
    return [Service("p1", service.run, heartbeat=lambda: service.heartbeat)]


async def serve(twin: Twin) -> None:
    """Run until SIGTERM or SIGINT, then checkpoint and close."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await twin.supervisor.run(stop)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError):
                loop.remove_signal_handler(signum)
        twin.meter.commit()
        twin.store.close()
        log.info("stopped; registers checkpointed")
