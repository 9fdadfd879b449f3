"""The web console's HTTP server: the page, its live updates and its controls (aiohttp).

Served in the twin's one asyncio loop as the supervised service "web". Routes:

- `GET /` the page, `GET /static/...` its script and style (all in the package: no CDN);
- `GET /api/session` the CSRF token and the controls with their declared fields;
- `GET /api/state` every section once; `GET /api/stream` the same as server-sent events,
  each section again whenever it changed (at once after a control, else every `refresh_s`);
- `POST /api/control` one control request, `{"cmd": ..., fields}`: it goes through the
  control server's dispatch (twin/control.py), the one authority over requests, and its
  answer goes back as the socket's.

Security (docs/operations.md): on a loopback address no token is asked, but the Host header
must name the loopback (a page of another site that rebinds its DNS name to 127.0.0.1 is
refused). On any other address every request needs the token (`?token=` once, kept as a
SameSite=Strict cookie, or `Authorization: Bearer`). Every POST needs the session's CSRF token
in the X-CSRF-Token header, JSON content and, when the browser sends one, an Origin equal to
the console's own: a cross-site page can neither read the CSRF token nor send that header.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

from aiohttp import web

from twin.config import is_loopback
from twin.web.views import WEB_COMMANDS, Views

if TYPE_CHECKING:
    from twin.parts import Twin

log = logging.getLogger(__name__)

COOKIE = "dsmr_twin_token"
CSRF_HEADER = "X-CSRF-Token"
MAX_CONTROL_BYTES = 16 * 1024  # the longest control request (a message) is ~1 KiB
MAX_CLIENTS = 16  # live pages at once; each costs a queue and a connection
QUEUE_SIZE = 8  # updates queued for one page; a page that reads none of them is dropped
KEEPALIVE_S = 15.0  # an SSE comment this often notices closed pages (and keeps proxies open)
EVENTS_REFRESH_S = 10.0  # the event logs are read again at least this often (P3 resets)
SHUTDOWN_S = 1.0
# What the browser may do with the page: its own script and style only, no frames.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
        " connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",  # the token may be in the first URL
    "Cache-Control": "no-store",
}
STATIC = ("app.js", "style.css")
UNAUTHORISED = (
    "this console needs its token: open it once as http://HOST:PORT/?token=TOKEN;"
    " the service user gets TOKEN with `dsmr-twin web-token --state-dir DIR`"
)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _asset(name: str) -> bytes:
    return resources.files("twin.web").joinpath("static", name).read_bytes()


class WebError(OSError):
    """The console cannot be served (its address); the supervisor retries with backoff."""


class Hub:
    """Sends the sections that changed to every open page."""

    def __init__(self, views: Views, refresh_s: float) -> None:
        self.views = views
        self.refresh_s = refresh_s
        self.pages: set[asyncio.Queue[str | None]] = set()
        self.latest: dict[str, str] = {}  # section -> its last JSON text
        self._poke = asyncio.Event()
        self._lock = asyncio.Lock()
        self.updates = 0  # messages broadcast (bench/bench_web.py, status)

    def poke(self) -> None:
        """Something changed: update the pages now (quick; safe from any listener)."""
        self._poke.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        events_read = loop.time()
        while True:
            if self.pages:
                if loop.time() - events_read >= EVENTS_REFRESH_S:
                    self.views.events_dirty, events_read = True, loop.time()
                await self.update()
            # With no page open nothing is built and the loop sleeps until one connects.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.refresh_s if self.pages else None):
                    await self._poke.wait()
            self._poke.clear()

    async def update(self) -> dict[str, str]:
        """Build the sections, broadcast those that changed; the changed ones."""
        async with self._lock:
            sections = await self.views.sections()
            changed = {}
            for name, value in sections.items():
                text = json.dumps(value, separators=(",", ":"))
                if self.latest.get(name) != text:
                    changed[name] = self.latest[name] = text
            if changed:
                self.updates += 1
                self._broadcast(_message(changed))
            return changed

    def _broadcast(self, message: str) -> None:
        for queue in list(self.pages):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:
                # A page that reads nothing (a stopped tab): dropped, not buffered forever.
                self.pages.discard(queue)
                _end(queue)

    def close(self) -> None:
        """End every stream (the service stops)."""
        for queue in self.pages:
            _end(queue)
        self.pages.clear()


def _end(queue: asyncio.Queue[str | None]) -> None:
    """Tell a page's stream to end: its pending updates are dropped for the end mark."""
    while not queue.empty():
        queue.get_nowait()
    queue.put_nowait(None)


