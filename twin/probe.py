"""`dsmr-twin probe`: a small DLMS/COSEM head-end that reads any meter over TCP.

    dsmr-twin probe tcp://HOST:PORT [OBIS ...] [--client 16|1] [--keys-from STATE_DIR |
        --guek HEX --gak HEX] [--system-title HEX] [--invocation-counter N]

(the OBIS codes follow the endpoint: argparse takes the positionals in one run).

It associates as the public client 16 (no security) or the management client 1 (HLS-GMAC,
authenticated and encrypted APDUs; P3 §3.2), reads the association's object list
(0-0:40.0.0 attribute 2, P3 §5.1) and prints it, or reads the value (attribute 2; a
register's scaler and unit first) of each OBIS code given. The keys come from a twin's state
directory (as `dsmr-twin keys show` prints them) or from the command line.

The DLMS client is gurux-dlms, an independent implementation, through its public API
(GXDLMSSecureClient, COSEM wrapper of IEC 62056-47): the probe checks a meter from the
outside, so it shares no code with the twin's P3 server. gurux is imported only when a probe
runs (the `probe` extra installs it).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import socket
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PUBLIC_CLIENT, MANAGEMENT_CLIENT = 16, 1  # P3 §2.1
SERVER_SAP = 1  # the management logical device
# The probe's own system title (P3 §3.2: 8 octets; the meter does not check the client's).
DEFAULT_CLIENT_TITLE = b"DSMRPROB"
WRAPPER_HEADER = struct.Struct(">HHHH")  # version, source wPort, destination wPort, length
TIMEOUT_S = 10.0
MAX_PDU = 1024  # the client's max receive PDU size; larger answers come in blocks
REGISTER_CLASSES = (3, 4)  # Register, Extended register: attribute 3 is the scaler and unit
CLOCK_CLASS = 8
VALUE_ATTRIBUTE, SCALER_UNIT_ATTRIBUTE = 2, 3


class ProbeError(Exception):
    """The probe could not do what was asked; the message says why."""


@dataclass(frozen=True, slots=True)
class Keys:
    guek: bytes
    gak: bytes


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class ProbeRequest:
    target: Target
    client: int
    keys: Keys | None  # None: the public client, no security
    client_title: bytes
    invocation_counter: int
    codes: list[str]  # logical names to read; none: list the objects


# ------------------------------------------------------------------ command line


def add_commands(commands: Any) -> None:
    probe = commands.add_parser("probe", help="read a DLMS/COSEM meter over TCP (a head-end)")
    probe.add_argument("endpoint", help="tcp://HOST:PORT of the meter (DSMR: port 4059)")
    probe.add_argument("--client", type=int, choices=[PUBLIC_CLIENT, MANAGEMENT_CLIENT])
    keys = probe.add_mutually_exclusive_group()
    keys.add_argument("--keys-from", type=Path, metavar="STATE_DIR", help="a twin's keys")
    keys.add_argument("--guek", help="global unicast encryption key, 32 hex digits")
    probe.add_argument("--gak", help="authentication key, 32 hex digits (with --guek)")
    probe.add_argument("--system-title", help="the probe's own system title, 16 hex digits")
    probe.add_argument("--invocation-counter", type=int, help="first frame counter (default: now)")
    probe.add_argument("obis", nargs="*", help="OBIS codes to read, e.g. 1-0:1.8.1")


def add_ctl_commands(ctl: Any) -> None:
    return None


def ctl_request(args: argparse.Namespace) -> dict[str, Any] | None:
    return None


def run(args: argparse.Namespace) -> int | None:
    if args.command != "probe":
        return None
    try:
        keyed = args.keys_from is not None or args.guek is not None
        client = args.client or (MANAGEMENT_CLIENT if keyed else PUBLIC_CLIENT)
        keys = _keys(args) if client == MANAGEMENT_CLIENT else None
        title = _hex(args.system_title, 8, "--system-title") or DEFAULT_CLIENT_TITLE
        counter = args.invocation_counter
        if counter is None:
            # Frame counters must not repeat under one key (P3 §3.2.3): seconds since 1970
            # grow from one probe to the next.
            counter = int(time.time())
        if not 0 <= counter < 1 << 32:
            raise ProbeError("--invocation-counter must be a 32-bit unsigned number")
        codes = [_logical_name(code) for code in args.obis]
        lines, missing = probe(
            ProbeRequest(_target(args.endpoint), client, keys, title, counter, codes)
        )
    except ProbeError as exc:
        print(f"dsmr-twin probe: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    for code in missing:
        print(
            f"dsmr-twin probe: {code}: not in the object list of client {client}", file=sys.stderr
        )
    return 1 if missing else 0


def _target(endpoint: str) -> Target:
    match = re.fullmatch(r"tcp://(\[[^\]]+\]|[^:/\[\]]+):(\d{1,5})/?", endpoint)
    if match is None or int(match.group(2)) > 65535:
        raise ProbeError(f"bad endpoint {endpoint!r}: expected tcp://HOST:PORT")
    return Target(match.group(1).strip("[]"), int(match.group(2)))


def _hex(text: str | None, size: int, option: str) -> bytes | None:
    if text is None:
        return None
    if not re.fullmatch(f"[0-9A-Fa-f]{{{2 * size}}}", text):
        raise ProbeError(f"{option} must be {2 * size} hex digits")
    return bytes.fromhex(text)


def _keys(args: argparse.Namespace) -> Keys:
    if args.keys_from is not None:
        return _stored_keys(args.keys_from)
    guek, gak = _hex(args.guek, 16, "--guek"), _hex(args.gak, 16, "--gak")
    if guek is None or gak is None:
        raise ProbeError("client 1 needs --keys-from STATE_DIR or both --guek and --gak")
    return Keys(guek, gak)


def _stored_keys(state_dir: Path) -> Keys:
    from twin.p3.keys import read_keys
    from twin.store import DATABASE, Store, StoreError

    if not (state_dir / DATABASE).is_file():
        raise ProbeError(f"no meter state in {state_dir}")
    try:
        store = Store.open(state_dir)
    except StoreError as exc:
        raise ProbeError(str(exc)) from exc
    try:
        material = read_keys(store)
    finally:
        store.close()
    if material is None:
        raise ProbeError(f"no P3 keys in {state_dir} (has that twin served P3?)")
    return Keys(material.guek, material.gak)


def _logical_name(code: str) -> str:
    """'1-0:1.8.1' or '1.0.1.8.1.255' as gurux's logical name 'A.B.C.D.E.F' (F defaults to
    255, the Blue Book's "not used")."""
    match = re.fullmatch(r"(\d+)[-.](\d+)[:.](\d+)\.(\d+)\.(\d+)(?:\.(\d+))?", code)
    if match is None or any(int(g) > 255 for g in match.groups() if g is not None):
        raise ProbeError(f"bad OBIS code {code!r}: expected e.g. 1-0:1.8.1")
    groups = [g if g is not None else "255" for g in match.groups()]
    return ".".join(str(int(g)) for g in groups)


