"""A fleet worker: one process, one asyncio loop, hosting its share of the fleet's meters.

Each meter is built by `twin.app.build` exactly as `dsmr-twin run` builds one, in its own state
directory with its own store and state lock, and runs under its own supervisor (a failing port
restarts alone). The worker changes into the fleet directory and gives each meter a relative
state directory, so every control socket path fits sockaddr_un whatever the fleet's path.

A meter whose store cannot be opened or written at start for a reason that may pass (a stuck
write, a locked database, an I/O error: StoreUnavailableError; its state directory held by a
process still exiting) is started again by the worker with a capped backoff, off the event
loop, while the others run; one that cannot be opened at all (a damaged database, a refused
configuration) is failed and left out. Both are reported, with their reason, in the worker's
start report (START_REPORT, read by `fleet ctl status`), so no meter is silently absent.
SIGTERM/SIGINT stop every meter, checkpoint and close its store, then the worker exits.

The worker reports to its head over the head's datagram socket (sd_notify's message format, the
address in $NOTIFY_SOCKET): `READY=1` once every hosted meter's services are started, then
`WATCHDOG=1` every BEAT_S while no meter's core or service is stuck (twin/supervisor.py). The
head feeds systemd's watchdog only while every ready worker beats (twin/fleet/head.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import gc
import logging
import os
import random
import resource
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from twin.app import build
from twin.config import Config, ConfigError
from twin.fleet.identity import MeterIdentity
from twin.fleet.spec import START_REPORT, FleetSpec, meter_dir, write_json_atomically
from twin.p3.keys import install_initial
from twin.parts import Twin
from twin.sdnotify import Notifier
from twin.state_lock import StateDirBusyError, StateLock
from twin.store import Store, StoreError, StoreUnavailableError
from twin.supervisor import backoff_delay

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
BEAT_S = 1.0  # a worker's heartbeat to its head (the head's staleness window is a few beats)
START_RETRY_FIRST_S = 1.0  # a meter that could not start now: first retry, doubling
START_RETRY_CAP_S = 60.0  # to at most this (a busy disk may take minutes to come back)
RUNNING, STARTING, FAILED = "running", "starting", "failed"

Sleep = Callable[[float], Awaitable[None]]


@dataclass(slots=True)
class HostedMeter:
    index: int
    twin: Twin
    lock: StateLock


def raise_open_file_limit() -> None:
    """Each meter holds a few descriptors (database and WAL, P3 listener, control socket,
    connections): lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def seed_keys(directory: Path, ident: MeterIdentity) -> None:
    """A new meter gets its P3 keys and HLS secret before its P3 starts."""
    store = Store.open(directory)
    try:
        install_initial(store, ident.key_material())
    finally:
        store.close()


def open_meter(spec: FleetSpec, base: Config, index: int) -> HostedMeter:
    directory = meter_dir(index)
    lock = StateLock.acquire(directory, purpose="fleet worker")
    try:
        ident = spec.identity(index)
        config = spec.meter_config(base, ident)
        if config.p3.serves:
            seed_keys(directory, ident)
        return HostedMeter(index, build(config, directory), lock)
    except BaseException:
        lock.release()
        raise


@dataclass(slots=True)
class MeterStart:
    state: str  # RUNNING, STARTING (being retried) or FAILED
    reason: str | None  # why it is not running (yet)
    attempts: int


@dataclass(slots=True)
class StartReport:
    """Each of a worker's meters: running, starting (retried: why not yet, attempts) or failed
    (why), written to START_REPORT in the fleet directory for `fleet ctl status`."""

    path: Path
    worker: int
    meters: dict[int, MeterStart] = field(default_factory=dict)

    @classmethod
    def for_worker(cls, fleet_dir: Path, worker: int) -> StartReport:
        return cls(fleet_dir / START_REPORT.format(worker=worker), worker)

    def set(self, index: int, state: str, reason: str | None = None, attempts: int = 0) -> None:
        self.meters[index] = MeterStart(state, reason, attempts)

    def starting(self) -> list[int]:
        return [i for i, m in self.meters.items() if m.state == STARTING]

    async def save(self) -> None:
        """Written off the event loop (a file and its fsync), as it is now: atomically (a
        reader sees the last report whole); a disk that refuses it is logged, the report
        must not stop the meters."""
        record = {
            "worker": self.worker,
            "pid": os.getpid(),
            "meters": {str(i): dataclasses.asdict(m) for i, m in sorted(self.meters.items())},
        }
        try:
            await asyncio.to_thread(write_json_atomically, self.path, record)
        except OSError as exc:
            log.error("cannot write %s: %s", self.path.name, exc)


def may_pass(exc: BaseException) -> bool:
    """A start that failed for a reason that may pass: the storage cannot write now, or the
    state directory is held by a process still exiting (an earlier run of this worker)."""
    return isinstance(exc, (StoreUnavailableError, StateDirBusyError))


def open_meters(
    spec: FleetSpec, base: Config, indices: list[int], report: StartReport | None = None
) -> list[HostedMeter]:
    """The meters that open now; the others are in `report`, starting (retry them) or failed."""
    report = report or StartReport(Path(os.devnull), -1)
    hosted: list[HostedMeter] = []
    for index in indices:
        try:
            hosted.append(open_meter(spec, base, index))
        except (StoreError, ConfigError) as exc:
            # One meter's state must not keep the others down (restore it alone).
            if may_pass(exc):
                log.warning("meter %04d not started yet (retrying): %s", index, exc)
                report.set(index, STARTING, str(exc), attempts=1)
            else:
                log.error("meter %04d left out: %s", index, exc)
                report.set(index, FAILED, str(exc), attempts=1)
            continue
        report.set(index, RUNNING, attempts=1)
    return hosted


