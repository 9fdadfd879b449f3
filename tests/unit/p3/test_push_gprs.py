"""Pushes end to end: the GPRS controller over the real object model, a real TCP listener as
the CS, manual meter and network clocks (no real waiting for any protocol time)."""

from __future__ import annotations

import asyncio
import errno
import random
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tests.support import steady_config
from tests.unit.p3.helpers import GAK, GUEK, SERVER_TITLE
from tests.unit.p3.objects.conftest import START, FakeKeyService, ref
from tests.unit.p3.test_push_objects import EQUIPMENT, EXAMPLE_1, EXAMPLE_2
from twin.clock import ManualClock
from twin.config import P3Config
from twin.meter.events import EventCode
from twin.metering import Meter
from twin.p3.gprs.controller import GprsController
from twin.p3.gprs.push import PUSH_CSD_SMS, PUSH_SCHEDULER
from twin.p3.keys import KeyStore
from twin.p3.objects import build_objects
from twin.p3.objects import values as v
from twin.p3.objects.base import obis_bytes
from twin.p3.objects.factory import DsmrObjects
from twin.p3.objects.ports import PushRelay
from twin.p3.service import P3Service
from twin.store import Store
from twin.supervisor import HUNG_AFTER_S, Service

KEYS = P3Config(
    system_title=SERVER_TITLE.hex(), guek=GUEK.hex(), gak=GAK.hex(), master_key="00" * 16
)
AT_22 = v.array([v.struct(v.octets(bytes([22, 0, 0, 0])), v.octets(b"\xff" * 5))])


@dataclass
class Rig:
    meter: Meter
    objects: DsmrObjects
    service: P3Service
    meter_clock: ManualClock
    net: ManualClock
    tmp: Path

    def set(self, class_id: int, code: str, index: int, value: v.Data) -> None:
        assert self.objects.set(1, ref(class_id, code, index), None, v.encode(value)) == 0

    def released(self) -> None:
        """The CS's association ends, its writes done (what wakes the controller for them)."""
        for callback in self.service.on_release:
            callback()

    def destination(self, code: str, port: int) -> None:
        address = v.octets(f"127.0.0.1:{port}".encode())
        self.set(40, code, 3, v.struct(v.enum_(0), address, v.enum_(128)))

    def controller(self, mode: str) -> GprsController:
        relay = self.objects.env.push
        assert isinstance(relay, PushRelay)
        gprs = GprsController(
            self.service,
            P3Config(gprs_mode=mode),
            meter_clock=self.meter_clock,
            net_clock=self.net,
            equipment_id="unused",
            rng=random.Random(1),
        )
        relay.attach(gprs)
        return gprs


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    store = Store.open(tmp_path)
    meter_clock, net = ManualClock(START), ManualClock(START)
    config = steady_config()
    config = replace(config, meter=replace(config.meter, equipment_id=EQUIPMENT))
    meter = Meter(config, meter_clock, store, random.Random(1))
    objects = build_objects(
        meter, keys=FakeKeyService(), mbus=None, modem=None, state_dir=tmp_path, push=PushRelay()
    )
    service = P3Service(meter, KeyStore(store, KEYS), objects, "127.0.0.1", 0, net_clock=net)
    yield Rig(meter, objects, service, meter_clock, net, tmp_path)
    await service.stop_listening()
    store.close()


@dataclass
class HeadEnd:
    """The CS side of the push: a TCP listener that collects the messages."""

    messages: list[bytes]
    server: asyncio.Server | None = None

    async def listen(self, sock: socket.socket) -> None:
        async def receive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.messages.append(await reader.read())
            writer.close()

        self.server = await asyncio.start_server(receive, sock=sock)

    @classmethod
    async def on_loopback(cls) -> tuple[HeadEnd, int]:
        """A listening head-end on a free loopback port, and that port."""
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        head_end = cls([])
        await head_end.listen(sock)
        return head_end, sock.getsockname()[1]


async def eventually(check: Callable[[], object], attempts: int = 500) -> None:
    for _ in range(attempts):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


