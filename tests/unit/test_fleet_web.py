"""`dsmr-twin fleet web` (twin/fleet/web.py): the overview and each meter's console, over the
meters' own control sockets, against two meters built in-process in a fleet's layout."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.unit.test_web import _forms, _secrets
from twin.app import build
from twin.cli import main
from twin.config import ClockConfig, Config, P1Config, P3Config
from twin.fleet import web as fleet_web
from twin.fleet.control import STATUS_FILE
from twin.fleet.spec import FleetSpec, meter_dir
from twin.fleet.web import OVERVIEW_S, FleetConsole
from twin.meter.events import EventLog
from twin.parts import Twin
from twin.web.server import CSRF_HEADER

Session = aiohttp.ClientSession


@dataclass
class Fleet:
    directory: Path
    meters: dict[int, Twin]
    stops: dict[int, asyncio.Event]
    tasks: dict[int, asyncio.Task[None]]

    async def stop(self, index: int) -> None:
        self.stops[index].set()
        await self.tasks.pop(index)
        self.meters[index].meter.commit()
        self.meters[index].store.close()


@pytest.fixture
def fleet_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="fw-"))  # short: the control sockets' paths
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@asynccontextmanager
async def running_fleet(fleet_dir: Path) -> AsyncIterator[Fleet]:
    spec = FleetSpec(2, b"\x01" * 32, "tcp://127.0.0.1:4059", "none", seeded=True)
    spec.save(fleet_dir)
    base = replace(Config(), clock=ClockConfig(speed=1.0, start="2026-12-07T10:00:10+00:00"))
    fleet = Fleet(fleet_dir, {}, {}, {})
    for index in spec.indices:
        config = spec.meter_config(base, spec.identity(index))
        config = replace(config, p1=P1Config(endpoint="none"), p3=P3Config(endpoint="none"))
        twin = build(config, fleet_dir / meter_dir(index))
        fleet.meters[index], fleet.stops[index] = twin, asyncio.Event()
        fleet.tasks[index] = asyncio.create_task(twin.supervisor.run(fleet.stops[index]))
    try:
        for _ in range(100):
            if all((fleet_dir / meter_dir(i) / "control.sock").exists() for i in spec.indices):
                break
            await asyncio.sleep(0.05)
        yield fleet
    finally:
        for index in list(fleet.tasks):
            await fleet.stop(index)


class Monotonic:
    """The console's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def running_console(
    fleet_dir: Path,
    host: str = "127.0.0.1",
    token: str = "t" * 43,
    monotonic: Callable[[], float] = time.monotonic,
) -> AsyncIterator[tuple[FleetConsole, str]]:
    console = FleetConsole(fleet_dir, host, 0, token, refresh_s=0.2, monotonic=monotonic)
    task = asyncio.create_task(console.run())
    try:
        for _ in range(100):
            if console.guard.bound_port:
                break
            await asyncio.sleep(0.02)
        yield console, f"http://127.0.0.1:{console.guard.bound_port}"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _get(session: Session, url: str) -> Any:
    async with session.get(url) as response:
        assert response.status == 200, (url, await response.text())
        return await response.json()


async def _control(session: Session, url: str, request: dict[str, Any]) -> dict[str, Any]:
    csrf = (await _get(session, url + "/api/session"))["csrf"]
    async with session.post(url + "/api/control", json=request, headers={CSRF_HEADER: csrf}) as r:
        answer: dict[str, Any] = await r.json()
        return answer


async def test_the_overview_lists_every_meter_with_its_state(fleet_dir: Path) -> None:
    clock = Monotonic()
    async with (
        running_fleet(fleet_dir) as fleet,
        running_console(fleet_dir, monotonic=clock) as (_, url),
        Session() as session,
    ):
        async with session.get(url + "/") as page:
            assert "fleet.js" in await page.text()
        overview = await _get(session, url + "/api/fleet")
        assert (overview["meters"], overview["meters_up"]) == (2, 2)
        rows = {m["meter"]: m for m in overview["meter_states"]}
        for index, twin in fleet.meters.items():
            assert rows[index]["equipment_id"] == twin.config.meter.equipment_id
            assert rows[index]["service_errors"] == {}
        await fleet.stop(1)
        clock.now += OVERVIEW_S - 0.1  # however many pages ask, the fleet is read seldom
        assert (await _get(session, url + "/api/fleet"))["meters_up"] == 2
        clock.now += 0.1
        rows = {m["meter"]: m for m in (await _get(session, url + "/api/fleet"))["meter_states"]}
    assert rows[1]["up"] is False
    assert "no twin is running" in rows[1]["error"]
    assert rows[2]["up"] is True


