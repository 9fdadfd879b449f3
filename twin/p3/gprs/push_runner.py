"""Runs the chapter 9 pushes for the GPRS controller (twin/p3/gprs/controller.py): the object
model's `PushPort`, the trigger polls, the plan and the attempts (P3 §9.3, GPRS CS §3).

- `push` (the port) queues an invocation; `poll` evaluates the scheduler and register monitor
  (twin/p3/gprs/push_triggers.py) and plans what was invoked: settings read through the object
  model, the randomised start within the communication window (twin/p3/gprs/push_time.py), one
  waiting push per setup.
- `execute` runs one push to its end (P3 §9.3: "the first setup push method shall be
  finalized before the next push setup activation is executed"): attempts through the
  controller's `Link` (PDP context and server socket first, then the message, then the CS
  session in triggered mode), retried after repetition_delay (network clock) while the
  communication window is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

from twin.clock import Clock
from twin.p3.dlms.cosem import ActionResult, AttributeRef
from twin.p3.dlms.errors import LocalP3Error
from twin.p3.gprs.push import (
    PUSH_ALARM,
    PUSH_CSD_SMS,
    PUSH_SCHEDULER,
    Job,
    PushConfigError,
    PushQueue,
    PushSettings,
    PushStats,
    Trigger,
    ln_text,
    parse_destination,
    read_message,
    read_settings,
)
from twin.p3.gprs.push_time import push_time
from twin.p3.gprs.push_triggers import CSD_SMS_SCRIPT, PushTriggers, Script, execute
from twin.p3.objects.settings import read_data
from twin.p3.server.interfaces import CosemObjects
from twin.ports import PortResult

log = logging.getLogger(__name__)

PUSH_TIMEOUT_S = 10.0  # real seconds for the TCP message (connect, send, close)
# P3 §9.2: the setup each script of the push script table pushes (for a lab object model
# without the table).
SCRIPT_SETUPS = {1: PUSH_SCHEDULER, 2: PUSH_ALARM, CSD_SMS_SCRIPT: PUSH_CSD_SMS}


class PushStepError(Exception):
    """A step of a push attempt failed (P3 §9.3: PDP context, sockets, message): retried."""


class Link(Protocol):
    """What an attempt needs of the GPRS controller."""

    def triggered(self) -> bool:
        """Triggered mode: the attempt opens and closes the connection itself."""
        ...

    def pdp_active(self) -> bool: ...

    async def online(self) -> None:
        """PDP context up and server socket open (GPRS CS §3 steps 1-2)."""
        ...

    async def offline(self) -> None:
        """Server socket and PDP context closed (steps 6-7)."""
        ...

    async def serve(self, opened: datetime) -> None:
        """Wait for the CS connection and serve the session (steps 3-5)."""
        ...

    async def sleep(self, until: datetime) -> None:
        """Wait on the network clock, keeping the heartbeat."""
        ...


def _disabled(settings: PushSettings, stats: PushStats) -> bool:
    """P3 §9.3, push setup alarm: "When destination is empty ... the function is disabled"."""
    if settings.setup != PUSH_ALARM or settings.destination:
        return False
    stats.skipped += 1
    log.info("GPRS push %s disabled: no destination", ln_text(settings.setup))
    return True


async def send_message(address: tuple[str, int], message: bytes) -> None:
    """GPRS CS §3 steps 2a-2c: TCP client connection, the message, close (raises on failure)."""
    async with asyncio.timeout(PUSH_TIMEOUT_S):
        _reader, writer = await asyncio.open_connection(*address)
        try:
            writer.write(message)
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


async def send_over_tcp(_setup: bytes, address: tuple[str, int], message: bytes) -> None:
    """The push message's delivery in a twin: over TCP to send_destination."""
    await send_message(address, message)


# Delivers one push message (setup logical name, destination address, message); raises
# OSError or TimeoutError when it could not.
Deliver = Callable[[bytes, tuple[str, int], bytes], Awaitable[None]]


