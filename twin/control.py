"""The control socket: a local Unix socket with a small JSON-lines API for operators.

One request per line, `{"cmd": "status"}`, one answer per line, `{"ok": true, "result": ...}`
or `{"ok": false, "kind": "...", "error": "..."}`. The socket lives in the state directory with
mode 0660, so only the service user and its group (operators over SSH) can reach it.

The server is the authority: every command declares its fields (twin/control_fields.py) and
nothing reaches a handler unchecked. It never writes to a path a client names: results (a
screenshot too) travel back in the answer and the CLI writes them as the operator.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from twin.clock import TimeRangeError, is_dst, local
from twin.control_fields import (
    ControlError,
    EncodingError,
    Field,
    NotJsonError,
    RequestError,
    integer,
    number,
    parse_fields,
    shown,
    text,
)
from twin.meter.model import (
    MESSAGE_CODE_PATTERN,
    MESSAGE_TEXT_PATTERN,
    SAG_SWELL_DEFAULT_S,
    MeterModel,
    ModelError,
)
from twin.meter.state import MeterReading
from twin.metering import Meter

__all__ = [
    "SOCKET_NAME",
    "ControlError",
    "ControlServer",
    "ControlSocket",
    "Handler",
    "ask",
    "call",
    "decode_request",
    "reading_to_json",
]

log = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"
MAX_REQUEST = 64 * 1024  # bytes in one request line; the longest real one (a message) is ~1 KiB
# An operator's request arrives within moments of connecting; a connection idle longer only
# holds a descriptor (and a client that never reads holds its answer), so it is closed.
IDLE_TIMEOUT_S = 5.0
# A drifting meter clock, as a lab injects it: a week either way is far beyond a real RTC's
# drift between two synchronisations.
CLOCK_DRIFT_MAX_S = 7 * 86400
POWER_FAILURE_MAX_S = 365 * 86400  # a year: far beyond any real outage, within P1 F10 and P3
SAG_SWELL_MAX_S = 86400.0  # a day; a longer excursion is a supply fault, not a sag or swell
# How long `status` waits for the reading it takes to be committed (docs/operations.md).
STATUS_WAIT_S = 0.05

T = TypeVar("T")
Handler = Callable[[Mapping[str, Any]], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Command:
    handler: Handler
    fields: tuple[Field, ...]


def kwh(wh: int) -> float:
    return round(wh / 1000, 3)


def reading_to_json(reading: MeterReading) -> dict[str, Any]:
    """The status document: registers in kWh under their OBIS codes, then everything else."""
    phases = [
        {
            "phase": i + 1,
            "import_w": reading.import_w_phase[i],
            "export_w": reading.export_w_phase[i],
            "current_a": reading.current_a[i],
            "voltage_v": reading.voltage_v[i],
            "sags": reading.sags[i],
            "swells": reading.swells[i],
        }
        for i in range(reading.phases)
    ]
    here = local(reading.time)
    return {
        **{code: kwh(wh) for code, wh in sorted(reading.energy_wh.items())},
        "tariff": int(reading.tariff),
        "power_failures": reading.failures_any,
        "long_power_failures": reading.failures_long,
        "power_failure_log": [
            {"end": f.end.isoformat(), "duration_s": f.duration_s} for f in reading.failure_log
        ],
        "meter_time": reading.time.isoformat(),
        "local_time": here.replace(tzinfo=None).isoformat(timespec="seconds"),
        "dst": is_dst(reading.time),
        "equipment_id": reading.equipment_id,
        "powered": reading.powered,
        "import_w": reading.import_w,
        "export_w": reading.export_w,
        "phases": phases,
        "message": {"code": reading.message_code, "text": reading.message_text},
        "admin_state": reading.admin_state,
        "load_override_w": reading.load_override_w,
        "mbus": [
            {
                "channel": d.channel,
                "device_type": d.device_type,
                "equipment_id": d.equipment_id,
                "value": round(d.value_thousandths / 1000, 3),
                "capture": d.capture.isoformat() if d.capture else None,
            }
            for d in reading.mbus
        ],
    }


class ControlSocket:
    """The socket and the JSON-lines dispatch, for any process: commands are added to it.

    `ControlServer` is the twin's (the meter's commands); a `dsmr-twin gasmeter` process
    serves its own commands on one too (twin/p2/aio/standalone.py).
    """

    def __init__(self, socket_path: Path, *, idle_timeout_s: float = IDLE_TIMEOUT_S) -> None:
        self.socket_path = socket_path
        self.idle_timeout_s = idle_timeout_s
        self.commands: dict[str, Command] = {}
        self.heartbeat = 0.0

    def add_command(self, name: str, handler: Handler, fields: Sequence[Field] = ()) -> None:
        """Serve `name`; `handler` gets the request with exactly `fields`, checked."""
        self.commands[name] = Command(handler, tuple(fields))

    async def run(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        server = await asyncio.start_unix_server(
            self._serve, path=str(self.socket_path), limit=MAX_REQUEST
        )
        os.chmod(self.socket_path, 0o660)
        log.info("control socket at %s", self.socket_path)
        try:
            async with server:
                await server.serve_forever()
        finally:
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await self._read_line(reader, writer):
                await self._answer(writer, await self.dispatch(line))
        except (ConnectionError, TimeoutError) as exc:
            log.info("control client dropped: %s", exc or type(exc).__name__)
        finally:
            writer.close()

    async def _read_line(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        """The next request line; b"" ends the connection (closed, idle or over-long)."""
        try:
            async with asyncio.timeout(self.idle_timeout_s):
                return await reader.readline()
        except TimeoutError:
            return b""
        except ValueError:  # StreamReader's limit: the line is longer than MAX_REQUEST
            # The rest of the line is still in flight, so no later line can be found reliably:
            # answer, then close.
            error = f"a request is one line of at most {MAX_REQUEST} bytes"
            await self._answer(writer, _error("too-long", error))
            return b""

    async def _answer(self, writer: asyncio.StreamWriter, answer: dict[str, Any]) -> None:
        writer.write(json.dumps(answer).encode() + b"\n")
        async with asyncio.timeout(self.idle_timeout_s):  # a client that never reads
            await writer.drain()

    async def dispatch(self, line: bytes) -> dict[str, Any]:
        try:
            request = decode_request(line)
            command = self.commands.get(request["cmd"])
            if command is None:
                known = ", ".join(sorted(self.commands))
                raise RequestError(f"unknown command {request['cmd']!r}; known: {known}")
            result = await command.handler(parse_fields(request, command.fields))
            return {"ok": True, "result": result}
        except ControlError as exc:
            return _error(exc.kind, str(exc))
        except ModelError as exc:
            return _error("refused", str(exc))
        except Exception as exc:
            # A bug behind a checked request: logged with its traceback, answered as such, and
            # the socket (and every later command) keeps working.
            log.exception("control command failed: %s", shown(line))
            return _error("internal", f"{type(exc).__name__}: {exc}")


class ControlServer(ControlSocket):
    """Serves the control API for one meter; extra commands come from the services."""

    def __init__(
        self, meter: Meter, socket_path: Path, *, idle_timeout_s: float = IDLE_TIMEOUT_S
    ) -> None:
        super().__init__(socket_path, idle_timeout_s=idle_timeout_s)
        self.meter = meter
        self.ports: dict[str, Callable[[], dict[str, Any]]] = {}
        self._add_meter_commands()

    def _add_meter_commands(self) -> None:
        meter = self.meter.config.meter
        capacity = meter.max_power_w
        seconds = number("seconds", 1, SAG_SWELL_MAX_S, default=SAG_SWELL_DEFAULT_S)
        phase = integer("phase", 1, meter.phases)
        self.add_command("status", self._status)
        self.add_command(
            "power-failure", self._power_failure, [number("seconds", 1, POWER_FAILURE_MAX_S)]
        )
        self.add_command("sag", self._sag, [phase, seconds])
        self.add_command("swell", self._swell, [phase, seconds])
        message = [
            # P1 §5.13 example 0-0:96.13.1(3031203631203831) is "01 61 81".
            text("code", MESSAGE_CODE_PATTERN, "up to 8 digits and spaces", default=""),
            text("text", MESSAGE_TEXT_PATTERN, "up to 1024 printable ASCII characters", default=""),
        ]
        self.add_command("message", self._message, message)
        # What the meter can carry: phases x Imax x nominal voltage (null clears the override).
        self.add_command("load", self._load, [number("watts", -capacity, capacity, nullable=True)])
        self.add_command("tamper", self._tamper, [integer("code", 40, 47, default=40)])
        self.add_command("admin", self._admin, [integer("state", 0, 2)])
        self.add_command("weather", self._weather, [number("cloudiness", 0, 1)])
        drift = number("seconds", -CLOCK_DRIFT_MAX_S, CLOCK_DRIFT_MAX_S)
        self.add_command("clock-drift", self._clock_drift, [drift])

    # ------------------------------------------------------------------ commands

    def _act(self, action: Callable[[MeterModel, datetime], T]) -> T:
        """`Meter.act`, refused while `ctl advance` runs: the clock still shows the span's
        start, so an injection would land in time the model has already metered."""
        self._refuse_while_advancing()
        return self.meter.act(action)

    def _refuse_while_advancing(self) -> None:
        if self.meter.advancing:
            raise ControlError("the meter is advancing (ctl advance); send this when it is done")

    async def _status(self, request: Mapping[str, Any]) -> object:
        # Answers while the store is stuck: then with the last committed reading (and why).
        status = reading_to_json(await self.meter.latest(STATUS_WAIT_S))
        status["speed"] = self.meter.clock.speed
        status["storage"] = self.meter.store.writer.status()
        status["ports"] = {name: describe() for name, describe in sorted(self.ports.items())}
        return status

    async def _power_failure(self, request: Mapping[str, Any]) -> object:
        seconds = request["seconds"]
        self._act(lambda m, now: m.power_failure(now, seconds))
        return {"seconds": seconds}

    async def _clock_drift(self, request: Mapping[str, Any]) -> object:
        """The meter's clock runs off by `seconds`, as a real meter's RTC drifts: no event is
        logged (the meter does not know), so the head-end's clock synchronisation (P3 §5.3)
        has something to correct."""
        self._refuse_while_advancing()  # a clock set during the span, like P3's
        seconds = request["seconds"]
        new = self.meter.now() + timedelta(seconds=seconds)
        try:
            self.meter.set_time(new, event=False)
        except TimeRangeError as exc:
            raise RequestError(f"a drift of {seconds:g} s: {exc}") from exc
        return {"seconds": seconds, "meter_time": new.isoformat()}

    async def _sag(self, request: Mapping[str, Any]) -> object:
        phase, seconds = request["phase"], request["seconds"]
        self._act(lambda m, now: m.voltage_sag(now, phase, seconds))
        return {"phase": phase}

    async def _swell(self, request: Mapping[str, Any]) -> object:
        phase, seconds = request["phase"], request["seconds"]
        self._act(lambda m, now: m.voltage_swell(now, phase, seconds))
        return {"phase": phase}

    async def _message(self, request: Mapping[str, Any]) -> object:
        code, text = request["code"], request["text"]
        self._act(lambda m, now: m.set_message(code, text))
        return {"code": code, "text": text}

    async def _load(self, request: Mapping[str, Any]) -> object:
        watts = request["watts"]
        self._act(lambda m, now: m.set_load_override(now, watts))
        return {"watts": watts}

    async def _tamper(self, request: Mapping[str, Any]) -> object:
        code = request["code"]
        self._act(lambda m, now: m.tamper(now, code))
        return {"code": code}

    async def _admin(self, request: Mapping[str, Any]) -> object:
        state = request["state"]
        self._act(lambda m, now: m.set_admin_state(state))
        return {"state": state}

    async def _weather(self, request: Mapping[str, Any]) -> object:
        cloudiness = request["cloudiness"]
        self._act(lambda m, now: m.set_cloudiness(now, cloudiness))
        return {"cloudiness": cloudiness}


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"ok": False, "kind": kind, "error": message}


def decode_request(line: bytes) -> dict[str, Any]:
    """One request line as a JSON object with a "cmd" string."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EncodingError(f"a request is UTF-8 JSON: {exc.reason} at byte {exc.start}") from exc
    try:
        request = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotJsonError(f"not JSON: {exc}") from exc
    except (ValueError, RecursionError) as exc:  # a 5000-digit integer, nesting too deep
        raise NotJsonError(f"not a usable JSON request: {type(exc).__name__}") from exc
    if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
        raise RequestError('a request is a JSON object with a "cmd" string')
    return request


