"""Fleet figures: start-up, memory and idle CPU per meter as the fleet grows, and a lean
head-end load (prints them; not a timed test).

    python bench/bench_fleet.py --counts 100,300            # fleets of 100, then 300 meters
    python bench/bench_fleet.py --counts 100 --clients 10   # with 10 concurrent head-end clients
    python bench/bench_fleet.py --counts 1000 --async-clients 50 --outage 0.1

Each fleet is a `dsmr-twin fleet run` in a temporary directory at speed 1 (one worker per
core unless --workers). Start-up: from the command to every meter answering its control
socket with P3 listening. Memory: RSS and PSS (shared pages split between the processes) of the
head and the workers. Idle CPU: the fleet's processes' CPU time over --idle-s seconds with
nobody talking to them, in % of one core. A MeterLoop wake-up (about twice a minute per idle
meter) is timed in-process to show its share. The load generator runs C threads, each a
head-end session after another on the next meter: associate (HLS-GMAC, dlms-cosem), G
ciphered GETs of 1-0:1.8.1 (`LeanSession`), release; its own CPU is printed apart, so a
saturated client shows.
--async-clients C runs bench/lean_headend.py in a process of its own instead: C sessions at
once in one asyncio loop, the same session shape with its own lean association; the workers'
CPU per GET and per session is printed with it (readable on a busy host, where GET/s is not),
and with --split the workers' CPU per association and per GET apart. --outage F
commissions alarm pushes on every meter over P3, then cuts F of the fleet during the load and
counts the pushes a listener receives.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import io
import json
import logging
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.push_listener import PushListener
from tests.unit.p3 import tcp_peers
from tests.unit.p3.lean_client import LeanSession
from twin.app import CATCH_UP_STEP, IDLE_MAX_S, build
from twin.config import Config, ConfigError, tcp_host_port
from twin.fleet.control import call_meters, choose_meters, fleet_outage, fleet_status
from twin.fleet.spec import FleetSpec
from twin.p3.dlms.cosem import AttributeRef
from twin.p3.objects import values as v
from twin.p3.objects.base import obis_bytes
from twin.parts import Twin

logging.getLogger("dlms_cosem").setLevel(logging.ERROR)  # 21.3.2 logs every APDU

# An idle MeterLoop at speed 1 (twin/app.py): each minute of meter time and each checkpoint.
WAKES_PER_S = 1 / IDLE_MAX_S + 1 / Config().store.checkpoint_interval_s
ENERGY = AttributeRef(3, obis_bytes("1-0:1.8.1"), 2)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def fleet_pids(head: int) -> list[int]:
    """The head and its workers (its children)."""
    children = Path(f"/proc/{head}/task/{head}/children").read_text().split()
    return [head, *(int(c) for c in children)]


def cpu_seconds(pids: list[int]) -> float:
    return sum(cpu_user_system(pids))


def cpu_user_system(pids: list[int]) -> tuple[float, float]:
    """User and kernel CPU seconds of the processes (all their threads)."""
    user = system = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        user, system = user + int(fields[11]), system + int(fields[12])  # utime, stime
    return user / CLOCK_TICKS, system / CLOCK_TICKS


def thread_count(pids: list[int]) -> int:
    """Threads of the processes (/proc/PID/status Threads:)."""
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                total += int(line.split()[1])
    return total


def memory_kb(pids: list[int]) -> tuple[int, int]:
    rss = pss = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss += int(line.split()[1])
            elif line.startswith("Pss:"):
                pss += int(line.split()[1])
    return rss, pss


def open_fds(pids: list[int]) -> int:
    return sum(len(os.listdir(f"/proc/{pid}/fd")) for pid in pids)


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def wait_up(state: Path, count: int, process: subprocess.Popen[bytes], limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while True:
        assert process.poll() is None, "the fleet exited"
        with contextlib.suppress(ConfigError):
            status = asyncio.run(fleet_status(state))
            listening = sum(1 for m in status["meter_states"] if m.get("p3_listening"))
            if listening == count:
                return
        assert time.monotonic() < deadline, "the fleet did not come up"
        time.sleep(0.5)


def _loop_wake(twin: Twin) -> None:
    """What one MeterLoop wake-up does to the meter (twin/app.py)."""
    twin.meter.catch_up(CATCH_UP_STEP)
    twin.meter.settle()


def tick_and_checkpoint_cost() -> tuple[float, float]:
    """One MeterLoop tick and one checkpoint (Meter.commit: one SQLite transaction,
    synchronous=FULL, in the meter's own database) of a fleet meter, in-process (µs, ms)."""
    with tempfile.TemporaryDirectory(prefix="bench-tick-") as path:
        spec = FleetSpec(1, b"bench", "tcp://127.0.0.1:4059", "none", seeded=True)
        twin = build(spec.meter_config(Config(), spec.identity(1)), Path(path))
        try:
            for _ in range(50):
                _loop_wake(twin)
            t0 = time.perf_counter()
            n = 2000
            for _ in range(n):
                _loop_wake(twin)
            tick = (time.perf_counter() - t0) / n * 1e6
            commits = []
            for _ in range(100):
                _loop_wake(twin)
                t = time.perf_counter()
                twin.meter.commit()
                commits.append(time.perf_counter() - t)
            return tick, statistics.median(commits) * 1000
        finally:
            twin.store.close()


@dataclasses.dataclass
class Load:
    latencies: list[float] = dataclasses.field(default_factory=list)
    sessions: int = 0
    errors: int = 0
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


def head_end(rows: list[dict[str, Any]], gets: int, until: float, load: Load) -> None:
    """Sessions one after another over `rows` (no other client has these meters: a meter
    serves one connection at a time, and dlms-cosem 21.3.2 spins on a refused one)."""
    index = 0
    while time.monotonic() < until:
        row = rows[index % len(rows)]
        index += 1
        client = management(row)
        try:
            client.connect()
            client.associate()
            lean = LeanSession(client, bytes.fromhex(row["guek"]), bytes.fromhex(row["gak"]))
            times = []
            for _ in range(gets):
                t = time.perf_counter()
                lean.get(ENERGY)
                times.append(time.perf_counter() - t)
            lean.hand_back()
            client.release_association()
            with load.lock:
                load.latencies.extend(times)
                load.sessions += 1
        except Exception:  # noqa: BLE001 - counted: a busy meter refuses a second session
            with load.lock:
                load.errors += 1
        finally:
            with contextlib.suppress(Exception):
                client.disconnect()


def commission(rows: list[dict[str, Any]], listener: PushListener, randomisation_s: int) -> int:
    """Per meter, as a head-end commissions it: the alarm push destination, its randomisation
    window (P3 §9.3, push setup attribute 5), the alarm register acknowledged. Failures."""
    destination = v.struct(v.enum_(0), v.octets(listener.destination), v.enum_(128))
    writes = (
        (40, "0-1:25.9.0", 3, destination),
        (40, "0-1:25.9.0", 5, v.u16(randomisation_s)),
        (1, "0-0:97.98.0", 2, v.u32(0)),
    )
    failures = []

    def each(share: list[dict[str, Any]]) -> None:
        for row in share:
            client = management(row)
            try:
                client.connect()
                client.associate()
                for interface, obis, index, data in writes:
                    attribute = tcp_peers.attribute(interface, obis, index)
                    if client.set(attribute, v.encode(data)).result.value != 0:
                        failures.append(row["meter"])
                client.release_association()
            except Exception:  # noqa: BLE001 - counted and printed
                failures.append(row["meter"])
            finally:
                with contextlib.suppress(Exception):
                    client.disconnect()

    threads = [threading.Thread(target=each, args=(rows[i::10],)) for i in range(10)]
    with contextlib.redirect_stdout(io.StringIO()):  # once for all threads (see run_load)
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return len(failures)


def management(row: dict[str, Any]) -> Any:
    found = tcp_host_port(row["p3"])
    assert found is not None
    return tcp_peers.management_client(
        found[1],
        bytes.fromhex(row["guek"]),
        bytes.fromhex(row["gak"]),
        host=found[0],
        invocation_counter=1_000_000 + random.randrange(1_000_000) * 100,
    )


def fleet_rows(state: Path) -> list[dict[str, Any]]:
    command = [sys.executable, "-m", "twin", "fleet", "inventory", "--state-dir", str(state)]
    return json.loads(subprocess.check_output(command))  # type: ignore[no-any-return]


def outage_with_pushes(
    state: Path, rows: list[dict[str, Any]], listener: PushListener, fraction: float
) -> Callable[[], None]:
    """An outage of `fraction` of the fleet (5 s), then every alarm push it must produce."""

    def run() -> None:
        spec = FleetSpec.load(state)
        hit = choose_meters(spec, fraction, seed=1)
        expected = {rows[i - 1]["equipment_id"] for i in hit}
        start = time.monotonic()
        result = asyncio.run(fleet_outage(state, hit, 5.0))
        deadline = time.monotonic() + 90
        while not expected <= set(listener.senders()) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # late or repeated pushes
        senders = listener.senders()
        times = [t - start for t, _ in listener.received]
        print(
            f"  outage of {len(hit)} meters ({fraction:.0%}, 5 s, during the load):"
            f" {len(set(senders) & expected)}/{len(expected)} expected alarm pushes received,"
            f" {len(senders) - len(set(senders))} repeated, {len(set(senders) - expected)} from"
            f" other meters, {len(result['failed'])} meters failed the command; pushes from"
            f" {min(times, default=0):.1f} s to {max(times, default=0):.1f} s after the command"
        )

    return run


def run_load(
    state: Path,
    clients: int,
    gets: int,
    seconds: float,
    during: Callable[[], None] | None = None,
) -> None:
    rows = fleet_rows(state)
    load = Load()
    until = time.monotonic() + seconds
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    threads = [
        threading.Thread(target=head_end, args=(rows[i::clients], gets, until, load))
        for i in range(clients)
    ]
    # dlms-cosem 21.3.2 prints APDUs; redirect_stdout swaps sys.stdout for every thread, so
    # it is done once, here, around them all.
    with contextlib.redirect_stdout(io.StringIO()):
        for thread in threads:
            thread.start()
        if during is not None:
            with contextlib.redirect_stdout(sys.__stdout__):
                during()
        for thread in threads:
            thread.join()
    elapsed = time.monotonic() - t0
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    client_cpu = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    lat = sorted(load.latencies)
    p99 = lat[max(0, int(len(lat) * 0.99) - 1)] if lat else float("nan")
    print(
        f"  load: {clients} clients x (associate, {gets} GETs, release) for {elapsed:.0f} s:"
        f" {len(lat) / elapsed:.0f} ciphered GET/s, {load.sessions / elapsed:.1f} sessions/s,"
        f" GET median {statistics.median(lat) * 1000 if lat else float('nan'):.2f} ms"
        f" p99 {p99 * 1000:.2f} ms, {load.errors} failed sessions;"
        f" load generator CPU {client_cpu / elapsed * 100:.0f} % of one core"
    )


def lean_load(
    state: Path, workers: list[int], clients: int, gets: int, seconds: float
) -> tuple[dict[str, Any], float]:
    """bench/lean_headend.py in its own process (its CPU is its own, apart from the fleet's):
    its result and the workers' CPU seconds over it."""
    inventory = state / "inventory.json"
    if not inventory.exists():
        inventory.write_text(json.dumps(fleet_rows(state)))
    script = Path(__file__).with_name("lean_headend.py")
    command = [sys.executable, str(script), "--inventory", str(inventory)]
    command += ["--clients", str(clients), "--gets", str(gets), "--seconds", str(seconds)]
    user0, system0 = cpu_user_system(workers)
    result = json.loads(subprocess.check_output(command).decode().strip().splitlines()[-1])
    user1, system1 = cpu_user_system(workers)
    result["workers_system_share"] = (system1 - system0) / max(
        1e-9, user1 + system1 - user0 - system0
    )
    result["workers_threads"] = thread_count(workers)
    return result, user1 + system1 - user0 - system0


def p3_ends(state: Path) -> dict[str, int]:
    """The fleet's P3 connection ends so far, by cause (ctl status ports.p3.closes), and the
    connections refused as second ones: who closed what a head-end saw reset."""
    spec = FleetSpec.load(state)
    answers = asyncio.run(call_meters(state, list(spec.indices), {"cmd": "status"}, 10.0))
    totals: dict[str, int] = {}
    for answer in answers.values():
        p3 = answer.get("ports", {}).get("p3", {}) if isinstance(answer, dict) else {}
        for cause, n in {**p3.get("closes", {}), "refused": p3.get("refused", 0)}.items():
            totals[cause] = totals.get(cause, 0) + int(n)
    return totals


def run_async_load(
    state: Path, workers: list[int], clients: int, gets: int, seconds: float
) -> None:
    """The workers' CPU time over the load, divided by the GETs and sessions served, is the
    figure a noisy shared host does not blur much (capacity = free cores / CPU per GET)."""
    result, worker_cpu = lean_load(state, workers, clients, gets, seconds)
    print(
        f"  lean asyncio load: {clients} sessions at once x (associate, {gets} GETs, release)"
        f" for {result['seconds']} s: {result['gets_per_s']} ciphered GET/s,"
        f" {result['sessions_per_s']} sessions/s, GET median {result['get_median_ms']} ms"
        f" p99 {result['get_p99_ms']} ms, {result['errors']} failed sessions"
        f" {result['first_errors']}; load generator CPU {result['client_cpu_percent']} %"
        " of one core"
    )
    print(f"  P3 connection ends so far, by cause: {p3_ends(state)}")
    if result["gets"] and result["sessions"]:
        # The idle work of the fleet in the window is counted in, so it is an upper bound.
        print(
            f"  workers' CPU {worker_cpu:.2f} s ({worker_cpu / result['seconds'] * 100:.0f} %"
            f" of one core): {worker_cpu / result['gets'] * 1e6:.0f} µs per GET,"
            f" {worker_cpu / result['sessions'] * 1e3:.2f} ms per session"
            f" (associate, {gets} GETs, release); kernel time"
            f" {result['workers_system_share'] * 100:.0f} % of it; the workers'"
            f" threads at the end {result['workers_threads']}"
        )


def split_session_cost(state: Path, workers: list[int], clients: int, gets: int) -> None:
    """Sessions without GETs, then with twice as many (the meters have all been served once
    by the load before): the workers' CPU per association (with its release) and per GET."""
    per_session = {}
    for count in (0, 2 * gets):
        result, cpu = lean_load(state, workers, clients, count, seconds=15)
        per_session[count] = cpu / max(1, result["sessions"])
    per_get = (per_session[2 * gets] - per_session[0]) / (2 * gets)
    print(
        f"  split: workers' CPU per association (AARQ/AARE, HLS pass 3/4, RLRQ, the"
        f" connection) {per_session[0] * 1e3:.2f} ms, per ciphered GET {per_get * 1e6:.0f} µs"
        f" (sessions of 0 and {2 * gets} GETs, 15 s each)"
    )


def bench(  # noqa: PLR0917 - the command line's options
    count: int,
    workers: int | None,
    idle_s: float,
    clients: int,
    gets: int,
    outage: float,
    async_clients: int = 0,
    split: bool = False,
) -> None:
    state = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    first = f"tcp://127.{random.randint(2, 250)}.{random.randint(0, 250)}.1:4059"
    command = [sys.executable, "-m", "twin", "--log-level", "WARNING", "fleet", "run"]
    command += ["--count", str(count), "--state-dir", str(state), "--p3", first, "--speed", "1"]
    command += [] if workers is None else ["--workers", str(workers)]
    t0 = time.monotonic()
    process = subprocess.Popen(command)
    try:
        wait_up(state, count, process, limit_s=600)
        startup = time.monotonic() - t0
        pids = fleet_pids(process.pid)
        time.sleep(5)  # the start-up's backups and first commits settle
        cpu0, w0 = cpu_seconds(pids), time.monotonic()
        time.sleep(idle_s)
        idle = (cpu_seconds(pids) - cpu0) / (time.monotonic() - w0)
        rss, pss = memory_kb(pids)
        print(
            f"N={count} ({len(pids) - 1} workers): start-up {startup:.1f} s"
            f" ({startup / count * 1000:.0f} ms/meter); RSS {rss / 1024:.0f} MB"
            f" ({rss / 1024 / count:.2f} MB/meter), PSS {pss / 1024:.0f} MB"
            f" ({pss / 1024 / count:.2f} MB/meter); idle CPU at speed 1 {idle * 100:.1f} %"
            f" of one core ({idle * 100 / count * 1000:.1f} m%/meter);"
            f" {open_fds(pids) / count:.1f} fds/meter, {thread_count(pids[1:])} worker threads,"
            f" {disk_bytes(state / 'meters') / count / 1024:.0f} KiB disk/meter"
        )
        during = None
        if outage:
            listener = PushListener()
            rows = fleet_rows(state)
            t1 = time.monotonic()
            failed = commission(rows, listener, randomisation_s=20)
            print(
                f"  commissioned alarm pushes (destination, 20 s randomisation) on {count}"
                f" meters in {time.monotonic() - t1:.1f} s, {failed} failed"
            )
            during = outage_with_pushes(state, rows, listener, outage)
        if clients or during:
            run_load(state, clients, gets, seconds=20, during=during)
        if async_clients:
            run_async_load(state, pids[1:], async_clients, gets, seconds=20)
            if split:
                split_session_cost(state, pids[1:], async_clients, gets)
    finally:
        process.terminate()
        process.wait(120)
        shutil.rmtree(state, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="100,300", help="fleet sizes, e.g. 100,300,1000")
    parser.add_argument("--workers", type=int, help="worker processes (default one per core)")
    parser.add_argument("--idle-s", type=float, default=20.0, help="idle CPU window")
    parser.add_argument("--clients", type=int, default=0, help="concurrent head-end clients")
    parser.add_argument("--gets", type=int, default=20, help="GETs per session")
    parser.add_argument(
        "--outage", type=float, default=0.0, help="share of meters in an outage under load"
    )
    parser.add_argument(
        "--async-clients", type=int, default=0, help="concurrent sessions of the lean head-end"
    )
    parser.add_argument(
        "--split",
        action="store_true",
        help="after the async load: the workers' CPU per association and per GET",
    )
    args = parser.parse_args()
    tick, commit_ms = tick_and_checkpoint_cost()
    interval = Config().store.checkpoint_interval_s
    print(
        f"MeterLoop wake-up (in-process, one fleet meter): {tick:.0f} µs, at most"
        f" {WAKES_PER_S:g} per second per meter when idle;"
        f" checkpoint (one commit in its own database) median {commit_ms:.2f} ms,"
        f" one per meter every {interval:g} s"
    )
    for count in (int(c) for c in args.counts.split(",")):
        bench(
            count,
            args.workers,
            args.idle_s,
            args.clients,
            args.gets,
            args.outage,
            args.async_clients,
            args.split,
        )
        print(
            f"  of which MeterLoop wake-ups alone: {count * WAKES_PER_S * tick / 1e4:.1f} %"
            " of one core;"
            f" checkpoints: {count / interval:.0f} commits/s,"
            f" {count / interval * commit_ms / 10:.1f} % of one core's time spent in them"
        )


if __name__ == "__main__":
    main()
