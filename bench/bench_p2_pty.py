"""P2 read cycle over a pty, master and gas-meter twin in separate processes, 2400-Bd pacing.

Run: .venv/bin/python bench/bench_p2_pty.py [--reads N]

This process is the E meter's M-Bus master (`MbusMaster`) on a `PtyBusLink`; it starts a
second Python process running the real `GasMeterTwin` (with its SQLite store, the EN 13757-2
11-bit minimum turnaround and AES) on the pty's other side through `UartBusLink`, as
`dsmr-twin gasmeter` does. It installs and keys the meter, then times N hourly reads
(REQ_UD2 -> RSP_UD mode 15) from the first byte of the request to the decoded reading.

A pty has no line: both ends therefore release their bytes at 2400 Bd 8E1, each byte when its
stop bit would end (absolute schedule, so late wake-ups do not add up). The wire time is thus
emulated; everything else is real and measured: two processes, the pty, asyncio scheduling,
encryption and decryption, the gas meter's state write before each answer, and its turnaround.
The figure to compare is the theoretical minimum: both frames at 11 bits per byte plus the
11-bit turnaround, with no processing at all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hardware.mbus_link import MbusLink, byte_time_s, min_answer_delay_s, response_timeout_s
from hardware.mbus_pty import PtyBusLink
from hardware.mbus_uart import UartBusLink
from twin.clock import SystemClock
from twin.p2.aio.gasmeter import GasMeterTwin
from twin.p2.crypto import wrap_user_key
from twin.p2.master import MasterSnapshot, MbusMaster
from twin.p2.master_events import MasterEvent, Reading
from twin.p2.slave_state import GasMeterIdentity
from twin.store import Store

USER_KEY = bytes(range(16))  # P2 App. B
DEFAULT_KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")  # P2 App. B
IDENTITY = GasMeterIdentity(12345678, "TWN", "G0099000012345678", DEFAULT_KEY)


class PacedLink:
    """An `MbusLink` whose bytes leave at `byte_time_s()` each, as on a 2400-Bd line."""

    def __init__(self, link: MbusLink) -> None:
        self.link = link
        self.bytes_sent = 0

    @property
    def description(self) -> str:
        return f"{self.link.description}, paced at 2400 Bd"

    async def open(self) -> None:
        await self.link.open()

    async def send(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index in range(len(data)):
            # Byte `index` is complete (its stop bit ends) at start + (index + 1) byte times.
            delay = start + (index + 1) * byte_time_s() - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.link.send(data[index : index + 1])
        self.bytes_sent += len(data)

    async def receive(self, timeout_s: float | None) -> bytes:
        return await self.link.receive(timeout_s)

    def discard_input(self) -> None:
        self.link.discard_input()

    async def close(self) -> None:
        await self.link.close()


async def gas_meter(port: str, state_dir: Path) -> None:
    """The far end: a gas-meter twin on the pty, paced, until killed."""
    store = Store.open(state_dir)
    link = PacedLink(UartBusLink(port))
    gas = GasMeterTwin(IDENTITY, link, SystemClock(), store, rng=random.Random(1))
    await gas.run()


async def exchange(
    link: PacedLink, master: MbusMaster, send: bytes
) -> tuple[list[MasterEvent], int]:
    """Drive the master until it has nothing to send (EN 13757-2 timeouts); the events and
    the number of bytes received."""
    events: list[MasterEvent] = []
    received = 0
    while send:
        await link.send(send)
        while True:
            data = await link.receive(response_timeout_s())
            received += len(data)
            out = master.receive(data) if data else master.timeout()
            events += out.events
            if out.send or not master.busy or not data:
                send = out.send
                break
    return events, received


async def run_master(root: Path, reads: int) -> None:
    pty = PtyBusLink(root / "mbus")
    link = PacedLink(pty)
    await link.open()
    gas = subprocess.Popen(
        [sys.executable, __file__, "--gas-meter", str(root / "mbus"), str(root / "gas")]
    )
    try:
        master = MbusMaster(MasterSnapshot())
        for _ in range(100):  # until the gas meter process listens and is installed
            await exchange(link, master, master.scan())
            if master.channel(1) is not None:
                break
            await asyncio.sleep(0.1)
        assert master.channel(1) is not None, "the gas meter was not installed"
        wrapped = wrap_user_key(DEFAULT_KEY, USER_KEY)[::-1]  # as P3 carries it
        now = SystemClock().now()
        await exchange(link, master, master.transfer_key(1, wrapped, USER_KEY, now))
        await _measure(link, master, reads)
    finally:
        gas.terminate()
        gas.wait(timeout=30)
        await link.close()


async def _measure(link: PacedLink, master: MbusMaster, reads: int) -> None:
    times: list[float] = []
    sizes: set[int] = set()
    for _ in range(reads):
        sent = link.bytes_sent
        began = time.perf_counter()
        events, received = await exchange(link, master, master.read(1))
        times.append(time.perf_counter() - began)
        readings = [e for e in events if isinstance(e, Reading)]
        assert len(readings) == 1, events
        assert readings[0].frame_counter, "mode 15: the answer carries a frame counter"
        assert link.bytes_sent - sent == 5, "one REQ_UD2: no retry, no clear-status"
        sizes.add(received)
    (rsp,) = sizes
    minimum = (5 + rsp) * byte_time_s() + min_answer_delay_s()
    median = statistics.median(times)
    print("hourly read over a pty, master and gas-meter twin in two processes, 2400 Bd paced")
    print(f"  bytes per read                REQ_UD2 5 + RSP_UD mode 15 {rsp}")
    print(f"  reads timed                   {reads}")
    print(f"  theoretical minimum per read  {minimum * 1000:8.1f} ms")
    print(
        f"  measured per read             {median * 1000:8.1f} ms median"
        f" ({min(times) * 1000:.1f} .. {max(times) * 1000:.1f})"
    )
    print(f"  overhead (median)             {(median / minimum - 1) * 100:8.1f} %")
    print(
        f"  4 reads (a 4-channel cycle)   {4 * median * 1000:8.1f} ms vs {4 * minimum * 1000:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reads", type=int, default=40)
    parser.add_argument(
        "--gas-meter", nargs=2, metavar=("PORT", "STATE_DIR"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.gas_meter:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(gas_meter(args.gas_meter[0], Path(args.gas_meter[1])))
        return
    with tempfile.TemporaryDirectory(prefix="p2-bench-") as root:
        asyncio.run(run_master(Path(root), args.reads))


if __name__ == "__main__":
    main()