def _obis_text(logical_name: str) -> str:
    a, b, c, d, e, f = logical_name.split(".")
    return f"{a}-{b}:{c}.{d}.{e}" + ("" if f == "255" else f".{f}")


# ------------------------------------------------------------------ the session


def probe(request: ProbeRequest) -> tuple[list[str], list[str]]:
    """Associate, list or read, release. Returns the lines to print and the codes not found."""
    target, codes = request.target, request.codes
    session = _Session(target, _gurux_client(request))
    try:
        session.associate()
        objects = session.object_list(described=not codes)
        lines = [f"client {request.client} associated with {target.host}:{target.port}"]
        found = {item.logicalName: item for item in objects}
        if not codes:
            lines += [_describe(item) for item in objects]
            return lines, []
        missing = [_obis_text(code) for code in codes if code not in found]
        lines += [session.read_value(found[code]) for code in codes if code in found]
        return lines, missing
    finally:
        session.close()


def _gurux_client(request: ProbeRequest) -> Any:
    try:
        from gurux_dlms.enums import Authentication, InterfaceType, Security
        from gurux_dlms.secure import GXDLMSSecureClient
    except ImportError as exc:
        raise ProbeError(
            "gurux-dlms is missing: reinstall dsmr-twin (it depends on gurux-dlms)"
        ) from exc
    keys = request.keys
    mechanism = Authentication.NONE if keys is None else Authentication.HIGH_GMAC
    gx = GXDLMSSecureClient(
        True, request.client, SERVER_SAP, mechanism, None, InterfaceType.WRAPPER
    )
    if keys is not None:
        # P3 §3.2: security suite 0, every APDU authenticated and encrypted.
        gx.ciphering.security = Security.AUTHENTICATION_ENCRYPTION
        gx.ciphering.systemTitle = request.client_title
        gx.ciphering.blockCipherKey = keys.guek
        gx.ciphering.authenticationKey = keys.gak
        gx.ciphering.invocationCounter = request.invocation_counter
    gx.maxReceivePDUSize = MAX_PDU
    return gx


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """gurux prints progress ("Encryption is applied.") on stdout: keep it out of the output."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


class _Session:
    """One TCP connection to the meter driven by a gurux client."""

    def __init__(self, target: Target, client: Any) -> None:
        self.client = client
        self.target = target
        try:
            self.sock = socket.create_connection((target.host, target.port), timeout=TIMEOUT_S)
        except OSError as exc:
            raise ProbeError(f"cannot connect to {target.host}:{target.port}: {exc}") from exc

    def close(self) -> None:
        with contextlib.suppress(OSError), _quiet():
            # The meter may answer a release silently (P3 §3.2.3): do not wait for it.
            for frame in self.client.releaseRequest() or ():  # None when not associated
                self.sock.sendall(bytes(frame))
        self.sock.close()

    def associate(self) -> None:
        from gurux_dlms import GXDLMSException

        try:
            with _quiet():
                self.client.parseAareResponse(self._run(self.client.aarqRequest()).data)
                if self.client.getIsAuthenticationRequired():
                    reply = self._run(self.client.getApplicationAssociationRequest())
                    self.client.parseApplicationAssociationResponse(reply.data)
        except (GXDLMSException, ValueError, ProbeError) as exc:
            raise ProbeError(f"association refused (client or keys wrong?): {exc}") from exc

    def object_list(self, *, described: bool) -> list[Any]:
        """The association's objects; `described` adds gurux's description of each OBIS code
        (a lookup in its standard OBIS table, about 10 ms an object)."""
        with _quiet():
            reply = self._run([self.client.getObjectsRequest()])
            if described:
                return list(self.client.parseObjects(reply.data, True))
            return list(self.client.parseLNObjects(reply.data, True, True))

    def read_value(self, item: Any) -> str:
        kind = int(item.objectType)
        with _quiet():
            unit = ""
            if kind in REGISTER_CLASSES:
                self._read(item, SCALER_UNIT_ATTRIBUTE)
                unit = _unit_name(item.unit)
            value = self._read(item, VALUE_ATTRIBUTE)
            if kind in REGISTER_CLASSES:
                value = item.value  # scaled by the scaler read before
            elif kind == CLOCK_CLASS:
                # The date-time octet-string decoded (Blue Book §4.1.6.1), with its deviation.
                value = item.time.value.isoformat()
        text = f"{_obis_text(item.logicalName)}  class {kind}  {_show(value)}"
        return f"{text} {unit}" if unit else text

    def _read(self, item: Any, attribute: int) -> Any:
        reply = self._run(self.client.read(item, attribute))
        self.client.updateValue(item, attribute, reply.value)
        return reply.value

    def _run(self, frames: list[Any]) -> Any:
        from gurux_dlms import GXByteBuffer, GXReplyData

        reply = GXReplyData()
        for frame in frames:
            reply.clear()
            self._exchange(frame, reply, GXByteBuffer, GXReplyData)
        while reply.isMoreData():
            self._exchange(self.client.receiverReady(reply), reply, GXByteBuffer, GXReplyData)
        return reply

    def _exchange(self, frame: Any, reply: Any, buffer: Any, notify: Any) -> None:
        try:
            self.sock.sendall(bytes(frame))
            answer = self._receive_pdu()
        except OSError as exc:
            raise ProbeError(f"{self.target.host}:{self.target.port}: {exc}") from exc
        if not self.client.getData(buffer(answer), reply, notify()):
            raise ProbeError("the meter's answer could not be parsed")

    def _receive_pdu(self) -> bytes:
        """One COSEM wrapper PDU (IEC 62056-47 §5.3: an 8-byte header, then the APDU)."""
        header = self._receive(WRAPPER_HEADER.size)
        length = WRAPPER_HEADER.unpack(header)[3]
        return header + self._receive(length)

    def _receive(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ProbeError("the meter closed the connection (refused the request?)")
            data += chunk
        return data


def _describe(item: Any) -> str:
    text = f"{_obis_text(item.logicalName)}  class {int(item.objectType)}"
    return f"{text}  {item.description}" if item.description else text


# Blue Book §4.3.2 (scal_unit_type) unit enumeration: the units DSMR registers use.
UNITS = {7: "s", 13: "m3", 14: "m3", 27: "W", 28: "VA", 29: "var", 30: "Wh", 31: "VAh"}
UNITS |= {32: "varh", 33: "A", 35: "V", 44: "Hz", 255: ""}


def _unit_name(unit: Any) -> str:
    """The unit's symbol, or its number when it is none of the above."""
    number = int(unit or 0)
    return UNITS.get(number, f"unit {number}" if number else "")


def _show(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
        return raw.decode("ascii") if raw.isascii() and raw.decode().isprintable() else raw.hex()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
