"""The P3 communication unit: a GPRS/LTE modem reached through AT commands.

`Modem` is the port (only hardware/ touches devices); `AtModem` drives any 3GPP TS
27.007/27.005 modem (a real one on USB, e.g. /dev/ttyUSB2, or hardware/modem_sim.py on a pty)
through pyserial, with the sans-IO dialogue in hardware/at_codec.py.

What the twin uses the modem for (GPRS CS = DSMR 4.2.2 GPRS Companion Standard):
- registration and signal for the display's NW flag and 4 signal levels (GPRS CS §2.5,
  DSMR-G 4.2.12) and for 0-1:94.31.4 GPRS network information (P3 §8.4, DSMR-G 4.2.13);
- wake-up triggers in triggered mode: an SMS (message handler 0-0:2.3.0) and a CSD call that is
  rejected, not answered (auto answer 0-0:2.2.0; DSMR-G 4.3.3-4.3.4). Checking the sender or
  caller against the white list is P3's job; the modem only reports them.

The IP data link is left to the OS: pppd (chat script with AT+CGDCONT and ATD*99***1#) on a
second modem tty, or ModemManager/NetworkManager (a bearer on wwan0). The twin's DLMS server
then only binds a TCP socket. Use a different tty for AT than for PPP, and tell ModemManager to
leave the AT tty alone (udev ENV{ID_MM_PORT_IGNORE}="1"), or two programs will talk at once.
`activate_pdp` defines and activates the context over AT for modems without such a link (and
the simulator); it is not needed when the OS dials.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import serial

from hardware.at_codec import (
    AtCodec,
    AtCommandError,
    AtError,
    CmsError,
    Garbage,
    RemoteAtError,
    Response,
    Unsolicited,
    command_name,
    info_body,
    split_fields,
)
from hardware.at_sms import ListedSms, parse_cmgl, parse_scts
from hardware.ports import PortError

log = logging.getLogger(__name__)

TIMEOUT_S = 2.0  # a typical 27.007 query answers in milliseconds
SLOW_TIMEOUT_S = 30.0  # network procedures: attach, PDP activation, operator selection
SLOW_COMMANDS = frozenset({"+CGACT", "+CGATT", "+COPS"})
READ_CHUNK = 4096
MAX_QUEUED_EVENTS = 64  # unread events beyond this drop the oldest (nobody listening)
MAX_APN = 100  # 3GPP TS 23.003 §9.1: an APN is at most 100 octets
CMS_INVALID_INDEX = 321  # 27.005 §3.2.5: e.g. a +CMTI for a message the start-up sweep took
# 27.005 §3.4.2: the unread messages (listing marks them read). The driver sets text mode
# (AT+CMGF=1, §3.2.3), so <stat> is named; PDU mode would be AT+CMGL=0.
LIST_UNREAD = 'AT+CMGL="REC UNREAD"'
# 27.005 §3.5.4 <delflag> 3: every read, sent and unsent message, never an unread one (so one
# that arrives meanwhile keeps its +CMTI). <index> is ignored with a <delflag> but must be in
# range on some firmware, hence 1 (Quectel EC2x/BG9x and SIMCom SIM800/SIM7x00 manuals use
# AT+CMGD=1,<delflag>). The meter never sends SMS, so sent/unsent ones are not ours to keep.
DELETE_READ = "AT+CMGD=1,3"


# -- values -----------------------------------------------------------------------------------


class Domain(enum.Enum):
    """Which registration: circuit switched (CSD, SMS), packet (GPRS) or EPS (LTE)."""

    CIRCUIT = "+CREG"  # 27.007 §7.2
    PACKET = "+CGREG"  # 27.007 §10.1.20
    EPS = "+CEREG"  # 27.007 §10.1.22


class Registration(enum.IntEnum):
    """<stat> of +CREG/+CGREG/+CEREG (27.007 §7.2); other values read as UNKNOWN."""

    NOT_REGISTERED = 0  # and not searching
    HOME = 1
    SEARCHING = 2
    DENIED = 3
    UNKNOWN = 4
    ROAMING = 5

    @property
    def registered(self) -> bool:
        """Registered (home or roaming): the display's NW flag (P3 display table)."""
        return self in (Registration.HOME, Registration.ROAMING)


