"""The P3 TCP service: asyncio glue around the sans-IO `DlmsServer` (docs/architecture.md).

- COSEM wrapper over TCP (P3 §3, default port 4059), one DLMS connection at a time:
  `nb_of_sim_conn` = 1 (P3 Table 3-1). A second connection is closed at once, unanswered,
  and the first one goes on undisturbed.
- Inactivity: `inactivity_time_out` of TCP-UDP setup 0-0:25.0.0 (P3 Table 3-1, default 300 s;
  0 = not supervised) closes a connection that received nothing for that long. It is a network
  timer, so it runs on the injected network clock (real time in a running twin, whatever speed
  the meter clock has; a ManualClock in tests).
- Association time-out: with one slot, a client that connects and never completes an
  association (silent, half a header, an unknown client SAP, HLS pass 3 never sent) would hold
  the meter for the whole inactivity time-out. A connection without an established association
  is closed after `association_timeout_s` (`[p3]`, default 10 s) from its opening or from the
  end of its last association. DSMR P3 names no such timer; head-ends send the AARQ right after
  connecting (P3 §3.3: sessions "as short as possible"), and the AARQ plus HLS pass 3/4 take
  two round trips, a few seconds over GPRS. (Other protocols use the same guard, e.g. DICOM's
  association-request timeout or OPC UA Part 6 §7.1.3 for the Hello message.)
- Bookkeeping through the meter model (`meter.act`): fraud event 46 "failed login attempt"
  (P3 §4.2.1) for a failed HLS or an AARQ of client 1 refused for its credentials, once per
  burst, with a lock-out after repeated failures (`twin.p3.server.logins`). Lines anyone who reaches
  the port can cause are logged at DEBUG and counted in `status()`.
- Each connection serves the object model through its own `ObjectSession`, which records the
  management client's calls; when the association ends (RLRQ, silent release, abort or lost
  connection) the session is told, so the object model writes the communication session log
  entries with their counters (P3 §5.10, §8.7) and completes what waits for the release (a
  firmware activation, P3 §5.12; a meter reset, §8.5).
- The object model is ticked when what it schedules on the meter clock (calendar activation,
  definable profile captures) is due, even when no client is connected, and after every SET or
  ACTION and clock set that may move it; an idle meter's object model does not wake otherwise.
- Bad bytes never crash anything: the core answers or releases silently; a core error closes
  only that connection; the meter keeps metering.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from twin.clock import Clock
from twin.meter.events import EventCode
from twin.metering import Meter
from twin.p3.dlms.acse import Mechanism
from twin.p3.dlms.cosem import AttributeRef
from twin.p3.dlms.errors import P3Error
from twin.p3.keys import KeyStore
from twin.p3.objects.abstract import HLS_ON_P3_BITS
from twin.p3.objects.base import obis_bytes
from twin.p3.objects.settings import read_data
from twin.p3.objects.values import Tag, ValueTypeError
from twin.p3.server.association import MANAGEMENT_CLIENT, ServerConfig, State
from twin.p3.server.connection import DlmsServer
from twin.p3.server.events import (
    Associated,
    AuthenticationFailed,
    CloseConnection,
    CounterExhausted,
    Released,
    ServerEvent,
    Transmit,
)
from twin.p3.server.interfaces import CosemObjects, SpecFirstCounter
from twin.p3.server.logins import LoginGuard
from twin.store import WRITE_WAIT_S

log = logging.getLogger(__name__)

DEFAULT_PORT = 4059  # P3 §3: "the standardized port number 4059"
DEFAULT_INACTIVITY_S = 300  # P3 Table 3-1
DEFAULT_ASSOCIATION_TIMEOUT_S = 10.0  # see the module docstring
HEARTBEAT_S = 5.0
ENDING_GRACE_S = 0.2  # real seconds a closing, unassociated connection gets
TCP_UDP_SETUP = AttributeRef(41, obis_bytes("0-0:25.0.0"), 6)
CONFIGURATION_OBJECT = AttributeRef(1, obis_bytes("0-1:94.31.3"), 2)
_HLS_BY_FLAG = dict(
    zip(HLS_ON_P3_BITS, (Mechanism.HLS_MD5, Mechanism.HLS_SHA1, Mechanism.HLS_GMAC), strict=True)
)


# Longest real time between two object model ticks: the ticker wakes when the next capture
# or activation is due, at a clock set or a SET; this beat only bounds a missed wake-up.
TICK_BEAT_S = 60.0


class ObjectSession(CosemObjects, Protocol):
    """The object model as one connection sees it."""

    def associated(self, mechanism: int) -> None:
        """An association is established with this authentication mechanism (0-5)."""
        ...

    def released(self) -> None:
        """The association ended (released, aborted or the connection lost)."""
        ...


class ObjectModel(CosemObjects, Protocol):
    """What the service needs of the object model (twin.p3.objects.DsmrObjects)."""

    def session(self) -> ObjectSession: ...

    def tick(self) -> None:
        """Run what is due on the meter clock; cheap when nothing is."""
        ...

    def next_due(self) -> datetime | None:
        """When `tick` next has work on the meter clock; None: nothing scheduled."""
        ...

    @property
    def on_change(self) -> list[Callable[[], None]]:
        """Called after a SET or ACTION (what `next_due` answers may have moved)."""
        ...


class UrandomChallenges:
    """StoC challenges for HLS (Green Book §9.2.7.4): fresh random bytes each time."""

    def challenge(self, length: int) -> bytes:
        return os.urandom(length)


@dataclass(frozen=True, slots=True)
class ConfiguredMechanisms:
    """The `MechanismPolicy` of P3 §8.3: flags HLS_3/4/5_on_P3_enable of the configuration
    object 0-1:94.31.3, read at every AARQ (a change applies to the next association). The
    read goes to the object model itself, not a connection's session: it is no client call."""

    objects: CosemObjects

    def enabled_mechanisms(self) -> frozenset[Mechanism]:
        value = read_data(self.objects, CONFIGURATION_OBJECT)
        try:
            if value is None:
                raise ValueTypeError("configuration object unreadable")
            flags = str(value.items[1].expect(Tag.BIT_STRING).value)
        except (IndexError, ValueTypeError):
            return frozenset({Mechanism.HLS_GMAC})
        return frozenset(m for bit, m in _HLS_BY_FLAG.items() if flags[bit : bit + 1] == "1")


