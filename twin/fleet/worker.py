"""A fleet worker: one process, one asyncio loop, hosting its share of the fleet's meters.

Each meter is built by `twin.app.build` exactly as `dsmr-twin run` builds one, in its own state
directory with its own store and state lock, and runs under its own supervisor (a failing port
restarts alone). The worker changes into the fleet directory and gives each meter a relative
state directory, so every control socket path fits sockaddr_un whatever the fleet's path.

A meter whose state cannot be opened (a damaged database) is logged and left out; the others
run. SIGTERM/SIGINT stop every meter, checkpoint and close its store, then the worker exits.

The worker reports to its head over the head's datagram socket (sd_notify's message format, the
address in $NOTIFY_SOCKET): `READY=1` once every hosted meter's services are started, then
`WATCHDOG=1` every BEAT_S while no meter's core or service is stuck (twin/supervisor.py). The
head feeds systemd's watchdog only while every ready worker beats (twin/fleet/head.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import os
import resource
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from twin.app import build
from twin.config import Config, ConfigError
from twin.fleet.identity import MeterIdentity
from twin.fleet.spec import FleetSpec, meter_dir
from twin.p3.keys import install_initial
from twin.parts import Twin
from twin.sdnotify import Notifier
from twin.state_lock import StateLock
from twin.store import Store, StoreError

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
BEAT_S = 1.0  # a worker's heartbeat to its head (the head's staleness window is a few beats)


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


def open_meters(spec: FleetSpec, base: Config, indices: list[int]) -> list[HostedMeter]:
    hosted: list[HostedMeter] = []
    for index in indices:
        try:
            hosted.append(open_meter(spec, base, index))
        except (StoreError, ConfigError) as exc:
            # One meter's damaged state must not keep the others down (restore it alone).
            log.error("meter %04d left out: %s", index, exc)
    return hosted


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


async def serve_meters(meters: list[HostedMeter], head: Notifier, worker: int) -> None:
    """Run every meter until SIGTERM or SIGINT, then checkpoint and close them all."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with asyncio.TaskGroup() as group:
            for hosted in meters:
                group.create_task(hosted.twin.supervisor.run(stop), name=f"meter-{hosted.index}")
            beats = group.create_task(report_to_head(head, worker, meters), name="head-beat")
            await stop.wait()
            beats.cancel()
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
    meters = open_meters(spec, base, indices)
    log.info("worker %d hosts %d of its %d meters", worker, len(meters), len(indices))
    # Everything built lives as long as the process: keep it out of the cyclic collector.
    gc.collect()
    gc.freeze()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_meters(meters, head, worker))
    return 0