class AccessTechnology(enum.IntEnum):
    """<AcT> of +COPS (27.007 §7.3)."""

    UNKNOWN = -1
    GSM = 0
    GSM_COMPACT = 1
    UTRAN = 2
    GSM_EGPRS = 3
    UTRAN_HSDPA = 4
    UTRAN_HSUPA = 5
    UTRAN_HSPA = 6
    E_UTRAN = 7
    EC_GSM_IOT = 8
    E_UTRAN_NB = 9


class SignalLevel(enum.IntEnum):
    """The 4 display levels of DSMR-G 4.2.12 (GPRS CS §2.5; DSMR-M 4.3.36)."""

    NONE = 0  # RSSI < -100 dBm, or unknown
    LOW = 1  # -100 .. -95
    MEDIUM = 2  # -95 .. -85 ("sufficient for GPRS if -95 dBm or better")
    HIGH = 3  # > -85


def signal_level(dbm: int | None) -> SignalLevel:
    """DSMR-G 4.2.12's table. It leaves the edges open; ours: -100 is LOW, -95 and -85 MEDIUM."""
    if dbm is None or dbm < -100:
        return SignalLevel.NONE
    if dbm < -95:
        return SignalLevel.LOW
    if dbm <= -85:
        return SignalLevel.MEDIUM
    return SignalLevel.HIGH


@dataclass(frozen=True, slots=True)
class SignalQuality:
    """+CSQ: <rssi>,<ber> (27.007 §8.5)."""

    rssi: int  # 0..31, 99 = not known or not detectable
    ber: int = 99  # 0..7, 99 = not known

    @property
    def dbm(self) -> int | None:
        """27.007 §8.5: 0 = -113 dBm or less, 2 dB steps, 31 = -51 dBm or more; 99 = None."""
        return -113 + 2 * self.rssi if 0 <= self.rssi <= 31 else None

    @property
    def level(self) -> SignalLevel:
        return signal_level(self.dbm)


@dataclass(frozen=True, slots=True)
class NetworkInfo:
    """The serving network: DSMR-G 4.2.13 asks for signal, number of base stations, Cell ID."""

    operator: str  # long alphanumeric name (27.007 §7.3 <format> 0)
    plmn: str  # numeric MCC+MNC, e.g. '20408' (our proposal for 0-1:94.31.4 network_id)
    technology: AccessTechnology
    area: str = ""  # <lac> or <tac>, hex, as +CGREG/+CEREG report it with <n>=2 (27.007 §7.2)
    cell_id: str = ""  # <ci>, hex; '' if the modem does not say


@dataclass(frozen=True, slots=True)
class PdpContext:
    cid: int
    apn: str
    address: str  # as the modem reports it (27.007 §10.1.14 +CGPADDR)


@dataclass(frozen=True, slots=True)
class SmsReceived:
    """A short message arrived (the wake-up SMS of DSMR-G 4.3.3 is one with empty text).

    `sent` is the service centre time stamp (<scts>, UTC; None if the modem gave none), so P3
    can judge a wake-up's age; `stored` marks one found on the SIM at start-up (no +CMTI).
    """

    sender: str
    text: str
    sent: datetime | None = None
    stored: bool = False


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """A call rings (RING + +CLIP): the CSD wake-up of DSMR-G 4.3.4 once rejected."""

    caller: str


@dataclass(frozen=True, slots=True)
class RegistrationChanged:
    domain: Domain
    state: Registration


ModemEvent = SmsReceived | IncomingCall | RegistrationChanged