def inactivity_time_out_s(objects: CosemObjects) -> int:
    """TCP-UDP setup 0-0:25.0.0 attribute 6 (long-unsigned seconds; default 300)."""
    value = read_data(objects, TCP_UDP_SETUP)
    try:
        return int(value.integer()) if value is not None else DEFAULT_INACTIVITY_S
    except ValueTypeError:
        return DEFAULT_INACTIVITY_S


@dataclass(slots=True)
class Counters:
    """What `ctl status` shows of P3."""

    connections: int = 0
    refused: int = 0
    associations: int = 0
    auth_failures: int = 0
    aborted: int = 0
    inactivity_closes: int = 0
    association_timeouts: int = 0  # closed for completing no association in time
    errors: int = 0
    counter_exhausted: int = 0  # ciphered services refused for want of a counter
    by_client: dict[int, int] = field(default_factory=dict)
    closes: dict[str, int] = field(default_factory=dict)  # connection ends by cause (Cause)


class Cause:
    """Why a served connection ended: the head-end's side (peer-*) or the meter's reason. A
    head-end that saw a reset looks here for which side closed, and why."""

    PEER_CLOSED = "peer-closed"  # end of input (FIN): the head-end closed
    PEER_LOST = "peer-lost"  # reset or another socket error (the head-end or the network)
    PROTOCOL = "protocol"  # the core ended it: bad frame, ciphering, frame counter (P3 §3.2.3)
    ERROR = "error"  # a core error on the meter's side
    INACTIVITY = "inactivity"  # inactivity_time_out of 0-0:25.0.0
    ASSOCIATION_TIMEOUT = "association-timeout"  # [p3] association_timeout_s
    STOPPED = "stopped"  # the listener stopped (GPRS context gone, shutdown)