async def test_each_meter_has_its_console_over_its_own_control_server(fleet_dir: Path) -> None:
    async with (
        running_fleet(fleet_dir) as fleet,
        running_console(fleet_dir) as (_, url),
        Session() as session,
    ):
        async with session.get(url + "/meter/2", allow_redirects=False) as response:
            assert response.status == 308
            assert response.headers["Location"] == "/meter/2/"
        async with session.get(url + "/meter/2/") as page:
            assert '<script src="/static/app.js"' in await page.text()
        state = await _get(session, url + "/meter/2/api/state")
        assert state["status"]["equipment_id"] == fleet.meters[2].config.meter.equipment_id
        assert {"power", "profile", "events"} <= set(state)
        answer = await _control(session, url + "/meter/2", {"cmd": "tamper", "code": 43})
        assert answer == {"ok": True, "result": {"code": 43}}
        bad = {"cmd": "tamper", "code": 48}
        refused = await _control(session, url + "/meter/2", bad)
        assert refused == await fleet.meters[2].control.dispatch(json.dumps(bad).encode())
        assert refused["kind"] == "field"
        # The stream of meter 2 shows its new fraud event.
        async with session.get(url + "/meter/2/api/stream") as stream:
            while True:
                line = (await asyncio.wait_for(stream.content.readline(), 5)).decode()
                if line.startswith("data: ") and '"fraud"' in line:
                    fraud = json.loads(line.removeprefix("data: "))["events"]["fraud"]
                    break
        assert fraud[0]["code"] == 43
        async with session.get(url + "/meter/3/api/state") as response:
            assert response.status == 404
        fraud_1 = [e.code for e in fleet.meters[1].store.events(EventLog.FRAUD)]
        assert 43 not in fraud_1  # only meter 2 was tampered with


async def test_off_loopback_the_fleet_console_needs_its_token(fleet_dir: Path) -> None:
    token = "s" * 43
    async with (
        running_fleet(fleet_dir),
        running_console(fleet_dir, "0.0.0.0", token) as (_, url),
        Session() as stranger,
    ):
        for path in ("/api/fleet", "/meter/1/api/state", "/meter/1/api/session"):
            async with stranger.get(url + path) as response:
                assert response.status == 401, path
        async with stranger.get(url + "/meter/1/") as page:  # the page holds no data
            assert page.status == 200
        async with Session(headers={"Authorization": f"Bearer {token}"}) as script:
            assert (await _get(script, url + "/api/fleet"))["meters_up"] == 2


