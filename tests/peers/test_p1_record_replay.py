"""Record a running twin's P1 telegrams through its pty, replay them (and public captures) onto
a pty and a TCP port, and read them back with dsmr_parser: byte for byte, CRCs checked."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

serial = pytest.importorskip("serial")
from dsmr_parser.clients import telegram_buffer  # noqa: E402

from hardware.p1_source import SerialSource, open_p1_source  # noqa: E402
from hardware.ports import ByteSink  # noqa: E402
from hardware.pty_link import PtySink  # noqa: E402
from hardware.request_line import SimulatedRequestLine  # noqa: E402
from hardware.tcp_link import TcpSink  # noqa: E402
from tests.peers.test_p1_dsmr_parser import parse  # noqa: E402
from tests.support import FIXTURES, p1_fixture  # noqa: E402
from twin.clock import ManualClock  # noqa: E402
from twin.config import Config, P2Config  # noqa: E402
from twin.metering import Meter  # noqa: E402
from twin.p1.capture import CapturedTelegram, load_capture  # noqa: E402
from twin.p1.record import record  # noqa: E402
from twin.p1.replay import ReplayService  # noqa: E402
from twin.p1.service import P1Service  # noqa: E402
from twin.p1.telegram import TelegramEncoder  # noqa: E402
from twin.store import Store  # noqa: E402

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SAFETY_S = 10.0


class SpySink:
    """A real sink that also keeps every telegram written to it."""

    def __init__(self, sink: ByteSink) -> None:
        self.inner = sink
        self.written: list[bytes] = []
        self.description = sink.description

    async def open(self) -> None:
        await self.inner.open()

    async def write(self, data: bytes) -> None:
        self.written.append(data)  # handed to the line (the write returns a moment later)
        await self.inner.write(data)

    def status(self) -> dict[str, object]:
        return self.inner.status()

    def abort_output(self) -> None:
        self.inner.abort_output()

    async def close(self) -> None:
        await self.inner.close()


@contextlib.asynccontextmanager
async def running(service: P1Service | ReplayService) -> AsyncIterator[None]:
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(service.ready.wait(), SAFETY_S)
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def read_frames(source: SerialSource, count: int) -> list[bytes]:
    """dsmr_parser's TelegramBuffer cuts the frames (in a worker thread)."""
    buffer, frames = telegram_buffer.TelegramBuffer(), []
    deadline = time.monotonic() + SAFETY_S
    while len(frames) < count and time.monotonic() < deadline:
        buffer.append(source.read(0.1).decode("ascii"))
        frames.extend(f.encode("ascii") for f in buffer.get_all())
    assert len(frames) == count, f"got {len(frames)} of {count} telegrams"
    return frames


async def test_a_recorded_twin_replays_byte_for_byte_through_a_pty(tmp_path: Path) -> None:
    clock = ManualClock(START)
    store = Store.open(tmp_path / "state")
    meter = Meter(Config(p2=P2Config(enabled=False)), clock, store, random.Random(1))
    twin_sink, request = SpySink(PtySink(tmp_path / "twin")), SimulatedRequestLine()
    service = P1Service(meter, TelegramEncoder("TWN", "DSMR-TWIN-422"), twin_sink, request, clock)
    capture = tmp_path / "capture.jsonl"
    async with running(service):
        source = open_p1_source(f"pty://{tmp_path / 'twin'}")
        with capture.open("w", encoding="utf-8") as out:
            recording = asyncio.ensure_future(asyncio.to_thread(record, source, out, count=4))
            request.set(True)
            while not recording.done():
                await asyncio.sleep(0.02)
                await clock.advance(10)  # the next slot of the twin's 10 s cadence
            summary = await recording
        source.close()
    store.close()
    assert (summary.telegrams, summary.crc_errors) == (4, 0)
    telegrams = load_capture(capture.read_text(encoding="utf-8"))
    # Whatever the recorder caught of the twin: whole telegrams, in order, as sent.
    sent = twin_sink.written
    first = sent.index(telegrams[0].data)
    assert [t.data for t in telegrams] == sent[first : first + 4]

    replay_request = SimulatedRequestLine()
    # Looping keeps the pty open until the reader has its telegrams (the first round's).
    replay = ReplayService(telegrams, PtySink(tmp_path / "replay"), replay_request, loop=True)
    async with running(replay):
        reader = SerialSource(str(tmp_path / "replay"))
        replay_request.set(True)
        frames = await asyncio.to_thread(read_frames, reader, 4)
        reader.close()
    assert frames == [t.data for t in telegrams]
    stamps = [parse(f.decode()).P1_MESSAGE_TIMESTAMP.value for f in frames]  # CRC checked
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == 4


