"""Hypothesis over the real control socket of a whole twin (issue 10 "Keep it proven").

Random JSON for every field of every command, random bytes and over-long lines: only typed
error answers, `status` works after each case and the meter keeps metering (see
tests/control_fuzz.py; bench/bench_control_fuzz.py runs the same with 10^5 cases).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.control_fuzz import FuzzTwin, fuzz_twin, lines, requests

# Every command of a twin with all ports; a test below keeps this list complete.
COMMANDS = (
    "admin",
    "advance",
    "button",
    "clock-drift",
    "console-controls",
    "console-views",
    "gas",
    "load",
    "mbus",
    "message",
    "power-failure",
    "request",
    "sag",
    "screenshot",
    "status",
    "swell",
    "tamper",
    "wakeup",
    "weather",
)
FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PER_COMMAND, ANY_LINE = settings(FUZZ, max_examples=25), settings(FUZZ, max_examples=100)


@pytest.fixture(scope="module")
def twin() -> Iterator[FuzzTwin]:
    with fuzz_twin() as running:
        yield running


def test_every_command_is_fuzzed(twin: FuzzTwin) -> None:
    assert sorted(twin.commands) == list(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
@PER_COMMAND
@given(data=st.data())
def test_any_request_gets_a_typed_answer_and_the_meter_goes_on(
    twin: FuzzTwin, name: str, data: st.DataObject
) -> None:
    twin.case(data.draw(requests(name, twin.commands[name])))


@ANY_LINE
@given(data=st.data())
def test_any_line_gets_a_typed_answer_and_the_meter_goes_on(
    twin: FuzzTwin, data: st.DataObject
) -> None:
    twin.case(data.draw(lines(twin.commands)))


def test_the_fuzzer_reaches_the_meter_and_every_kind_of_error(twin: FuzzTwin) -> None:
    # Guards the fuzz test above against testing nothing: some cases pass every check.
    for line in (
        b'{"cmd": "load", "watts": 2000}\n',
        b'{"cmd": "load", "watts": 1e400}\n',
        b'{"cmd": "nope"}\n',
        b"{\n",
        b"\xff\n",
        b"[" * 70_000 + b"\n",
    ):
        twin.case(line)
    assert {"ok", "field", "request", "syntax", "encoding", "too-long"} <= set(twin.kinds)