def test_fleet_web_refuses_a_bad_address(
    fleet_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["fleet", "web", "--state-dir", str(fleet_dir), "--web", "ftp://x"]
    assert main(args) == 2
    assert "--web 'ftp://x': expected http://HOST:PORT" in capsys.readouterr().err


async def test_off_loopback_a_stranger_gets_the_page_alone(fleet_dir: Path) -> None:
    """Without the token a meter's page is the bare page (it asks for the token): it neither
    tells which meters the fleet has nor starts reading any meter."""
    token = "s" * 43
    async with (
        running_fleet(fleet_dir),
        running_console(fleet_dir, "0.0.0.0", token) as (console, url),
        Session() as stranger,
    ):
        pages = []
        for path in ("/meter/1/", "/meter/99/"):
            async with stranger.get(url + path) as page:
                assert page.status == 200, path
                pages.append(await page.text())
        assert pages[0] == pages[1]
        async with stranger.get(url + "/meter/1", allow_redirects=False) as response:
            assert response.status == 308  # to the page, as typed without its slash
        assert console.meters == {}
        bearer = {"Authorization": f"Bearer {token}"}
        async with (
            Session(headers=bearer) as script,
            script.get(url + "/meter/99/api/session") as r,
        ):
            assert r.status == 404
            answer = await r.json()
    assert answer["ok"] is False
    assert answer["error"] == "the fleet has meters 1 to 2"


async def test_a_meters_control_from_another_site_changes_nothing(fleet_dir: Path) -> None:
    async with (
        running_fleet(fleet_dir) as fleet,
        running_console(fleet_dir) as (console, url),
        Session() as session,
    ):
        control = url + "/meter/2/api/control"
        csrf = (await _get(session, url + "/meter/2/api/session"))["csrf"]
        attempts = [{}, {CSRF_HEADER: csrf, "Origin": "http://evil.example"}]
        for headers in attempts:
            body = {"cmd": "admin", "state": 1}
            async with session.post(control, json=body, headers=headers) as response:
                assert response.status == 403, headers
        rebound = {"Host": f"evil.example:{console.guard.bound_port}", CSRF_HEADER: csrf}
        async with session.post(control, json=body, headers=rebound) as response:
            assert response.status == 403
    assert fleet.meters[2].meter.model.state.admin_state == 2


async def test_no_fleet_console_response_carries_a_key(fleet_dir: Path) -> None:
    async with (
        running_fleet(fleet_dir) as fleet,
        running_console(fleet_dir) as (_, url),
        Session() as session,
    ):
        spec = FleetSpec.load(fleet_dir)
        secrets = {spec.seed.hex()}
        for index, twin in fleet.meters.items():  # the keys each meter derives from the seed
            ident = spec.identity(index)
            keys = (ident.guek, ident.gak, ident.master_key, ident.hls_secret)
            secrets |= _secrets(twin) | {key.hex() for key in keys}
        assert len(secrets) >= 9, "the seed and the meters' P3 keys were not found"
        texts = []
        for path in ("/", "/api/fleet", "/meter/1/", "/meter/1/api/session", "/meter/1/api/state"):
            async with session.get(url + path) as response:
                texts.append(await response.text())
        async with session.get(url + "/meter/1/api/stream") as stream:
            texts.append(await stream.content.readuntil(b"\n\n"))  # type: ignore[arg-type]
    everything = "\n".join(t if isinstance(t, str) else t.decode() for t in texts)
    assert [s for s in secrets for form in _forms(s) if form in everything] == []


async def test_a_meter_whose_socket_takes_no_connection_is_shown_unreachable(
    fleet_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A meter process that hangs (its socket's queue full, nothing accepted): the console's
    read of it fails into an answer, never an exception that would end its page's hub."""
    monkeypatch.setattr(fleet_web, "ASK_TIMEOUT_S", 0.2)
    FleetSpec(1, b"\x01" * 32, "tcp://127.0.0.1:4059", "none", seeded=True).save(fleet_dir)
    (fleet_dir / meter_dir(1)).mkdir(parents=True)
    hung = socket.socket(socket.AF_UNIX)
    hung.bind(str(fleet_dir / meter_dir(1) / "control.sock"))
    hung.listen(0)
    queued = []
    try:
        for _ in range(4):  # fill its queue: a further connect waits
            client = socket.socket(socket.AF_UNIX)
            client.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                client.connect(str(fleet_dir / meter_dir(1) / "control.sock"))
            queued.append(client)
        answer = await fleet_web.RemoteSource(fleet_dir, 1).ask({"cmd": "status"})
    finally:
        for client in queued:
            client.close()
        hung.close()
    assert answer["ok"] is False
    assert answer["kind"] == "unreachable"
    assert answer["error"].startswith(("the twin did not answer", "the connection to the twin"))


async def test_an_unreadable_fleet_record_is_explained_on_the_overview(fleet_dir: Path) -> None:
    FleetSpec(1, b"\x01" * 32, "tcp://127.0.0.1:4059", "none", seeded=True).save(fleet_dir)
    (fleet_dir / STATUS_FILE).write_text("{half a record")
    async with (
        running_console(fleet_dir) as (_, url),
        Session() as session,
        session.get(url + "/api/fleet") as response,
    ):
        assert response.status == 503
        answer = await response.json()
    assert answer["ok"] is False
    assert f"{STATUS_FILE} cannot be read" in answer["error"]