async def keep_starting(  # noqa: PLR0917 - what a start needs, and the seams of its tests
    spec: FleetSpec,
    base: Config,
    index: int,
    report: StartReport,
    started: Callable[[HostedMeter], None],
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
) -> None:
    """Start meter `index` again after a capped, jittered backoff until it opens (then
    `started`) or fails for good; each attempt runs off the event loop (it waits on the disk),
    and the report follows each one."""
    rng = rng or random.Random()
    attempts = report.meters[index].attempts
    while True:
        await sleep(backoff_delay(attempts - 1, rng, START_RETRY_FIRST_S, START_RETRY_CAP_S))
        attempts += 1
        try:
            hosted = await _open_off_the_loop(spec, base, index)
        except (StoreError, ConfigError) as exc:
            if may_pass(exc):
                log.warning("meter %04d not started yet (attempt %d): %s", index, attempts, exc)
                report.set(index, STARTING, str(exc), attempts)
                await report.save()
                continue
            log.error("meter %04d left out: %s", index, exc)
            report.set(index, FAILED, str(exc), attempts)
            await report.save()
            return
        log.info("meter %04d started (attempt %d)", index, attempts)
        report.set(index, RUNNING, attempts=attempts)
        started(hosted)
        await report.save()
        return


async def _open_off_the_loop(spec: FleetSpec, base: Config, index: int) -> HostedMeter:
    """`open_meter` in a thread; a meter opened after its caller was cancelled (the worker
    stops) is closed, not left holding its lock."""
    attempt = asyncio.ensure_future(asyncio.to_thread(open_meter, spec, base, index))
    try:
        return await asyncio.shield(attempt)
    except asyncio.CancelledError:
        attempt.add_done_callback(_close_if_opened)
        raise


def _close_if_opened(attempt: asyncio.Future[HostedMeter]) -> None:
    if not attempt.cancelled() and attempt.exception() is None:
        close_meter(attempt.result())


async def report_to_head(head: Notifier, worker: int, meters: list[HostedMeter]) -> None:
    """READY=1 once every meter's services are started, then a WATCHDOG=1 beat every BEAT_S
    while none is stuck. Each message names the worker (WORKER=n)."""
    while not all(hosted.twin.supervisor.started() for hosted in meters):
        await asyncio.sleep(0.05)
    head.notify(f"READY=1\nWORKER={worker}")
    while True:
        stuck = [(h.index, r) for h in meters if (r := h.twin.supervisor.stuck()) is not None]
        if stuck:
            log.warning("meters stuck, no heartbeat to the head: %s", stuck)
        else:
            head.notify(f"WATCHDOG=1\nWORKER={worker}")
        await asyncio.sleep(BEAT_S)


@dataclass(slots=True)
class Starter:
    """What `serve_meters` needs to start again the meters that could not start at once."""

    spec: FleetSpec
    base: Config
    report: StartReport
    sleep: Sleep = asyncio.sleep


async def serve_meters(
    meters: list[HostedMeter],
    head: Notifier,
    worker: int,
    starter: Starter | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run every meter, and those `starter` starts later, until SIGTERM or SIGINT (or `stop`),
    then checkpoint and close them all."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with asyncio.TaskGroup() as group:

            def run(hosted: HostedMeter) -> None:
                group.create_task(hosted.twin.supervisor.run(stop), name=f"meter-{hosted.index}")

            def started(hosted: HostedMeter) -> None:
                meters.append(hosted)
                run(hosted)

            for hosted in meters:
                run(hosted)
            helpers = [group.create_task(report_to_head(head, worker, meters), name="head-beat")]
            if starter is not None:
                await starter.report.save()
                helpers += [
                    group.create_task(
                        keep_starting(
                            starter.spec, starter.base, i, starter.report, started, starter.sleep
                        ),
                        name=f"start-{i}",
                    )
                    for i in starter.report.starting()
                ]
            await stop.wait()
            for helper in helpers:
                helper.cancel()
    finally:
        for hosted in meters:
            close_meter(hosted)


def close_meter(hosted: HostedMeter) -> None:
    try:
        hosted.twin.meter.commit()
    except StoreError as exc:
        log.error("meter %04d: last checkpoint failed: %s", hosted.index, exc)
    finally:
        hosted.twin.store.close()
        hosted.lock.release()


def stop_with_the_head() -> None:
    """SIGTERM this worker when its head process dies (Linux PR_SET_PDEATHSIG), so no orphan
    keeps its meters' locks and addresses from the head that replaces it."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))
    if os.getppid() == 1:  # the head died before prctl: nobody would stop us
        raise SystemExit("the fleet's head is gone")


def run_worker(fleet_dir: Path, worker: int, workers: int, base: Config) -> int:
    stop_with_the_head()
    spec = FleetSpec.load(fleet_dir)
    os.chdir(fleet_dir)  # meters' state directories are relative to it (sockaddr_un)
    raise_open_file_limit()
    head = Notifier()  # $NOTIFY_SOCKET: the head's socket, set by the head for its workers
    # The meters report to the worker (their supervisors), not each to the head or to systemd.
    os.environ.pop("NOTIFY_SOCKET", None)
    os.environ.pop("WATCHDOG_USEC", None)
    indices = spec.worker_meters(worker, workers)
    report = StartReport.for_worker(Path.cwd(), worker)
    meters = open_meters(spec, base, indices, report)
    log.info(
        "worker %d hosts %d of its %d meters (%d being started again)",
        worker,
        len(meters),
        len(indices),
        len(report.starting()),
    )
    # Everything built lives as long as the process: keep it out of the cyclic collector.
    gc.collect()
    gc.freeze()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_meters(meters, head, worker, Starter(spec, base, report)))
    return 0