async def call(socket_path: Path, request: Mapping[str, Any], timeout: float = 10.0) -> Any:
    """Send one request to a running twin and return its result (raises ControlError)."""
    answer = await ask(socket_path, request, timeout)
    if not answer["ok"]:
        raise ControlError(str(answer.get("error")))
    return answer.get("result")


async def ask(
    socket_path: Path, request: Mapping[str, Any], timeout: float = 10.0
) -> dict[str, Any]:
    """Send one request to a running twin and return its whole answer, a refusal too
    (`{"ok": false, "kind": ..., "error": ...}`); raises ControlError when there is none."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_unix_connection(str(socket_path), limit=16 * 1024 * 1024), timeout
        )
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise ControlError(f"no twin is running with control socket {socket_path}") from exc
    except PermissionError as exc:
        raise ControlError(f"no permission on {socket_path} (join the twin's group)") from exc
    except TimeoutError as exc:  # a hung twin: its socket's queue is full
        raise ControlError(f"the twin did not answer within {timeout:g} s") from exc
    except OSError as exc:
        raise ControlError(f"cannot connect to {socket_path}: {exc.strerror or exc}") from exc
    try:
        writer.write(json.dumps(request).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    except TimeoutError as exc:
        raise ControlError(f"the twin did not answer within {timeout:g} s") from exc
    # OSError: the socket fails under way (EINVAL from a twin that hangs with its queue full);
    # ValueError: an answer over the limit.
    except (OSError, ValueError) as exc:
        raise ControlError(f"the connection to the twin failed: {exc}") from exc
    finally:
        writer.close()
    if not line:
        raise ControlError("the twin closed the connection without answering")
    try:
        answer = json.loads(line)
    except ValueError as exc:
        raise ControlError(f"the twin answered something that is not JSON: {exc}") from exc
    if not isinstance(answer, dict) or "ok" not in answer:
        raise ControlError(f"the twin's answer is not a control answer: {line[:60]!r}")
    return answer
