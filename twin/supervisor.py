"""One supervisor, one TaskGroup, named tasks, restart with capped backoff.

A service that crashes is logged and restarted after a jittered, capped delay; it never takes
the meter down. The systemd watchdog is pinged only while the metering core makes progress.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from twin.sdnotify import Notifier

log = logging.getLogger(__name__)

BACKOFF_START_S = 0.5
BACKOFF_CAP_S = 30.0
# A service that ran this long before failing starts its backoff from the beginning again.
STABLE_AFTER_S = 60.0
# A running service whose heartbeat is older than this is hung: the watchdog is withheld.
HUNG_AFTER_S = 30.0


@dataclass(slots=True)
class Service:
    """A named long-running coroutine factory and what the supervisor knows of it."""

    name: str
    run: Callable[[], Awaitable[None]]
    # time.monotonic() of the service's last progress, if it reports one; math.inf while it
    # waits for a clock or an event with nothing to do (idle is not hung, and costs no beat).
    heartbeat: Callable[[], float] | None = None
    restarts: int = 0
    last_error: str | None = None
    state: str = "starting"
    started_at: float = field(default=0.0)

    def status(self) -> dict[str, object]:
        return {"state": self.state, "restarts": self.restarts, "last_error": self.last_error}

    def hung(self, now: float) -> bool:
        """Running, but no progress for HUNG_AFTER_S (a port in backoff is not hung)."""
        if self.heartbeat is None or self.state != "running":
            return False
        return now - max(self.heartbeat(), self.started_at) > HUNG_AFTER_S


def backoff_delay(
    attempt: int, rng: random.Random, start_s: float = BACKOFF_START_S, cap_s: float = BACKOFF_CAP_S
) -> float:
    """Capped exponential backoff with +-20 % jitter, so restarting ports do not synchronise."""
    return min(cap_s, start_s * 2.0**attempt) * rng.uniform(0.8, 1.2)


class Supervisor:
    def __init__(
        self,
        services: list[Service],
        notifier: Notifier,
        alive: Callable[[], bool],
        rng: random.Random | None = None,
        backoff_start_s: float = BACKOFF_START_S,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.services = services
        # The clock of heartbeats and backoff bookkeeping (a test drives a hang with its own).
        self._monotonic = monotonic
        self._backoff_start_s = backoff_start_s
        self._notifier = notifier
        self._alive = alive
        self._rng = rng or random.Random()

    async def run(self, stop: asyncio.Event) -> None:
        """Run every service until `stop` is set, then cancel them all and return."""
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(self._keep_running(s), name=f"dsmr-twin.{s.name}")
                for s in self.services
            ]
            if self._notifier.watchdog_interval_s:
                tasks.append(group.create_task(self._watchdog(), name="dsmr-twin.watchdog"))
            self._notifier.notify("READY=1")
            await stop.wait()
            self._notifier.notify("STOPPING=1")
            for task in tasks:
                task.cancel()

    async def _keep_running(self, service: Service) -> None:
        attempt = 0
        while True:
            service.state, service.started_at = "running", self._monotonic()
            try:
                await service.run()
                service.state = "finished"
                log.info("service %s finished", service.name)
                return
            except asyncio.CancelledError:
                service.state = "stopped"
                raise
            # Deliberately broad: any failure of one port is logged with its traceback and
            # the port restarted, so the meter keeps metering: a port never takes it down.
            except Exception as exc:
                if self._monotonic() - service.started_at > STABLE_AFTER_S:
                    attempt = 0
                delay = backoff_delay(attempt, self._rng, self._backoff_start_s)
                attempt += 1
                service.restarts += 1
                error = f"{type(exc).__name__}: {exc}"
                repeated = attempt > 1 and error == service.last_error
                service.state, service.last_error = "backoff", error
                if repeated:
                    # The same fault again (a full disk, a vanished port): logged once with its
                    # traceback, not at every retry; `ctl status` counts the restarts.
                    log.debug(
                        "service %s failed again (%s); restart %d in %.1f s",
                        service.name,
                        error,
                        service.restarts,
                        delay,
                    )
                else:
                    log.error(
                        "service %s failed (%s); restart %d in %.1f s",
                        service.name,
                        error,
                        service.restarts,
                        delay,
                        exc_info=exc,
                    )
                await asyncio.sleep(delay)

    def started(self) -> bool:
        """Every service has been started at least once (none still "starting")."""
        return all(s.state != "starting" for s in self.services)

    def stuck(self) -> str | None:
        """Why the watchdog must not be fed now (the core or a service made no progress)."""
        hung = [s.name for s in self.services if s.hung(self._monotonic())]
        if not self._alive():
            return "metering core made no progress"
        if hung:
            return f"services {hung} made no progress"
        return None

    async def _watchdog(self) -> None:
        interval = self._notifier.watchdog_interval_s or 1.0
        while True:
            if (reason := self.stuck()) is not None:
                log.warning("%s; withholding the watchdog ping", reason)
            else:
                self._notifier.notify("WATCHDOG=1")
            await asyncio.sleep(interval)
