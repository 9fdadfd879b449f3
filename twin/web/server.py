"""The web console's HTTP server: the page, its live updates and its controls (aiohttp).

Served in the twin's one asyncio loop as the supervised service "web" (`WebConsole`), or by
`dsmr-twin fleet web` for every meter of a fleet (twin/fleet/web.py, with the same `MeterApi`
under `/meter/N/`). A meter's routes:

- `GET /` the page, `GET /static/...` its script and style (all in the package: no CDN);
- `GET api/session` the CSRF token and the controls with their declared fields;
- `GET api/state` every view once; `GET api/stream` the same as server-sent events, each view
  again whenever it changed (at once after a control, else every `refresh_s`);
- `POST api/control` one control request, `{"cmd": ..., fields}`: it goes through the
  meter's control server (twin/control.py), the one authority over requests, and its answer
  goes back as the socket's.

Everything is read with control requests (twin/web/views.py), so a console in the twin and one
over the meters' control sockets show the same. Server-sent events, not a WebSocket: the page
only listens (its controls are plain POSTs with their own answers), and an EventSource
reconnects by itself after a restart of the twin.

Security (docs/operations.md): on a loopback address no token is asked, but the Host header
must name the loopback (a page of another site that rebinds its DNS name to 127.0.0.1 is
refused). On any other address every API request needs the token (`?token=` once, kept as a
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
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from aiohttp import web

from twin.config import is_loopback
from twin.control import ControlError, decode_request
from twin.web.views import WEB_COMMANDS

if TYPE_CHECKING:
    from twin.control import ControlSocket
    from twin.parts import Twin

log = logging.getLogger(__name__)

COOKIE = "dsmr_twin_token"
CSRF_HEADER = "X-CSRF-Token"
MAX_CONTROL_BYTES = 16 * 1024  # the longest control request (a message) is ~1 KiB
MAX_CLIENTS = 16  # live pages of one meter at once; each costs a queue and a connection
QUEUE_SIZE = 8  # updates queued for one page; a page that reads none of them is dropped
KEEPALIVE_S = 15.0  # an SSE comment this often notices closed pages (and keeps proxies open)
# A page whose connection takes no update for this long (a frozen tab, a client that never
# reads) is let go: waiting on would hold its connection and buffers without end.
WRITE_S = 10.0
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
UNAUTHORISED = (
    "this console needs its token: open it once as http://HOST:PORT/?token=TOKEN;"
    " the service user gets TOKEN with `dsmr-twin web-token --state-dir DIR`"
)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")
ASSETS = ("app.js", "style.css")  # the meter page's files under /static/
# A meter's API under its page: (method, path, the MeterApi handler).
API_ROUTES = (
    ("GET", "api/session", "session"),
    ("GET", "api/state", "state"),
    ("GET", "api/stream", "stream"),
    ("POST", "api/control", "control"),
)


def asset(name: str) -> bytes:
    return resources.files("twin.web").joinpath("static", name).read_bytes()


def asset_route(name: str) -> Handler:
    """A handler that serves one file of the package's static folder."""
    kinds = {"js": "text/javascript", "css": "text/css", "html": "text/html"}
    kind = kinds[name.rpartition(".")[2]]
    body = asset(name)

    async def serve(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, content_type=kind, charset="utf-8")

    return serve


class WebError(OSError):
    """The console cannot be served (its address); the supervisor retries with backoff."""


