"""The fleet's head process: starts the workers, restarts one that dies, stops them all.

Workers are separate processes (`python -m twin fleet worker ...`), so a crash, a kill -9 or a
memory fault of one takes down only its meters; the head restarts it alone after a capped,
jittered backoff (twin/supervisor.py's), and its meters resume from their stores. The head's
view of its workers is written to `fleet-status.json` for `fleet ctl status`.

To systemd (Type=notify, WatchdogSec=) the head speaks for the fleet as `dsmr-twin run` does for
one meter: each worker reports to the head's own datagram socket (twin/fleet/worker.py); the head
sends READY=1 once every worker has reported its meters started, WATCHDOG=1 every WatchdogSec/2
while every ready, running worker has beaten in the last WORKER_STALE_S, and STOPPING=1 on
SIGTERM. A worker restarting after a crash is not ready and does not hold the watchdog back (the
head is supervising it); a worker that is alive but stuck (SIGSTOP, a blocked loop, a meter
whose core stopped) does, and systemd restarts the fleet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from twin.fleet.spec import STATUS_FILE, write_json_atomically
from twin.sdnotify import Notifier
from twin.supervisor import STABLE_AFTER_S, backoff_delay

log = logging.getLogger(__name__)

STOP_GRACE_S = 60.0  # a worker checkpoints all its meters on SIGTERM; then it is killed
BACKOFF_START_S = 1.0
# A ready worker silent this long (several of its 1 s beats) is stuck: the watchdog is withheld.
WORKER_STALE_S = 3.0


@dataclass(slots=True)
class WorkerState:
    number: int
    meters: list[int]
    pid: int | None = None
    state: str = "starting"
    restarts: int = 0
    last_exit: int | None = None
    started_at: float = field(default=0.0)
    ready: bool = False  # this run of the worker reported its meters started
    last_beat: float = 0.0  # time.monotonic() of its last report

    def stale(self, now: float) -> bool:
        return self.state == "running" and self.ready and now - self.last_beat > WORKER_STALE_S

    def record(self) -> dict[str, object]:
        return {
            "worker": self.number,
            "pid": self.pid,
            "state": self.state,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "meters": self.meters,
        }


class FleetHead:
    def __init__(
        self,
        fleet_dir: Path,
        assignments: list[list[int]],
        meter_args: list[str],
        log_level: str = "INFO",
        rng: random.Random | None = None,
        *,
        systemd: Notifier | None = None,
    ) -> None:
        self.fleet_dir = fleet_dir
        self.workers = [WorkerState(n, meters) for n, meters in enumerate(assignments)]
        self._meter_args = meter_args  # --config / --speed, as `fleet run` got them
        self._log_level = log_level
        self._rng = rng or random.Random()
        self._systemd = systemd or Notifier()
        self._sent_ready = False
        # The workers' reports: an abstract-namespace socket (Linux), so no path length limit
        # and nothing left behind in the state directory.
        self._report_address = f"@dsmr-twin-fleet-{os.getpid()}-{secrets.token_hex(4)}"

    def command(self, worker: WorkerState) -> list[str]:
        number, count = str(worker.number), str(len(self.workers))
        return [
            *(sys.executable, "-m", "twin", "--log-level", self._log_level, "fleet", "worker"),
            *("--state-dir", str(self.fleet_dir), "--worker", number, "--workers", count),
            *self._meter_args,
        ]

    def write_status(self) -> None:
        record = {"head_pid": os.getpid(), "workers": [w.record() for w in self.workers]}
        try:
            write_json_atomically(self.fleet_dir / STATUS_FILE, record)
        except OSError as exc:
            # Only `fleet ctl status` reads it: a full disk must not stop the supervision.
            log.error("cannot write %s: %s", STATUS_FILE, exc)

    async def run(self, stop: asyncio.Event) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as reports:
            reports.bind("\0" + self._report_address[1:])
            reports.setblocking(False)
            async with asyncio.TaskGroup() as group:
                helpers = [group.create_task(self._listen(reports), name="worker-reports")]
                if self._systemd.watchdog_interval_s:
                    helpers.append(group.create_task(self._watchdog(), name="watchdog"))
                keepers = [
                    group.create_task(self._keep_running(w, stop), name=f"worker-{w.number}")
                    for w in self.workers
                ]
                await stop.wait()
                self._systemd.notify("STOPPING=1")
                await asyncio.wait(keepers)
                for helper in helpers:
                    helper.cancel()
        log.info("fleet stopped")

    async def _listen(self, reports: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self.take_report(await loop.sock_recv(reports, 256), time.monotonic())

    def take_report(self, datagram: bytes, now: float) -> None:
        """A worker's READY=1 or WATCHDOG=1 (with WORKER=n); READY=1 to systemd once every
        worker is ready."""
        fields = dict(
            line.partition("=")[::2] for line in datagram.decode(errors="replace").split("\n")
        )
        number = fields.get("WORKER", "")
        if not number.isdigit() or int(number) >= len(self.workers):
            log.warning("a report from no worker of this fleet: %r", datagram[:80])
            return
        worker = self.workers[int(number)]
        worker.last_beat = now
        if fields.get("READY") == "1" and not worker.ready:
            worker.ready = True
            log.info("worker %d: its meters are up", worker.number)
        if not self._sent_ready and all(w.ready for w in self.workers):
            self._sent_ready = True
            self._systemd.notify("READY=1")

    async def _watchdog(self) -> None:
        interval = self._systemd.watchdog_interval_s or 1.0
        while True:
            now = time.monotonic()
            stale = [w.number for w in self.workers if w.stale(now)]
            if stale:
                log.warning("workers %s are silent; withholding the watchdog ping", stale)
            else:
                self._systemd.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    async def _keep_running(self, worker: WorkerState, stop: asyncio.Event) -> None:
        attempt = 0
        while not stop.is_set():
            worker.ready = False  # until this run reports its meters started
            environment = {**os.environ, "NOTIFY_SOCKET": self._report_address}
            environment.pop("WATCHDOG_USEC", None)
            process = await asyncio.create_subprocess_exec(*self.command(worker), env=environment)
            worker.pid, worker.state, worker.started_at = process.pid, "running", time.monotonic()
            self.write_status()
            exited = asyncio.ensure_future(process.wait())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait((exited, stopping), return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not exited.done():
                await self._stop(worker, process)
                exited.cancel()
                return
            worker.last_exit, worker.pid = process.returncode, None
            if time.monotonic() - worker.started_at > STABLE_AFTER_S:
                attempt = 0
            delay = backoff_delay(attempt, self._rng, BACKOFF_START_S)
            attempt += 1
            worker.restarts += 1
            worker.state = "backoff"
            self.write_status()
            log.error(
                "worker %d exited with %s; restart %d in %.1f s",
                worker.number,
                process.returncode,
                worker.restarts,
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
        worker.state = "stopped"
        self.write_status()

    async def _stop(self, worker: WorkerState, process: asyncio.subprocess.Process) -> None:
        worker.state = "stopping"
        self.write_status()
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE_S)
        except TimeoutError:
            log.error("worker %d did not stop in %.0f s; killing it", worker.number, STOP_GRACE_S)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        worker.state, worker.pid, worker.last_exit = "stopped", None, process.returncode
        self.write_status()


async def run_head(head: FleetHead) -> None:
    """Run the fleet until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await head.run(stop)
