"""Fuzzing the control socket: a whole twin's control server on a real Unix socket.

Shared by tests/unit/test_control_fuzz.py (a few hundred cases) and bench/bench_control_fuzz.py
(10^5 cases with figures). The twin is built as `dsmr-twin run` builds it (every port's
commands registered) on a fast simulated clock; only its control server and its meter run, in
a thread of their own, and the fuzzer talks to the socket as any client would.

After every case the twin must still be whole: the answer was a JSON object, an error had one
of the typed kinds (never "internal"), `status` answers, and the meter's reading is still one a
P1 telegram can carry, with registers that never ran back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import strategies as st

from twin.app import Twin, build
from twin.config import ClockConfig, Config, P1Config, P3Config
from twin.control import MAX_REQUEST
from twin.p1.telegram import TelegramEncoder

ERROR_KINDS = frozenset({"field", "request", "syntax", "encoding", "too-long", "refused"})
T = TypeVar("T")

# Values a field might plausibly get, edges included, so cases also pass the checks and reach
# the meter; the rest of the JSON space comes from `json_values`.
PLAUSIBLE: list[object] = [
    *range(-2, 6),
    *range(39, 49),
    0.5,
    -1.5,
    86400,
    86401,
    31_536_000,
    69_000,
    -69_000,
    69_001,
    1e9,
    1e30,
    1e308,
    -1e308,
    float("inf"),
    float("-inf"),
    float("nan"),
    2**63,
    -(2**63),
    True,
    False,
    None,
    "",
    "1",
    "01 61 81",
    "12345678",
    "123456789",
    "Hallo",
    "x" * 1025,
    "é",
    "short",
    "long",
    "on",
    "install",
    "key",
    "deinstall",
    "sms",
    "csd",
    "+31612345678",
    "00" * 16,
    "0F" * 16,
    "../meter.sqlite3",
    "/tmp/shot.png",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(PLAUSIBLE),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


def values() -> st.SearchStrategy[object]:
    """Mostly the plausible values and edges, otherwise any JSON."""
    plausible = st.sampled_from(PLAUSIBLE)
    return st.one_of(plausible, plausible, json_values)


@st.composite
def requests(draw: st.DrawFn, name: str, fields: tuple[str, ...]) -> bytes:
    """A request line for command `name` with random values for (most of) its `fields`."""
    request: dict[str, Any] = {"cmd": name}
    for field in fields:
        if draw(st.integers(0, 4)) > 0:
            request[field] = draw(values())
    if draw(st.integers(0, 9)) == 0:  # now and then a field no command has
        request[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
    return json.dumps(request).encode() + b"\n"


def lines(commands: dict[str, tuple[str, ...]]) -> st.SearchStrategy[bytes]:
    """Requests for any of `commands`, arbitrary bytes, arbitrary JSON and over-long lines."""
    junk = st.binary(max_size=200).map(lambda raw: raw.replace(b"\n", b"") + b"\n")
    any_json = json_values.map(lambda value: json.dumps(value).encode() + b"\n")
    too_long = st.integers(MAX_REQUEST, MAX_REQUEST + 100).map(lambda n: b"[" * n + b"\n")
    any_request = st.one_of([requests(name, fields) for name, fields in sorted(commands.items())])
    return st.one_of(any_request, any_request, any_request, junk, any_json, too_long)


class FuzzTwin:
    """A built twin whose control server runs on an event loop in a thread of its own."""

    def __init__(self, state_dir: Path) -> None:
        config = replace(
            Config(),
            clock=ClockConfig(speed=3600.0),  # an hour per second: the registers move
            p1=P1Config(request="simulated"),  # registers `request`
            p3=P3Config(endpoint="tcp://127.0.0.1:0"),  # registers `wakeup`
        )
        self.twin: Twin = build(config, state_dir)
        self.path = state_dir / "control.sock"
        self.encoder = TelegramEncoder(config.meter.manufacturer, config.meter.identification)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.kinds: Counter[str] = Counter()
        self._registers: dict[str, int] = {}
        self._server: asyncio.Task[None] | None = None

    @property
    def commands(self) -> dict[str, tuple[str, ...]]:
        control = self.twin.control
        return {name: tuple(f.name for f in c.fields) for name, c in control.commands.items()}

    def start(self) -> None:
        self.thread.start()
        self._server = self.in_loop(lambda: self.loop.create_task(self.twin.control.run()))
        for _ in range(500):
            if self.path.exists():
                return
            threading.Event().wait(0.01)
        raise RuntimeError("the control socket did not appear")

    def stop(self) -> None:
        server = self._server
        if server is not None:

            async def cancelled() -> None:
                server.cancel()
                await asyncio.gather(server, return_exceptions=True)

            asyncio.run_coroutine_threadsafe(cancelled(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.twin.store.close()

    def in_loop(self, job: Callable[[], T]) -> T:
        """Run `job` on the twin's loop (the meter is not thread-safe) and return its result."""

        async def run() -> T:
            return job()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def send(self, line: bytes) -> dict[str, Any]:
        """One line on a fresh connection; the answer as JSON (an AssertionError if none)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            # `advance` answers when its span is lived through: up to 400 days, about 10 s.
            client.settimeout(60)
            client.connect(str(self.path))
            # An over-long line is answered and closed before all of it was sent.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                client.sendall(line)
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = client.recv(1 << 16)
                assert chunk, f"the twin hung up without answering {line[:60]!r}"
                answer += chunk
        parsed = json.loads(answer)
        assert isinstance(parsed, dict), parsed
        return parsed

    def case(self, line: bytes) -> None:
        """Send one fuzzed line and check the twin is still whole."""
        answer = self.send(line)
        if answer.get("ok") is True:
            self.kinds["ok"] += 1
        else:
            assert answer.get("ok") is False, answer
            assert answer.get("kind") in ERROR_KINDS, answer
            assert isinstance(answer.get("error"), str), answer
            self.kinds[answer["kind"]] += 1
        status = self.send(b'{"cmd": "status"}\n')
        assert status["ok"] is True, status
        self.in_loop(self._still_metering)

    def _still_metering(self) -> None:
        # The model's reading now (`status` has just committed and published one).
        meter = self.twin.meter
        reading = meter.model.reading(meter.now())
        self.encoder.encode(reading)  # every value fits its P1 format (no TelegramError)
        for code, wh in reading.energy_wh.items():
            assert wh >= self._registers.get(code, 0), f"{code} ran back"
        self._registers = dict(reading.energy_wh)


@contextmanager
def fuzz_twin() -> Iterator[FuzzTwin]:
    twin = FuzzTwin(Path(tempfile.mkdtemp(prefix="twin-")))  # Unix socket paths are short
    twin.start()
    try:
        yield twin
    finally:
        twin.stop()
