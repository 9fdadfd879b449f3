"""kill -9 at random moments against the real twin, with readers on every port.

The twin runs at speed 3600 or 60 (drawn per start). One reader thread reads P1 through the
pty (dsmr_parser, CRC checked), P3 as management client 1 (dlms-cosem association with
HLS-GMAC, then ciphered GETs), the control socket and acknowledged `tamper` commands, in a
seeded random order, while the main thread kills the twin with SIGKILL at a seeded random
moment, or right after an acknowledgement. After each restart:

- no register, failure counter or gas value comes back lower than any reader saw before;
- every tamper acknowledged before the kill is in the fraud log;
- the downtime counts as exactly one power failure;
- every invocation counter the meter puts in a ciphered response is higher than all before
  (P3 §3.2.3: a frame counter is never used twice under one key; a reused one is a reused
  GCM nonce).

Shared by tests/e2e/test_twin_process.py (a few rounds) and bench/bench_crash_loop.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import P1_FIELDS, REGISTERS, dsmr_twin, free_port, read_telegram
from tests.unit.p3 import tcp_peers
from tests.unit.p3.lean_client import LeanSession
from twin.control import SOCKET_NAME, call
from twin.meter.events import EventLog
from twin.p3.dlms.cosem import AttributeRef
from twin.p3.objects.base import obis_bytes
from twin.store import Store

logging.getLogger("dlms_cosem").setLevel(logging.ERROR)  # 21.3.2 logs every APDU

ENERGY = AttributeRef(3, obis_bytes("1-0:1.8.1"), 2)
STARTUP_S = 30.0
# A kill lands anywhere in this window after the twin answers: during start-up work, P3
# associations, P1 reads, control commands and checkpoints alike.
KILL_WINDOW_S = (0.0, 1.2)
# Meter seconds per real second, one drawn per start. At 3600 P1 publishes (and so commits)
# every few milliseconds, which would also save a command that was acknowledged before it was
# durable; at 60 a kill right after the acknowledgement finds such a command missing.
SPEEDS = (3600, 3600, 60)
# Rounds whose kill follows an acknowledged `tamper` at once instead.
AFTER_ACK_SHARE = 0.3


class _EofRaises:
    """A client socket whose recv raises at end of stream: dlms-cosem 21.3.2 loops forever
    on an empty read, and here the meter dies mid-session on purpose."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def recv(self, size: int) -> bytes:
        data = self._sock.recv(size)
        if not data:
            raise ConnectionResetError("the meter closed the connection")
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


@dataclass
class Seen:
    """The highest of everything any reader was shown, and what was acknowledged."""

    wh: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REGISTERS, 0))
    power_failures: int = 0
    gas_m3: float = 0.0
    invocation_counter: int = 0
    acked_tampers: list[int] = field(default_factory=list)  # of the current round
    reads: dict[str, int] = field(default_factory=dict)  # successful reads per reader

    def register(self, code: str, wh: int) -> None:
        self.wh[code] = max(self.wh[code], wh)

    def counter(self, value: int) -> None:
        assert value > self.invocation_counter, (
            f"meter invocation counter {value} after {self.invocation_counter}"
        )
        self.invocation_counter = value

    def count(self, reader: str) -> None:
        self.reads[reader] = self.reads.get(reader, 0) + 1