class Modem(Protocol):
    """The P3 communication unit."""

    @property
    def description(self) -> str: ...

    async def open(self) -> None:
        """Open the port and set the modem up; raises PortError."""
        ...

    async def close(self) -> None: ...

    async def registration(self, domain: Domain = Domain.PACKET) -> Registration: ...

    async def signal_quality(self) -> SignalQuality: ...

    async def network_info(self) -> NetworkInfo | None:
        """The selected operator, or None when no operator is selected (not registered)."""
        ...

    async def activate_pdp(self, apn: str) -> PdpContext: ...

    async def deactivate_pdp(self) -> None: ...

    async def reject_call(self) -> None:
        """Hang up a ringing call without answering it (DSMR-G 4.3.4)."""
        ...

    def events(self) -> AsyncIterator[ModemEvent]:
        """Unsolicited events, for one consumer; raises PortError when the port is lost."""
        ...


# -- reply parsers (pure) ---------------------------------------------------------------------


@contextlib.contextmanager
def _malformed(what: str, body: object) -> Iterator[None]:
    """Turn a parse failure on the modem's text into a RemoteAtError naming it."""
    try:
        yield
    except (ValueError, IndexError) as exc:
        raise RemoteAtError(f"malformed {what}: {body!r}") from exc


def parse_csq(body: str) -> SignalQuality:
    with _malformed("+CSQ", body):
        rssi, ber, *_ = [*split_fields(body), "99"]
        return SignalQuality(int(rssi), int(ber))


def parse_registration(body: str, *, solicited: bool) -> Registration:
    """The <stat> of '+CREG: <n>,<stat>[,...]' (a reply) or '+CREG: <stat>[,...]' (a URC)."""
    with _malformed("registration", body):
        fields = split_fields(body)
        stat = int(fields[1] if solicited else fields[0])
    try:
        return Registration(stat)
    except ValueError:  # 6..10: SMS-only, emergency, CSFB states (27.007 §7.2)
        return Registration.UNKNOWN


def parse_cell(body: str) -> tuple[str, str]:
    """(<lac>/<tac>, <ci>) of a '+CGREG: <n>,<stat>,<lac>,<ci>[,...]' reply; '' if absent."""
    fields = split_fields(body)
    return (fields[2], fields[3]) if len(fields) > 3 else ("", "")


def parse_cops(body: str) -> tuple[str, AccessTechnology] | None:
    """'+COPS: <mode>[,<format>,<oper>[,<AcT>]]' -> (oper, AcT), None with no operator."""
    fields = split_fields(body)
    if len(fields) < 3 or not fields[2]:
        return None
    act = int(fields[3]) if len(fields) > 3 and fields[3].isdigit() else -1
    try:
        return fields[2], AccessTechnology(act)
    except ValueError:
        return fields[2], AccessTechnology.UNKNOWN


def parse_cmgr(lines: tuple[str, ...]) -> SmsReceived:
    """27.005 §3.4.3 text mode: '+CMGR: <stat>,<oa>,[<alpha>],<scts>[,...]' then the text."""
    for number, line in enumerate(lines):
        if (body := info_body(line, "+CMGR")) is not None:
            fields = split_fields(body)
            if len(fields) < 2:
                break
            scts = parse_scts(fields[3]) if len(fields) > 3 else None
            return SmsReceived(fields[1], "\n".join(lines[number + 1 :]), scts)
    raise RemoteAtError(f"AT+CMGR: no message header in {lines!r}")


