"""The control socket: a local Unix socket with a small JSON-lines API for operators.

One request per line, `{"cmd": "status"}`, one answer per line, `{"ok": true, "result": ...}`
or `{"ok": false, "error": "..."}`. The socket lives in the state directory with mode 0660, so
only the service user and its group (operators over SSH) can reach it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from twin.clock import is_dst, local
from twin.meter.model import ModelError
from twin.meter.state import MeterReading
from twin.metering import Meter

log = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"
MAX_REQUEST = 64 * 1024
# How long `status` waits for the reading it takes to be committed (docs/operations.md).
STATUS_WAIT_S = 0.05

Handler = Callable[[Mapping[str, Any]], Awaitable[object]]


class ControlError(ValueError):
    """A control request that cannot be carried out; the message goes back to the operator."""


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


class ControlServer:
    """Serves the control API for one meter; extra commands come from the services."""

    def __init__(self, meter: Meter, socket_path: Path) -> None:
        self.meter = meter
        self.socket_path = socket_path
        self.ports: dict[str, Callable[[], dict[str, Any]]] = {}
        self.handlers: dict[str, Handler] = {
            "status": self._status,
            "power-failure": self._power_failure,
            "sag": self._sag,
            "swell": self._swell,
            "message": self._message,
            "load": self._load,
            "tamper": self._tamper,
            "admin": self._admin,
        }
        self.heartbeat = 0.0

    def add_command(self, name: str, handler: Handler) -> None:
        self.handlers[name] = handler

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
            while line := await reader.readline():
                writer.write(json.dumps(await self.dispatch(line)).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError) as exc:
            log.warning("control client dropped: %s", exc)
        finally:
            writer.close()

    async def dispatch(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
                raise ControlError('a request is a JSON object with a "cmd" string')
            handler = self.handlers.get(request["cmd"])
            if handler is None:
                raise ControlError(
                    f"unknown command {request['cmd']!r}; known: {', '.join(sorted(self.handlers))}"
                )
            return {"ok": True, "result": await handler(request)}
        except json.JSONDecodeError as exc:
            return {"ok": False, "error": f"not JSON: {exc}"}
        except (ControlError, ModelError) as exc:
            return {"ok": False, "error": str(exc)}

    # ------------------------------------------------------------------ commands

    async def _status(self, request: Mapping[str, Any]) -> object:
        # Answers while the store is stuck: then with the last committed reading (and why).
        status = reading_to_json(await self.meter.latest(STATUS_WAIT_S))
        status["speed"] = self.meter.clock.speed
        status["storage"] = self.meter.store.writer.status()
        status["ports"] = {name: describe() for name, describe in sorted(self.ports.items())}
        return status

    async def _power_failure(self, request: Mapping[str, Any]) -> object:
        seconds = _number(request, "seconds")
        self.meter.act(lambda m, now: m.power_failure(now, seconds))
        return {"seconds": seconds}

    async def _sag(self, request: Mapping[str, Any]) -> object:
        phase, seconds = int(_number(request, "phase")), _number(request, "seconds", 10.0)
        self.meter.act(lambda m, now: m.voltage_sag(now, phase, seconds))
        return {"phase": phase}

    async def _swell(self, request: Mapping[str, Any]) -> object:
        phase, seconds = int(_number(request, "phase")), _number(request, "seconds", 10.0)
        self.meter.act(lambda m, now: m.voltage_swell(now, phase, seconds))
        return {"phase": phase}

    async def _message(self, request: Mapping[str, Any]) -> object:
        code, text = str(request.get("code", "")), str(request.get("text", ""))
        self.meter.act(lambda m, now: m.set_message(code, text))
        return {"code": code, "text": text}

    async def _load(self, request: Mapping[str, Any]) -> object:
        watts = request.get("watts")
        if watts is not None:
            watts = _number(request, "watts")
        self.meter.act(lambda m, now: m.set_load_override(now, watts))
        return {"watts": watts}

    async def _tamper(self, request: Mapping[str, Any]) -> object:
        code = int(_number(request, "code", 40))
        self.meter.act(lambda m, now: m.tamper(now, code))
        return {"code": code}

    async def _admin(self, request: Mapping[str, Any]) -> object:
        state = int(_number(request, "state"))
        self.meter.act(lambda m, now: m.set_admin_state(state))
        return {"state": state}


def _number(request: Mapping[str, Any], key: str, default: float | None = None) -> float:
    value = request.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ControlError(f"{key!r} must be a number")
    return float(value)


async def call(socket_path: Path, request: Mapping[str, Any], timeout: float = 10.0) -> Any:
    """Send one request to a running twin and return its result (raises ControlError)."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_unix_connection(str(socket_path), limit=16 * 1024 * 1024), timeout
        )
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise ControlError(f"no twin is running with control socket {socket_path}") from exc
    except PermissionError as exc:
        raise ControlError(f"no permission on {socket_path} (join the twin's group)") from exc
    try:
        writer.write(json.dumps(request).encode() + b"\n")
        await writer.drain()
        answer = json.loads(await asyncio.wait_for(reader.readline(), timeout))
    finally:
        writer.close()
    if not answer.get("ok"):
        raise ControlError(str(answer.get("error")))
    return answer["result"]