async def test_public_captures_replay_on_tcp_at_their_10_s_cadence() -> None:
    names = ("tv1-kaifa-4.2", "spec-4.2.2-example", "tv3-landisgyr-e350-4.2")
    text = "\n".join((FIXTURES / "p1" / f"{n}.txt").read_text() for n in names)
    telegrams = load_capture(text)
    sink, request = TcpSink("127.0.0.1", 0), SimulatedRequestLine()
    replay = ReplayService(telegrams, sink, request, speed=50)  # 10 s -> 0.2 s
    async with running(replay):
        reader, writer = await asyncio.open_connection("127.0.0.1", sink.port)
        async with asyncio.timeout(SAFETY_S):
            while not sink.clients:
                await asyncio.sleep(0)
        request.set(True)
        frames, arrivals = [], []
        for _ in names:
            frame = await asyncio.wait_for(reader.readuntil(b"!"), SAFETY_S)
            frames.append(frame + await asyncio.wait_for(reader.readexactly(6), SAFETY_S))
            arrivals.append(time.monotonic())
        writer.close()
    assert frames == [p1_fixture(n) for n in names]
    for frame in frames:
        parse(frame.decode("ascii"))  # dsmr_parser: CRC and every field
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert all(0.15 <= gap <= 0.6 for gap in gaps), gaps


async def test_telegrams_due_while_request_is_down_are_skipped(tmp_path: Path) -> None:
    kaifa = p1_fixture("tv1-kaifa-4.2")
    # Six telegrams 0.3 s apart, and a seventh much later that keeps the line open meanwhile.
    telegrams = [CapturedTelegram(i * 0.3, kaifa) for i in range(6)]
    telegrams.append(CapturedTelegram(SAFETY_S * 10, kaifa))
    request = SimulatedRequestLine()
    replay = ReplayService(telegrams, PtySink(tmp_path / "p1"), request)
    async with running(replay):
        reader = SerialSource(str(tmp_path / "p1"))
        request.set(True)
        await asyncio.sleep(0.45)  # telegrams 1 and 2 out (at 0 and 0.3 s)
        request.set(False)
        await asyncio.sleep(0.6)  # 3 and 4 due while Request is down (0.6 and 0.9 s)
        request.set(True)  # 5 and 6 out
        frames = await asyncio.to_thread(read_frames, reader, 4)
        reader.close()
        assert (replay.sent, replay.skipped, replay.aborted) == (4, 2, 0)
    assert frames == [kaifa] * 4


def test_a_tcp_source_reads_a_dongle(tmp_path: Path) -> None:
    kaifa = p1_fixture("tv1-kaifa-4.2")
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        source = open_p1_source(f"tcp://127.0.0.1:{port}")
        peer, _ = server.accept()
        with peer:
            peer.sendall(kaifa[300:] + kaifa + kaifa)  # joined mid-telegram, as a dongle is
            capture = tmp_path / "c.jsonl"
            with capture.open("w") as out:
                summary = record(source, out, count=2)
        source.close()
    assert (summary.telegrams, summary.dropped_bytes) == (2, len(kaifa) - 300)
    assert [t.data for t in load_capture(capture.read_text())] == [kaifa, kaifa]