# -- the AT driver ----------------------------------------------------------------------------


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class AtModem:
    """A 27.007 modem on the serial device `device` (a tty path; a pty slave for the simulator).

    Commands run one at a time, each with its own timeout (AtTimeoutError). URCs are handled by
    a task owned by the modem: +CMTI is read with AT+CMGR and deleted with AT+CMGD, RING/+CLIP
    becomes IncomingCall. At `open()` the SMS stored while nobody listened (their +CMTI went to
    no one) are listed, reported and deleted before that task starts (`_sweep_stored`). A
    vanished port (EOF or EIO) fails the pending command and `events()` with PortError;
    `close()` then `open()` starts again.
    """

    def __init__(
        self,
        device: str,
        *,
        baudrate: int = 115200,
        timeout_s: float = TIMEOUT_S,
        slow_timeout_s: float = SLOW_TIMEOUT_S,
    ) -> None:
        self.device = device
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        self.slow_timeout_s = slow_timeout_s
        self.garbage = 0  # bytes sequences dropped as not AT text, for `ctl status`
        self._serial: serial.Serial | None = None
        self._fd = -1
        self._codec = AtCodec()
        self._lock = asyncio.Lock()
        self._pending: asyncio.Future[Response] | None = None
        self._failure: PortError | None = None
        self._urcs: asyncio.Queue[Unsolicited] = asyncio.Queue()
        self._events: asyncio.Queue[ModemEvent | PortError] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    @property
    def description(self) -> str:
        return f"AT modem {self.device}"

    # -- lifecycle ----------------------------------------------------------------------------

    async def open(self) -> None:
        if self._serial is not None and self._failure is None:
            raise PortError(f"{self.description} is already open")
        await self.close()  # after a lost port: the supervisor may simply open again
        try:
            self._serial = serial.Serial(self.device, self.baudrate, timeout=0, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise PortError(f"cannot open {self.description}: {exc}") from exc
        self._fd = self._serial.fileno()
        os.set_blocking(self._fd, False)
        self._codec, self._failure = AtCodec(), None
        self._urcs, self._events = asyncio.Queue(), asyncio.Queue()
        asyncio.get_running_loop().add_reader(self._fd, self._on_readable)
        try:
            await self._set_up()
            await self._sweep_stored()
        except PortError:
            await self.close()
            raise
        # URCs met so far wait in the queue; started after the sweep, the task cannot read a
        # message the sweep is handling (each is reported once; a late +CMTI finds it gone)
        self._worker = asyncio.create_task(self._handle_urcs(), name=f"modem-urc {self.device}")
        log.info("P3 modem on %s", self.description)

    async def _set_up(self) -> None:
        with contextlib.suppress(AtCommandError):
            await self.command("AT")  # resync: a half-typed line before us gives ERROR once
        for command in (
            "ATE0",  # V.250 §6.2.4: no echo
            "ATV1",  # V.250 §6.2.6: verbose result codes, which the codec parses
            "AT+CMEE=1",  # 27.007 §9.1: numeric +CME ERROR: <err>
            "AT+CMGF=1",  # 27.005 §3.2.3: SMS text mode
            "AT+CSDH=1",  # 27.005 §3.3.3: +CMGR headers carry <length> (empty wake-up SMS)
            'AT+CSCS="IRA"',  # 27.007 §5.5: SMS text and numbers as ASCII
            "AT+CNMI=2,1,0,0,0",  # 27.005 §3.4.1: store new SMS, indicate with +CMTI
            "AT+CLIP=1",  # 27.007 §7.6: caller id (+CLIP) after each RING
            "AT+CREG=1",  # 27.007 §7.2: +CREG: <stat> on every change
            "AT+CGREG=2",  # 27.007 §10.1.20: the same for GPRS, with <lac>,<ci> (Cell ID)
        ):
            await self.command(command)
        with contextlib.suppress(AtCommandError):
            await self.command("AT+CEREG=2")  # 27.007 §10.1.22; a 2G/3G-only modem says ERROR

    async def _sweep_stored(self) -> None:
        """Report and delete the SMS that arrived while the twin was down (P3 §9.1.4).

        The modem stored them (AT+CNMI <mt>=1) but their +CMTI reached no one. A listing the
        modem refuses or garbles is logged and start-up goes on: live SMS still work. Read
        leftovers are then kept too, since a garbled listing may have marked unreported
        messages read; the next start deletes them.
        """
        try:
            messages = parse_cmgl(await self.command(LIST_UNREAD))
        except AtError as exc:
            log.warning("%s: cannot list stored SMS: %s", self.description, exc)
            return
        for sms in messages:
            await self._take_stored(sms)
        try:
            await self.command(DELETE_READ)  # leftovers: read by a run that died before CMGD
        except AtError as exc:
            log.warning("%s: cannot delete read SMS: %s", self.description, exc)

    async def _take_stored(self, sms: ListedSms) -> None:
        log.info(
            "%s: SMS %d from %s stored since %s",
            self.description,
            sms.index,
            sms.sender,
            sms.timestamp or "?",
        )
        self._publish(SmsReceived(sms.sender, sms.text, sms.sent, stored=True))
        await self._delete(sms.index)

    async def _delete(self, index: int) -> None:
        """27.005 §3.5.4: a handled SMS goes, or the SIM fills and takes no more wake-ups.

        A refusal is logged, not raised: the message was read, so DELETE_READ at the next
        start removes it, and reporting it matters more than its slot.
        """
        try:
            await self.command(f"AT+CMGD={index}")
        except AtError as exc:
            log.warning("%s: cannot delete SMS %d: %s", self.description, index, exc)

    async def close(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._stop_reading()
        port, self._serial = self._serial, None
        if port is not None:
            with contextlib.suppress(OSError, serial.SerialException):
                port.close()  # after an unplug the fd may already be dead
        if self._failure is None:
            closed = PortError(f"{self.description} was closed")
            self._fail_pending(closed)
            self._publish(closed)  # ends a consumer waiting in events()

    def _stop_reading(self) -> None:
        if self._fd >= 0:
            asyncio.get_running_loop().remove_reader(self._fd)
            self._fd = -1

    # -- commands -----------------------------------------------------------------------------

    async def command(self, command: str) -> tuple[str, ...]:
        """Run one AT command; return its information lines or raise a typed AtError."""
        async with self._lock:
            self._check_usable()
            future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
            self._pending = future
            try:
                async with asyncio.timeout(self._timeout_for(command)):
                    await self._write(self._codec.send(command))
                    response = await future
            except TimeoutError:
                raise self._codec.expire() from None
            finally:
                self._pending = None
                if self._codec.pending is not None:
                    self._codec.expire()  # cancelled or port lost: the next command starts clean
                if future.done() and not future.cancelled():
                    future.exception()  # retrieved: a write error was raised on its own path
            log.debug("%s -> %s", command, response)
            return response.check()

    def _timeout_for(self, command: str) -> float:
        return self.slow_timeout_s if command_name(command) in SLOW_COMMANDS else self.timeout_s

    def _check_usable(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._serial is None:
            raise PortError(f"{self.description} is not open")

    async def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._fd, view) :]
            except BlockingIOError:
                await self._writable()
            except OSError as exc:
                raise self._lost(f"write failed: {exc}") from exc

    async def _writable(self) -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        loop.add_writer(self._fd, _resolve, ready)
        try:
            await ready
        finally:
            loop.remove_writer(self._fd)

    # -- queries (Modem) ----------------------------------------------------------------------

    async def registration(self, domain: Domain = Domain.PACKET) -> Registration:
        lines = await self.command(f"AT{domain.value}?")
        bodies = [body for line in lines if (body := info_body(line, domain.value)) is not None]
        if not bodies:
            raise RemoteAtError(f"AT{domain.value}?: no {domain.value} line in {lines!r}")
        return parse_registration(bodies[0], solicited=True)

    async def signal_quality(self) -> SignalQuality:
        return parse_csq(await self._single("AT+CSQ", "+CSQ"))

    async def network_info(self) -> NetworkInfo | None:
        await self.command("AT+COPS=3,0")  # 27.007 §7.3: <format> 0 = long alphanumeric
        named = parse_cops(await self._single("AT+COPS?", "+COPS"))
        await self.command("AT+COPS=3,2")  # <format> 2 = numeric MCC+MNC
        numeric = parse_cops(await self._single("AT+COPS?", "+COPS"))
        if named is None or numeric is None:
            return None
        lte = numeric[1] in (AccessTechnology.E_UTRAN, AccessTechnology.E_UTRAN_NB)
        domain = Domain.EPS if lte else Domain.PACKET
        area, cell = parse_cell(await self._single(f"AT{domain.value}?", domain.value))
        return NetworkInfo(named[0], numeric[0], numeric[1], area, cell)

    async def activate_pdp(self, apn: str) -> PdpContext:
        if not apn or len(apn) > MAX_APN or not apn.isascii() or '"' in apn:
            raise ValueError(f"bad APN {apn!r}: 1..{MAX_APN} ASCII characters, no quotes")
        await self.command(f'AT+CGDCONT=1,"IP","{apn}"')  # 27.007 §10.1.1
        await self.command("AT+CGACT=1,1")  # 27.007 §10.1.10
        fields = split_fields(await self._single("AT+CGPADDR=1", "+CGPADDR"))
        return PdpContext(1, apn, fields[1] if len(fields) > 1 else "")

    async def deactivate_pdp(self) -> None:
        await self.command("AT+CGACT=0,1")  # GPRS CS §3 step 7: close the PDP context

    async def reject_call(self) -> None:
        await self.command("ATH")  # V.250 §6.3.6; auto answer mode 200 never answers (P3 §9)

    async def _single(self, command: str, name: str) -> str:
        lines = await self.command(command)
        for line in lines:
            if (body := info_body(line, name)) is not None:
                return body
        raise RemoteAtError(f"{command}: no {name} line in {lines!r}")

    # -- input and unsolicited events ---------------------------------------------------------

    async def events(self) -> AsyncIterator[ModemEvent]:
        while True:
            item = await self._events.get()
            if isinstance(item, PortError):
                self._publish(item)  # sticky: every later reader ends the same way
                raise item
            yield item

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: the USB device (or the simulator's pty) went away
            self._lost(f"read failed: {exc}")
            return
        if not data:
            self._lost("end of file")
            return
        self._dispatch(data)

    def _dispatch(self, data: bytes) -> None:
        for event in self._codec.receive_data(data):
            if isinstance(event, Response):
                if self._pending is not None and not self._pending.done():
                    self._pending.set_result(event)
            elif isinstance(event, Unsolicited):
                self._urcs.put_nowait(event)
            elif isinstance(event, Garbage):
                self.garbage += 1
                log.warning("%s: dropped %r (%s)", self.description, event.data, event.reason)

    def _lost(self, why: str) -> PortError:
        error = PortError(f"{self.description} lost: {why}")
        if self._failure is None:
            log.error("%s", error)
            self._failure = error
            self._stop_reading()
            self._fail_pending(error)
            self._publish(error)
        return self._failure

    def _fail_pending(self, error: PortError) -> None:
        if self._pending is not None and not self._pending.done():
            self._pending.set_exception(error)

    async def _handle_urcs(self) -> None:
        while True:
            urc = await self._urcs.get()
            try:
                event = await self._interpret(urc)
            except AtError as exc:
                gone = isinstance(exc, CmsError) and exc.code == CMS_INVALID_INDEX
                level = logging.INFO if gone else logging.WARNING  # gone: the sweep took it
                log.log(level, "%s: cannot handle %s: %s", self.description, urc, exc)
                continue
            except PortError:
                return  # the port is gone; events() already reports it
            if event is not None:
                self._publish(event)

    def _publish(self, item: ModemEvent | PortError) -> None:
        if self._events.qsize() >= MAX_QUEUED_EVENTS:
            log.warning(
                "%s: nobody reads events; dropped %s", self.description, self._events.get_nowait()
            )
        self._events.put_nowait(item)

    async def _interpret(self, urc: Unsolicited) -> ModemEvent | None:
        if urc.name == "+CMTI":  # 27.005 §3.4.1: '+CMTI: <mem>,<index>'
            with _malformed("+CMTI", urc.body):
                index = int(split_fields(urc.body)[1])
            sms = parse_cmgr(await self.command(f"AT+CMGR={index}"))
            await self._delete(index)
            return sms
        if urc.name == "+CMT" and urc.text is not None:  # '<oa>,[<alpha>],<scts>[,...]'
            fields = split_fields(urc.body)  # direct delivery: not stored, nothing to delete
            return SmsReceived(
                fields[0], urc.text, parse_scts(fields[2]) if len(fields) > 2 else None
            )
        if urc.name == "+CLIP":  # 27.007 §7.6: '+CLIP: <number>,<type>[,...]'
            return IncomingCall(split_fields(urc.body)[0])
        for domain in Domain:
            if urc.name == domain.value:
                return RegistrationChanged(domain, parse_registration(urc.body, solicited=False))
        log.debug("%s: %s %s", self.description, urc.name, urc.body)  # RING, boot notices
        return None