@pytest.fixture
async def running() -> AsyncIterator[Callable[[GprsController], None]]:
    tasks: list[asyncio.Task[None]] = []
    yield lambda gprs: tasks.append(asyncio.create_task(gprs.run()))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_scheduled_push_retried_after_a_refused_attempt(
    rig: Rig, running: Callable[[GprsController], None]
) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound, not listening: the first attempt is refused
    head_end = HeadEnd([])
    rig.destination("0-0:25.9.0", sock.getsockname()[1])
    rig.set(40, "0-0:25.9.0", 6, v.u8(2))  # number_of_retries
    rig.set(40, "0-0:25.9.0", 7, v.u16(60))  # repetition_delay
    rig.set(22, "0-0:15.0.4", 4, AT_22)  # START is 21:00 local: the push is due at 22:00
    gprs = rig.controller("triggered")
    running(gprs)
    await asyncio.sleep(0.05)
    assert not rig.service.listening
    await rig.meter_clock.advance(3600)
    stats = gprs.pushes.stats
    await eventually(lambda: PUSH_SCHEDULER in stats and stats[PUSH_SCHEDULER].last_error)
    # the failed attempt was finalized: listener and PDP context closed again (P3 §9.3)
    await eventually(lambda: not rig.service.listening)
    assert f"Errno {errno.ECONNREFUSED}" in str(stats[PUSH_SCHEDULER].last_error)
    await head_end.listen(sock)
    await rig.net.advance(59)
    assert head_end.messages == []  # repetition_delay runs on the network clock
    await rig.net.advance(1)
    await eventually(lambda: head_end.messages)
    assert head_end.messages == [EXAMPLE_1]  # P3 §9.3 example 1, byte for byte
    assert rig.service.listening  # waiting for the CS (inactivity_time_out)
    await rig.net.advance(301)
    await eventually(lambda: not rig.service.listening)
    pushes = gprs.status()["pushes"]["0-0:25.9.0"]
    assert (pushes["attempts"], pushes["retried"], pushes["sent"], pushes["failed"]) == (2, 1, 1, 0)
    assert gprs.status()["wakeup_sessions"] == 1


async def test_alarm_push_in_always_on_mode(
    rig: Rig, running: Callable[[GprsController], None]
) -> None:
    head_end, port = await HeadEnd.on_loopback()
    gprs = rig.controller("always-on")
    running(gprs)
    await eventually(lambda: rig.service.listening)
    rig.meter.act(lambda m, _now: m.set_alarms(0b10))
    await rig.net.advance(5)  # next heartbeat: the register monitor sees the alarm
    # P3 §9.3: the alarm setup without destination is disabled
    await eventually(lambda: "0-1:25.9.0" in gprs.status()["pushes"])
    assert gprs.status()["pushes"]["0-1:25.9.0"]["skipped"] == 1
    rig.destination("0-1:25.9.0", port)
    rig.set(1, "0-0:97.98.0", 2, v.u32(0))  # cleared ...
    await rig.net.advance(5)
    rig.meter.act(lambda m, _now: m.set_alarms(0b10))  # ... and raised again
    await rig.net.advance(5)
    await eventually(lambda: head_end.messages)
    assert head_end.messages == [EXAMPLE_2]  # P3 §9.3 example 2, byte for byte
    assert rig.service.listening  # always-on: the listener stays up


async def test_one_push_at_a_time_and_the_sms_wakeup_message(
    rig: Rig, running: Callable[[GprsController], None]
) -> None:
    head_end, port = await HeadEnd.on_loopback()
    rig.destination("0-0:25.9.0", port)
    rig.destination("0-2:25.9.0", port)
    gprs = rig.controller("triggered")
    running(gprs)
    await asyncio.sleep(0.05)
    # the CS invokes the scheduler setup's push; an SMS arrives at the same time
    assert gprs.push(PUSH_SCHEDULER) == 0
    assert gprs.wakeup("sms", "+31600000000")["accepted"]
    await eventually(lambda: head_end.messages)
    await asyncio.sleep(0.1)
    assert head_end.messages == [EXAMPLE_1]  # the second waits for the first to finish
    await rig.net.advance(301)  # no CS connection: the first push ends
    await eventually(lambda: len(head_end.messages) == 2)
    # P3 §9.3: equipment id, logical name of the triggering message handler (script 3)
    assert head_end.messages[1] == EQUIPMENT.encode() + b"," + obis_bytes("0-0:2.3.0")
    await rig.net.advance(301)
    await eventually(lambda: not rig.service.listening)
    assert gprs.pushes.stats[PUSH_CSD_SMS].sent == 1
    assert gprs.status()["pushes_sent"] == 2


