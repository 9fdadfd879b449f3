"""The simulated gas meter through `ctl advance` (twin/p2/aio/fast_forward.py), on a ManualClock:
every hour of the span drawn once, in order, whatever reads the gas meter meanwhile, and the
E meter's M-Bus hourly rows holding the value read after each previous hour (P2 §4.3)."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

from hardware.mbus_sim import SimulatedBus
from twin.clock import ManualClock, OffsetClock
from twin.config import Config
from twin.fast_forward import FastForward
from twin.meter.gas import litres_in_hour
from twin.metering import Meter
from twin.p2.aio.fast_forward import GasFastForward
from twin.p2.aio.gasmeter import GasMeterTwin
from twin.p2.aio.service import P2Service
from twin.p2.slave_state import GasMeterIdentity
from twin.store import Store

START = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
DEFAULT_KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
IDENTITY = GasMeterIdentity(19, "TWN", "G0099000000000019", DEFAULT_KEY)
HOURS = 48


def _rig(
    clock: ManualClock, store: Store
) -> tuple[Meter, GasMeterTwin, OffsetClock, P2Service, FastForward]:
    """A meter, its P2 master and the gas-meter twin installed on the instant bus, as
    twin/p2/aio/wiring.py builds them, and the fast-forward with the gas meter's waypoint."""
    meter = Meter(Config(), clock, store, random.Random(1))
    bus = SimulatedBus()
    gas_clock = OffsetClock(clock)
    gas = GasMeterTwin(
        IDENTITY, bus.slave_end(), gas_clock, store, rng=random.Random(2), start_litres=1000
    )
    service = P2Service(
        meter,
        bus.master_end(),
        install_window_s=0,
        default_key_for=lambda d: DEFAULT_KEY if d == IDENTITY.device else None,
    )
    service.discover(gas.answer)
    fast = FastForward(meter)
    fast.waypoints.append(GasFastForward(gas, gas_clock, service, meter))
    return meter, gas, gas_clock, service, fast


def test_each_hour_of_the_span_is_drawn_once_and_read_into_the_hourly_rows(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        clock = ManualClock(START)
        store = Store.open(tmp_path)
        try:
            _, gas, gas_clock, _, fast = _rig(clock, store)
            advance = asyncio.create_task(fast.advance(START + timedelta(hours=HOURS)))
            while not advance.done():
                gas.status()  # what `ctl status` asks of it while the span runs
                await asyncio.sleep(0)
            await advance
            gas.status()  # after the span: the last hour is captured on the gas meter's clock
            draws = random.Random(2)
            expected = 1000 + sum(
                litres_in_hour(START + timedelta(hours=k), draws) for k in range(HOURS)
            )
            assert gas.status()["litres"] == int(expected)
            assert gas.slave.clock(gas_clock.now()) == START + timedelta(hours=HOURS)
            rows = store.mbus_hourly(1)
            assert [r.time for r in rows] == [
                START + timedelta(hours=k) for k in range(1, HOURS + 1)
            ]
            assert all(r.capture == r.time - timedelta(hours=1) for r in rows)
            assert all(b.value > a.value for a, b in pairwise(rows))
        finally:
            store.close()

    asyncio.run(scenario())


def test_the_master_holds_its_bus_work_during_the_span_and_reads_once_after(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        clock = ManualClock(START)
        store = Store.open(tmp_path)
        try:
            meter, gas, _, service, fast = _rig(clock, store)
            tasks = [asyncio.create_task(t.run()) for t in (gas, service)]
            async with asyncio.timeout(10):  # a safety net: idle once its start-up scan is saved
                while not service.idle:
                    await asyncio.sleep(0.001)
            before = service.bus.exchanges
            advance = asyncio.create_task(fast.advance(START + timedelta(hours=HOURS)))
            await asyncio.sleep(0)
            await clock.advance(3600)  # the read at 12:05 falls due on the clock meanwhile
            during = []
            while not advance.done():
                if meter.advancing:  # the span (its answer then waits for the last commit)
                    during.append(service.bus.exchanges)
                await asyncio.sleep(0)
            await advance
            assert during
            assert set(during) == {before}  # no frame on the bus while the model ran ahead
            # Woken by the step, it reads at once (the loop below ends, or the timeout fails).
            async with asyncio.timeout(10):
                while service.bus.exchanges == before:
                    await asyncio.sleep(0.001)  # woken by the step: it reads at once
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            store.close()

    asyncio.run(scenario())
