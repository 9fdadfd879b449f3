"""Cost follows work (issue 12): a meter nothing talks to barely wakes its event loop.

A twin built as a fleet meter is (P3 listening, P2 with the simulated gas meter, no P1, no
display) runs at speed 1 on a real event loop; after its start-up work every service sleeps
until its next capture, read or push is due. The loop's callbacks are counted over a real
second: polling services (a 0.5 s metering tick, a 1 s object-model tick, the gas meter's
0.19 s line time-out) ran about 29 a second per meter.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from twin.app import build
from twin.config import ClockConfig, Config, DisplayConfig, P1Config, P3Config, WebConfig

IDLE_CALLBACKS_PER_S = 4  # the test's own 2 wake-ups and slack: no beat in the second


@pytest.fixture
def callbacks() -> Iterator[Callable[[], collections.Counter[str]]]:
    """Counts the callbacks the event loop runs while `counting` (by coroutine or function)."""
    counts: collections.Counter[str] = collections.Counter()
    original: Any = asyncio.events.Handle._run

    def run(handle: asyncio.events.Handle) -> None:
        callback = getattr(handle, "_callback", None)
        owner = getattr(callback, "__self__", None)
        if isinstance(owner, asyncio.Task):
            counts[str(getattr(owner.get_coro(), "__qualname__", "task"))] += 1
        else:
            counts[str(getattr(callback, "__qualname__", callback))] += 1
        original(handle)

    asyncio.events.Handle._run = run  # type: ignore[method-assign]
    try:
        yield lambda: counts
    finally:
        asyncio.events.Handle._run = original  # type: ignore[method-assign]


async def test_an_idle_meter_sleeps_until_something_is_due(
    tmp_path: Path, callbacks: Callable[[], collections.Counter[str]]
) -> None:
    config = replace(
        Config(),
        # A minute of meter time from a whole minute: no capture falls in the idle second.
        clock=ClockConfig(speed=1.0, start="2026-12-07T10:00:10+00:00"),
        p1=P1Config(endpoint="none"),
        p3=P3Config(endpoint="tcp://127.0.0.1:0"),
        display=DisplayConfig(device="none"),
        web=WebConfig(endpoint="none"),  # as a fleet's meter (tests/unit/test_web.py: pages)
    )
    twin = build(config, tmp_path)
    stop = asyncio.Event()
    running = asyncio.create_task(twin.supervisor.run(stop))
    try:
        await asyncio.sleep(0.5)  # start-up: P3 listens, P2 installs and reads the gas meter
        assert twin.control.ports["p2"]()["channels"], "the gas meter was not installed"
        callbacks().clear()
        await asyncio.sleep(1.0)
        counted = callbacks()
        assert sum(counted.values()) <= IDLE_CALLBACKS_PER_S, counted.most_common(8)
    finally:
        stop.set()
        await running
        twin.meter.commit()
        twin.store.close()