def _message(sections: dict[str, str]) -> str:
    return "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in sections.items()) + "}"


class WebConsole:
    """The aiohttp application and its security checks, for one twin."""

    def __init__(self, twin: Twin, host: str, port: int, token: str, refresh_s: float) -> None:
        self.twin = twin
        self.host, self.port = host, port
        self.bound_port: int | None = None
        self.token = token
        self.token_required = not is_loopback(host)
        self.csrf = secrets.token_urlsafe(32)  # per process: a restart ends old sessions
        self.views = Views(twin)
        self.hub = Hub(self.views, refresh_s)
        self.refused = 0
        self.controls = 0
        self._assets = {f"/static/{name}" for name in STATIC}

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.bound_port or self.port}/"

    def status(self) -> dict[str, Any]:
        """For `ctl status` (never the token)."""
        return {
            "url": self.url,
            "token_required": self.token_required,
            "pages_open": len(self.hub.pages),
            "updates": self.hub.updates,
            "controls": self.controls,
            "refused": self.refused,
        }

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=MAX_CONTROL_BYTES)
        app.router.add_get("/", self._index)
        for name in STATIC:
            app.router.add_get(f"/static/{name}", self._static(name))
        app.router.add_get("/api/session", self._session)
        app.router.add_get("/api/state", self._state)
        app.router.add_get("/api/stream", self._stream)
        app.router.add_post("/api/control", self._control)
        return app

    async def run(self) -> None:
        """Serve until cancelled (the supervisor's service "web")."""
        # A new application each run: one that was cleaned up is not started again.
        runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=SHUTDOWN_S)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            try:
                await site.start()
            except OSError as exc:  # the port is taken, the address is not this host's
                why = os.strerror(exc.errno).lower() if exc.errno else str(exc)
                raise WebError(f"cannot listen on {self.url}: {why}") from exc
            # The port bound, when 0 asked for any free one.
            self.bound_port = int(runner.addresses[0][1]) if runner.addresses else self.port
            log.info(
                "web console at %s%s",
                self.url,
                " (token required: dsmr-twin web-token)" if self.token_required else "",
            )
            self.twin.meter.on_events.append(self._on_events)
            await self.hub.run()
        finally:
            with contextlib.suppress(ValueError):
                self.twin.meter.on_events.remove(self._on_events)
            self.hub.close()
            await runner.cleanup()

    def _on_events(self) -> None:
        self.views.events_dirty = True
        self.hub.poke()

    # ------------------------------------------------------------------ security

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        refusal = self._refusal(request)
        if refusal is not None:
            self.refused += 1
            status, why = refusal
            response: web.StreamResponse = web.json_response(
                {"ok": False, "kind": "forbidden", "error": why}, status=status
            )
        elif self.token_required and request.path == "/" and "token" in request.query:
            # The token arrived in the URL: keep it as a cookie and drop it from the address.
            response = web.Response(status=303, headers={"Location": "/"})
            response.set_cookie(
                COOKIE, self.token, httponly=True, samesite="Strict", path="/", max_age=None
            )
        else:
            response = await handler(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    def _refusal(self, request: web.Request) -> tuple[int, str] | None:
        """Why the request is refused (HTTP status, reason), or None."""
        if not self.token_required and not self._loopback_host(request.host):
            return 403, "this console answers only to its loopback address (Host header)"
        # The page and its assets hold no data: they load without the token and tell the
        # visitor how to get it (the API they call answers 401).
        public = request.method == "GET" and (
            (request.path == "/" and "token" not in request.query) or request.path in self._assets
        )
        if self.token_required and not public and not self._authorised(request):
            return 401, UNAUTHORISED
        if request.method not in ("GET", "HEAD"):
            return self._cross_site(request)
        return None

    def _loopback_host(self, host: str) -> bool:
        name, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        name = name.strip("[]")
        return is_loopback(name) and port == str(self.bound_port or self.port)

    def _authorised(self, request: web.Request) -> bool:
        given = request.cookies.get(COOKIE, "")
        bearer = request.headers.get("Authorization", "")
        if bearer.startswith("Bearer "):
            given = bearer.removeprefix("Bearer ")
        if request.method == "GET" and request.path == "/" and "token" in request.query:
            given = request.query["token"]
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    def _cross_site(self, request: web.Request) -> tuple[int, str] | None:
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"http://{request.host}":
            return 403, f"a control from another site ({origin!r}) is refused"
        if request.content_type != "application/json":
            return 415, "a control request is JSON (Content-Type: application/json)"
        given = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.csrf.encode()):
            return 403, f"a control needs the session's {CSRF_HEADER} header (GET /api/session)"
        return None

    # ------------------------------------------------------------------ routes

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=_asset("index.html"), content_type="text/html", charset="utf-8")

    def _static(self, name: str) -> Handler:
        kind = "text/javascript" if name.endswith(".js") else "text/css"
        body = _asset(name)

        async def serve(request: web.Request) -> web.StreamResponse:
            return web.Response(body=body, content_type=kind, charset="utf-8")

        return serve

    async def _session(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {
                "csrf": self.csrf,
                "equipment_id": self.twin.config.meter.equipment_id,
                "commands": self.views.commands(),
            }
        )

    async def _state(self, request: web.Request) -> web.StreamResponse:
        await self.hub.update()
        return web.Response(text=_message(self.hub.latest), content_type="application/json")

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        if len(self.hub.pages) >= MAX_CLIENTS:
            return web.json_response({"ok": False, "error": "too many pages open"}, status=503)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        response.headers.update(SECURITY_HEADERS)
        await response.prepare(request)
        queue: asyncio.Queue[str | None] = asyncio.Queue(QUEUE_SIZE)
        await self.hub.update()
        await response.write(_event(_message(self.hub.latest)))
        self.hub.pages.add(queue)
        self.hub.poke()  # the hub sleeps while no page is open: it refreshes from now on
        try:
            while True:
                try:
                    async with asyncio.timeout(KEEPALIVE_S):
                        message = await queue.get()
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if message is None:
                    break
                await response.write(_event(message))
        except ConnectionError:
            log.debug("a web console page went away")
        finally:
            self.hub.pages.discard(queue)
        return response

    async def _control(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        name = _command_name(body)
        if name is not None and name not in WEB_COMMANDS:
            answer = {
                "ok": False,
                "kind": "request",
                "error": f"{name!r} is not offered on the web console; use dsmr-twin ctl",
            }
        else:
            # The control server's dispatch checks everything else, as for the socket.
            answer = await self.twin.control.dispatch(body)
            self.controls += 1
            self.hub.poke()
        return web.json_response(answer, status=200 if answer.get("ok") else 400)


def _command_name(body: bytes) -> str | None:
    """The "cmd" of a request, if it has one (the dispatch reports every other fault)."""
    try:
        request = json.loads(body)
    except (ValueError, RecursionError):
        return None
    command = request.get("cmd") if isinstance(request, dict) else None
    return command if isinstance(command, str) else None


def _event(message: str) -> bytes:
    return f"event: update\ndata: {message}\n\n".encode()
