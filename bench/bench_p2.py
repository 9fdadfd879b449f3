"""P2 figures: codec throughput (with and without AES) beside pyMeterBus, and bus time.

Run: .venv/bin/python bench/bench_p2.py [--seconds S]

1. Frames per second through our codec: encode and decode a gas meter's RSP_UD in clear and
   in mode 15 (AES-128-CBC), and pyMeterBus (`meterbus.load`, if installed: PyPI
   `pyMeterBus`) parsing the same clear frames: the published V2 (DSMR 4.2.2 App. B1.3 in
   clear) and V5 (a real Landis+Gyr G350), from tests/fixtures/p2.
2. One full read cycle of four keyed gas meters (REQ_UD2 -> RSP_UD mode 15 each) on the
   simulated bus with 2400 Bd 8E1 timing, against its theoretical minimum: every byte of both
   frames at 11 bits per byte plus the slave's minimum turnaround of 11 bit times
   (EN 13757-2), with no processing time at all.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from hardware.mbus_link import byte_time_s, response_timeout_s
from hardware.mbus_sim import SimulatedBus, SimulatedEnd
from twin.p2.crypto import wrap_user_key
from twin.p2.headers import MODE_15, LongHeader
from twin.p2.master import MasterSnapshot, MbusMaster
from twin.p2.messages import RspUd, decode_message, encode_message
from twin.p2.slave import GasMeterIdentity, GasMeterSlave, SlaveSnapshot

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "p2"
USER_KEY = bytes(range(16))  # P2 App. B
DEFAULT_KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
NOW = datetime(2026, 1, 15, 7, 5, tzinfo=UTC)
CAPTURE = datetime(2026, 1, 15, 7, 0, tzinfo=UTC)


def fixture(name: str) -> bytes:
    lines = (FIXTURES / f"{name}.hex").read_text(encoding="utf-8").splitlines()
    return bytes.fromhex(" ".join(line for line in lines if not line.startswith("#")))


def rate(action: Callable[[], object], seconds: float) -> float:
    """Calls per second of `action` over about `seconds`."""
    count, began = 0, time.perf_counter()
    deadline = began + seconds
    while True:
        for _ in range(200):
            action()
        count += 200
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - began)


def codec_figures(seconds: float) -> None:
    clear = fixture("v2_rsp_ud_clear")
    g350 = fixture("v5_lgb_g350_clear")
    message = decode_message(clear)
    assert isinstance(message, RspUd)
    keyed = RspUd(
        message.address,
        LongHeader(message.header.device, message.header.access_number, 0, MODE_15),
        message.records,
        1,
    )
    encrypted = encode_message(keyed, key=USER_KEY)
    print(f"codec throughput (frames/s, {seconds:g} s each; frames of {len(clear)} and")
    print(f"{len(encrypted)} bytes: P2 App. B1.3 in clear and in mode 15)")
    rows: list[tuple[str, float]] = [
        ("ours   encode RSP_UD clear", rate(lambda: encode_message(message), seconds)),
        (
            "ours   encode RSP_UD mode 15 (AES)",
            rate(lambda: encode_message(keyed, key=USER_KEY), seconds),
        ),
        ("ours   decode RSP_UD clear (V2)", rate(lambda: decode_message(clear), seconds)),
        (
            "ours   decode RSP_UD mode 15 (AES)",
            rate(lambda: decode_message(encrypted, key=USER_KEY), seconds),
        ),
        ("ours   decode G350 clear (V5)", rate(lambda: decode_message(g350), seconds)),
    ]
    try:
        import meterbus  # type: ignore[import-untyped]
    except ImportError:
        rows.append(("pyMeterBus not installed (pip install pyMeterBus)", 0.0))
    else:
        rows += [
            ("pyMeterBus load RSP_UD clear (V2)", rate(lambda: meterbus.load(clear), seconds)),
            ("pyMeterBus load G350 clear (V5)", rate(lambda: meterbus.load(g350), seconds)),
        ]
    for label, value in rows:
        print(f"  {label:<44} {value:>10,.0f}")


def _fresh_slave(number: int) -> GasMeterSlave:
    """A gas meter as delivered: address 0, no User key (P2 §6.5.2)."""
    ident = 10_000_000 + number
    identity = GasMeterIdentity(ident, "TWN", f"G0099{ident:012d}", DEFAULT_KEY)
    slave = GasMeterSlave(identity, SlaveSnapshot(access_number=number))
    slave.update(1_234_567 + number, CAPTURE)
    return slave


async def _serve(end: SimulatedEnd, slave: GasMeterSlave) -> None:
    await end.open()
    while True:
        data = await end.receive(None)
        reply = slave.receive(data, NOW).reply
        if reply:
            await end.send(reply)


async def exchange(end: SimulatedEnd, master: MbusMaster, send: bytes) -> bytes:
    """Send one frame, feed the answer (EN 13757-2 timeouts); the master's next frame."""
    await end.send(send)
    while True:
        data = await end.receive(response_timeout_s())
        out = master.receive(data) if data else master.timeout()
        if out.send or not master.busy or not data:
            return out.send


