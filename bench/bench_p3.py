"""P3 figures on loopback against a running twin (prints them; not a timed test).

    python bench/bench_p3.py                       # starts its own twin in a temp dir
    python bench/bench_p3.py --port 4059 --state-dir state   # an already running twin

Association = TCP connect + AARQ/AARE + HLS-GMAC pass 3/4 by dlms-cosem 21.3.2 (its APDU
layer is pure Python and prints each APDU, so part of this is the client). Ciphered GETs and
the 960-row load profile use `LeanSession` (general-glo-ciphering with `cryptography`) so
they measure the meter. Targets (issue 3): association <= 5 ms, ciphered GET median <= 1 ms,
whole load profile <= 50 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.unit.p3 import tcp_peers
from tests.unit.p3.lean_client import LeanSession
from twin.p3.dlms.cosem import AttributeRef
from twin.p3.objects.base import obis_bytes

logging.getLogger("dlms_cosem").setLevel(logging.ERROR)  # 21.3.2 logs every APDU

ENERGY = AttributeRef(3, obis_bytes("1-0:1.8.1"), 2)
CLOCK = AttributeRef(8, obis_bytes("0-0:1.0.0"), 2)
LOAD_PROFILE = AttributeRef(7, obis_bytes("1-0:99.1.0"), 2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def own_twin() -> Iterator[tuple[int, Path]]:
    """A twin that has lived 11 days at high speed, so its load profile is full (960)."""
    state = Path(tempfile.mkdtemp(prefix="bench-p3-"))
    port = free_port()
    start = "2026-11-01T00:00:00+01:00"
    config = state / "bench.toml"
    config.write_text(f'[clock]\nstart = "{start}"\n[p2]\nenabled = false\n')
    command = [sys.executable, "-m", "twin", "run", "--state-dir", str(state)]
    command += ["--config", str(config), "--p1", "pty://p1"]
    fill = subprocess.Popen(
        [*command, "--speed", "200000", "--p3", "none"], stderr=subprocess.DEVNULL
    )
    time.sleep(6)  # ~14 days of meter time: the 10-day load profile is full
    fill.terminate()
    fill.wait(30)
    twin = subprocess.Popen(
        [*command, "--speed", "1", "--p3", f"tcp://127.0.0.1:{port}"], stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break
            time.sleep(0.1)
        yield port, state
    finally:
        twin.terminate()
        twin.wait(30)
        shutil.rmtree(state, ignore_errors=True)


def keys_of(state: Path) -> tuple[bytes, bytes]:
    out = subprocess.check_output(
        [sys.executable, "-m", "twin", "keys", "show", "--json", "--state-dir", str(state)]
    )
    keys = json.loads(out)
    return bytes.fromhex(keys["guek"]), bytes.fromhex(keys["gak"])


def associate(port: int, guek: bytes, gak: bytes, ic: int) -> tuple[object, float]:
    client = tcp_peers.management_client(port, guek, gak, invocation_counter=ic)
    with contextlib.redirect_stdout(io.StringIO()):  # dlms-cosem 21.3.2 prints APDUs
        t0 = time.perf_counter()
        client.connect()
        client.associate()
        elapsed = time.perf_counter() - t0
    return client, elapsed


def release(client: object, lean: LeanSession | None = None) -> None:
    if lean is not None:
        lean.hand_back()
    with contextlib.redirect_stdout(io.StringIO()):
        client.release_association()  # type: ignore[attr-defined]
        client.disconnect()  # type: ignore[attr-defined]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def run(port: int, state: Path, n: int) -> None:
    guek, gak = keys_of(state)
    ic = 1_000_000 + int(time.time()) % 1_000_000 * 100
    times = []
    for i in range(20):
        client, elapsed = associate(port, guek, gak, ic + i * 10)
        times.append(elapsed)
        release(client)
    print(f"association (TCP + AARQ + HLS-GMAC), median of 20: {ms(statistics.median(times))}")

    t0 = time.perf_counter()
    sessions = 0
    while time.perf_counter() - t0 < 2.0:
        client, _ = associate(port, guek, gak, ic + 1000 + sessions * 10)
        release(client)
        sessions += 1
    print(f"sessions per second (associate + release): {sessions / (time.perf_counter() - t0):.0f}")

    client, _ = associate(port, guek, gak, ic + 100_000)
    lean = LeanSession(client, guek, gak)
    latencies = []
    for _ in range(n):
        t = time.perf_counter()
        lean.get(ENERGY)
        latencies.append(time.perf_counter() - t)
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(f"ciphered GET 1-0:1.8.1: median {ms(statistics.median(latencies))}, p99 {ms(p99)}")
    t0 = time.perf_counter()
    for _ in range(n):
        lean.get(CLOCK)
    wall = time.perf_counter() - t0
    # The twin serves P3 on one asyncio thread: this is its throughput on one core.
    print(f"GET throughput per core (one client, sequential): {n / wall:.0f} GET/s")
    rows = lean.get(LOAD_PROFILE)
    profile_times = []
    for _ in range(5):
        t = time.perf_counter()
        rows = lean.get(LOAD_PROFILE)
        profile_times.append(time.perf_counter() - t)
    count = rows[1] if rows[1] < 0x80 else int.from_bytes(rows[2 : 2 + (rows[1] & 0x7F)], "big")
    print(
        f"whole load profile 1-0:99.1.0 ({count} rows, {len(rows)} bytes): "
        f"median {ms(statistics.median(profile_times))}"
    )
    release(client, lean)
    print(f"(host: {os.cpu_count()} cores; twin and client share them)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, help="a running twin's P3 port")
    parser.add_argument("--state-dir", type=Path, help="its state directory (for the keys)")
    parser.add_argument("-n", type=int, default=2000, help="GETs per figure")
    args = parser.parse_args()
    if args.port is not None:
        run(args.port, args.state_dir or Path("state"), args.n)
        return
    with own_twin() as (port, state):
        run(port, state, args.n)


if __name__ == "__main__":
    main()