async def test_bad_settings_are_skipped_and_the_controller_goes_on(
    rig: Rig, running: Callable[[GprsController], None]
) -> None:
    rig.set(40, "0-0:25.9.0", 3, v.struct(v.enum_(0), v.octets(b"no port"), v.enum_(128)))
    never = bytes.fromhex("ffffffffff ffffffff 8000ff"), bytes.fromhex("ffffffffff 173b3b63 8000ff")
    rig.set(40, "0-2:25.9.0", 4, v.array([v.struct(v.octets(never[0]), v.octets(never[1]))]))
    gprs = rig.controller("always-on")
    running(gprs)
    await eventually(lambda: rig.service.listening)
    gprs.push(PUSH_SCHEDULER)
    gprs.push(PUSH_CSD_SMS)
    await rig.net.advance(5)
    await eventually(lambda: gprs.status()["pushes"]["0-0:25.9.0"]["failed"] == 1)
    pushes = gprs.status()["pushes"]
    assert "HOST:PORT" in pushes["0-0:25.9.0"]["last_error"]
    assert pushes["0-2:25.9.0"]["skipped"] == 1  # P3 §9: a never-active window
    # a scheduler whose script names no valid script table fires into nothing
    rig.set(22, "0-0:15.0.4", 2, v.struct(v.octets(b"\x00"), v.u16(1)))
    rig.set(22, "0-0:15.0.4", 4, AT_22)
    rig.released()  # the controller plans the new execution time at the association's end
    await asyncio.sleep(0.05)
    await rig.meter_clock.advance(3600)  # no network-clock heartbeat: the meter clock wakes it
    await eventually(lambda: gprs.status()["pushes"]["0-0:25.9.0"]["triggered"] == 1)


def test_wakeup_sender_list_and_listening_window(rig: Rig) -> None:
    gprs = rig.controller("triggered")
    script = v.struct(v.octets(obis_bytes("0-0:10.0.108")), v.u16(3))
    listed = v.array([v.struct(v.octets(b"+31611111111"), script)])
    rig.set(60, "0-0:2.3.0", 4, listed)  # list_of_senders_and_actions (P3 §9.1.4)
    assert gprs.wakeup("sms", "+31622222222")["accepted"] is False  # not listed
    assert gprs.wakeup("sms", "+31611111111")["accepted"] is True
    # P3 §9 intro: a never-active listening window ("CSD/SMS wakeup not used")
    never = v.struct(
        v.octets(bytes.fromhex("ffffffffff ffffffff 8000ff")),
        v.octets(bytes.fromhex("ffffffffff 173b3b63 8000ff")),
    )
    rig.set(60, "0-0:2.3.0", 2, v.array([never]))
    answer = gprs.wakeup("sms", "+31611111111")
    assert answer == {"accepted": False, "reason": "outside the listening window"}
    assert gprs.wakeup("csd", "+31633333333")["accepted"] is True  # empty caller list, lab
    gprs.pushes.poll()
    assert list(gprs.pushes.stats) == [PUSH_CSD_SMS]
    assert len(gprs.pushes.queue.pending()) == 1  # one waiting push per setup
    assert gprs.pushes.stats[PUSH_CSD_SMS].triggered == 2


async def test_an_event_that_raises_an_alarm_is_pushed_without_waiting_for_a_heartbeat(
    rig: Rig, running: Callable[[GprsController], None]
) -> None:
    head_end, port = await HeadEnd.on_loopback()
    rig.destination("0-1:25.9.0", port)
    gprs = rig.controller("always-on")
    running(gprs)
    await eventually(lambda: rig.service.listening)
    # Event 46 (failed login) sets the grouped fraud bit 13 through the alarm filter (P3
    # §4.2.4); the network clock stands still: only the committed event wakes the controller.
    rig.meter.act(lambda m, now: m.log_event(now, 46))
    await eventually(lambda: head_end.messages)
    assert head_end.messages == [EQUIPMENT.encode() + b"," + (1 << 13).to_bytes(4, "big")]