class Link(asyncio.Protocol):
    """The socket of one accepted connection. Its bytes go to the `Connection` in the
    callback that receives them: no task switch, read future or drain per APDU (a fleet
    worker serves thousands a second). Reading pauses while the connection is not ready for
    more (being set up, waiting for the store, the peer not reading its answers), so requests
    are handled strictly one after the other, as they arrive."""

    def __init__(self, service: P3Service) -> None:
        self.service = service
        self.transport: asyncio.Transport | None = None
        self.connection: Connection | None = None
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._held: list[bytes] = []  # arrived while reading was being paused
        self.cause: str | None = None  # why it ended: the first of Cause to happen
        self._pauses: set[str] = {"setup"}
        self._accepting: asyncio.Task[None] | None = None

    @property
    def peer(self) -> str:
        return "?" if self.transport is None else str(self.transport.get_extra_info("peername"))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.pause_reading()  # until the connection is set up ("setup")
        self._accepting = asyncio.create_task(self.service.accept(self), name="dsmr-twin.p3.conn")

    def data_received(self, data: bytes) -> None:
        if self.connection is None or self._pauses:
            self._held.append(data)
        else:
            self.connection.received(data)

    def eof_received(self) -> bool:
        self.end(Cause.PEER_CLOSED)
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            log.debug("P3 connection %s lost: %s", self.peer, exc)
        self.end(Cause.PEER_LOST if exc is not None else Cause.PEER_CLOSED)

    def pause_writing(self) -> None:
        self.pause("writing")  # the peer does not read its answers: read no more requests

    def resume_writing(self) -> None:
        self.resume("writing")

    def start(self, connection: Connection) -> None:
        """The connection is set up: hand it what arrived meanwhile, then read on."""
        self.connection = connection
        self.resume("setup")

    def pause(self, reason: str) -> None:
        if not self._pauses and self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()
        self._pauses.add(reason)

    def resume(self, reason: str) -> None:
        self._pauses.discard(reason)
        while self._held and not self._pauses and self.connection is not None:
            self.connection.received(self._held.pop(0))
        if not self._pauses and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def end(self, cause: str) -> None:
        if self.cause is None:
            self.cause = cause
        if not self.ended.done():
            self.ended.set_result(None)

    def close(self, cause: str) -> None:
        if self.cause is None:
            self.cause = cause
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class Connection:
    """One accepted TCP connection and its `DlmsServer`."""

    def __init__(self, service: P3Service, link: Link) -> None:
        self.service = service
        self.link = link
        self.peer = link.peer
        self.since = service.net_clock.now()
        self.last_activity = self.since
        self.unassociated_since = self.since  # the association time-out counts from here
        self.client: int | None = None
        self._after_release: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self.session = service.objects.session()
        self.server = DlmsServer(
            ServerConfig(service.keys.material.system_title),
            self.session,
            keys=service.keys,
            counters=service.keys.counters,
            challenges=service.challenges,
            first_counter=SpecFirstCounter(),  # P3 §3.2.3: the first counter is not checked
            mechanisms=ConfiguredMechanisms(service.objects),
            logins=service.logins,
        )

    async def serve(self) -> None:
        self.rewatch()
        try:
            await self.service.prepare_session()
            self.link.start(self)
            await self.link.ended  # end of input, a lost connection or a CloseConnection
        finally:
            watchdog, self._watchdog = self._watchdog, None
            if watchdog is not None:
                watchdog.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watchdog
            if self._apply(self.server.connection_lost()):
                await self.service.queued_writes()
            self._close(Cause.ERROR)  # a cause not already given: an error of ours
            self._ended()

    def _ended(self) -> None:
        cause = self.link.cause or Cause.ERROR
        closes = self.service.counters.closes
        closes[cause] = closes.get(cause, 0) + 1
        # DEBUG: anyone who can reach the port can cause this line (see docs/operations.md).
        log.debug("P3 connection %s ended: %s", self.peer, cause)

    def received(self, data: bytes) -> None:
        """Bytes from the peer (called by the link, in order, one chunk at a time)."""
        self.last_activity = self.service.net_clock.now()
        if self._apply(self._feed(data)):
            self.rewatch()  # without an association its time-out applies again
            # The session's log entries (P3 §5.10) were queued, not waited for, at the
            # release: this connection, not the event loop, waits until they are durable.
            self.link.pause("store")
            self._after_release = asyncio.create_task(self._resume_when_written())

    async def let_end(self) -> None:
        """Give this connection, which has no association, the time to end if its client has
        closed it: after a release it reads on, and so sees the client's FIN, only once the
        session's writes are durable (at most WRITE_WAIT_S), then ENDING_GRACE_S. A head-end
        that connects again right after its release is the same head-end, not a second
        connection (refused unanswered, its AARQ unread: it would see a reset)."""
        after_release = self._after_release
        if after_release is not None and not after_release.done():
            await asyncio.wait({after_release})  # not cancelled if this wait is
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ENDING_GRACE_S):
                await self.service.wait_idle()

    async def _resume_when_written(self) -> None:
        await self.service.queued_writes()
        self.link.resume("store")

    def _feed(self, data: bytes) -> list[ServerEvent]:
        try:
            return self.server.receive_data(data)
        except P3Error as exc:
            # A core rule broken on our side (e.g. a counter store fault): drop this
            # connection only; the listener and the meter go on.
            self.service.counters.errors += 1
            log.error("P3 core error on %s: %s", self.peer, exc)
            self.link.end(Cause.ERROR)
            return [CloseConnection(f"core error: {exc}")]

    def _apply(self, events: list[ServerEvent]) -> bool:
        """Carry out the core's events; True if an association ended among them."""
        released = False
        transport = self.link.transport
        for event in events:
            if isinstance(event, Transmit):
                if transport is not None and not transport.is_closing():
                    transport.write(event.data)
            elif isinstance(event, CloseConnection):
                log.debug("P3 closes %s: %s", self.peer, event.reason)
                self.link.end(Cause.PROTOCOL)
            else:
                self.service.on_event(self, event)
                released = released or isinstance(event, Released)
        return released

    def rewatch(self) -> None:
        """(Re)start the watchdog: it sleeps until the first deadline as they stand now, so a
        change that can bring one forward (the end of an association, a SET of the
        inactivity time-out) plans it again."""
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._watchdog = asyncio.create_task(self._watch(), name="dsmr-twin.p3.inactivity")

    async def _watch(self) -> None:
        """Close the connection at the first of its deadlines (inactivity, association); no
        deadline (Blue Book class 41: 0 = inactivity not supervised, while associated): sleep
        until `rewatch`. Activity only moves the inactivity deadline later: looked at when
        the planned one comes."""
        clock = self.service.net_clock
        while True:
            deadline, expired = self._deadline()
            if deadline is None:
                return
            if clock.now() >= deadline:
                self._close(expired())
                return
            await clock.sleep_until(deadline)

    def _deadline(self) -> tuple[datetime | None, Callable[[], str]]:
        deadlines: list[tuple[datetime, Callable[[], str]]] = []
        timeout = self.service.inactivity_s()
        if timeout > 0:
            deadlines.append((self.last_activity + timedelta(seconds=timeout), self._inactive))
        if self.server.state is not State.ASSOCIATED:
            limit = timedelta(seconds=self.service.association_timeout_s)
            deadlines.append((self.unassociated_since + limit, self._unassociated))
        if not deadlines:
            return None, self._inactive
        return min(deadlines, key=lambda item: item[0])

    def _inactive(self) -> str:
        self.service.counters.inactivity_closes += 1
        timeout = self.service.inactivity_s()
        log.info("P3 connection %s inactive for %d s: closed", self.peer, timeout)
        return Cause.INACTIVITY

    def _unassociated(self) -> str:
        # DEBUG: anyone who can reach the port can cause this line (see docs/operations.md).
        self.service.counters.association_timeouts += 1
        log.debug("P3 connection %s made no association in time: closed", self.peer)
        return Cause.ASSOCIATION_TIMEOUT

    def _close(self, cause: str) -> None:
        self.link.close(cause)