class PushRunner:
    def __init__(
        self,
        objects: CosemObjects,
        *,
        meter_clock: Clock,
        net_clock: Clock,
        rng: random.Random,
        equipment_id: bytes,
        fallback_destination: str,
        powered: Callable[[], bool],
        power_ups: Callable[[], int] = lambda: 0,
    ) -> None:
        self.objects = objects
        self.meter_clock = meter_clock
        self.net_clock = net_clock
        self.rng = rng
        self.equipment_id = equipment_id
        self.fallback_destination = fallback_destination  # p3.push_destination, CSD/SMS only
        self.powered = powered
        self.power_ups = power_ups  # supply restorations so far (the meter's failure count)
        self.triggers = PushTriggers(objects)
        self.queue = PushQueue()
        self.stats: dict[bytes, PushStats] = {}
        self.arrived = asyncio.Event()  # set when a push was invoked since the last poll
        self._incoming: list[Trigger] = []
        self._context: tuple[datetime, bytes] | None = None
        self._was_powered = False
        self._ups_seen: int | None = None
        # GPRS CS §3 steps 2a-2c; a scenario run records the message instead
        # (twin/scenario_gprs.py), so its pushes are part of its reproducible result.
        self.deliver: Deliver = send_over_tcp

    # ---- triggers ---------------------------------------------------------------------------
    def push(self, setup_logical_name: bytes) -> PortResult:
        """`PushPort`: push method 1 of a push setup; queued, answered on receipt."""
        at, source = self._context or (self.meter_clock.now(), None)
        self._incoming.append(Trigger(setup_logical_name, at, source))
        self.arrived.set()
        return PortResult.SUCCESS

    def run_script(self, script: Script, at: datetime, source: bytes) -> ActionResult:
        """Execute a trigger's script; the pushes it invokes carry `at` and `source`."""
        self._context = (at, source)
        try:
            if read_data(self.objects, AttributeRef(9, script.table, 2)) is None:
                setup = SCRIPT_SETUPS.get(script.selector)  # a model without the table
                return (
                    ActionResult.OTHER_REASON if setup is None else ActionResult(self.push(setup))
                )
            result = execute(self.objects, script)
        except LocalP3Error as exc:  # e.g. a script_logical_name that is not 6 bytes
            log.warning("push script %d not run: %s", script.selector, exc)
            return ActionResult.OTHER_REASON
        finally:
            self._context = None
        if result is not ActionResult.SUCCESS:
            table = ln_text(script.table)
            log.warning("push script %d of %s: %s", script.selector, table, result.name)
        return result

    def poll(self) -> None:
        """Triggers due on the meter clock, then plan the pushes invoked since the last poll."""
        self.arrived.clear()
        now = self.meter_clock.now()
        if not self.powered():
            self._was_powered = False  # a meter without supply triggers nothing
        else:
            # A power-up is also one that no poll saw coming: an outage shorter than the
            # time between two polls still restarts the meter (P3 §9.1.2).
            ups, seen = self.power_ups(), self._ups_seen
            if not self._was_powered or (seen is not None and ups > seen):
                self.triggers.power_up(now)
            self._was_powered, self._ups_seen = True, ups
            for firing in self.triggers.poll(now):
                self.run_script(firing.script, firing.at, firing.source)
        while self._incoming:
            self._plan(self._incoming.pop(0))

    def next_wake(self) -> datetime | None:
        """The next planned push or scheduler execution (meter clock)."""
        now = self.meter_clock.now()
        wakes = [t for t in (self.queue.next_at(), self.triggers.next_execution(now)) if t]
        return min(wakes, default=None)

    def _stats(self, setup: bytes) -> PushStats:
        return self.stats.setdefault(setup, PushStats())

    def _settings(self, setup: bytes, stats: PushStats) -> PushSettings | None:
        try:
            return read_settings(self.objects, setup)
        except PushConfigError as exc:
            stats.skipped += 1
            stats.last_error = str(exc)
            log.warning("GPRS push skipped: %s", exc)
            return None

    def _plan(self, trigger: Trigger) -> None:
        stats = self._stats(trigger.setup)
        stats.triggered += 1
        settings = self._settings(trigger.setup, stats)
        if settings is None:
            return
        name = ln_text(trigger.setup)
        if _disabled(settings, stats):
            return
        at = push_time(settings.windows, trigger.at, settings.randomisation_s, self.rng)
        if at is None:
            stats.skipped += 1
            log.warning("GPRS push %s: no communication window will open; not started", name)
            return
        if self.queue.add(Job(trigger, at)):
            log.info("GPRS push %s planned for %s", name, at.isoformat())

    # ---- one push ---------------------------------------------------------------------------
    async def execute(self, job: Job, link: Link) -> None:
        """All attempts of one push (P3 §9.3); the caller starts nothing else meanwhile."""
        stats = self._stats(job.setup)
        settings = self._settings(job.setup, stats)
        if settings is None or _disabled(settings, stats):
            return
        for attempt, delay in enumerate(settings.retry.delays()):
            if attempt:
                await link.sleep(self.net_clock.now() + delay)
                if not settings.windows.active(self.meter_clock.now()):
                    log.warning("GPRS push %s: window closed, no more retries", ln_text(job.setup))
                    break
                stats.retried += 1
            if await self._attempt(job, settings, stats, link):
                stats.sent += 1
                return
        stats.failed += 1

    async def _attempt(
        self, job: Job, settings: PushSettings, stats: PushStats, link: Link
    ) -> bool:
        """GPRS CS §3 steps 1-7 once; False if a step failed (then retried)."""
        triggered = link.triggered()
        stats.attempts += 1
        opened = self.net_clock.now()
        try:
            await link.online()  # steps 1-2: PDP context, server socket first
            if not link.pdp_active():
                raise PushStepError("PDP context not activated")
            await self._send(job, settings)  # steps 2a-2c
        except (PushStepError, OSError, TimeoutError) as exc:
            stats.last_error = str(exc) or type(exc).__name__
            log.warning("GPRS push %s failed: %s", ln_text(job.setup), stats.last_error)
            if triggered:
                await link.offline()
            return False
        if triggered:
            await link.serve(opened)
            await link.offline()
        return True

    async def _send(self, job: Job, settings: PushSettings) -> None:
        destination = settings.destination
        if not destination and job.setup == PUSH_CSD_SMS:
            destination = self.fallback_destination
        if not destination:
            return  # no TCP message; the CS learns of the meter otherwise (GPRS CS Figure 4)
        address = parse_destination(destination)
        if address is None:
            raise PushStepError(f"destination {destination!r} is not HOST:PORT")
        message = read_message(
            self.objects, settings, trigger=job.trigger.source, equipment_id=self.equipment_id
        )
        if not message:
            return  # empty push_object_list: no TCP message (P3 §9.3)
        try:
            await self.deliver(job.setup, address, message)
        except (OSError, TimeoutError) as exc:
            raise PushStepError(f"push to {destination}: {exc or 'timeout'}") from exc
        log.info("GPRS push %s to %s: %r", ln_text(job.setup), destination, message)

    def status(self) -> dict[str, Any]:
        return {
            "pushes_sent": sum(s.sent for s in self.stats.values()),
            "push_failures": sum(s.failed for s in self.stats.values()),
            "pushes": {ln_text(k): s.as_dict() for k, s in sorted(self.stats.items())},
            "pushes_planned": [
                {"setup": ln_text(j.setup), "at": j.at.isoformat()} for j in self.queue.pending()
            ],
        }
