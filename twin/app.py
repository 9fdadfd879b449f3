"""Assemble a running twin from its configuration: store, clock, meter, ports, supervisor."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from twin.clock import (
    TIME_MAX,
    Clock,
    SimulatedClock,
    SystemClock,
    carryable,
    clamp_carryable,
    floor_to,
)
from twin.config import Config, http_host_port, is_loopback
from twin.control import SOCKET_NAME, ControlServer
from twin.control_fields import flag
from twin.fast_forward import FastForward, add_advance_command
from twin.metering import Meter
from twin.parts import Twin
from twin.sdnotify import Notifier
from twin.store import Checkpoint, Store
from twin.store_backup import BackupService
from twin.supervisor import Service, Supervisor
from twin.web.views import Views

log = logging.getLogger(__name__)

TICK_S = 0.5  # real seconds between metering ticks (events are committed within one tick)
# Longest idle wait of the metering loop at speed 1 (the next minute or the checkpoint
# usually ends it sooner): the model has nothing to do between whole minutes of meter time.
IDLE_MAX_S = 60.0
# The metering loop is alive while it woke less than this long ago, or waits in an idle
# sleep that is not overdue by this long (`MeterLoop.alive`, the systemd watchdog).
LIVENESS_S = 10 * TICK_S + 5
# Meter time integrated between two yields of the metering loop (well under 1 ms of CPU).
CATCH_UP_STEP = timedelta(minutes=15)


def make_clock(config: Config, checkpoint: Checkpoint | None) -> Clock:
    """The clock the meter's time runs on (the meter adds the clock sets of this run to it).

    A new meter starts at the configured start, or on the host's clock at speed 1 without one.
    An existing meter continues its own timeline whatever the speed: its checkpointed time
    (which already holds every clock set) plus the real downtime times the speed, as a real
    meter's clock runs on through a power failure. `[clock] resync` is the meter's business:
    it sets this clock like a P3 clock set would.
    """
    speed, start = config.clock.speed, config.clock.start_time()
    if checkpoint is not None and carryable(checkpoint.state.time):
        downtime = max(0.0, time.time() - checkpoint.real_time) * speed
        try:
            continued = checkpoint.state.time + timedelta(seconds=downtime)
        except OverflowError:
            continued = TIME_MAX
        if continued > TIME_MAX:
            log.error("the meter clock would run past %s, the last time it can carry", TIME_MAX)
        return SimulatedClock(clamp_carryable(continued), speed)
    # A new meter, or a stored time no port can carry (the meter logs and recovers).
    if speed == 1 and start is None:
        return SystemClock()
    return SimulatedClock(start or datetime.now(UTC), speed)


class MeterLoop:
    """Keeps the model current and hands its commits to the store's writer.

    The model integrates in steps of at most CATCH_UP_STEP meter time with a yield after
    each, so a fast clock never starves the event loop. Commits are grouped in real time: one
    per TICK_S at most, at once when an event was logged (events are never held), and a
    checkpoint of the registers on the configured interval. None of them waits for the disk.

    At speed 1 (or slower) an idle meter costs almost nothing: everything the model logs or
    captures on its own (profile captures, the DST event, the end of a power failure) happens
    at a whole minute of meter time, and readers and actions integrate and commit themselves
    (`Meter.publish`, `Meter.act`), so the loop sleeps until the next minute, a clock set or
    the checkpoint, whichever comes first.
    """

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
        self._wake_due: float | None = None  # while idle: when the wait ends at the latest

    async def run(self) -> None:
        last_commit = last_checkpoint = self._monotonic()
        while True:
            caught_up = self.meter.catch_up(CATCH_UP_STEP)
            self.last_tick = now = self._monotonic()
            self.meter.settle()
            outbox = self.meter.model.outbox
            if (
                outbox.events
                or (outbox and now - last_commit >= TICK_S)
                or now - last_checkpoint >= self.checkpoint_interval_s
            ):
                self.meter.submit()
                last_commit = now
                if now - last_checkpoint >= self.checkpoint_interval_s:
                    last_checkpoint = now
            if caught_up and self.meter.clock.speed <= 1:
                checkpoint_in = last_checkpoint + self.checkpoint_interval_s - now
                await self._idle(min(IDLE_MAX_S, checkpoint_in, TICK_S if outbox else IDLE_MAX_S))
            else:
                await asyncio.sleep(self._pause(caught_up))

    async def _idle(self, at_most_s: float) -> None:
        """Sleep until the model's next whole minute of meter time (on the meter clock, so a
        clock set or a test clock wakes it too), but at most `at_most_s` real seconds."""
        minute = floor_to(self.meter.model.time, 60) + timedelta(minutes=1)
        self._wake_due = self._monotonic() + at_most_s
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, at_most_s)):
                    await self.meter.clock.sleep_until(minute)
        finally:
            self._wake_due = None

    def _pause(self, caught_up: bool) -> float:
        """Behind: just yield. Else wait a tick, or one step of meter time if that is sooner
        (a fast clock), so the backlog a reader meets stays within a step or two."""
        if not caught_up:
            return 0.0
        return min(TICK_S, CATCH_UP_STEP.total_seconds() / self.meter.clock.speed)

    def alive(self) -> bool:
        """The systemd watchdog is fed only while metering is not stuck: it woke less than
        LIVENESS_S ago, or it sleeps idle and its wake-up is not overdue by LIVENESS_S."""
        due = self.last_tick if self._wake_due is None else max(self.last_tick, self._wake_due)
        return self._monotonic() - due < LIVENESS_S


def build(config: Config, state_dir: Path, rng: random.Random | None = None) -> Twin:
    store = Store.open(state_dir)
    clock = make_clock(config, store.load())
    meter = Meter(config, clock, store, rng or random.Random(config.meter.seed))
    control = ControlServer(meter, state_dir / SOCKET_NAME)
    metering = MeterLoop(meter, config.store.checkpoint_interval_s)
    services = [Service("meter", metering.run), Service("control", control.run)]
    supervisor = Supervisor(services, Notifier(), metering.alive)
    fast_forward = FastForward(meter)
    twin = Twin(
        config, state_dir, store, meter.clock, meter, control, services, supervisor, fast_forward
    )
    add_advance_command(control, fast_forward)
    services.extend(_p1_services(twin))
    services.extend(_port_services(twin))
    services.extend(_backup_services(twin))
    # What a web console reads of this twin (its own, or `dsmr-twin fleet web`'s).
    Views(twin).register()
    if config.web.serves:  # last: it offers the commands the others added
        from twin.web.wiring import web_services

        services.extend(web_services(twin))
    control.ports["supervisor"] = lambda: {s.name: s.status() for s in services}
    control.ports["clock"] = meter.clock.status
    return twin


def _port_services(twin: Twin) -> list[Service]:
    """P2 and P3 are wired by their own packages, imported only when configured."""
    services: list[Service] = []
    if twin.config.p2.enabled:
        from twin.p2.aio.wiring import p2_services

        services.extend(p2_services(twin))
    if twin.config.p3.serves:
        from twin.p3.wiring import p3_services

        services.extend(p3_services(twin))
    # Wired with or without a panel: without one ("none") it runs nothing and renders a
    # frame only when `ctl screenshot` asks (twin/display/wiring.py).
    from twin.display.wiring import display_services

    services.extend(display_services(twin, twin.config.display))
    return services


def _backup_services(twin: Twin) -> list[Service]:
    """Online backups of the database (twin/store_backup.py), `[store] backup_interval_s`."""
    settings = twin.config.store
    if settings.backup_interval_s == 0:
        return []
    backups = BackupService(twin.state_dir, settings.backup_interval_s, settings.backup_keep)
    twin.control.ports["backups"] = backups.status
    return [Service("backups", backups.run)]


def _p1_services(twin: Twin) -> list[Service]:
    from hardware.registry import open_p1_sink, open_request_line
    from hardware.request_line import SimulatedRequestLine
    from twin.p1.service import P1Service
    from twin.p1.telegram import TelegramEncoder

    p1 = twin.config.p1
    if not p1.serves:  # p1.endpoint = "none" (a fleet's meters): no telegrams, no service
        return []
    request = open_request_line(p1.request, p1.request_active_high)
    sink = open_p1_sink(p1.endpoint, twin.state_dir, baudrate=p1.baudrate, pace=p1.pace)
    service = P1Service(
        twin.meter,
        TelegramEncoder(twin.config.meter.manufacturer, twin.config.meter.identification),
        sink,
        request,
        twin.clock,
        interval_s=p1.interval_s,
        baudrate=p1.baudrate,
    )
    twin.control.ports["p1"] = service.status
    twin.telegrams = service.recent
    twin.control.ports["p1_line"] = sink.status
    if isinstance(request, SimulatedRequestLine):
        simulated = request

        async def set_request(req: Mapping[str, Any]) -> object:
            simulated.set(req["raised"])
            return {"raised": req["raised"]}

        twin.control.add_command("request", set_request, [flag("raised")])
    return [Service("p1", service.run, heartbeat=lambda: service.heartbeat)]


def where_to_reach(twin: Twin) -> list[str]:
    """A few lines for the start-up log: where each port is and how to reach it."""
    state, p1, p3 = twin.state_dir, twin.config.p1, twin.config.p3
    scheme, _, rest = p1.endpoint.partition("://")
    if not p1.serves:
        p1_line = "P1 telegrams: off (p1.endpoint = 'none')"
    elif scheme == "pty":
        link = Path(rest) if Path(rest).is_absolute() else state / rest
        reach = (
            f"open it as a serial port, e.g. python -m serial.tools.miniterm {link} {p1.baudrate}"
        )
        p1_line = f"P1 telegrams: pty {link} ({p1.baudrate} 8N1); {reach}"
    elif scheme == "tcp":
        p1_line = f"P1 telegrams: {p1.endpoint}; connect a TCP reader, e.g. nc HOST PORT"
    else:
        p1_line = f"P1 telegrams: UART {rest} ({p1.baudrate} 8N1), Request {p1.request}"
    if p3.serves:
        p3_line = (
            f"P3 DLMS/COSEM: {p3.endpoint} (wrapper, server SAP 1; public client 16, management"
            f" client 1 with HLS-GMAC); its keys: dsmr-twin keys show --state-dir {state}"
        )
    else:
        p3_line = "P3 DLMS/COSEM: off (p3.endpoint = 'none'; --p3 tcp://HOST:PORT serves it)"
    control = f"control socket {state / SOCKET_NAME}; e.g. dsmr-twin ctl --state-dir {state} status"
    return [p1_line, p3_line, control, _web_line(twin)]


def _web_line(twin: Twin) -> str:
    endpoint = twin.config.web.endpoint
    found = http_host_port(endpoint)
    if found is None:
        return "web console: off (web.endpoint = 'none'; --web http://HOST:PORT serves it)"
    host, port = found
    shown = f"[{host}]" if ":" in host else host
    if port == 0:
        return f"web console: {shown} on a free port (its URL: ctl status, ports.web.url)"
    if is_loopback(host):
        return f"web console: open http://{shown}:{port}/ in a browser on this machine"
    return (
        f"web console: http://{shown}:{port}/?token=TOKEN; the service user gets TOKEN with"
        f" dsmr-twin web-token --state-dir {twin.state_dir}"
    )


async def serve(twin: Twin) -> None:
    """Run until SIGTERM or SIGINT, then checkpoint and close."""
    for line in where_to_reach(twin):
        log.info("%s", line)
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
