"""Fuzz the P3 server (issue 10 "Keep it proven"): random wrapper frames, truncated and
over-long headers, random APDUs inside a valid wrapper, and random APDUs correctly ciphered
inside an established management association. Most cases drive the sans-IO core (fast);
a smaller number go over real TCP to the running service. After every case a good session
works. The invariants are in fuzz_p3.py; bench/bench_p3_fuzz.py runs 10^5 cases.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import steady_config
from tests.unit.p3 import fuzz_p3
from tests.unit.p3.fuzz_p3 import CLIENTS, SETUPS, TAGS, Outcome, feed, good_session, set_up
from tests.unit.p3.helpers import CLOCK_VALUE, make_meter
from tests.unit.p3.test_service import KEYS, START, Objects, management_session
from twin.clock import ManualClock
from twin.metering import Meter
from twin.p3.keys import KeyStore
from twin.p3.service import P3Service
from twin.store import Store

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

garbage = st.binary(min_size=1, max_size=64)
odd_header = st.builds(
    lambda version, source, destination, apdu, delta, keep: (
        fuzz_p3.header(version, source, destination, len(apdu) + delta) + apdu
    )[: max(1, keep)],
    st.sampled_from([0, 1, 2, 0xFFFF]),
    st.sampled_from(CLIENTS),
    st.sampled_from([0, 1, 2]),
    st.binary(max_size=48),
    st.sampled_from([-3, -1, 0, 1, 5, 4000, 65535]),
    st.integers(1, 60),
)
apdu = st.builds(
    lambda tag, rest: bytes([tag]) + rest, st.sampled_from(TAGS), st.binary(max_size=80)
)
in_wrapper = st.builds(fuzz_p3.wrap, apdu, st.sampled_from(CLIENTS))
frames = st.one_of(garbage, odd_header, in_wrapper)


def chunked(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return fuzz_p3.split(data, rng.randrange(1, 4), rng)


@pytest.fixture(scope="module", autouse=True)
def quiet_dlms_cosem() -> Iterator[None]:
    """dlms-cosem 21.3.2 logs every APDU at WARNING: thousands of lines here."""
    logger = logging.getLogger("dlms_cosem")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


@pytest.fixture(scope="module")
def meter() -> fuzz_p3.Meter:
    """One core for all cases, as one service serves every connection."""
    return make_meter()


@FUZZ
@given(st.sampled_from(SETUPS), st.lists(frames, min_size=1, max_size=3), st.integers(0, 2**16))
def test_core_survives_random_frames(
    meter: fuzz_p3.Meter, setup: str, cases: list[bytes], seed: int
) -> None:
    set_up(meter, setup, invocation_counter=1000)
    for data in cases:
        feed(meter, chunked(data, seed))
    good_session(meter, invocation_counter=2000)


@FUZZ
@given(st.lists(apdu, min_size=1, max_size=3))
def test_core_survives_random_apdus_in_a_ciphered_association(
    meter: fuzz_p3.Meter, plains: list[bytes]
) -> None:
    connection = set_up(meter, "management", invocation_counter=1000)
    for plain in plains:
        if feed(meter, [connection.cipher(plain)]) is Outcome.CLOSED:
            break
    good_session(meter, invocation_counter=3000)


# ---- over TCP: the asyncio service in a thread of its own -----------------------------------


@dataclass
class Running:
    service: P3Service
    loop: asyncio.AbstractEventLoop
    net: ManualClock

    def call(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    path: Path = tmp_path_factory.mktemp("p3-fuzz")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    store = Store.open(path)
    net = ManualClock(START)

    async def start() -> P3Service:
        meter = Meter(steady_config(), ManualClock(START), store, random.Random(1))
        service = P3Service(meter, KeyStore(store, KEYS), Objects(), "127.0.0.1", 0, net_clock=net)
        await service.start_listening()
        return service

    service = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    yield Running(service, loop, net)
    asyncio.run_coroutine_threadsafe(service.stop_listening(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    store.close()


def send_and_close(port: int, chunks: list[bytes]) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            for chunk in chunks:
                sock.sendall(chunk)
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(5)
            while sock.recv(4096):
                pass
        except OSError:
            pass  # the meter closed first (reset, broken pipe, not connected): a silent release


@settings(max_examples=30, deadline=None)
@given(st.lists(frames, min_size=1, max_size=3), st.integers(0, 2**16))
def test_service_survives_random_bytes_over_tcp(
    running: Running, cases: list[bytes], seed: int
) -> None:
    service = running.service
    send_and_close(service.bound_port, [c for data in cases for c in chunked(data, seed)])
    running.call(service.wait_idle())
    if service.logins.locked_until is not None:  # random AARQs may count as failed logins
        running.call(running.net.advance(3600))
    clock, _ = management_session(service.bound_port, 500)
    assert clock == CLOCK_VALUE
    assert service.counters.errors == 0  # no core error, only typed refusals
    assert service.listening
