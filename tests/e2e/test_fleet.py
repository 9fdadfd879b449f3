"""`dsmr-twin fleet`: a small fleet in real processes, read by the independent dlms-cosem client
with the keys of the exported inventory; a grid outage on a share of it; kill -9 of a worker."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dlms_cosem import utils
from PIL import Image

from tests.push_listener import PushListener
from tests.unit.p3 import tcp_peers
from twin.config import Config, tcp_host_port
from twin.display import layout
from twin.fleet.control import choose_meters, fleet_status, meter_call
from twin.fleet.spec import SPEC_FILE, FleetSpec
from twin.p3.objects import values as v

logging.getLogger("dlms_cosem").setLevel(logging.ERROR)  # 21.3.2 logs every APDU

COUNT, WORKERS = 8, 2
STARTUP_S = 60.0


class Fleet:
    def __init__(self, state_dir: Path, first_p3: str) -> None:
        self.state_dir = state_dir
        self.log = (state_dir.parent / "fleet.log").open("a")
        command = [sys.executable, "-m", "twin", "--log-level", "WARNING", "fleet", "run"]
        command += ["--count", str(COUNT), "--workers", str(WORKERS), "--seed", "e2e lab"]
        command += ["--state-dir", str(state_dir), "--speed", "60", "--p3", first_p3]
        self.process = subprocess.Popen(command, stderr=self.log)
        try:
            self._wait_started()
        except BaseException:
            self.stop()
            raise

    def _wait_started(self) -> None:
        deadline = time.monotonic() + STARTUP_S
        while not (self.state_dir / SPEC_FILE).exists():  # written by the head before any worker
            assert self.process.poll() is None, "the fleet's head exited"
            assert time.monotonic() < deadline, "no fleet.json"
            time.sleep(0.05)
        self.wait_for(lambda s: s["meters_up"] == COUNT, "the fleet did not come up")

    def status(self) -> dict[str, Any]:
        return asyncio.run(fleet_status(self.state_dir))

    def meters(self) -> dict[int, dict[str, Any]]:
        return {m["meter"]: m for m in self.status()["meter_states"]}

    def wait_for(self, condition: Callable[[dict[str, Any]], bool], failure: str) -> None:
        deadline = time.monotonic() + STARTUP_S
        while not condition(status := self.status()):
            assert self.process.poll() is None, "the fleet's head exited"
            assert time.monotonic() < deadline, f"{failure}: {json.dumps(status)[:2000]}"
            time.sleep(0.1)

    def cli(self, *args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "twin", "fleet", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout

    def inventory(self) -> dict[int, dict[str, str]]:
        rows = json.loads(self.cli("inventory", "--state-dir", str(self.state_dir), "--json"))
        return {int(row["meter"]): row for row in rows}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(60)
        self.log.close()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    # Deep enough that a meter's control socket path does not fit sockaddr_un (108 bytes):
    # the workers bind it relative to the fleet, `fleet ctl` reaches it through a descriptor.
    state_dir = tmp_path_factory.mktemp("fleet") / ("deep-" + "d" * 70)
    assert len(str(state_dir / "meters/0001/control.sock")) > 108
    # A loopback block of its own (127/8 is all lo on Linux): parallel runs do not meet.
    first = f"tcp://127.{random.randint(2, 250)}.{random.randint(0, 250)}.1:4059"
    running = Fleet(state_dir, first)
    yield running
    running.stop()


class Session(tcp_peers.AssociatedSession):
    """A dlms-cosem management client (1, HLS-GMAC) with keys from the inventory."""

    counter = 1

    def __init__(self, endpoint: str, guek: bytes, gak: bytes) -> None:
        found = tcp_host_port(endpoint)
        assert found is not None
        host, port = found
        Session.counter += 1000  # a new AA may start anywhere above (P3 §3.2.3)
        self.client = tcp_peers.management_client(
            port, guek, gak, host=host, invocation_counter=Session.counter
        )


def session(row: dict[str, str], keys_of: dict[str, str] | None = None) -> Session:
    keys = keys_of or row
    return Session(row["p3"], bytes.fromhex(keys["guek"]), bytes.fromhex(keys["gak"]))


def meters_with_gas(spec: FleetSpec) -> list[int]:
    return [i for i in spec.indices if spec.meter_config(Config(), spec.identity(i)).gas.enabled]


def read(client: Any, interface: int, obis: str, index: int = 2) -> Any:
    return utils.parse_as_dlms_data(client.get(tcp_peers.attribute(interface, obis, index)))


def test_inventory_lists_every_meter_with_its_own_identity_and_address(fleet: Fleet) -> None:
    rows = fleet.inventory()
    assert sorted(rows) == list(range(1, COUNT + 1))
    for field in ("equipment_id", "system_title", "guek", "gak", "master_key", "p3"):
        assert len({row[field] for row in rows.values()}) == COUNT, field
    first = tcp_host_port(rows[1]["p3"])
    assert first is not None
    base = first[0].rsplit(".", 1)[0]
    # Consecutive loopback addresses on port 4059, as the interface promises.
    assert [rows[i]["p3"] for i in rows] == [f"tcp://{base}.{i}:4059" for i in rows]
    csv_lines = fleet.cli("inventory", "--state-dir", str(fleet.state_dir), "--csv").splitlines()
    assert csv_lines[0].startswith("meter,equipment_id,system_title,guek,gak,master_key")
    assert len(csv_lines) == COUNT + 1
    statuses = fleet.meters()
    assert {statuses[i]["equipment_id"] for i in rows} == {r["equipment_id"] for r in rows.values()}


def test_each_meter_opens_with_its_inventory_keys_and_no_other(fleet: Fleet) -> None:
    rows = fleet.inventory()
    for index in (1, 2, COUNT):  # meters of both workers
        before = fleet.meters()[index]["1-0:1.8.1"]
        with session(rows[index]) as client:
            energy_wh = read(client, 3, "1-0:1.8.1")
            system_title = read(client, 1, "0-0:96.1.1")  # equipment identifier (P3 §6.1)
        after = fleet.meters()[index]["1-0:1.8.1"]
        assert round(before * 1000) <= energy_wh <= round(after * 1000)
        assert bytes(system_title).decode() == rows[index]["equipment_id"]
    # Meter 1's keys on meter 2: no association.
    wrong = session(rows[2], keys_of=rows[1])
    wrong.client.connect()
    try:
        with pytest.raises(Exception):  # noqa: B017, PT011 - rejected AARE or no answer
            wrong.client.associate()
    finally:
        with contextlib.suppress(Exception):
            wrong.client.disconnect()
    assert fleet.meters()[2]["up"]


def gas_meters_installed(fleet: Fleet) -> None:
    """Wait until every meter with a gas meter has installed it (P2 §8.3: its "new M-Bus
    device" alarm is raised then; acknowledged after it, no alarm is left to push)."""
    spec = FleetSpec.load(fleet.state_dir)
    with_gas = meters_with_gas(spec)
    assert with_gas
    deadline = time.monotonic() + STARTUP_S
    for index in with_gas:
        while not asyncio.run(meter_call(fleet.state_dir, index, {"cmd": "status"}))["mbus"]:
            assert time.monotonic() < deadline, f"meter {index} installed no gas meter"
            time.sleep(0.1)


def commission_alarm_pushes(fleet: Fleet, listener: PushListener) -> None:
    """What a head-end does per meter: the alarm push setup's destination, then the alarm
    register acknowledged (the gas meter's installation set "new M-Bus device")."""
    gas_meters_installed(fleet)
    destination = v.struct(v.enum_(0), v.octets(listener.destination), v.enum_(128))
    for row in fleet.inventory().values():
        with session(row) as client:
            set_ok(client, 40, "0-1:25.9.0", 3, destination)  # send_destination_and_method
            set_ok(client, 1, "0-0:97.98.0", 2, v.u32(0))


def set_ok(client: Any, interface: int, obis: str, index: int, data: v.Data) -> None:
    result = client.set(tcp_peers.attribute(interface, obis, index), v.encode(data))
    assert result.result.value == 0, obis


def test_an_outage_of_a_fraction_fails_the_power_of_those_meters_only(fleet: Fleet) -> None:
    listener = PushListener()
    try:
        _outage(fleet, listener)
    finally:
        listener.close()


def _outage(fleet: Fleet, listener: PushListener) -> None:
    commission_alarm_pushes(fleet, listener)
    time.sleep(1.0)  # an alarm raised before the acknowledgement would be pushed by now
    assert listener.messages == []
    before = fleet.meters()
    result = json.loads(
        fleet.cli(
            *("ctl", "--state-dir", str(fleet.state_dir), "outage"),
            *("--fraction", "0.25", "--seconds", "120", "--seed", "3"),
        )
    )
    hit = result["meters"]
    assert len(hit) == round(0.25 * COUNT)
    assert result["failed"] == {}

    def recovered(status: dict[str, Any]) -> bool:
        meters = {m["meter"]: m for m in status["meter_states"]}
        return all(
            meters[i]["powered"] and meters[i]["power_failures"] == before[i]["power_failures"] + 1
            for i in hit
        )

    fleet.wait_for(recovered, "the outage did not end")
    after = fleet.meters()
    for index in set(before) - set(hit):
        assert after[index]["power_failures"] == before[index]["power_failures"], index
        assert after[index]["powered"], index
    # The head-end sees the failure on P3: 0-0:96.7.21 power failures in any phase (P3 §6.6).
    rows = fleet.inventory()
    for index in (hit[0], min(set(before) - set(hit))):
        with session(rows[index]) as client:
            assert read(client, 1, "0-0:96.7.21") == after[index]["power_failures"]
    # P3 §9.1.2: at power-up the alarm register (power up, §4.2.4 bit 2) is compared again: the
    # alarm push comes from each meter that lost power, and from no other.
    hit_ids = {rows[i]["equipment_id"] for i in hit}
    deadline = time.monotonic() + STARTUP_S
    while set(listener.senders()) != hit_ids:
        assert set(listener.senders()) <= hit_ids, listener.messages
        assert time.monotonic() < deadline, listener.messages
        time.sleep(0.1)
    time.sleep(1.0)  # a minute of meter time: nothing from the others
    assert set(listener.senders()) == hit_ids
    status = json.loads(fleet.cli("ctl", "--state-dir", str(fleet.state_dir), "status", "--json"))
    assert status["meters_up"] == COUNT
    assert status["workers_up"] == WORKERS
    assert status["pushes_sent"] >= len(hit)


def test_a_request_goes_to_the_chosen_meters_only_and_each_checks_it(fleet: Fleet) -> None:
    message = {"cmd": "message", "code": "", "text": "fleet notice"}
    sent = json.loads(
        fleet.cli(
            *("ctl", "--state-dir", str(fleet.state_dir), "send", "--meters", "3,5"),
            *("--request", json.dumps(message)),
        )
    )
    assert sent["meters"] == [3, 5]
    assert sent["failed"] == {}
    for index in range(1, COUNT + 1):
        shown = asyncio.run(meter_call(fleet.state_dir, index, {"cmd": "status"}))
        assert shown["message"]["text"] == ("fleet notice" if index in (3, 5) else ""), index
    # A request a meter refuses: refused by each, named per meter, exit status 1.
    command = [sys.executable, "-m", "twin", "fleet", "ctl", "--state-dir", str(fleet.state_dir)]
    refused = subprocess.run(
        [*command, "send", "--meters", "1,2", "--request", '{"cmd": "tamper", "code": 99}'],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 1
    assert sorted(json.loads(refused.stdout)["failed"]) == ["1", "2"]
    one = json.loads(
        fleet.cli("ctl", "--state-dir", str(fleet.state_dir), "status", "--meter", "4", "--json")
    )
    assert one["meters"] == 1
    assert [m["meter"] for m in one["meter_states"]] == [4]


def test_a_screenshot_renders_the_asked_meters_display_on_demand_only(
    fleet: Fleet, tmp_path: Path
) -> None:
    """Issue 12 item 1: fleet meters run no display loop; `fleet ctl screenshot` renders the
    meter's current frame (the display code of `dsmr-twin run`) when asked."""
    for index in (1, 2):
        idle = asyncio.run(meter_call(fleet.state_dir, index, {"cmd": "status"}))["ports"]
        assert "display" not in idle["supervisor"]  # no display service runs
        assert idle["display"]["renders"] == 0  # nothing rendered while nobody asks
    ctl = ("ctl", "--state-dir", str(fleet.state_dir))
    # DSMR-M 4.3.36: the message symbol; the message code is on every frame.
    message = json.dumps({"cmd": "message", "code": "4242"})
    fleet.cli(*ctl, "send", "--meters", "2", "--request", message)
    try:
        frames = {}
        for index in (1, 2):
            path = tmp_path / f"meter{index}.png"
            assert fleet.cli(*ctl, "screenshot", "--meter", str(index), str(path)).strip() == str(
                path
            )
            with Image.open(path) as image:
                assert (image.format, image.size) == ("PNG", (layout.WIDTH, layout.HEIGHT))
                frames[index] = image.convert("1")
        # The fleet control path answers the same request as the single twin's `screenshot`.
        answer = asyncio.run(meter_call(fleet.state_dir, 2, {"cmd": "screenshot"}))
        assert base64.b64decode(answer["png_base64"]).startswith(b"\x89PNG")
    finally:
        fleet.cli(*ctl, "send", "--meters", "2", "--request", '{"cmd": "message"}')
    left, top, right, bottom = layout.MESSAGE
    box = (left, top, right + 1, bottom + 1)
    assert frames[1].crop(box).getbbox() is None  # no message: the symbol area is dark
    assert frames[2].crop(box).getbbox() is not None  # "M:4242"
    assert (
        asyncio.run(meter_call(fleet.state_dir, 2, {"cmd": "status"}))["ports"]["display"][
            "renders"
        ]
        == 2
    )
    with pytest.raises(subprocess.CalledProcessError):
        fleet.cli(*ctl, "screenshot", "--meter", str(COUNT + 1), str(tmp_path / "none.png"))
    assert not (tmp_path / "none.png").exists()


def test_a_tamper_on_a_fraction_logs_event_40_in_the_fraud_log_of_those_meters_only(
    fleet: Fleet,
) -> None:
    ctl = ("ctl", "--state-dir", str(fleet.state_dir))
    sent = json.loads(fleet.cli(*ctl, "tamper", "--fraction", "0.25", "--seed", "7"))
    chosen = choose_meters(FleetSpec.load(fleet.state_dir), 0.25, 7)
    assert sent["meters"] == chosen
    assert len(chosen) == 2
    assert sent["failed"] == {}
    for index, row in fleet.inventory().items():
        with session(row) as client:
            codes = [entry[1] for entry in read(client, 7, "0-0:99.98.1")]
        # DSMR P3 §4.2.1 event codes: 40 "Terminal cover removed", in the Fraud Detection Log.
        assert (40 in codes) == (index in chosen), (index, codes)
    # Another code, on a list; a code the meters do not have is refused by each of them.
    again = json.loads(fleet.cli(*ctl, "tamper", "--code", "44", "--meters", "2"))
    assert again["meters"] == [2]
    assert again["failed"] == {}
    with session(fleet.inventory()[2]) as client:
        assert [entry[1] for entry in read(client, 7, "0-0:99.98.1")][-1:] == [44]
    refused = subprocess.run(
        [sys.executable, "-m", "twin", "fleet", *ctl, "tamper", "--code", "48", "--meters", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Each meter checks the request itself: refused, named per meter, exit status 1.
    assert refused.returncode == 1
    assert list(json.loads(refused.stdout)["failed"]) == ["1"]


def test_a_gas_meter_removal_on_chosen_meters_takes_their_gas_meters_off_the_bus(
    fleet: Fleet,
) -> None:
    spec = FleetSpec.load(fleet.state_dir)
    with_gas = meters_with_gas(spec)[:2]
    assert with_gas
    listed = ",".join(map(str, with_gas))
    ctl = ("ctl", "--state-dir", str(fleet.state_dir), "gas")
    detached = json.loads(fleet.cli(*ctl, "--detach", "--meters", listed))
    assert detached["meters"] == with_gas
    assert detached["failed"] == {}
    assert [detached["results"][str(i)]["attached"] for i in with_gas] == [False] * len(with_gas)
    attached = json.loads(fleet.cli(*ctl, "--attach", "--meters", listed))
    assert [attached["results"][str(i)]["attached"] for i in with_gas] == [True] * len(with_gas)


def test_kill_9_of_a_worker_restarts_its_meters_alone_and_loses_nothing(fleet: Fleet) -> None:
    workers = fleet.status()["worker_states"]
    victim, survivor = workers[0], workers[1]
    published = fleet.meters()  # every value shown here was committed first
    os.kill(victim["pid"], signal.SIGKILL)
    deadline = time.monotonic() + STARTUP_S
    while True:
        status = fleet.status()
        states = {m["meter"]: m for m in status["meter_states"]}
        # The other worker's meters answer all along, in the same process.
        assert all(states[i]["up"] for i in survivor["meters"]), status
        restarted = status["worker_states"][0]
        if restarted["pid"] not in (None, victim["pid"]) and all(
            states[i]["up"] for i in victim["meters"]
        ):
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    assert restarted["restarts"] == victim["restarts"] + 1
    assert status["worker_states"][1]["pid"] == survivor["pid"]
    assert status["worker_states"][1]["restarts"] == survivor["restarts"]
    for index, meter in states.items():
        for register in ("1-0:1.8.1", "1-0:1.8.2"):
            assert meter[register] >= published[index][register], (index, register)
    rows = fleet.inventory()
    with session(rows[victim["meters"][0]]) as client:  # P3 is back, with the same keys
        assert read(client, 3, "1-0:1.8.1") >= round(
            published[victim["meters"][0]]["1-0:1.8.1"] * 1000
        )


def test_the_workers_stop_when_the_head_dies(fleet: Fleet) -> None:
    """No orphan keeps its meters' locks and addresses from the head that replaces it."""
    workers = [w["pid"] for w in fleet.status()["worker_states"]]
    fleet.process.kill()
    fleet.process.wait(10)
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in workers):
        assert time.monotonic() < deadline, "a worker outlived its head"
        time.sleep(0.1)
    # The head's last status file still says "running": status knows better.
    status = fleet.status()
    assert status["workers_up"] == 0
    assert {w["state"] for w in status["worker_states"]} == {"gone"}
    assert status["meters_up"] == 0


def _notes(systemd: socket.socket, until: Callable[[bytes], bool], within: float) -> list[bytes]:
    """The datagrams systemd gets until one satisfies `until` (the last one listed)."""
    deadline, got = time.monotonic() + within, []
    while not got or not until(got[-1]):
        systemd.settimeout(max(0.01, deadline - time.monotonic()))
        got.append(systemd.recv(64))
    return got


def test_systemd_gets_ready_when_the_workers_are_up_pings_while_they_live_and_stopping(
    tmp_path: Path,
) -> None:
    """Type=notify with WatchdogSec for the fleet: READY=1 once every worker reports its meters
    up, WATCHDOG=1 only while every worker beats (none while one is SIGSTOPped), STOPPING=1."""
    address, state_dir = tmp_path / "notify", tmp_path / "fleet"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(str(address))
        environment = {**os.environ, "NOTIFY_SOCKET": str(address), "WATCHDOG_USEC": "400000"}
        command = [sys.executable, "-m", "twin", "--log-level", "WARNING", "fleet", "run"]
        command += ["--count", "3", "--workers", "2", "--seed", "notify lab"]
        # 127.251.x: the module's fleet draws its second octet from 2..250.
        command += [
            "--state-dir",
            str(state_dir),
            "--speed",
            "60",
            "--p3",
            "tcp://127.251.0.1:4059",
        ]
        process = subprocess.Popen(command, stderr=subprocess.DEVNULL, env=environment)
        try:
            assert _notes(systemd, lambda n: n == b"READY=1", STARTUP_S)[-1] == b"READY=1"
            # Every meter answers once READY=1 is sent.
            assert asyncio.run(fleet_status(state_dir))["meters_up"] == 3
            systemd.settimeout(2.0)
            started = time.monotonic()
            pings = [systemd.recv(64) for _ in range(4)]
            assert pings == [b"WATCHDOG=1"] * 4
            assert time.monotonic() - started < 4 * 0.5  # every WatchdogSec / 2, load allowed
            worker = json.loads((state_dir / "fleet-status.json").read_text())["workers"][0]
            os.kill(worker["pid"], signal.SIGSTOP)
            try:
                # Within the head's staleness window the pings stop: 1.5 s (3 intervals) pass
                # without one.
                deadline, silent = time.monotonic() + 8.0, False
                systemd.settimeout(1.5)
                while not silent and time.monotonic() < deadline:
                    try:
                        systemd.recv(64)
                    except TimeoutError:
                        silent = True
                assert silent, "the head kept pinging with a worker stopped"
            finally:
                os.kill(worker["pid"], signal.SIGCONT)
            assert _notes(systemd, lambda n: n == b"WATCHDOG=1", 8.0)[-1] == b"WATCHDOG=1"
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(60) == 0
        systemd.settimeout(0.2)
        messages = []
        with contextlib.suppress(TimeoutError):
            while True:
                messages.append(systemd.recv(64))
        assert b"STOPPING=1" in messages