async def _install_four(bus: SimulatedBus) -> tuple[MbusMaster, SimulatedEnd, list[object]]:
    """Install and key four meters, one joining the bus at a time (setup, not timed)."""
    master = MbusMaster(MasterSnapshot())
    end = bus.master_end()
    await end.open()

    async def run(send: bytes) -> None:
        while send:
            send = await exchange(end, master, send)

    tasks: list[object] = []
    wrapped = wrap_user_key(DEFAULT_KEY, USER_KEY)[::-1]  # as P3 carries it
    for number in range(1, 5):
        slave = _fresh_slave(number)
        tasks.append(asyncio.create_task(_serve(bus.slave_end(f"gas{number}"), slave)))
        await asyncio.sleep(0)
        await run(master.scan())
        await run(master.transfer_key(number, wrapped, USER_KEY, NOW))
    return master, end, tasks


async def bus_figures() -> None:
    bus = SimulatedBus(realtime=True)
    master, end, _tasks = await _install_four(bus)
    assert len(master.snapshot.channels) == 4
    assert all(c.user_key == USER_KEY for c in master.snapshot.channels)
    bus.history.clear()
    began = time.perf_counter()
    for channel in range(1, 5):
        send = master.read(channel)
        while send:
            send = await exchange(end, master, send)
    elapsed = time.perf_counter() - began
    sent = [(who, data) for who, data in bus.history]
    requests = b"".join(data for who, data in sent if who == "master")
    answers = b"".join(data for who, data in sent if who != "master")
    frames = [decode_message(requests[i : i + 5]) for i in range(0, len(requests), 5)]
    assert len(frames) == 4, "one REQ_UD2 per meter, no retry"
    wire_bytes = len(requests) + len(answers)
    minimum = (wire_bytes + len(frames)) * byte_time_s()  # + 11 bit times turnaround each
    mode = decode_message(answers[: len(answers) // 4], key=USER_KEY).header.mode  # type: ignore[union-attr]
    assert mode == MODE_15  # the answers are encrypted
    print("one 4-channel read cycle at 2400 Bd 8E1 (REQ_UD2 + RSP_UD mode 15 per meter)")
    print(f"  frames on the wire            {2 * len(frames)} ({wire_bytes} bytes)")
    print(f"  theoretical minimum           {minimum * 1000:8.1f} ms")
    print(f"  measured on the simulated bus {elapsed * 1000:8.1f} ms")
    print(f"  overhead                      {(elapsed / minimum - 1) * 100:8.1f} %")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=1.0, help="per throughput figure")
    args = parser.parse_args()
    codec_figures(args.seconds)
    print()
    asyncio.run(bus_figures())


if __name__ == "__main__":
    main()
