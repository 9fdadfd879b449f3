"""`dsmr-twin fleet web`: a fleet's overview and every meter's console in a browser.

A process of its own beside the fleet (like `dsmr-twin fleet ctl`): it reads each meter through
the meter's own control socket and never holds a meter. Routes:

- `GET /` the overview (fleet.html): one row per meter with its state and errors, filtered
  and sorted on the page; `GET /api/fleet` its data, `fleet ctl status --json`'s, read again at
  most every OVERVIEW_S while a page asks;
- `/meter/N/` meter N's console: the same page and API as a twin's own (twin/web/server.py),
  over its control socket, so its views and controls are the meter's own (each control goes
  to that meter's control server).

The overview polls (a fleet's table is read as a batch, and a page that is gone costs nothing);
a meter's page streams, as a twin's own does. The security is the twin console's (`Guard`),
with the token in the fleet's state directory.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from twin.control import ControlError
from twin.fleet.control import fleet_status, meter_ask
from twin.fleet.spec import FleetSpec
from twin.web.server import (
    API_ROUTES,
    ASSETS,
    SHUTDOWN_S,
    Guard,
    Handler,
    MeterApi,
    asset_route,
    console_app,
    console_url,
    listen,
)

log = logging.getLogger(__name__)

OVERVIEW_S = 2.0  # the overview's data is read at most this often, however many pages ask
ASK_TIMEOUT_S = 5.0
# A meter's page, and its address typed without the slash (a redirect to it).
METER_PAGE = re.compile(r"/meter/\d+/?")


class RemoteSource:
    """Meter `index`'s control server, through its socket in the fleet's directory."""

    def __init__(self, fleet_dir: Path, index: int) -> None:
        self.fleet_dir, self.index = fleet_dir, index

    async def ask(self, request: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return await meter_ask(self.fleet_dir, self.index, request, ASK_TIMEOUT_S)
        except ControlError as exc:  # the meter is not running (its worker restarts)
            return {"ok": False, "kind": "unreachable", "error": str(exc)}


class FleetConsole:
    def __init__(
        self,
        fleet_dir: Path,
        host: str,
        port: int,
        token: str,
        refresh_s: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fleet_dir = fleet_dir
        self.monotonic = monotonic  # when the overview was read (a test moves it)
        self.spec = FleetSpec.load(fleet_dir)
        self.host, self.port = host, port
        self.refresh_s = refresh_s
        self.guard = Guard(host, token, self._public)
        self.meters: dict[int, MeterApi] = {}
        self._hubs: set[asyncio.Task[None]] = set()
        self._overview: tuple[float, dict[str, Any]] | None = None
        self._overview_lock = asyncio.Lock()

    @property
    def url(self) -> str:
        return console_url(self.host, self.guard.bound_port or self.port)

    def _public(self, path: str) -> bool:
        files = {f"/static/{name}" for name in (*ASSETS, "fleet.js")}
        return path == "/" or path in files or METER_PAGE.fullmatch(path) is not None

    def app(self) -> web.Application:
        return console_app(self.guard, self._add_routes)

    def _add_routes(self, router: web.UrlDispatcher, prefix: str) -> None:
        router.add_get("/", asset_route("fleet.html"))
        router.add_get("/static/fleet.js", asset_route("fleet.js"))
        router.add_get("/api/fleet", self._fleet)
        meter = r"/meter/{index:\d+}"
        router.add_get(meter, self._to_page)
        # The page is the same for every meter and holds no data (a stranger off loopback may
        # load it): it neither checks the meter nor starts reading it; its API does.
        router.add_get(meter + "/", asset_route("index.html"))
        for method, path, name in API_ROUTES:
            router.add_route(method, f"{meter}/{path}", self._route(name))

    async def run(self) -> None:
        """Serve until cancelled."""
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=SHUTDOWN_S)
        try:
            self.guard.bound_port = await listen(runner, self.host, self.port)
            log.info("fleet console at %s (%d meters)", self.url, self.spec.count)
            await asyncio.Event().wait()
        finally:
            for api in self.meters.values():
                api.hub.close()
            for task in self._hubs:
                task.cancel()
            await asyncio.gather(*self._hubs, return_exceptions=True)
            await runner.cleanup()

    def meter(self, index: int) -> MeterApi:
        """Meter `index`'s API, made when its page first asks (HTTPNotFound, in JSON for the
        page to show, if the fleet has no such meter)."""
        if index not in self.spec.indices:
            error = f"the fleet has meters {self.spec.first} to {self.spec.indices[-1]}"
            raise web.HTTPNotFound(
                text=json.dumps({"ok": False, "kind": "request", "error": error}),
                content_type="application/json",
            )
        api = self.meters.get(index)
        if api is None:
            api = MeterApi(RemoteSource(self.fleet_dir, index), self.guard, self.refresh_s)
            self.meters[index] = api
            task = asyncio.create_task(api.hub.run(), name=f"fleet-web.meter-{index}")
            self._hubs.add(task)
        return api

    async def _to_page(self, request: web.Request) -> web.StreamResponse:
        # The page's API is relative to it: /meter/N/ with its slash.
        raise web.HTTPPermanentRedirect(f"/meter/{request.match_info['index']}/")

    def _route(self, name: str) -> Handler:
        """The handler `name` of the meter the request's path names."""

        async def handle(request: web.Request) -> web.StreamResponse:
            api = self.meter(int(request.match_info["index"]))
            handler: Handler = getattr(api, name)
            return await handler(request)

        return handle

    async def _fleet(self, request: web.Request) -> web.StreamResponse:
        async with self._overview_lock:
            now = self.monotonic()
            if self._overview is None or now - self._overview[0] >= OVERVIEW_S:
                try:
                    self._overview = (now, await fleet_status(self.fleet_dir))
                except ControlError as exc:  # the fleet's record of its workers is unreadable
                    answer = {"ok": False, "kind": "unreachable", "error": str(exc)}
                    return web.json_response(answer, status=503)
            overview = self._overview[1]
        return web.json_response(overview)


async def serve_until(console: FleetConsole, stop: asyncio.Event) -> None:
    """Run `console` until `stop` is set (a WebError, its address, ends it at once)."""
    serving = asyncio.create_task(console.run())
    stopping = asyncio.create_task(stop.wait())
    done, pending = await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if serving in done:
        serving.result()
