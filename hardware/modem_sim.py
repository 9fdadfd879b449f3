"""A simulated GPRS/LTE modem that speaks the AT dialogue on a pty, so AtModem is what gets tested.

The modem end is the pty master; the slave is reached through the symlink `link` (as for P1,
hardware/pty_link.py), and AtModem opens it like /dev/ttyUSB2. The subset of 3GPP TS 27.007 /
27.005 that AtModem uses is answered from a small state: registration per domain, signal, the
operator, PDP contexts and an SMS store. The injection API (`inject_sms`, `inject_call`,
`set_registration`, `set_signal`) is what `dsmr-twin ctl wakeup --sms/--csd` will drive, and it
produces the URCs a real modem sends (+CMTI, RING + +CLIP, +CREG). `store_sms` puts an SMS on
the SIM without any URC: one that arrived while the twin was down, for AtModem's start-up sweep
(AT+CMGL / AT+CMGD, 27.005 §3.4.2, §3.5.4). `vanish()` pulls the plug.

`script(command, reply)` replaces the next answer to one command line with raw bytes (or with
silence), for garbage and timeout tests.
"""

from __future__ import annotations

import asyncio
import logging
import os
import termios
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from hardware.at_codec import command_name, split_fields
from hardware.modem import AccessTechnology, Domain, Registration
from hardware.ports import PortError
from hardware.pty_link import close_linked_pty, open_linked_pty

log = logging.getLogger(__name__)

READ_CHUNK = 4096
SERVICE_CENTRE = "+31000000000"  # a made-up SMSC address for the detailed +CMGR header
NO_NETWORK = 30  # 27.007 §9.2.1 +CME ERROR: no network service
NOT_ALLOWED = 3  # +CME ERROR: operation not allowed
CMS_NOT_ALLOWED = 302  # 27.005 §3.2.5 +CMS ERROR: operation not allowed
CMS_BAD_INDEX = 321  # invalid memory index
NO_ADDRESS = "0.0.0.0"  # noqa: S104 (not a bind: how +CGPADDR shows an inactive context)


@dataclass
class SimState:
    """What the simulated modem knows; tests and `ctl` may read and change it."""

    registration: dict[Domain, Registration] = field(
        default_factory=lambda: dict.fromkeys(Domain, Registration.HOME)
    )
    rssi: int = 20  # 27.007 §8.5: -73 dBm, a HIGH level
    ber: int = 99
    operator: str = "Twin Test Network"
    plmn: str = "00101"  # MCC 001 / MNC 01: the 3GPP test network, never a real operator
    technology: AccessTechnology = AccessTechnology.GSM_EGPRS
    address: str = "10.64.0.2"  # given to an activated PDP context
    area: str = "00C3"  # <lac>/<tac>, reported with AT+CxREG=2
    cell_id: str = "0000A13F"
    echo: bool = True  # V.250: echo is on after power-up
    cmee: int = 0
    cmgf: int = 0
    csdh: int = 0
    cnmi_mt: int = 0
    clip: int = 0
    cops_format: int = 0
    report: dict[Domain, int] = field(default_factory=lambda: dict.fromkeys(Domain, 0))
    contexts: dict[int, str] = field(default_factory=dict)  # cid -> APN
    active: set[int] = field(default_factory=set)
    sms: dict[int, tuple[str, str, str]] = field(default_factory=dict)  # index -> from, text, ts
    read: set[int] = field(default_factory=set)  # indices of SMS read (+CMGR, +CMGL): REC READ
    ringing: bool = False
    rejected_calls: int = 0


Reply = tuple[list[str], str]  # information lines, final result code