async def test_an_alarm_still_active_after_a_short_power_failure_is_pushed_again(
    rig: Rig, running: Callable[[GprsController], None]
) -> None:
    head_end, port = await HeadEnd.on_loopback()
    rig.destination("0-1:25.9.0", port)
    rig.set(1, "0-0:97.98.10", 2, v.u32(1 << 13))  # only fraud is an alarm (not power up)
    gprs = rig.controller("always-on")
    running(gprs)
    await eventually(lambda: rig.service.listening)
    rig.meter.act(lambda m, now: m.log_event(now, 46))
    await eventually(lambda: len(head_end.messages) == 1)
    # A 1 s outage, over before any 5 s heartbeat could see the meter unpowered: the power-up
    # still makes the register monitor compare again (P3 §9.1.2).
    rig.meter.act(lambda m, now: m.power_failure(now, 1))
    await rig.meter_clock.advance(60)  # the supply's return is seen at the next minute
    rig.meter.commit()
    await eventually(lambda: len(head_end.messages) == 2)
    fraud = EQUIPMENT.encode() + b"," + (1 << 13).to_bytes(4, "big")
    assert head_end.messages == [fraud, fraud]


async def _counting_polls(
    rig: Rig, running: Callable[[GprsController], None]
) -> tuple[GprsController, list[int]]:
    """A running always-on controller, settled, and a list that grows at each trigger poll."""
    gprs = rig.controller("always-on")
    polls: list[int] = []
    poll = gprs.pushes.poll
    gprs.pushes.poll = lambda: (polls.append(1), poll())[1]  # type: ignore[method-assign]
    running(gprs)
    await eventually(lambda: rig.service.listening)
    await asyncio.sleep(0.05)
    return gprs, polls


async def test_an_idle_controller_sleeps_until_woken_and_is_not_hung(
    rig: Rig, running: Callable[[GprsController], None]
) -> None:
    """Cost follows work (issue 12): no network-clock poll while nothing is due; an alarm
    raised by an operator action (no event logged) wakes it; the supervisor sees it waiting."""
    gprs, polls = await _counting_polls(rig, running)
    idle_polls = len(polls)
    await rig.net.advance(60)  # a minute of network time: twelve heartbeats before
    await asyncio.sleep(0.05)
    assert len(polls) == idle_polls
    service = Service("p3", gprs.run, heartbeat=gprs.liveness)
    service.state = "running"
    assert not service.hung(time.monotonic() + 10 * HUNG_AFTER_S)
    rig.meter.act(lambda m, _now: m.set_alarms(0b10))
    await eventually(lambda: "0-1:25.9.0" in gprs.status()["pushes"])
    assert len(polls) > idle_polls


async def test_a_reading_session_leaves_the_sleeping_controller_asleep(
    rig: Rig, running: Callable[[GprsController], None]
) -> None:
    """Only what the triggers read wakes the controller (a fleet's head-end reads thousands of
    meters a minute): not the end of an association that wrote nothing, not the session's own
    communication log entries (P3 §4.2.1, no register bit); a SET before the end does."""
    _gprs, polls = await _counting_polls(rig, running)
    idle_polls = len(polls)
    rig.released()  # an association that only read
    rig.meter.act(lambda m, now: m.log_event(now, EventCode.RETRIEVE_READINGS_E))
    await asyncio.sleep(0.05)
    assert len(polls) == idle_polls
    rig.set(22, "0-0:15.0.4", 4, AT_22)  # the CS writes the scheduler's execution time
    rig.released()
    await eventually(lambda: len(polls) > idle_polls)
    woken = len(polls)
    rig.meter.act(lambda m, now: m.log_event(now, 46))  # an event with an alarm bit
    await eventually(lambda: len(polls) > woken)
