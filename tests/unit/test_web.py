"""The web console (twin/web) against a built twin on a real socket, with aiohttp's client.

Each test runs a twin in-process with P2 (the simulated gas meter), P3 on a free loopback port
and the console on port 0 (any free port), and talks HTTP to it as a browser would.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import re
import socket
import stat
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from twin.app import build, where_to_reach
from twin.cli import _run_config, main
from twin.config import (
    ClockConfig,
    Config,
    ConfigError,
    P1Config,
    P3Config,
    WebConfig,
    config_from_mapping,
)
from twin.meter.model import PowerStep
from twin.meter.profiles import LoadProfileRow
from twin.parts import Twin
from twin.web import server
from twin.web.server import CSRF_HEADER, QUEUE_SIZE, Hub, WebConsole
from twin.web.views import CHART_SPAN, WEB_COMMANDS, event_name, power_chart, profile_bars

START_S = 10.0
SAFETY_S = 10.0  # only a safety net: the waits below end when the update arrives
Session = aiohttp.ClientSession


def _config(
    endpoint: str = "http://127.0.0.1:0", modem: str = "none", refresh_s: float = 0.2
) -> Config:
    return replace(
        Config(),
        clock=ClockConfig(speed=1.0, start="2026-12-07T10:00:10+00:00"),
        p1=P1Config(endpoint="tcp://127.0.0.1:0", request="simulated"),
        p3=P3Config(endpoint="tcp://127.0.0.1:0", modem=modem),
        web=WebConfig(endpoint=endpoint, refresh_s=refresh_s),
    )


class Running:
    def __init__(self, twin: Twin) -> None:
        self.twin = twin

    @property
    def console(self) -> WebConsole:
        status = self.twin.control.ports["web"]
        console = status.__self__  # type: ignore[attr-defined]
        assert isinstance(console, WebConsole)
        return console

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.console.bound_port}"

    async def csrf(self, session: Session) -> str:
        async with session.get(self.url + "/api/session") as response:
            assert response.status == 200
            return str((await response.json())["csrf"])

    async def control(self, session: Session, request: dict[str, Any]) -> dict[str, Any]:
        headers = {CSRF_HEADER: await self.csrf(session)}
        async with session.post(self.url + "/api/control", json=request, headers=headers) as r:
            answer: dict[str, Any] = await r.json()
            return answer


@asynccontextmanager
async def running_twin(
    tmp_path: Path,
    endpoint: str = "http://127.0.0.1:0",
    modem: str = "none",
    refresh_s: float = 0.2,
) -> AsyncIterator[Running]:
    twin = build(_config(endpoint, modem, refresh_s), tmp_path)
    stop = asyncio.Event()
    task = asyncio.create_task(twin.supervisor.run(stop))
    running = Running(twin)
    try:
        for _ in range(int(START_S / 0.05)):
            if running.console.bound_port:
                break
            await asyncio.sleep(0.05)
        assert running.console.bound_port, "the web console did not start"
        yield running
    finally:
        stop.set()
        await task
        twin.meter.commit()
        twin.store.close()


async def _first_event(response: aiohttp.ClientResponse) -> dict[str, Any]:
    """The next `update` event of a server-sent event stream, decoded."""
    data = []
    while True:
        line = (await response.content.readline()).decode()
        if line.startswith("data: "):
            data.append(line.removeprefix("data: ").rstrip("\n"))
        elif line == "\n" and data:
            decoded: dict[str, Any] = json.loads("".join(data))
            return decoded


# ---------------------------------------------------------------------- the page


async def test_the_page_and_its_assets_come_from_the_package_and_name_no_other_host(
    tmp_path: Path,
) -> None:
    async with running_twin(tmp_path) as running, Session() as session:
        bodies = {}
        for path in ("/", "/static/app.js", "/static/style.css"):
            async with session.get(running.url + path) as response:
                assert response.status == 200, path
                assert response.headers["X-Frame-Options"] == "DENY"
                assert "default-src 'self'" in response.headers["Content-Security-Policy"]
                bodies[path] = await response.text()
    assert '<script src="/static/app.js"' in bodies["/"]
    assert "EventSource" in bodies["/static/app.js"]
    for path, body in bodies.items():  # offline: no CDN, no font or script from elsewhere
        assert re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", body) == [], path


async def test_the_state_carries_every_view(tmp_path: Path) -> None:
    async with running_twin(tmp_path) as running, Session() as session:
        await running.control(session, {"cmd": "request", "raised": True})
        for _ in range(100):  # the first telegram goes out at once when Request rises
            if running.twin.telegrams and running.twin.telegrams.count:
                break
            await asyncio.sleep(0.05)
        async with session.get(running.url + "/api/state") as response:
            state = await response.json()
    assert set(state) == {
        "unreachable",
        "status",
        "display",
        "power",
        "profile",
        "events",
        "telegrams",
    }
    assert state["unreachable"] is None
    status = state["status"]
    assert status["equipment_id"] == running.twin.config.meter.equipment_id
    assert set(status["ports"]) >= {"supervisor", "p1", "p2", "p3", "display", "web"}
    assert status["ports"]["supervisor"]["web"]["state"] == "running"
    png = base64.b64decode(state["display"]["png_base64"])
    assert png.startswith(b"\x89PNG")
    assert state["power"]["steps"], "no power step in the last hour"
    telegram = state["telegrams"][0]
    assert telegram["text"].startswith("/")
    assert telegram["text"].rstrip("\r\n").endswith(telegram["crc"])
    assert telegram["outcome"] == "sent"
    assert set(state["events"]) == {"standard", "fraud", "communication", "mbus"}
    assert state["events"]["mbus"][0]["name"] == "New M-Bus device discovered channel 1"


async def test_no_page_open_costs_no_work(tmp_path: Path) -> None:
    async with running_twin(tmp_path) as running:
        source = running.console.api.source
        asked: list[str] = []
        original = source.ask

        async def counted(request: Mapping[str, Any]) -> dict[str, Any]:
            asked.append(request["cmd"])
            return await original(request)

        source.ask = counted  # type: ignore[method-assign]
        await asyncio.sleep(1.0)  # five refresh intervals
        assert asked == []
        async with Session() as session, session.get(running.url + "/api/stream") as stream:
            await _first_event(stream)
            await _first_event(stream)  # a page is open: it is refreshed
        assert asked.count("status") >= 2
        assert asked.count("console-views") >= 2


async def test_a_taken_port_backs_the_console_off_and_the_meter_meters_on(
    tmp_path: Path,
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    twin = build(_config(f"http://127.0.0.1:{port}"), tmp_path)
    stop = asyncio.Event()
    task = asyncio.create_task(twin.supervisor.run(stop))
    services = twin.control.ports["supervisor"]

    async def until_web(state: str) -> dict[str, Any]:
        for _ in range(200):
            if services()["web"]["state"] == state:
                break
            await asyncio.sleep(0.05)
        web: dict[str, Any] = services()["web"]
        return web

    try:
        web = await until_web("backoff")
        assert web["last_error"] == (
            f"WebError: cannot listen on http://127.0.0.1:{port}/: address already in use"
        )
        assert services()["meter"]["state"] == "running"
        taken.close()  # the port is free again: the console comes back on its own
        await until_web("running")
        async with Session() as session:
            for _ in range(100):
                with contextlib.suppress(aiohttp.ClientConnectionError):
                    async with session.get(f"http://127.0.0.1:{port}/api/state") as response:
                        assert response.status == 200
                        break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the console did not come back")
    finally:
        taken.close()
        stop.set()
        await task
        twin.meter.commit()
        twin.store.close()


# ---------------------------------------------------------------------- controls


async def test_controls_go_through_the_control_servers_dispatch_and_answer_as_it_does(
    tmp_path: Path,
) -> None:
    bad_requests: list[dict[str, Any]] = [
        {"cmd": "tamper", "code": 50},
        {"cmd": "tamper", "code": 41.0},
        {"cmd": "power-failure"},
        {"cmd": "power-failure", "seconds": True},
        {"cmd": "sag", "phase": 4},
        {"cmd": "message", "text": "\x07bell"},
        {"cmd": "load", "watts": 1e9},
        {"cmd": "gas", "colour": "red"},
        {"cmd": "button", "press": "double"},
        {"no": "command"},
    ]
    async with running_twin(tmp_path) as running, Session() as session:
        for request in bad_requests:
            socket_answer = await running.twin.control.dispatch(json.dumps(request).encode())
            assert await running.control(session, request) == socket_answer
            assert socket_answer["ok"] is False
        answer = await running.control(session, {"cmd": "tamper", "code": 44})
        assert answer == {"ok": True, "result": {"code": 44}}
        # Only the injections are offered; the rest of the API stays with `dsmr-twin ctl`.
        refused = await running.control(session, {"cmd": "advance", "days": 1})
        assert refused["ok"] is False
        assert "not offered on the web console" in refused["error"]
        assert running.twin.meter.model.time < datetime(2026, 12, 8, tzinfo=UTC)
        async with session.get(running.url + "/api/state") as response:
            fraud = (await response.json())["events"]["fraud"]
    assert fraud[0]["code"] == 44
    assert fraud[0]["name"] == "Meter cover removed"


async def test_the_session_offers_each_control_with_its_declared_fields(tmp_path: Path) -> None:
    async with running_twin(tmp_path) as running, Session() as session:
        async with session.get(running.url + "/api/session") as response:
            offered = {c["cmd"]: c for c in (await response.json())["commands"]}
        declared = running.twin.control.commands
    assert set(offered) == {name for name in WEB_COMMANDS if name in declared}
    assert {"power-failure", "sag", "gas", "button", "request", "wakeup"} <= set(offered)
    for name, command in offered.items():
        assert [f["name"] for f in command["fields"]] == [f.name for f in declared[name].fields]
    (seconds,) = offered["power-failure"]["fields"]
    assert seconds["kind"] == "number"
    assert seconds["required"] is True
    assert seconds["allowed"] == "a number from 1 to 31536000"


async def test_a_control_changes_the_stream_at_once(tmp_path: Path) -> None:
    # The periodic refresh is 20 s away, beyond SAFETY_S, so only a push on the control
    # itself brings the change within the safety limit.
    async with (
        running_twin(tmp_path, refresh_s=20.0) as running,
        Session() as session,
        session.get(running.url + "/api/stream") as stream,
    ):
        assert stream.headers["Content-Type"] == "text/event-stream"
        first = await _first_event(stream)
        assert first["status"]["powered"] is True
        answer = await running.control(session, {"cmd": "power-failure", "seconds": 600})
        assert answer["ok"] is True
        while True:
            update = await asyncio.wait_for(_first_event(stream), SAFETY_S)
            if "status" in update and not update["status"]["powered"]:
                break


# ---------------------------------------------------------------------- security


async def test_a_control_from_another_site_or_without_the_csrf_token_changes_nothing(
    tmp_path: Path,
) -> None:
    async with running_twin(tmp_path) as running, Session() as session:
        url = running.url + "/api/control"
        csrf = await running.csrf(session)
        body = {"cmd": "admin", "state": 1}
        attempts = [
            ({}, body, 403),  # no CSRF header (a plain cross-site fetch or form)
            ({CSRF_HEADER: "guess"}, body, 403),
            ({CSRF_HEADER: csrf, "Origin": "http://evil.example"}, body, 403),
        ]
        for headers, request, status in attempts:
            async with session.post(url, json=request, headers=headers) as response:
                assert response.status == status, headers
                assert (await response.json())["kind"] == "forbidden"
        form = {"cmd": "admin", "state": "1"}  # an HTML form posts form data
        async with session.post(url, data=form, headers={CSRF_HEADER: csrf}) as response:
            assert response.status == 415
        # DNS rebinding: a name of another site resolved to 127.0.0.1 is not this console.
        rebound = {"Host": f"evil.example:{running.console.bound_port}"}
        async with session.get(running.url + "/api/session", headers=rebound) as response:
            assert response.status == 403
        assert running.twin.meter.model.state.admin_state == 2
        assert running.console.status()["refused"] == 5
        ok = await running.control(session, body)  # with the token from the same origin
        assert ok["ok"] is True
        assert running.twin.meter.model.state.admin_state == 1


async def test_on_loopback_a_tunnel_to_another_local_port_reaches_the_console(
    tmp_path: Path,
) -> None:
    """`ssh -L 9000:127.0.0.1:8059 pi`: the browser names the tunnel's port in Host. A loopback
    name is what keeps rebound names out; the port it names is the client's business."""
    async with running_twin(tmp_path) as running, Session() as session:
        for host in ("127.0.0.1:9000", "localhost:9000", "[::1]:9000", "localhost"):
            headers = {"Host": host}
            async with session.get(running.url + "/api/session", headers=headers) as response:
                assert response.status == 200, host
        for host in ("evil.example:9000", "127.0.0.1.evil.example", "[::2]:9000"):
            async with session.get(running.url + "/api/session", headers={"Host": host}) as r:
                assert r.status == 403, host