class Source(Protocol):
    """A meter's control server, as a console reaches it."""

    async def ask(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """The whole answer to one request (`{"ok": ..., "result"/"kind", "error"}`)."""
        ...


class LocalSource:
    """The control server of the twin the console runs in: its dispatch, as the socket's."""

    def __init__(self, control: ControlSocket) -> None:
        self.control = control

    async def ask(self, request: Mapping[str, Any]) -> dict[str, Any]:
        return await self.control.dispatch(json.dumps(request).encode())


async def read_views(source: Source) -> dict[str, Any]:
    """Every view of a meter: `status`, the display frame, and the console views; and
    `unreachable`, why the meter cannot be read (null while it can: a page keeps the last
    views it got, and learns from this that they are old, and when they are current again)."""
    status = await source.ask({"cmd": "status"})
    if not status["ok"]:
        return {"unreachable": status.get("error")}
    views: dict[str, Any] = {"unreachable": None, "status": status["result"]}
    shot = await source.ask({"cmd": "screenshot"})
    if shot["ok"]:  # a twin without a display has no `screenshot` command
        views["display"] = shot["result"]
    console = await source.ask({"cmd": "console-views"})
    if console["ok"]:
        views.update(console["result"])
    return views


class Hub:
    """Sends the views that changed to every open page of one meter."""

    def __init__(self, source: Source, refresh_s: float) -> None:
        self.source = source
        self.refresh_s = refresh_s
        self.pages: set[asyncio.Queue[str | None]] = set()
        self.latest: dict[str, str] = {}  # view -> its last JSON text
        self._poke = asyncio.Event()
        self._lock = asyncio.Lock()
        self.updates = 0  # messages broadcast (status)

    def poke(self) -> None:
        """Something changed: update the pages now (quick; safe from any listener)."""
        self._poke.set()

    async def run(self) -> None:
        while True:
            if self.pages:
                await self.update()
            # With no page open nothing is built and the loop sleeps until one connects.
            await _within(self._poke.wait(), self.refresh_s if self.pages else None)
            self._poke.clear()

    async def update(self) -> dict[str, str]:
        """Read the views, broadcast those that changed; the changed ones."""
        async with self._lock:
            views = await read_views(self.source)
            changed = {}
            for name, value in views.items():
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


async def _within(job: Awaitable[T], timeout_s: float | None) -> tuple[bool, T | None]:
    """(True, `job`'s result), or (False, None) after `timeout_s`. Not `asyncio.timeout`: on
    Python 3.11 a cancellation that meets the time-out there is taken for the time-out and
    lost, and a console that is stopped would wait on forever."""
    task = asyncio.ensure_future(job)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
    finally:
        task.cancel()
    return (True, task.result()) if done else (False, None)


def _end(queue: asyncio.Queue[str | None]) -> None:
    """Tell a page's stream to end: its pending updates are dropped for the end mark."""
    while not queue.empty():
        queue.get_nowait()
    queue.put_nowait(None)


def _message(views: Mapping[str, str]) -> str:
    return "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in views.items()) + "}"


class PageStalledError(Exception):
    """A page's connection took no update within WRITE_S."""


async def _send(response: web.StreamResponse, data: bytes) -> None:
    """Write `data` to a page's stream (PageStalledError when it takes nothing for WRITE_S)."""
    sent, _ = await _within(response.write(data), WRITE_S)
    if not sent:
        raise PageStalledError


def _event(message: str) -> bytes:
    return f"event: update\ndata: {message}\n\n".encode()


