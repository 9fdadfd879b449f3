"""Idle cost per meter, in-process: event-loop callbacks and CPU per meter per second.

    python bench/bench_idle.py --count 200 --idle-s 20

Builds `--count` meters exactly as a fleet worker does (twin.fleet.worker.open_meters: P3 on
127.1.0.x, P2 with a simulated gas meter, no P1, speed 1, default configuration) and runs them
in this process's one event loop. After `--warm-up-s` (start-up work: the first P2 scans, P3
listening) it counts, over `--idle-s` seconds with nobody talking to the meters, the callbacks
the event loop ran and the process's CPU time, and prints both per meter per second, the
extrapolated share of a core for 1000 meters, and the busiest callbacks (by coroutine).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import logging
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twin.config import load_config
from twin.fleet.spec import resolve_spec
from twin.fleet.worker import close_meter, open_meters, raise_open_file_limit


class CallbackCounter:
    """Counts what the event loop runs (asyncio.Handle._run), by the coroutine or function."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.counting = False
        self._original: Any = asyncio.events.Handle._run

    def install(self) -> None:
        original, counts, counter = self._original, self.counts, self

        def run(handle: asyncio.events.Handle) -> None:
            if counter.counting:
                counts[_name(handle)] += 1
            original(handle)

        asyncio.events.Handle._run = run  # type: ignore[method-assign]

    def remove(self) -> None:
        asyncio.events.Handle._run = self._original  # type: ignore[method-assign]


def _name(handle: asyncio.events.Handle) -> str:
    callback = getattr(handle, "_callback", None)
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        return str(getattr(owner.get_coro(), "__qualname__", "task"))
    return str(getattr(callback, "__qualname__", repr(callback)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def measure(count: int, warm_up_s: float, idle_s: float, top: int) -> None:
    counter = CallbackCounter()
    counter.install()
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as directory:
        os.chdir(directory)
        spec = resolve_spec(Path(directory), count, "bench", f"tcp://127.1.0.1:{free_port()}", None)
        started = time.monotonic()
        meters = open_meters(spec, load_config(None), list(spec.indices))
        stop = asyncio.Event()
        tasks = [asyncio.create_task(m.twin.supervisor.run(stop)) for m in meters]
        try:
            await asyncio.sleep(warm_up_s)
            print(f"{count} meters built and warmed up in {time.monotonic() - started:.1f} s")
            cpu, wall = time.process_time(), time.monotonic()
            counter.counting = True
            await asyncio.sleep(idle_s)
            counter.counting = False
            cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            for hosted in meters:
                close_meter(hosted)
            counter.remove()
    total = sum(counter.counts.values())
    per_meter = total / count / wall
    share = cpu / wall
    print(f"idle {wall:.1f} s: {per_meter:.2f} callbacks per meter per second")
    print(
        f"CPU {100 * share:.1f} % of a core ({100 * share / count:.4f} % per meter;"
        f" {100 * share / count * 1000:.1f} % for 1000 meters)"
    )
    for name, n in counter.counts.most_common(top):
        print(f"  {n / count / wall:8.3f}/meter/s  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--warm-up-s", type=float, default=5.0)
    parser.add_argument("--idle-s", type=float, default=10.0)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    raise_open_file_limit()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(measure(args.count, args.warm_up_s, args.idle_s, args.top))


if __name__ == "__main__":
    main()
