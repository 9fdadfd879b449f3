"""`dsmr-twin run --scenario FILE --p3 tcp://HOST:PORT`: a head-end reads the running
scenario's meter over TCP (P3 §3) with dlms-cosem, while the scenario goes on."""

from __future__ import annotations

import asyncio
import dataclasses
import io
from pathlib import Path

from dlms_cosem import utils

from tests.unit.p3.tcp_peers import attribute, public_client
from tests.unit.test_scenario import scenario
from twin.scenario_run import ScenarioRunner


def read_clock(port: int) -> bytes:
    """The meter's time 0-0:1.0.0 attribute 2 (readable by the public client, P3 §5.3)."""
    client = public_client(port)
    with client.session():
        return bytes(utils.parse_as_dlms_data(client.get(attribute(8, "0-0:1.0.0", 2))))


async def test_a_head_end_reads_the_scenarios_meter_over_tcp(tmp_path: Path) -> None:
    chosen = scenario(duration="2h", event=[], weather={})
    p3 = dataclasses.replace(chosen.config.p3, endpoint="tcp://127.0.0.1:0")
    chosen = dataclasses.replace(chosen, config=dataclasses.replace(chosen.config, p3=p3))
    # Paced: two meter hours in about two real seconds, time enough for a session.
    runner = ScenarioRunner(chosen, tmp_path, speed=3600.0, capture=io.StringIO())
    service = runner.p3.service
    assert service is not None
    try:
        run = asyncio.create_task(runner.run())
        while not service.listening:
            await asyncio.sleep(0.01)
        clock = await asyncio.to_thread(read_clock, service.bound_port)
        assert not run.done()  # read while the scenario ran
        await run
    finally:
        runner.close()
    # Green Book date-time: 2026-03-10 (a Tuesday), between 06:00 and 08:00, the scenario's
    # meter time while it ran (not the host's).
    assert clock[:5] == bytes.fromhex("07EA030A02")
    assert 6 <= clock[5] < 8
    assert not service.listening  # the service ends with the run