class Guard:
    """The console's security checks, as an aiohttp middleware (see the module's text)."""

    def __init__(self, host: str, token: str, public: Callable[[str], bool]) -> None:
        self.host = host
        self.public = public  # paths of pages and their files: no data in them
        self.bound_port: int | None = None  # set once listening
        self.token = token
        self.token_required = not is_loopback(host)
        self.csrf = secrets.token_urlsafe(32)  # per process: a restart ends old sessions
        self.refused = 0

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await self._answer(request, handler)
        except web.HTTPException as exc:  # 404, 405 ...: aiohttp's answers are pages too
            exc.headers.update(SECURITY_HEADERS)
            raise
        response.headers.update(SECURITY_HEADERS)
        return response

    async def _answer(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        refusal = self._refusal(request)
        if refusal is not None:
            self.refused += 1
            status, why = refusal
            return web.json_response(
                {"ok": False, "kind": "forbidden", "error": why}, status=status
            )
        if self.token_required and "token" in request.query and request.method == "GET":
            # The token arrived in the URL: keep it as a cookie and drop it from the address.
            # One leading slash: "//host/" as a Location would lead to another site.
            here = "/" + request.path.lstrip("/")
            response = web.Response(status=303, headers={"Location": here})
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict", path="/")
            return response
        return await handler(request)

    def _refusal(self, request: web.Request) -> tuple[int, str] | None:
        """Why the request is refused (HTTP status, reason), or None."""
        if not self.token_required and not self._loopback_host(request.host):
            return 403, "this console answers only to its loopback address (Host header)"
        # The page and its files hold no data: they load without the token and tell the
        # visitor how to get it (the API they call answers 401).
        public = request.method == "GET" and self.public(request.path)
        open_page = public and "token" not in request.query
        if self.token_required and not open_page and not self._authorised(request):
            return 401, UNAUTHORISED
        if request.method not in ("GET", "HEAD"):
            return self._cross_site(request)
        return None

    def _loopback_host(self, host: str) -> bool:
        """`host` (the Host header) names the loopback. Its port is not checked: a page of
        another site reaches the console only under that site's own name, while an SSH
        tunnel (`ssh -L 9000:127.0.0.1:8059`) makes the browser name the tunnel's port."""
        if host.startswith("["):  # [IPv6] or [IPv6]:port
            name = host[1 : host.find("]")] if "]" in host else ""
        else:
            name = host.partition(":")[0]
        return is_loopback(name)

    def _authorised(self, request: web.Request) -> bool:
        given = request.cookies.get(COOKIE, "")
        bearer = request.headers.get("Authorization", "")
        if bearer.startswith("Bearer "):
            given = bearer.removeprefix("Bearer ")
        if request.method == "GET" and "token" in request.query:
            given = request.query["token"]
        return bool(given) and _same_secret(given, self.token)

    def _cross_site(self, request: web.Request) -> tuple[int, str] | None:
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"http://{request.host}":
            return 403, f"a control from another site ({origin!r}) is refused"
        if request.content_type != "application/json":
            return 415, "a control request is JSON (Content-Type: application/json)"
        given = request.headers.get(CSRF_HEADER, "")
        if not _same_secret(given, self.csrf):
            return 403, f"a control needs the session's {CSRF_HEADER} header (api/session)"
        return None


def _same_secret(given: str, secret: str) -> bool:
    """`given` is `secret`, compared in constant time. aiohttp hands on header bytes that are
    not UTF-8 as surrogates: such a value is simply not the secret (encoded strictly it would
    raise, and a bad header would be a server error)."""
    return hmac.compare_digest(given.encode(errors="surrogateescape"), secret.encode())


class MeterApi:
    """One meter's API routes (session, state, stream, control) over its `Source`."""

    def __init__(self, source: Source, guard: Guard, refresh_s: float) -> None:
        self.source = source
        self.guard = guard
        self.hub = Hub(source, refresh_s)
        self.controls = 0
        self._streams = 0  # stream requests being served

    def add_routes(self, router: web.UrlDispatcher, prefix: str) -> None:
        """Under `prefix` ("" or "/meter/{index}"): the page and its API."""
        router.add_get(f"{prefix}/", asset_route("index.html"))
        for method, path, name in API_ROUTES:
            router.add_route(method, f"{prefix}/{path}", getattr(self, name))

    def status(self) -> dict[str, Any]:
        return {
            "pages_open": len(self.hub.pages),
            "updates": self.hub.updates,
            "controls": self.controls,
        }

    async def session(self, request: web.Request) -> web.StreamResponse:
        controls = await self.source.ask({"cmd": "console-controls"})
        return web.json_response(
            {"csrf": self.guard.csrf, "commands": controls.get("result") or []}
        )

    async def state(self, request: web.Request) -> web.StreamResponse:
        await self.hub.update()
        return web.Response(text=_message(self.hub.latest), content_type="application/json")

    async def stream(self, request: web.Request) -> web.StreamResponse:
        # Counted from the first moment, before any wait: pages that connect together (and
        # pages whose writes are stuck) cannot get past the limit.
        if self._streams >= MAX_CLIENTS:
            return web.json_response({"ok": False, "error": "too many pages open"}, status=503)
        self._streams += 1
        queue: asyncio.Queue[str | None] = asyncio.Queue(QUEUE_SIZE)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        response.headers.update(SECURITY_HEADERS)
        try:
            await response.prepare(request)
            await self.hub.update()
            await _send(response, _event(_message(self.hub.latest)))
            self.hub.pages.add(queue)
            self.hub.poke()  # the hub sleeps while no page is open: it refreshes from now on
            await self._follow(queue, response)
        except ConnectionError:
            log.debug("a web console page went away")
        except PageStalledError:
            log.info("a web console page took no update for %s s: let go", WRITE_S)
        finally:
            self.hub.pages.discard(queue)
            self._streams -= 1
        # A stream ends when its page is let go (it read nothing) or the console stops: a
        # clean end would wait for a page that may never read again, so the connection and
        # what is buffered for it are dropped at once (an EventSource reconnects either way).
        if request.transport is not None:
            request.transport.abort()
        return response

    async def _follow(self, queue: asyncio.Queue[str | None], response: web.StreamResponse) -> None:
        """Send the page each update until the hub ends its stream."""
        while True:
            arrived, message = await _within(queue.get(), KEEPALIVE_S)
            if not arrived:
                await _send(response, b": keep-alive\n\n")
            elif message is None:
                return
            else:
                await _send(response, _event(message))

    async def control(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            # Answered as the control socket answers a line over its limit, so the page can
            # show why (aiohttp's own answer is plain text).
            error = f"a control request is at most {MAX_CONTROL_BYTES // 1024} KiB"
            return web.json_response({"ok": False, "kind": "too-long", "error": error}, status=413)
        answer = await self._control(body)
        return web.json_response(answer, status=200 if answer.get("ok") else 400)

    async def _control(self, body: bytes) -> dict[str, Any]:
        try:
            # The control server's own decoder: a malformed body gets the socket's answer.
            command = decode_request(body)
        except ControlError as exc:
            return {"ok": False, "kind": exc.kind, "error": str(exc)}
        if command["cmd"] not in WEB_COMMANDS:
            error = f"{command['cmd']!r} is not offered on the web console; use dsmr-twin ctl"
            return {"ok": False, "kind": "request", "error": error}
        # The meter's control server checks every field, as for the socket.
        answer = await self.source.ask(command)
        self.controls += 1
        self.hub.poke()
        return answer


def console_app(
    guard: Guard, add_routes: Callable[[web.UrlDispatcher, str], None]
) -> web.Application:
    """A console's application: the guard before every route, the page's files, and the
    routes `add_routes` adds at the root."""
    app = web.Application(middlewares=[guard.middleware], client_max_size=MAX_CONTROL_BYTES)
    for name in ASSETS:
        app.router.add_get(f"/static/{name}", asset_route(name))
    add_routes(app.router, "")
    return app


async def listen(runner: web.AppRunner, host: str, port: int) -> int:
    """Start serving `runner` on HOST:PORT; the port bound (0 asks for any free one)."""
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:  # the port is taken, the address is not this host's
        shown = f"[{host}]" if ":" in host else host
        why = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        raise WebError(f"cannot listen on http://{shown}:{port}/: {why}") from exc
    return int(runner.addresses[0][1]) if runner.addresses else port


def console_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


class WebConsole:
    """The console of the twin it runs in: the service "web"."""

    def __init__(self, twin: Twin, host: str, port: int, token: str, refresh_s: float) -> None:
        self.twin = twin
        self.host, self.port = host, port
        self.guard = Guard(host, token, {"/", *(f"/static/{n}" for n in ASSETS)}.__contains__)
        self.api = MeterApi(LocalSource(twin.control), self.guard, refresh_s)
        self.hub = self.api.hub

    @property
    def bound_port(self) -> int | None:
        return self.guard.bound_port

    @property
    def token_required(self) -> bool:
        return self.guard.token_required

    @property
    def url(self) -> str:
        return console_url(self.host, self.bound_port or self.port)

    def status(self) -> dict[str, Any]:
        """For `ctl status` (never the token)."""
        return {
            "url": self.url,
            "token_required": self.token_required,
            **self.api.status(),
            "refused": self.guard.refused,
        }

    def app(self) -> web.Application:
        return console_app(self.guard, self.api.add_routes)

    async def run(self) -> None:
        """Serve until cancelled (the supervisor's service "web")."""
        # A new application each run: one that was cleaned up is not started again.
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=SHUTDOWN_S)
        try:
            self.guard.bound_port = await listen(runner, self.host, self.port)
            log.info(
                "web console at %s%s",
                self.url,
                " (token required: dsmr-twin web-token)" if self.token_required else "",
            )
            self.twin.meter.on_events.append(self.hub.poke)
            await self.hub.run()
        finally:
            with contextlib.suppress(ValueError):
                self.twin.meter.on_events.remove(self.hub.poke)
            self.hub.close()
            await runner.cleanup()