def _secrets(twin: Twin) -> set[str]:
    """Every key the twin keeps (P3 GUEK/GAK/master/HLS secret, the gas meter's Default and
    User keys): 16 bytes or more of hex in the stored settings."""
    rows = twin.store._db.execute("SELECT value FROM settings").fetchall()
    return {m.lower() for (value,) in rows for m in re.findall(r"[0-9a-fA-F]{32,}", value)}


def _forms(secret: str) -> list[str]:
    raw = bytes.fromhex(secret)
    return [secret, secret.upper(), base64.b64encode(raw).decode(), raw.hex(" ")]


async def test_no_web_response_carries_a_key(tmp_path: Path) -> None:
    async with running_twin(tmp_path) as running, Session() as session:
        for _ in range(100):  # the gas meter is installed and keyed (its User key stored)
            if running.twin.control.ports["p2"]()["channels"]:
                break
            await asyncio.sleep(0.05)
        secrets = _secrets(running.twin)
        assert len(secrets) >= 5, "the P3 keys and the gas meter's keys were not found"
        texts = []
        for path in ("/", "/static/app.js", "/api/session", "/api/state"):
            async with session.get(running.url + path) as response:
                texts.append(await response.text())
        async with session.get(running.url + "/api/stream") as stream:
            texts.append(json.dumps(await _first_event(stream)))
        requests: list[dict[str, Any]] = [
            {"cmd": "gas", "battery_low": True},
            {"cmd": "button", "press": "long"},
            {"cmd": "message", "code": "01", "text": "keys?"},
            {"cmd": "tamper"},
        ]
        texts += [json.dumps(await running.control(session, r)) for r in requests]
        texts.append(json.dumps(running.console.status()))
    everything = "\n".join(texts)
    leaked = [s for s in secrets for form in _forms(s) if form in everything]
    assert leaked == []