class CrashLoop:
    def __init__(
        self,
        state_dir: Path,
        seed: int,
        speeds: tuple[int, ...] = SPEEDS,
        cli_share: float = 0.25,
    ) -> None:
        self.state_dir, self.rng = state_dir, random.Random(seed)
        self.cli_share = cli_share  # of the restart checks made through `ctl status --json`
        self.port = free_port()
        self.command = [sys.executable, "-m", "twin", "run", "--state-dir", str(state_dir)]
        self.command += ["--p1", "pty://p1", "--web", "none"]  # no fixed port in the tests
        self.speeds = speeds
        self.command += ["--p3", f"tcp://127.0.0.1:{self.port}"]
        self.seen = Seen()
        self.keys: tuple[bytes, bytes] | None = None
        self.client_counter = 1
        self.restarts = 0
        self.start_s: list[float] = []  # real seconds from exec to P3 listening
        self.process: subprocess.Popen[bytes] | None = None
        self._acked = threading.Event()
        self.log = (state_dir / "twin.log").open("ab")

    # ---- the loop ---------------------------------------------------------------------

    def round(self) -> None:
        """Start the twin, check it against what was seen, read and command, kill -9."""
        self._start()
        self._check_after_restart()
        killed = threading.Event()
        errors: list[BaseException] = []
        self._acked.clear()
        right_after_ack = self.rng.random() < AFTER_ACK_SHARE
        reader = threading.Thread(target=self._read_until, args=(killed, errors), daemon=True)
        reader.start()
        if right_after_ack:  # the moment an acknowledgement must already be durable
            self._acked.wait(KILL_WINDOW_S[1] * 3)
        else:
            time.sleep(self.rng.uniform(*KILL_WINDOW_S))
        killed.set()  # before the signal: a reader failing from here on saw the kill
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(30) == -signal.SIGKILL
        reader.join(30)
        assert not reader.is_alive(), "a reader hung on the killed twin"
        if errors:
            raise errors[0]

    def round_start_only(self) -> None:
        """The checks after the last kill: start, check, stop cleanly."""
        self._start()
        self._check_after_restart(cli=True)
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(30) == 0

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
        self.log.close()

    # ---- start and check --------------------------------------------------------------

    def _start(self) -> None:
        began = time.monotonic()
        speed = ["--speed", str(self.rng.choice(self.speeds))]
        self.process = subprocess.Popen([*self.command, *speed], stderr=self.log)
        deadline = began + STARTUP_S
        while not self._listening():
            assert self.process.poll() is None, (self.state_dir / "twin.log").read_text()
            assert time.monotonic() < deadline, "the twin did not come up"
            time.sleep(0.02)
        self.start_s.append(time.monotonic() - began)
        if self.keys is None:
            shown = json.loads(
                dsmr_twin("keys", "show", "--json", "--state-dir", str(self.state_dir))
            )
            self.keys = (bytes.fromhex(shown["guek"]), bytes.fromhex(shown["gak"]))

    def _listening(self) -> bool:
        with socket.socket(socket.AF_UNIX) as probe:
            if probe.connect_ex(str(self.state_dir / SOCKET_NAME)) != 0:
                return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
            return True
        return False

    def _check_after_restart(self, *, cli: bool = False) -> None:
        # Now and then through the command an operator types; else the same JSON directly.
        if cli or self.rng.random() < self.cli_share:
            status = json.loads(
                dsmr_twin("ctl", "--state-dir", str(self.state_dir), "status", "--json")
            )
        else:
            status = self._status()
        before = self.seen
        for code in REGISTERS:
            wh = round(status[code] * 1000)
            assert wh >= before.wh[code], f"{code}: {wh} Wh after {before.wh[code]} Wh"
        if self.restarts:
            # The downtime of the twin is one power failure, counted once (P1 0-0:96.7.21).
            assert status["power_failures"] == before.power_failures + 1, status
        assert _gas(status) >= before.gas_m3, (_gas(status), before.gas_m3)
        if before.acked_tampers:
            store = Store.open(self.state_dir)
            try:
                logged = [e.code for e in store.events(EventLog.FRAUD)]  # oldest first
            finally:
                store.close()
            # The log keeps its newest 30 entries (P3 §5.8 profile_entries), and one command may
            # have been committed without its answer reaching us (+1).
            acked = before.acked_tampers[-(EventLog.FRAUD.capacity - 1) :]
            tail = logged[-(len(acked) + 1) :]
            assert _subsequence(acked, tail), (acked, logged)
        self._note_status(status)
        before.acked_tampers = []
        self.restarts += 1

    # ---- readers ----------------------------------------------------------------------

    def _read_until(self, killed: threading.Event, errors: list[BaseException]) -> None:
        readers: list[Callable[[], None]] = [self._read_p1, self._read_p3, self._tamper]
        readers.append(lambda: self._note_status(self._status()))
        while not killed.is_set():
            try:
                self.rng.choice(readers)()
            # Broad on purpose: after the kill every reader fails in its own way (dlms-cosem,
            # pyserial, the control client); before it, any failure is a finding.
            except Exception as exc:  # noqa: BLE001
                if not killed.is_set():
                    errors.append(exc)
                return

    def _status(self) -> dict[str, Any]:
        return asyncio.run(call(self.state_dir / SOCKET_NAME, {"cmd": "status"}))  # type: ignore[no-any-return]

    def _note_status(self, status: dict[str, Any]) -> None:
        for code in REGISTERS:
            self.seen.register(code, round(status[code] * 1000))
        self.seen.power_failures = max(self.seen.power_failures, status["power_failures"])
        self.seen.gas_m3 = max(self.seen.gas_m3, _gas(status))
        self.seen.count("status")

    def _tamper(self) -> None:
        code = self.rng.choice([40, 41, 42, 43, 44, 45, 47])
        answer = asyncio.run(call(self.state_dir / SOCKET_NAME, {"cmd": "tamper", "code": code}))
        assert answer == {"code": code}
        self.seen.acked_tampers.append(code)  # acknowledged: committed (control.py)
        self._acked.set()
        self.seen.count("tamper")

    def _read_p1(self) -> None:
        telegram = read_telegram(self.state_dir / "p1", timeout_s=5)
        assert telegram is not None, "no P1 telegram within 5 s"
        for code, name in P1_FIELDS.items():
            self.seen.register(code, round(getattr(telegram, name).value * 1000))
        self.seen.count("p1")

    def _read_p3(self) -> None:
        assert self.keys is not None
        guek, gak = self.keys
        self.client_counter += 1000  # the client's own counter only rises within an AA
        self._wait_p3_idle()
        client = tcp_peers.management_client(
            self.port, guek, gak, invocation_counter=self.client_counter
        )
        client.connect()
        client.io_interface.tcp_socket = _EofRaises(client.io_interface.tcp_socket)
        try:
            client.associate()
            self.seen.counter(int(client.dlms_connection.meter_invocation_counter))
            lean = LeanSession(client, guek, gak)
            lean.last_server_ic = self.seen.invocation_counter
            energy = lean.get(ENERGY)  # LeanSession asserts the counter rose
            self.seen.counter(lean.last_server_ic)
            assert energy[0] == 0x06  # double-long-unsigned, Wh (P3 §6.2)
            self.seen.register("1-0:1.8.1", int.from_bytes(energy[1:5], "big"))
            self.seen.count("p3")
            lean.hand_back()
            with contextlib.suppress(Exception):
                client.release_association()
        finally:
            with contextlib.suppress(Exception):
                client.disconnect()

    def _wait_p3_idle(self) -> None:
        # One association at a time (P3 nb_of_sim_conn 1): the last one must be gone.
        deadline = time.monotonic() + 5
        while self._status()["ports"]["p3"]["active"] is not None:
            assert time.monotonic() < deadline, "P3 still busy with the last session"
            time.sleep(0.01)


def _gas(status: dict[str, Any]) -> float:
    return max((float(device["value"]) for device in status["mbus"]), default=0.0)


def _subsequence(wanted: list[int], found: list[int]) -> bool:
    remaining = iter(found)
    return all(code in remaining for code in wanted)