class P3Service:
    """The P3 listener of one meter; GPRS decides when it listens (`twin.p3.gprs.controller`)."""

    def __init__(
        self,
        meter: Meter,
        keys: KeyStore,
        objects: ObjectModel,
        host: str,
        port: int,
        *,
        net_clock: Clock,
        challenges: UrandomChallenges | None = None,
        association_timeout_s: float = DEFAULT_ASSOCIATION_TIMEOUT_S,
    ) -> None:
        self.meter = meter
        self.keys = keys
        self.objects = objects
        self.host = host
        self.port = port
        self.net_clock = net_clock
        self.association_timeout_s = association_timeout_s
        self.logins = LoginGuard(net_clock.now)  # lock-outs run in real time, like timers
        self.challenges = challenges or UrandomChallenges()
        self.counters = Counters()
        self.active: Connection | None = None
        self.heartbeat = time.monotonic()
        self.last_contact: datetime | None = None  # meter time of the last CS association
        self.on_accept: list[Callable[[], None]] = []
        self.on_release: list[Callable[[], None]] = []  # an association ended
        self._server: asyncio.Server | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        # A SET may have shortened the inactivity time-out of the active connection.
        objects.on_change.append(self._settings_changed)
        self._exhaustion_logged = False

    # ---- listener --------------------------------------------------------------------------
    @property
    def listening(self) -> bool:
        return self._server is not None

    @property
    def bound_port(self) -> int:
        """The port actually bound (useful with port 0 in tests)."""
        if self._server is None or not self._server.sockets:
            return self.port
        return int(self._server.sockets[0].getsockname()[1])

    async def start_listening(self) -> None:
        if self._server is None:
            loop = asyncio.get_running_loop()
            self._server = await loop.create_server(lambda: Link(self), self.host, self.port)
            log.info("P3 listening on %s:%d", self.host, self.bound_port)

    async def stop_listening(self) -> None:
        """Close the server socket; an active connection is closed too (PDP context gone)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        if self.active is not None:
            self.active.link.close(Cause.STOPPED)
        await self.wait_idle()
        await server.wait_closed()
        log.info("P3 stopped listening")

    @property
    def idle(self) -> asyncio.Event:
        """Set while no connection is active."""
        return self._idle

    async def wait_idle(self) -> None:
        await self._idle.wait()

    def _settings_changed(self) -> None:
        if self.active is not None:
            self.active.rewatch()

    def inactivity_s(self) -> int:
        return inactivity_time_out_s(self.objects)

    async def run(self) -> None:
        """Always listening (used when there is no GPRS controller)."""
        await self.start_listening()
        try:
            while True:
                self.heartbeat = time.monotonic()
                await asyncio.sleep(HEARTBEAT_S)
        finally:
            await self.stop_listening()

    def tick(self) -> None:
        """Let the object model run what is due (see `run_ticks`)."""
        self.objects.tick()

    async def run_ticks(self) -> None:
        """Tick the object model whenever it has work due on the meter clock (a definable
        profile capture, a passive calendar activation), after a SET or ACTION that may move
        that time, and after a clock set; the controller that owns this service runs it
        beside its own loop. An idle meter's object model sleeps."""
        changed = asyncio.Event()
        self.objects.on_change.append(changed.set)
        try:
            while True:
                changed.clear()
                self.tick()
                await self._until_due(changed)
        finally:
            self.objects.on_change.remove(changed.set)

    async def _until_due(self, changed: asyncio.Event) -> None:
        due = self.objects.next_due()
        waits: list[asyncio.Future[object]] = [asyncio.ensure_future(changed.wait())]
        if due is not None:
            # The meter clock's wait also ends at a clock set (twin/clock.py OffsetClock).
            waits.append(asyncio.ensure_future(self.meter.clock.sleep_until(due)))
        try:
            await asyncio.wait(waits, timeout=TICK_BEAT_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    # ---- connections -----------------------------------------------------------------------
    async def accept(self, link: Link) -> None:
        """A new connection (its link's task): serve it, or refuse it at once."""
        self.heartbeat = time.monotonic()
        if self.active is not None and self.active.server.state is State.IDLE:
            # A connection without an association may be one whose client just closed it
            # (RLRE sent, FIN not yet read): let it end before judging the new one.
            await self.active.let_end()
            if self._server is None:  # it stopped listening meanwhile (GPRS context gone)
                link.close(Cause.STOPPED)
                return
        if self.active is not None:
            # nb_of_sim_conn = 1 (P3 Table 3-1): refuse at once, unanswered.
            self.counters.refused += 1
            log.debug("P3 refused a second connection from %s", link.peer)
            link.close("refused")  # never served: counted in `refused`, not in `closes`
            return
        connection = Connection(self, link)
        self.active = connection
        self._idle.clear()
        self.counters.connections += 1
        for callback in self.on_accept:
            callback()
        try:
            await connection.serve()
        finally:
            self.active = None
            self._idle.set()

    async def prepare_session(self) -> None:
        """Before a new connection's first request is read, make durable in the background
        what its session is about to need: the next block of invocation counters and the
        meter's registers (the first GET would commit them). Inside a request either is an
        fsync that holds the event loop, and with it every other meter of a fleet worker.
        Waited for at most WRITE_WAIT_S: on a slow or stalled store the request path then
        waits, or refuses, as it always did."""
        await self._written(self.keys.counters.reserve_ahead(), self.meter.commit_soon())

    async def queued_writes(self) -> None:
        """Until every write queued so far is durable (at most WRITE_WAIT_S)."""
        await self._written(self.meter.store.writer.last_queued())

    async def _written(self, *queued: Future[None] | None) -> None:
        """Wait for queued writes without holding the event loop, at most WRITE_WAIT_S: a
        stalled store writes them later, in order, and whoever needs one durable then waits
        (or refuses) as it always did."""
        waits = [asyncio.wrap_future(f) for f in queued if f is not None]
        if waits:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(WRITE_WAIT_S):
                    # Shielded: a connection that ends meanwhile leaves the writes queued.
                    await asyncio.shield(asyncio.gather(*waits, return_exceptions=True))
        self.meter.settle()

    def on_event(self, connection: Connection, event: ServerEvent) -> None:
        self.heartbeat = time.monotonic()
        if isinstance(event, Associated):
            if not self.keys.counters.exhausted:  # a new GUEK restarted it: log the next one
                self._exhaustion_logged = False
            if event.client == MANAGEMENT_CLIENT.sap:
                self.logins.succeeded()  # ends a burst of failed logins
            connection.client = event.client
            mechanism = connection.server.mechanism
            connection.session.associated(0 if mechanism is None else int(mechanism))
            self.counters.associations += 1
            self.counters.by_client[event.client] = self.counters.by_client.get(event.client, 0) + 1
            if event.client == MANAGEMENT_CLIENT.sap:
                self.last_contact = self.meter.clock.now()
                title = connection.server.client_system_title
                if title:
                    self.keys.note_client_system_title(title)
        elif isinstance(event, AuthenticationFailed):
            self._failed_login(connection, event.client)
        elif isinstance(event, CounterExhausted):
            self.counters.counter_exhausted += 1
            if not self._exhaustion_logged:  # once per exhaustion, not per refused AARQ
                self._exhaustion_logged = True
                log.error(
                    "P3 invocation counter exhausted: ciphered service refused until a new "
                    "GUEK is installed (global_key_transfer or [p3] guek)"
                )
        elif isinstance(event, Released):
            connection.unassociated_since = self.net_clock.now()
            if not event.graceful:
                self.counters.aborted += 1
            # P3 §5.10 footnote 6: the comlog entries are written at the release of the AA.
            connection.session.released()
            for callback in self.on_release:
                callback()

    def _failed_login(self, connection: Connection, client: int) -> None:
        self.counters.auth_failures += 1
        verdict = self.logins.failed()
        if verdict.first_of_burst:
            log.warning("P3 failed login of client %d from %s", client, connection.peer)
            # P3 §4.2.1: event 46 "failed login attempt" (fraud detection log), once a burst.
            self.meter.act(lambda m, now: m.log_event(now, EventCode.FAILED_LOGIN))
        if verdict.locked_for_s is not None:
            log.warning(
                "P3 management logins locked out for %d s after failed logins (from %s)",
                verdict.locked_for_s,
                connection.peer,
            )

    def status(self) -> dict[str, Any]:
        c = self.counters
        active = self.active
        return {
            "endpoint": f"tcp://{self.host}:{self.bound_port}",
            "listening": self.listening,
            "connections": c.connections,
            "refused": c.refused,
            "associations": c.associations,
            "associations_by_client": {str(k): v for k, v in sorted(c.by_client.items())},
            "failed_logins": c.auth_failures,
            "logins_refused_locked": self.logins.refused,
            "logins_locked_until": None
            if self.logins.locked_until is None
            else self.logins.locked_until.isoformat(),
            "aborted": c.aborted,
            "inactivity_closes": c.inactivity_closes,
            "association_timeouts": c.association_timeouts,
            "closes": dict(sorted(c.closes.items())),
            "errors": c.errors,
            "active": None
            if active is None
            else {"peer": active.peer, "client": active.client, "since": active.since.isoformat()},
            "last_contact": None if self.last_contact is None else self.last_contact.isoformat(),
            "invocation_counter_reserved_to": self.keys.reserved_limit(),
            "invocation_counter_exhausted": self.keys.counters.exhausted,
            "refused_for_counter": c.counter_exhausted,
        }