async def test_a_non_loopback_binding_refuses_everything_without_the_token(
    tmp_path: Path,
) -> None:
    async with running_twin(tmp_path, "http://0.0.0.0:0") as running:
        token_file = tmp_path / "web-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert len(token) >= 40
        url = running.url
        async with Session() as stranger:
            for path in ("/api/session", "/api/state", "/api/stream"):
                async with stranger.get(url + path) as response:
                    assert response.status == 401, path
                    assert "dsmr-twin web-token" in (await response.json())["error"]
            # The page itself holds no data: it loads, and tells how to get the token.
            async with stranger.get(url + "/") as response:
                assert response.status == 200
                assert "<main>" in await response.text()
            async with stranger.post(url + "/api/control", json={"cmd": "admin", "state": 1}) as r:
                assert r.status == 401
            async with stranger.get(url + "/?token=wrong" + token[:8]) as response:
                assert response.status == 401
        bearer = {"Authorization": f"Bearer {token}"}
        async with Session(headers=bearer) as script:
            assert (await running.control(script, {"cmd": "admin", "state": 1}))["ok"] is True
        # The token once in the URL, then a cookie (kept for an IP address, as browsers do).
        async with Session(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
            async with browser.get(url + f"/?token={token}", allow_redirects=False) as response:
                assert response.status == 303
                assert response.headers["Location"] == "/"
                cookie = response.cookies["dsmr_twin_token"]
                assert cookie["httponly"]
                assert cookie["samesite"] == "Strict"
            assert (await running.control(browser, {"cmd": "admin", "state": 2}))["ok"] is True
            async with browser.post(url + "/api/control", json={"cmd": "admin", "state": 1}) as r:
                assert r.status == 403  # the cookie alone is no control: the CSRF token too
    assert running.twin.meter.model.state.admin_state == 2


def test_web_token_prints_the_stored_token_to_who_can_read_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from twin.web.token import load_or_create_token

    assert main(["web-token", "--state-dir", str(tmp_path)]) == 2
    assert "no web token" in capsys.readouterr().err
    token = load_or_create_token(tmp_path)
    assert load_or_create_token(tmp_path) == token  # kept, not made anew
    assert main(["web-token", "--state-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == token
    assert stat.S_IMODE(os.stat(tmp_path / "web-token").st_mode) == 0o600


# ---------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("endpoint", "error"),
    [
        ("127.0.0.1:8059", "expected 'none' or http://HOST[:PORT]"),
        ("https://127.0.0.1:8059", "expected 'none' or http://HOST[:PORT]"),
        ("http://127.0.0.1:70000", "expected 'none' or http://HOST[:PORT]"),
        ("http://::1:8059", "expected 'none' or http://HOST[:PORT]"),
        ("", "expected 'none'"),
    ],
)
def test_a_bad_web_endpoint_is_refused_with_what_is_allowed(endpoint: str, error: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(error)) as raised:
        config_from_mapping({"web": {"endpoint": endpoint}})
    assert "'web.endpoint'" in str(raised.value)


def test_the_web_endpoint_and_its_start_up_line(tmp_path: Path) -> None:
    assert config_from_mapping({}).web.endpoint == "http://127.0.0.1:8059"
    assert not config_from_mapping({"web": {"endpoint": "none"}}).web.serves
    with pytest.raises(ConfigError, match=r"'web\.refresh_s'"):
        config_from_mapping({"web": {"refresh_s": 0}})
    args = argparse.Namespace(config=None, speed=None, p1=None, p3=None, web="none")
    assert not _run_config(args).web.serves  # --web none
    args.web = "http://0.0.0.0:9000"
    assert _run_config(args).web.endpoint == "http://0.0.0.0:9000"
    local = build(replace(_config("http://[::1]:8059"), p3=P3Config(endpoint="none")), tmp_path)
    try:
        assert "web console: open http://[::1]:8059/ in a browser" in where_to_reach(local)[-1]
    finally:
        local.store.close()
    remote = build(replace(_config("http://0.0.0.0:8059"), p3=P3Config("none")), tmp_path)
    try:
        line = where_to_reach(remote)[-1]
    finally:
        remote.store.close()
    assert "http://0.0.0.0:8059/?token=TOKEN" in line
    assert f"dsmr-twin web-token --state-dir {tmp_path}" in line


# ---------------------------------------------------------------------- views


def test_the_chart_spans_the_last_hour_of_meter_time_from_the_step_then_in_force() -> None:
    now = datetime(2026, 6, 21, 12, 0, tzinfo=UTC)
    steps = [
        PowerStep(now - timedelta(minutes=90), (500.0,), (0.0,)),
        PowerStep(now - timedelta(minutes=70), (800.0,), (100.0,)),  # in force at -60 min
        PowerStep(now - timedelta(minutes=30), (200.0,), (1200.0,)),
        PowerStep(now + timedelta(minutes=1), (1.0,), (0.0,)),  # ahead of `now`: not shown
    ]
    chart = power_chart(steps, now)
    assert chart["from"] == (now - CHART_SPAN).isoformat()
    assert chart["steps"] == [
        {"t": (now - CHART_SPAN).isoformat(), "import_w": [700], "export_w": [0], "pv_w": 100},
        {"t": steps[2].time.isoformat(), "import_w": [0], "export_w": [1000], "pv_w": 1200},
    ]


def test_events_are_named_as_in_p3() -> None:
    assert event_name(1) == "Power down"
    assert event_name(40) == "Terminal cover removed"
    assert event_name(124) == "Clock adjusted M-Bus channel 3"
    assert event_name(99) == "event 99"


def test_the_load_profile_bars_are_the_energy_of_each_period_not_the_totals() -> None:
    start = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    quarter = timedelta(minutes=15)
    rows = [
        LoadProfileRow(start, 0, 10_000, 500),
        LoadProfileRow(start + quarter, 0, 10_250, 500),
        LoadProfileRow(start + 2 * quarter, 0x84, 10_250, 620),  # PDN|DNV (P3 §6.3 status)
    ]
    assert profile_bars(rows) == [
        {"t": rows[1].time.isoformat(), "import_wh": 250, "export_wh": 0, "status": 0},
        {"t": rows[2].time.isoformat(), "import_wh": 0, "export_wh": 120, "status": 0x84},
    ]


class _CountingSource:
    """A meter whose status changes at every read (as its time does)."""

    def __init__(self) -> None:
        self.reads = 0

    async def ask(self, request: Mapping[str, Any]) -> dict[str, Any]:
        self.reads += 1
        return {"ok": True, "result": {"n": self.reads}}


async def test_a_page_that_reads_nothing_is_dropped_not_buffered() -> None:
    hub = Hub(_CountingSource(), refresh_s=1.0)
    stalled: asyncio.Queue[str | None] = asyncio.Queue(QUEUE_SIZE)
    hub.pages.add(stalled)
    for _ in range(QUEUE_SIZE):
        await hub.update()
    assert stalled in hub.pages
    assert stalled.qsize() == QUEUE_SIZE
    await hub.update()  # one more than it holds: the page is let go
    assert stalled not in hub.pages
    assert stalled.get_nowait() is None  # its stream ends
    assert stalled.empty()


async def test_pages_beyond_the_limit_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server, "MAX_CLIENTS", 1)
    async with (
        running_twin(tmp_path) as running,
        Session() as session,
        session.get(running.url + "/api/stream") as first,
    ):
        await _first_event(first)
        async with session.get(running.url + "/api/stream") as second:
            assert second.status == 503
        assert running.console.status()["pages_open"] == 1


class _BigSource:
    """A meter whose status is `size` bytes and changes at every read: a page that stops
    reading fills its connection's buffers within a few updates."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.reads = 0

    async def ask(self, request: Mapping[str, Any]) -> dict[str, Any]:
        self.reads += 1
        if request["cmd"] != "status":
            return {"ok": False, "kind": "request", "error": "no such command"}
        return {"ok": True, "result": {"n": self.reads, "pad": "x" * self.size}}


@asynccontextmanager
async def serving(source: Any) -> AsyncIterator[tuple[int, aiohttp.web.AppRunner, Any]]:
    """One meter's console over `source` on a free loopback port: (port, runner, api)."""
    guard = server.Guard("127.0.0.1", "t" * 43, lambda path: False)
    api = server.MeterApi(source, guard, refresh_s=60.0)
    runner = aiohttp.web.AppRunner(server.console_app(guard, api.add_routes), access_log=None)
    guard.bound_port = await server.listen(runner, "127.0.0.1", 0)
    try:
        yield guard.bound_port, runner, api
    finally:
        api.hub.close()
        await runner.cleanup()


@asynccontextmanager
async def stalled_page(port: int, runner: aiohttp.web.AppRunner) -> AsyncIterator[None]:
    """A page that opens the stream and never reads it (a frozen tab), once the console has
    its connection."""
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_connect(stalled, ("127.0.0.1", port))
        request = f"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
        await loop.sock_sendall(stalled, request.encode())
        for _ in range(100):
            if runner.server.connections:  # type: ignore[union-attr]
                break
            await asyncio.sleep(0.01)
        yield
    finally:
        stalled.close()


async def _until_no_connection(runner: aiohttp.web.AppRunner) -> None:
    for _ in range(150):
        if not runner.server.connections:  # type: ignore[union-attr]
            break
        await asyncio.sleep(0.02)
    assert runner.server.connections == []  # type: ignore[union-attr]


class _RemoteSource:
    """A meter reached over a socket (as the fleet console reaches its meters): every
    request waits for its answer, so requests of several pages interleave."""

    async def ask(self, request: Mapping[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return {"ok": True, "result": {"cmd": request["cmd"]}}


async def test_pages_opened_together_stay_within_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The limit holds for pages that connect at the same moment (each waits for its first
    message before streaming): a burst of connections cannot get past it."""
    monkeypatch.setattr(server, "MAX_CLIENTS", 2)
    async with serving(_RemoteSource()) as (port, _, api), Session() as session:
        url = f"http://127.0.0.1:{port}/api/stream"
        streams = await asyncio.gather(*(session.get(url) for _ in range(6)))
        try:
            assert sorted(s.status for s in streams) == [200, 200, 503, 503, 503, 503]
            for stream in streams:
                if stream.status == 200:
                    await _first_event(stream)
            assert len(api.hub.pages) == 2
        finally:
            for stream in streams:
                stream.close()


async def test_a_page_that_reads_no_update_is_let_go_with_its_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Updates pile up for a page that stopped reading: once its queue is full the page is
    dropped, and its connection (and what the server buffered for it) with it."""
    monkeypatch.setattr(server, "WRITE_S", 60.0)
    async with serving(_BigSource(262_144)) as (port, runner, api), stalled_page(port, runner):
        for _ in range(100):  # its first message is taken: it follows the updates
            if api.hub.pages:
                break
            await asyncio.sleep(0.02)
        for _ in range(4 * QUEUE_SIZE):  # some MiB offered, never read
            await api.hub.update()
            await asyncio.sleep(0)
        await _until_no_connection(runner)
        assert api.hub.pages == set()


async def test_a_page_stuck_on_one_update_is_let_go_after_write_s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One update its connection cannot take (the queue never fills): the write waits
    WRITE_S, then the page and its connection are let go."""
    monkeypatch.setattr(server, "WRITE_S", 0.3)
    async with serving(_BigSource(16 << 20)) as (port, runner, api), stalled_page(port, runner):
        began = asyncio.get_running_loop().time()
        await _until_no_connection(runner)
        assert asyncio.get_running_loop().time() - began >= 0.25  # by the time-out
        assert api.hub.pages == set()


async def test_a_control_over_the_size_limit_is_refused_in_json_and_changes_nothing(
    tmp_path: Path,
) -> None:
    async with running_twin(tmp_path) as running, Session() as session:
        csrf = await running.csrf(session)
        huge = {"cmd": "message", "code": "01", "text": "x" * (server.MAX_CONTROL_BYTES + 1)}
        url = running.url + "/api/control"
        async with session.post(url, json=huge, headers={CSRF_HEADER: csrf}) as response:
            assert response.status == 413
            answer = await response.json()
    assert answer["ok"] is False
    assert answer["kind"] == "too-long"
    assert "at most 16 KiB" in answer["error"]
    assert running.twin.meter.model.state.message_text == ""


class _FlakySource:
    """A meter's control socket that goes away and comes back (its worker restarts)."""

    def __init__(self) -> None:
        self.up = True

    async def ask(self, request: Mapping[str, Any]) -> dict[str, Any]:
        if not self.up:
            return {"ok": False, "kind": "unreachable", "error": "no twin is running"}
        return {"ok": True, "result": {"cmd": request["cmd"]}}


async def test_a_meter_that_comes_back_is_no_longer_shown_unreachable() -> None:
    source = _FlakySource()
    hub = Hub(source, refresh_s=1.0)
    assert json.loads((await hub.update())["unreachable"]) is None
    source.up = False
    assert json.loads((await hub.update())["unreachable"]) == "no twin is running"
    source.up = True
    changed = await hub.update()
    assert json.loads(changed["unreachable"]) is None
    # A page opened now is not told the meter is away.
    assert json.loads(server._message(hub.latest))["unreachable"] is None


def test_a_token_file_half_written_by_an_earlier_process_does_not_stop_the_start(
    tmp_path: Path,
) -> None:
    """A twin killed while it wrote the token leaves its temporary file; in a container the
    next start often has the same process id. It makes the token all the same."""
    from twin.web.token import load_or_create_token

    for pid in (os.getpid(), 1):
        (tmp_path / f".web-token.{pid}").write_text("half")
    token = load_or_create_token(tmp_path)
    assert len(token) >= 40
    assert (tmp_path / "web-token").read_text().strip() == token
    assert stat.S_IMODE((tmp_path / "web-token").stat().st_mode) == 0o600


def test_two_twins_making_the_token_at_once_keep_one(tmp_path: Path) -> None:
    """The second to write finds the first's token and takes it, never replaces it (the
    first would otherwise serve a token no file holds)."""
    from twin.web.token import load_or_create_token, write_new_token

    first = load_or_create_token(tmp_path)
    assert write_new_token(tmp_path) == first
    assert (tmp_path / "web-token").read_text().strip() == first
    assert [p.name for p in tmp_path.iterdir()] == ["web-token"]


def _gasmeter(state: dict[str, Any]) -> dict[str, Any]:
    gas: dict[str, Any] = state["status"]["ports"]["gasmeter"]
    return gas


def _gas_ahead_s(state: dict[str, Any]) -> float:
    gas = datetime.fromisoformat(_gasmeter(state)["clock"])
    return (gas - datetime.fromisoformat(state["status"]["meter_time"])).total_seconds()


# Each injection the issue lists, as the page sends it, and what its views then show.
INJECTIONS: list[tuple[dict[str, Any], Any]] = [
    ({"cmd": "sag", "phase": 1, "seconds": 2}, lambda s: s["status"]["phases"][0]["sags"] == 1),
    ({"cmd": "swell", "phase": 1, "seconds": 2}, lambda s: s["status"]["phases"][0]["swells"] == 1),
    (
        {"cmd": "message", "code": "42", "text": "lab"},
        lambda s: s["status"]["message"] == {"code": "42", "text": "lab"},
    ),
    ({"cmd": "load", "watts": 1234.5}, lambda s: s["status"]["load_override_w"] == 1234.5),
    ({"cmd": "tamper", "code": 46}, lambda s: s["events"]["fraud"][0]["code"] == 46),
    ({"cmd": "admin", "state": 0}, lambda s: s["status"]["admin_state"] == 0),
    ({"cmd": "request", "raised": False}, lambda s: not s["status"]["ports"]["p1"]["requested"]),
    # The gas meter's status byte (P2 §6.2.3): battery low is bit 2, fraud bit 6.
    ({"cmd": "gas", "battery_low": True}, lambda s: _gasmeter(s)["status"] & 0x04),
    ({"cmd": "gas", "fraud": True}, lambda s: _gasmeter(s)["status"] & 0x40),
    ({"cmd": "gas", "clock_drift_s": 30}, lambda s: 29 < _gas_ahead_s(s) < 31),
    ({"cmd": "gas", "attached": False}, lambda s: not _gasmeter(s)["attached"]),
    (
        {"cmd": "wakeup", "kind": "sms", "sender": "0612345678"},
        lambda s: s["status"]["ports"]["modem"]["recent_wakeups"][-1]["sender"] == "0612345678",
    ),
    (
        {"cmd": "button", "press": "long"},
        lambda s: s["status"]["ports"]["display"]["mode"] == "service",
    ),
    (
        {"cmd": "power-failure", "seconds": 600},
        lambda s: "Power down" in [e["name"] for e in s["events"]["standard"]],
    ),
]


async def test_every_injection_of_the_issue_is_acknowledged_and_shows_in_its_view(
    tmp_path: Path,
) -> None:
    async with running_twin(tmp_path, modem="simulated") as running, Session() as session:
        missing = []
        for request, shown in INJECTIONS:
            answer = await running.control(session, request)
            assert answer["ok"] is True, (request, answer)
            for _ in range(100):  # a sag's count, the gas meter's next reading: soon after
                async with session.get(running.url + "/api/state") as response:
                    state = await response.json()
                if shown(state):
                    break
                await asyncio.sleep(0.05)
            else:
                missing.append(request)
    assert missing == []


async def test_a_page_that_goes_away_mid_stream_is_forgotten_and_the_meter_runs_on(
    tmp_path: Path,
) -> None:
    async with running_twin(tmp_path) as running, Session() as session:
        async with session.get(running.url + "/api/stream") as stream:
            await _first_event(stream)
            await _first_event(stream)  # the next refresh: it is followed
            assert running.console.status()["pages_open"] == 1
            stream.connection.transport.abort()  # type: ignore[union-attr]  # a tab killed
        for _ in range(100):  # noticed at the next update (each refresh_s: the time moved)
            if running.console.status()["pages_open"] == 0:
                break
            await asyncio.sleep(0.05)
        assert running.console.status()["pages_open"] == 0
        services = running.twin.control.ports["supervisor"]()
        assert services["web"]["state"] == services["meter"]["state"] == "running"
        assert (await running.control(session, {"cmd": "admin", "state": 1}))["ok"] is True


async def _raw_status(port: int, request: bytes) -> bytes:
    """The status line of the answer to one raw HTTP request (bytes a client library would
    not send)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        return (await reader.readline()).rstrip()
    finally:
        writer.close()


async def test_a_token_or_csrf_header_that_is_not_text_is_refused_not_an_error(
    tmp_path: Path,
) -> None:
    """Bytes that are not UTF-8 where the token or the CSRF token goes: 401 or 403, as any
    wrong token, never a server error."""
    async with running_twin(tmp_path, "http://0.0.0.0:0") as running:
        port = running.console.bound_port
        assert port is not None
        head = b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for header in (b"Authorization: Bearer \xff\xfe", b"Cookie: dsmr_twin_token=\xff"):
            status = await _raw_status(port, head + header + b"\r\n\r\n")
            assert status == b"HTTP/1.1 401 Unauthorized", header
        token = (tmp_path / "web-token").read_text().strip().encode()
        post = b"POST /api/control HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + token
        post += b"\r\nContent-Type: application/json\r\nX-CSRF-Token: \xff\r\n"
        post += b"Content-Length: 2\r\n\r\n{}"
        assert await _raw_status(port, post) == b"HTTP/1.1 403 Forbidden"
        assert running.console.status()["refused"] == 3


async def test_the_token_redirect_stays_on_the_console(tmp_path: Path) -> None:
    """`//other.example/?token=...` is a path here, but as a Location it would send the
    browser to another site: the redirect that keeps the token as a cookie stays on this one."""
    async with running_twin(tmp_path, "http://0.0.0.0:0") as running:
        token = (tmp_path / "web-token").read_text().strip().encode()
        port = running.console.bound_port
        assert port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET //other.example/?token=" + token + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        writer.close()
    assert head.startswith("HTTP/1.1 303")
    assert "\r\nLocation: /other.example/\r\n" in head


async def test_error_answers_carry_the_security_headers_too(tmp_path: Path) -> None:
    async with running_twin(tmp_path) as running, Session() as session:
        for path, status in (("/api/control", 405), ("/nothing", 404), ("/static/x.js", 404)):
            async with session.get(running.url + path) as response:
                assert response.status == status, path
                assert response.headers["Cache-Control"] == "no-store", path
                assert response.headers["X-Frame-Options"] == "DENY", path
