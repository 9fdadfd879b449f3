"""Chapter 9 through the object model: the push method and the push script table reach the
`PushPort`; the push scheduler and the register monitor fire on the meter clock and the alarm
register; the message of P3 §9.3 examples 1 and 2 byte for byte; write checks."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support import steady_config
from tests.unit.p3.objects.conftest import (
    START,
    FakeKeyService,
    FakeModem,
    Twin,
    method,
    ref,
    run,
)
from twin.clock import ManualClock
from twin.fast_forward import FastForward
from twin.metering import Meter
from twin.p3.dlms.cosem import ActionResult, DataAccessResult
from twin.p3.gprs.push import (
    MESSAGE_HANDLER,
    PUSH_ALARM,
    PUSH_CSD_SMS,
    PUSH_SCHEDULER,
    push_message,
    read_message,
    read_settings,
    value_octets,
)
from twin.p3.gprs.push_time import RetryPlan
from twin.p3.gprs.push_triggers import MONITOR, SCHEDULER, Firing, PushTriggers, Script, execute
from twin.p3.objects import build_objects
from twin.p3.objects import values as v
from twin.p3.objects.base import obis_bytes
from twin.p3.objects.ports import PushRelay
from twin.ports import PortResult
from twin.store import Store

EQUIPMENT = "XXXX123456789012"
# P3 §9.3 example 1 (trigger 0-0:15.0.4.255). The text says "XXXXX123456789012" but the bytes
# carry four X: the bytes are reproduced.
EXAMPLE_1 = bytes.fromhex("58585858 313233343536373839303132 2C 00000F0004FF")
# Example 2 (trigger 0-0:16.1.0.255, alarm register "replace battery", bit 1 = value 2)
EXAMPLE_2 = bytes.fromhex("58585858 313233343536373839303132 2C 00000002")
SCRIPTS = "0-0:10.0.108"


@dataclass
class FakePush:
    """The GPRS controller as the objects see it: records pushes, answers `answer`."""

    calls: list[bytes] = field(default_factory=list)
    answer: PortResult = PortResult.SUCCESS

    def push(self, setup_logical_name: bytes) -> PortResult:
        self.calls.append(setup_logical_name)
        return self.answer


@dataclass
class PushTwin(Twin):
    port: FakePush = field(default_factory=FakePush)


def make_push_twin(tmp: Path) -> PushTwin:
    clock = ManualClock(START)
    store = Store.open(tmp)
    config = steady_config()
    config = replace(config, meter=replace(config.meter, equipment_id=EQUIPMENT))
    meter = Meter(config, clock, store, random.Random(1))
    keys, port, relay = FakeKeyService(), FakePush(), PushRelay()
    objects = build_objects(
        meter, keys=keys, mbus=None, modem=FakeModem(), state_dir=tmp, push=relay
    )
    relay.attach(port)
    return PushTwin(clock, meter, objects, keys, None, tmp, port)  # type: ignore[arg-type]


@pytest.fixture
def twin(tmp_path: Path) -> Iterator[PushTwin]:
    t = make_push_twin(tmp_path)
    yield t
    t.meter.store.close()


def setting(twin: Twin, class_id: int, code: str, index: int, value: v.Data) -> None:
    assert twin.objects.set(1, ref(class_id, code, index), None, v.encode(value)) == 0


def windows(*pairs: tuple[bytes, bytes]) -> v.Data:
    return v.array([v.struct(v.octets(a), v.octets(b)) for a, b in pairs])


# ---- push method and script table ---------------------------------------------------------


def test_push_method_reaches_the_port(twin: PushTwin) -> None:
    client = twin.management()
    client.action(method(40, "0-0:25.9.0", 1), v.encode(v.i8(0)))
    assert twin.port.calls == [PUSH_SCHEDULER]
    twin.port.answer = PortResult.TEMPORARY_FAILURE
    outcome = twin.objects.action(1, ref(40, "0-1:25.9.0", 1), v.encode(v.i8(0)))
    assert outcome.result is ActionResult.TEMPORARY_FAILURE
    wrong = twin.objects.action(1, ref(40, "0-1:25.9.0", 1), v.encode(v.octets(b"x")))
    assert wrong.result is ActionResult.TYPE_UNMATCHED
    denied = twin.objects.action(16, ref(40, "0-1:25.9.0", 1), v.encode(v.i8(0)))
    assert denied.result is ActionResult.READ_WRITE_DENIED


def test_without_a_port_the_push_is_a_temporary_failure(tmp_path: Path) -> None:
    twin = make_push_twin(tmp_path)
    bare = build_objects(
        twin.meter, keys=twin.keys, mbus=None, modem=None, state_dir=tmp_path, push=PushRelay()
    )
    outcome = bare.action(1, ref(40, "0-2:25.9.0", 1), v.encode(v.i8(0)))
    assert outcome.result is ActionResult.TEMPORARY_FAILURE  # relay not attached yet
    twin.meter.store.close()


def test_script_table_execute(twin: PushTwin) -> None:
    client = twin.management()
    for script in (1, 2, 3, 0):  # P3 §9.2: scripts 1-3 push the three setups; 0 is null
        client.action(method(9, SCRIPTS, 1), v.encode(v.u16(script)))
    assert twin.port.calls == [PUSH_SCHEDULER, PUSH_ALARM, PUSH_CSD_SMS]
    unknown = twin.objects.action(1, ref(9, SCRIPTS, 1), v.encode(v.u16(4)))
    assert unknown.result is ActionResult.OTHER_REASON
    no_id = twin.objects.action(1, ref(9, SCRIPTS, 1), None)
    assert no_id.result is ActionResult.TYPE_UNMATCHED


def test_scripts_are_writable_but_only_push_the_setups(twin: PushTwin) -> None:
    def script(ident: int, service: int, class_id: int, code: str, index: int) -> v.Data:
        action = v.struct(
            v.enum_(service), v.u16(class_id), v.octets(obis_bytes(code)), v.i8(index), v.null()
        )
        return v.struct(v.u16(ident), v.array([action]))

    scripts = [
        script(7, 2, 40, "0-2:25.9.0", 1),
        script(8, 1, 8, "0-0:1.0.0", 2),  # write an attribute: not a push
        script(9, 2, 40, "0-0:1.0.0", 1),  # not a push setup
    ]
    setting(twin, 9, SCRIPTS, 2, v.array(scripts))
    assert twin.objects.action(1, ref(9, SCRIPTS, 1), v.encode(v.u16(7))).result == 0
    for ident in (8, 9, 1):
        result = twin.objects.action(1, ref(9, SCRIPTS, 1), v.encode(v.u16(ident))).result
        assert result is ActionResult.OTHER_REASON
    assert twin.port.calls == [PUSH_CSD_SMS]
    bad = v.array([v.struct(v.u16(1), v.array([v.struct(v.enum_(2))]))])
    written = twin.objects.set(1, ref(9, SCRIPTS, 2), None, v.encode(bad))
    assert written is DataAccessResult.TYPE_UNMATCHED


# ---- settings and messages ------------------------------------------------------------------


def test_message_format_without_an_object_model() -> None:
    # P3 §9.3: "The objectlist values are sent as octet string separated by a comma (,)"
    equipment = v.octets(EQUIPMENT.encode())
    trigger = v.octets(obis_bytes("0-0:15.0.4"))
    assert push_message([value_octets(equipment), value_octets(trigger)]) == EXAMPLE_1
    alarm = v.u32(0b10)  # double-long-unsigned: its 4 bytes, big-endian
    assert push_message([value_octets(equipment), value_octets(alarm)]) == EXAMPLE_2
    assert value_octets(v.u16(0x0102)) == b"\x01\x02"
    assert push_message([]) == b""


def test_messages_of_examples_1_and_2(twin: PushTwin) -> None:
    scheduler = read_settings(twin.objects, PUSH_SCHEDULER)
    assert read_message(twin.objects, scheduler) == EXAMPLE_1
    twin.meter.act(lambda m, _now: m.set_alarms(0b10))  # replace battery (P3 §4.2.4 bit 1)
    assert read_message(twin.objects, read_settings(twin.objects, PUSH_ALARM)) == EXAMPLE_2


def test_csd_sms_message_names_the_triggering_object(twin: PushTwin) -> None:
    settings = read_settings(twin.objects, PUSH_CSD_SMS)
    sms = read_message(twin.objects, settings, trigger=MESSAGE_HANDLER)
    assert sms == EQUIPMENT.encode() + b"," + obis_bytes("0-0:2.3.0")
    assert read_message(twin.objects, settings) == EQUIPMENT.encode() + b"," + obis_bytes(
        "0-0:2.2.0"
    )
    setting(twin, 40, "0-2:25.9.0", 2, v.array([]))  # P3 §9.3: empty list, no message
    assert read_message(twin.objects, read_settings(twin.objects, PUSH_CSD_SMS)) == b""


def test_push_setup_attributes_are_read_back_as_settings(twin: PushTwin) -> None:
    code = "0-0:25.9.0"
    setting(twin, 40, code, 3, v.struct(v.enum_(0), v.octets(b"cs.example:4059"), v.enum_(128)))
    night = (
        bytes.fromhex("ffffffffff 02000000 8000ff"),
        bytes.fromhex("ffffffffff 04000000 8000ff"),
    )
    setting(twin, 40, code, 4, windows(night))
    setting(twin, 40, code, 5, v.u16(1800))
    setting(twin, 40, code, 6, v.u8(3))
    setting(twin, 40, code, 7, v.u16(120))
    settings = read_settings(twin.objects, PUSH_SCHEDULER)
    assert settings.destination == "cs.example:4059"
    assert settings.randomisation_s == 1800
    assert settings.retry == RetryPlan(3, timedelta(seconds=120))
    assert not settings.windows.always
    assert len(settings.windows.windows) == 1


@pytest.mark.parametrize(
    ("code", "index", "value"),
    [
        ("0-0:25.9.0", 4, windows((b"\x01\x02", b""))),  # not a date-time
        ("0-0:25.9.0", 4, windows((bytes(12), bytes(12)))),  # month 0
        ("0-0:25.9.0", 4, v.array([v.u16(1)])),
        ("0-1:25.9.0", 2, v.array([v.struct(v.u16(1), v.octets(b"\x00"), v.i8(2), v.u16(0))])),
        ("0-0:2.3.0", 2, windows((bytes(3), bytes(3)))),
    ],
)
def test_malformed_chapter_9_settings_are_refused(
    twin: PushTwin, code: str, index: int, value: v.Data
) -> None:
    class_id = {"0-0:2.3.0": 60}.get(code, 40)
    result = twin.objects.set(1, ref(class_id, code, index), None, v.encode(value))
    assert result is DataAccessResult.TYPE_UNMATCHED


# ---- triggers -------------------------------------------------------------------------------


def test_register_monitor_fires_when_an_alarm_is_raised(twin: PushTwin) -> None:
    triggers = PushTriggers(twin.objects)
    triggers.power_up(twin.meter.now())
    assert triggers.poll(twin.meter.now()) == []  # alarm register 0: below the threshold
    twin.meter.act(lambda m, _now: m.set_alarms(0b10))
    firings = triggers.poll(twin.meter.now())
    assert firings == [Firing(Script(obis_bytes(SCRIPTS), 2), twin.meter.now(), MONITOR)]
    assert execute(twin.objects, firings[0].script) is ActionResult.SUCCESS
    assert twin.port.calls == [PUSH_ALARM]  # P3 §9.2 script 2 -> push setup alarm
    twin.meter.act(lambda m, _now: m.set_alarms(0b100))
    assert triggers.poll(twin.meter.now()) == []  # still above: no new crossing
    # P3 §9.1.2: compared again at every power-up, so an alarm still active fires again
    triggers.power_up(twin.meter.now())
    assert len(triggers.poll(twin.meter.now())) == 1
    setting(twin, 1, "0-0:97.98.0", 2, v.u32(0))  # cleared by the CS; action_down is script 0
    assert triggers.poll(twin.meter.now()) == []
    twin.meter.act(lambda m, _now: m.set_alarms(0b1))
    assert len(triggers.poll(twin.meter.now())) == 1


def daily_at_2130(twin: PushTwin) -> PushTriggers:
    """The push scheduler set to run daily at 21:30 local (date wildcards), its triggers
    powered up now."""
    setting(
        twin,
        22,
        "0-0:15.0.4",
        4,
        v.array([v.struct(v.octets(bytes([21, 30, 0, 0])), v.octets(b"\xff" * 5))]),
    )
    triggers = PushTriggers(twin.objects)
    triggers.power_up(twin.meter.now())
    return triggers


def test_push_scheduler_fires_when_the_meter_clock_passes_the_execution_time(
    twin: PushTwin,
) -> None:
    triggers = daily_at_2130(twin)  # START is 21:00 local
    execution = START + timedelta(minutes=30)
    assert triggers.next_execution(twin.meter.now()) == execution
    run(twin.clock.advance(29 * 60))
    assert triggers.poll(twin.meter.now()) == []
    run(twin.clock.advance(5 * 60))
    firings = triggers.poll(twin.meter.now())
    assert firings == [Firing(Script(obis_bytes(SCRIPTS), 1), execution, SCHEDULER)]
    assert execute(twin.objects, firings[0].script) is ActionResult.SUCCESS
    assert twin.port.calls == [PUSH_SCHEDULER]
    assert triggers.poll(twin.meter.now()) == []
    assert triggers.next_execution(twin.meter.now()) == execution + timedelta(days=1)
    # the clock set back by P3: the execution time is passed again, so it runs again
    run(twin.clock.set(START))
    assert triggers.poll(twin.meter.now()) == []
    run(twin.clock.advance(31 * 60))
    assert len(triggers.poll(twin.meter.now())) == 1


def test_after_ctl_advance_the_scheduler_runs_its_latest_missed_execution_once(
    twin: PushTwin,
) -> None:
    # P3 §9.1.1 and the rule for any gap (twin/p3/gprs/push_triggers.py): three daily
    # executions fall inside the span; only the latest runs, once, as after downtime.
    triggers = daily_at_2130(twin)
    run(FastForward(twin.meter).advance(START + timedelta(days=3)))
    latest = START + timedelta(days=2, minutes=30)
    assert triggers.poll(twin.meter.now()) == [
        Firing(Script(obis_bytes(SCRIPTS), 1), latest, SCHEDULER)
    ]
    assert triggers.poll(twin.meter.now()) == []


def test_bad_execution_time_is_refused_and_empty_never_fires(twin: PushTwin) -> None:
    bad = v.array([v.struct(v.octets(bytes([25, 0, 0, 0])), v.octets(b"\xff" * 5))])
    result = twin.objects.set(1, ref(22, "0-0:15.0.4", 4), None, v.encode(bad))
    assert result is DataAccessResult.TYPE_UNMATCHED
    triggers = PushTriggers(twin.objects)
    triggers.power_up(twin.meter.now())
    run(twin.clock.advance(86400))
    assert triggers.poll(twin.meter.now()) == []  # P3 §9.1.1: empty execution time = unused
    assert triggers.next_execution(twin.meter.now()) is None