class ModemSim:
    """The modem end of a pty whose slave is reachable through the symlink `link`."""

    def __init__(
        self,
        link: Path,
        state: SimState | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.link = link
        self.state = state or SimState()
        self.commands: list[str] = []  # every command line received, for assertions
        self._now = now or (lambda: datetime.now(UTC))
        self._master = -1
        self._slave = -1
        self._slave_name = ""
        self._input = bytearray()
        self._scripts: dict[str, deque[bytes | None]] = {}

    @property
    def device(self) -> str:
        """The path AtModem opens."""
        return str(self.link)

    @property
    def description(self) -> str:
        return f"simulated modem {self.link} -> {self._slave_name or 'closed'}"

    # -- lifecycle ----------------------------------------------------------------------------

    async def open(self) -> None:
        try:
            pty = open_linked_pty(self.link)  # no echo or CR/LF mapping by the line discipline
        except (OSError, termios.error) as exc:
            raise PortError(f"cannot open {self.description}: {exc}") from exc
        self._master, self._slave, self._slave_name = pty.master, pty.slave, pty.name
        asyncio.get_running_loop().add_reader(self._master, self._on_readable)
        log.info("P3 %s", self.description)

    async def close(self) -> None:
        self.vanish()

    def vanish(self) -> None:
        """Pull the plug: the driver's next read fails with EIO and the symlink goes away."""
        if self._master >= 0:
            asyncio.get_running_loop().remove_reader(self._master)
        close_linked_pty(self.link, self._master, self._slave, self._slave_name)
        self._master = self._slave = -1
        self._slave_name = ""

    # -- injection (ctl wakeup, tests) --------------------------------------------------------

    def store_sms(self, sender: str, text: str = "", *, at: datetime | None = None) -> int:
        """An SMS on the SIM whose +CMTI reached no one (the twin was down); `at` is its <scts>.

        It takes the lowest free index, as a SIM does.
        """
        index = next(i for i in range(1, len(self.state.sms) + 2) if i not in self.state.sms)
        self.state.sms[index] = (sender, text, self._scts(at))
        self.state.read.discard(index)
        return index

    def inject_sms(self, sender: str, text: str = "", *, at: datetime | None = None) -> int:
        """Store an incoming SMS and announce it as the modem would (27.005 §3.4.1).

        `at` is the service centre's time stamp (default: now), e.g. for one delivered late.
        """
        index = self.store_sms(sender, text, at=at)
        if self.state.cnmi_mt == 1:
            self._urc(f'+CMTI: "SM",{index}')
        elif self.state.cnmi_mt == 2:  # routed straight to the DTE, not stored
            header = self._cmt_header(index)
            del self.state.sms[index]
            self._send(f"\r\n{header}\r\n{text}\r\n".encode("ascii"))
        return index

    def inject_call(self, caller: str) -> None:
        """A call rings once: RING and, with AT+CLIP=1, the caller id (27.007 §7.6)."""
        self.state.ringing = True
        self._urc("RING")
        if self.state.clip:
            self._urc(f'+CLIP: "{caller}",{_ton(caller)},"",,"",0')

    def set_registration(self, state: Registration, domain: Domain | None = None) -> None:
        """Change the registration (all domains by default) and report it where enabled."""
        for each in [domain] if domain else list(Domain):
            self.state.registration[each] = state
            if self.state.report[each] == 1:
                self._urc(f"{each.value}: {int(state)}")
            elif self.state.report[each] == 2:
                self._urc(f'{each.value}: {int(state)},"{self.state.area}","{self.state.cell_id}"')
        if not state.registered:
            self.state.active.clear()  # a detach drops the PDP contexts

    def set_signal(self, rssi: int, ber: int = 99) -> None:
        self.state.rssi, self.state.ber = rssi, ber

    def script(self, command: str, reply: bytes | None) -> None:
        """Answer the next `command` line with `reply` verbatim (None: say nothing at all)."""
        self._scripts.setdefault(command, deque()).append(reply)

    # -- the wire -----------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        if self._master < 0:
            return
        try:
            os.write(self._master, data)
        except OSError as exc:  # the pty is full: nobody reads, as on an unread UART
            log.warning("%s: dropped %d bytes: %s", self.description, len(data), exc)

    def _urc(self, line: str) -> None:
        self._send(f"\r\n{line}\r\n".encode("ascii"))

    def _on_readable(self) -> None:
        try:
            data = os.read(self._master, READ_CHUNK)
        except OSError:  # EIO while no process has the slave open: nothing to read
            return
        self._input += data
        while (end := self._input.find(b"\r")) >= 0:  # V.250 §5.2.1: S3 ends a command line
            raw = bytes(self._input[:end]).strip(b"\n")
            del self._input[: end + 1]
            if raw:
                self._command(raw.decode("ascii", errors="replace"))

    def _command(self, line: str) -> None:
        self.commands.append(line)
        if self.state.echo:
            self._send(line.encode("ascii", errors="replace") + b"\r")
        scripted = self._scripts.get(line)
        if scripted:
            reply = scripted.popleft()
            if reply is not None:
                self._send(reply)
            return
        lines, final = self._answer(line)
        body = "".join(f"\r\n{info}\r\n" if info else "\r\n" for info in lines)
        self._send(f"{body}\r\n{final}\r\n".encode("ascii"))

    def _answer(self, line: str) -> Reply:
        if line[:2].upper() != "AT":
            return [], "ERROR"
        name = command_name(line)
        query = line.endswith("?")
        args = split_fields(line.split("=", 1)[1]) if "=" in line else []
        handler = _HANDLERS.get(name)
        if handler is None:
            for domain in Domain:
                if name == domain.value:
                    return self._reg(domain, args, query=query)
            return [], "ERROR"
        return handler(self, args, query)

    # -- command handlers ---------------------------------------------------------------------

    def _cme(self, code: int) -> Reply:
        return [], f"+CME ERROR: {code}" if self.state.cmee else "ERROR"

    def _ok(self, _args: list[str], _query: bool) -> Reply:
        return [], "OK"

    def _set(self, attribute: str, args: list[str]) -> Reply:
        if not args or not args[0].isdigit():
            return [], "ERROR"
        setattr(self.state, attribute, int(args[0]))
        return [], "OK"

    def _echo(self, on: bool) -> Reply:
        self.state.echo = on
        return [], "OK"

    def _reg(self, domain: Domain, args: list[str], *, query: bool) -> Reply:
        if not query:
            if not args or args[0] not in {"0", "1", "2"}:
                return [], "ERROR"
            self.state.report[domain] = int(args[0])
            return [], "OK"
        stat = int(self.state.registration[domain])
        extra = (
            f',"{self.state.area}","{self.state.cell_id}"' if self.state.report[domain] == 2 else ""
        )
        return [f"{domain.value}: {self.state.report[domain]},{stat}{extra}"], "OK"

    def _csq(self, _args: list[str], _query: bool) -> Reply:
        return [f"+CSQ: {self.state.rssi},{self.state.ber}"], "OK"

    def _cops(self, args: list[str], query: bool) -> Reply:
        state = self.state
        if not query:
            if len(args) < 2 or args[0] != "3" or args[1] not in {"0", "2"}:
                return self._cme(NOT_ALLOWED)
            state.cops_format = int(args[1])
            return [], "OK"
        if not self._registered():
            return ["+COPS: 0"], "OK"
        oper = state.plmn if state.cops_format == 2 else state.operator
        return [f'+COPS: 0,{state.cops_format},"{oper}",{int(state.technology)}'], "OK"

    def _registered(self) -> bool:
        return any(self.state.registration[d].registered for d in (Domain.PACKET, Domain.EPS))

    def _cgdcont(self, args: list[str], query: bool) -> Reply:
        if query:
            return [f'+CGDCONT: {c},"IP","{a}"' for c, a in self.state.contexts.items()], "OK"
        if len(args) < 3 or not args[0].isdigit():
            return self._cme(NOT_ALLOWED)
        self.state.contexts[int(args[0])] = args[2]
        return [], "OK"

    def _cgact(self, args: list[str], query: bool) -> Reply:
        if query:
            return [f"+CGACT: {c},{int(c in self.state.active)}" for c in self.state.contexts], "OK"
        if len(args) < 2 or not args[1].isdigit() or int(args[1]) not in self.state.contexts:
            return self._cme(NOT_ALLOWED)
        if args[0] == "0":
            self.state.active.discard(int(args[1]))
            return [], "OK"
        if not self._registered():
            return self._cme(NO_NETWORK)
        self.state.active.add(int(args[1]))
        return [], "OK"

    def _cgatt(self, _args: list[str], query: bool) -> Reply:
        if query:
            return [f"+CGATT: {int(self._registered())}"], "OK"
        return ([], "OK") if self._registered() else self._cme(NO_NETWORK)

    def _cgpaddr(self, args: list[str], _query: bool) -> Reply:
        cid = int(args[0]) if args and args[0].isdigit() else 1
        address = self.state.address if cid in self.state.active else NO_ADDRESS
        return [f'+CGPADDR: {cid},"{address}"'], "OK"

    def _cmgr(self, args: list[str], _query: bool) -> Reply:
        if self.state.cmgf != 1:
            return [], f"+CMS ERROR: {CMS_NOT_ALLOWED}"  # only text mode is simulated
        index = int(args[0]) if args and args[0].isdigit() else -1
        if index not in self.state.sms:
            return [], f"+CMS ERROR: {CMS_BAD_INDEX}"
        sender, text, scts = self.state.sms[index]
        header = f'+CMGR: "{self._stat(index)}","{sender}",,"{scts}"'
        if self.state.csdh:  # 27.005 §3.4.3: <tooa>,<fo>,<pid>,<dcs>,<sca>,<tosca>,<length>
            header += f',{_ton(sender)},4,0,0,"{SERVICE_CENTRE}",145,{len(text)}'
        self.state.read.add(index)
        return [header, text], "OK"

    def _stat(self, index: int) -> str:
        return "REC READ" if index in self.state.read else "REC UNREAD"

    def _cmgl(self, args: list[str], _query: bool) -> Reply:
        """27.005 §3.4.2 text mode: each '+CMGL: <index>,<stat>,<oa>,,<scts>[,<tooa>,<length>]'
        then its text; listing marks unread messages read. Only received messages are stored."""
        if self.state.cmgf != 1:
            return [], f"+CMS ERROR: {CMS_NOT_ALLOWED}"  # PDU mode (AT+CMGL=<n>) not simulated
        wanted = args[0] if args else "REC UNREAD"  # 27.005: the default <stat> is unread
        if wanted not in {"REC UNREAD", "REC READ", "STO UNSENT", "STO SENT", "ALL"}:
            return [], f"+CMS ERROR: {CMS_NOT_ALLOWED}"
        lines: list[str] = []
        for index in sorted(self.state.sms):
            stat = self._stat(index)
            if wanted not in {"ALL", stat}:
                continue
            sender, text, scts = self.state.sms[index]
            header = f'+CMGL: {index},"{stat}","{sender}",,"{scts}"'
            if self.state.csdh:
                header += f",{_ton(sender)},{len(text)}"
            lines += [header, text] if text else [header]  # empty text: an empty line, skipped
            self.state.read.add(index)
        return lines, "OK"

    def _cmt_header(self, index: int) -> str:
        sender, text, scts = self.state.sms[index]
        header = f'+CMT: "{sender}",,"{scts}"'
        if self.state.csdh:
            header += f',{_ton(sender)},4,0,0,"{SERVICE_CENTRE}",145,{len(text)}'
        return header

    def _cmgd(self, args: list[str], _query: bool) -> Reply:
        """27.005 §3.5.4 AT+CMGD=<index>[,<delflag>]: 1 read, 2 + sent, 3 + unsent, 4 all.

        With a <delflag> > 0 the index is ignored (it must still be a number, as on real
        modems); all stored messages are received ones here, so 1..3 delete the read ones.
        """
        if not args or not args[0].isdigit():
            return [], f"+CMS ERROR: {CMS_BAD_INDEX}"
        flag = args[1] if len(args) > 1 else "0"
        if flag not in {"0", "1", "2", "3", "4"}:
            return [], f"+CMS ERROR: {CMS_NOT_ALLOWED}"
        if flag == "0":
            doomed = {int(args[0])}
        elif flag == "4":
            doomed = set(self.state.sms)
        else:
            doomed = self.state.read & set(self.state.sms)
        for index in doomed:
            self.state.sms.pop(index, None)
            self.state.read.discard(index)
        return [], "OK"

    def _hang_up(self, _args: list[str], _query: bool) -> Reply:
        if self.state.ringing:
            self.state.ringing = False
            self.state.rejected_calls += 1
        return [], "OK"

    def _scts(self, at: datetime | None = None) -> str:
        """27.005 §3.3.2 <scts>: 'yy/MM/dd,hh:mm:ss±zz', zz in quarter hours (UTC here)."""
        return (at or self._now()).astimezone(UTC).strftime("%y/%m/%d,%H:%M:%S+00")


def _ton(number: str) -> int:
    """Type of number (24.008 §10.5.4.7): 145 international ('+'), else 129."""
    return 145 if number.startswith("+") else 129


_HANDLERS: dict[str, Callable[[ModemSim, list[str], bool], Reply]] = {
    "": ModemSim._ok,
    "V1": ModemSim._ok,
    "Z": ModemSim._ok,
    "E0": lambda sim, _a, _q: sim._echo(False),
    "E1": lambda sim, _a, _q: sim._echo(True),
    "+CMEE": lambda sim, args, _q: sim._set("cmee", args),
    "+CMGF": lambda sim, args, _q: sim._set("cmgf", args),
    "+CSDH": lambda sim, args, _q: sim._set("csdh", args),
    "+CNMI": lambda sim, args, _q: sim._set("cnmi_mt", args[1:]),
    "+CLIP": lambda sim, args, _q: sim._set("clip", args),
    "+CSCS": ModemSim._ok,
    "+CPIN": lambda _sim, _a, _q: (["+CPIN: READY"], "OK"),
    "+CSQ": ModemSim._csq,
    "+COPS": ModemSim._cops,
    "+CGDCONT": ModemSim._cgdcont,
    "+CGACT": ModemSim._cgact,
    "+CGATT": ModemSim._cgatt,
    "+CGPADDR": ModemSim._cgpaddr,
    "+CMGR": ModemSim._cmgr,
    "+CMGD": ModemSim._cmgd,
    "+CMGL": ModemSim._cmgl,
    "H": ModemSim._hang_up,
}
