"""`dsmr-twin fleet ctl`: the fleet's status and its events, through each meter's own control
socket (the same requests `dsmr-twin ctl` sends one meter)."""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from twin.config import ConfigError
from twin.control import SOCKET_NAME, ControlError, ask
from twin.fleet.spec import START_REPORT, STATUS_FILE, FleetSpec, meter_dir

SUN_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes on Linux, one for the NUL
CONCURRENT_CALLS = 64  # control connections open at once (descriptors, the meters' loops)
STATUS_TIMEOUT_S = 5.0


async def meter_call(
    fleet_dir: Path, index: int, request: Mapping[str, Any], timeout: float = 10.0
) -> Any:
    """One control request to meter `index`: its result (a refusal raises ControlError)."""
    answer = await meter_ask(fleet_dir, index, request, timeout)
    if not answer["ok"]:
        raise ControlError(str(answer.get("error")))
    return answer.get("result")


async def meter_ask(
    fleet_dir: Path, index: int, request: Mapping[str, Any], timeout: float = 10.0
) -> dict[str, Any]:
    """One control request to meter `index`: its whole answer, a refusal too (ControlError
    when there is none). A socket path too long for sockaddr_un is reached through a
    descriptor of its directory (/proc/self/fd/N/, Linux)."""
    path = fleet_dir.absolute() / meter_dir(index) / SOCKET_NAME
    if len(os.fsencode(path)) <= SUN_PATH_MAX:
        return await ask(path, request, timeout)
    try:
        fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    except OSError as exc:
        raise ControlError(f"meter {index}: {path.parent}: {exc.strerror}") from exc
    try:
        return await ask(Path(f"/proc/self/fd/{fd}/{SOCKET_NAME}"), request, timeout)
    finally:
        os.close(fd)


async def call_meters(
    fleet_dir: Path, indices: list[int], request: Mapping[str, Any], timeout: float
) -> dict[int, Any]:
    """`request` to every meter of `indices`; a meter that fails maps to its ControlError."""
    gate = asyncio.Semaphore(CONCURRENT_CALLS)

    async def one(index: int) -> Any:
        async with gate:
            try:
                return await meter_call(fleet_dir, index, request, timeout)
            except ControlError as exc:
                return exc

    results = await asyncio.gather(*(one(i) for i in indices))
    return dict(zip(indices, results, strict=True))


def read_worker_status(fleet_dir: Path) -> list[dict[str, Any]]:
    """The head's view of its workers (empty while no fleet ran here)."""
    try:
        record = json.loads((fleet_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ControlError(f"{fleet_dir / STATUS_FILE} cannot be read: {exc}") from exc
    workers = record.get("workers") if isinstance(record, dict) else None
    head_up = isinstance(record, dict) and _alive(record.get("head_pid"))
    listed = [w for w in workers or [] if isinstance(w, dict)]
    # The file is the head's last word: a head or worker killed since then is not running.
    for worker in listed:
        if worker.get("state") == "running" and not (head_up and _alive(worker.get("pid"))):
            worker["state"] = "gone"
    return listed


def read_start_reports(fleet_dir: Path, workers: list[dict[str, Any]]) -> dict[int, Any]:
    """What the running workers report of their meters' start (twin/fleet/worker.py
    StartReport): meter index -> its state, reason and attempts. A report of a worker that is
    no longer running (another pid) is stale and ignored."""
    starts: dict[int, Any] = {}
    for worker in workers:
        path = fleet_dir / START_REPORT.format(worker=worker.get("worker"))
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            raise ControlError(f"{path} cannot be read: {exc}") from exc
        if worker.get("state") != "running" or record.get("pid") != worker.get("pid"):
            continue
        meters = record.get("meters")
        starts.update({int(i): m for i, m in (meters or {}).items() if isinstance(m, dict)})
    return starts


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def _meter_summary(
    index: int, spec: FleetSpec, worker: int | None, answer: Any, start: Any
) -> dict[str, Any]:
    row: dict[str, Any] = {"meter": index, "worker": worker, "p3": spec.p3_endpoint(index)}
    if isinstance(answer, ControlError):
        # Not answering: its worker says why (being started again, failed), or nobody does
        # (its worker is down or restarting: "unreachable").
        if isinstance(start, dict) and start.get("state") in ("starting", "failed"):
            return {
                **row,
                "up": False,
                "state": start["state"],
                "error": start.get("reason") or str(answer),
                "start_attempts": start.get("attempts"),
            }
        return {**row, "up": False, "state": "unreachable", "error": str(answer)}
    ports = answer.get("ports", {})
    p3 = ports.get("p3", {})
    # Services that are not running, or failed since the start: what an operator looks at.
    troubled = {
        name: service.get("last_error") or service.get("state")
        for name, service in ports.get("supervisor", {}).items()
        if service.get("state") != "running" or service.get("restarts")
    }
    return {
        **row,
        "up": True,
        "state": "running",
        "service_errors": troubled,
        "equipment_id": answer.get("equipment_id"),
        "meter_time": answer.get("meter_time"),
        "powered": answer.get("powered"),
        "power_failures": answer.get("power_failures"),
        "long_power_failures": answer.get("long_power_failures"),
        "import_w": answer.get("import_w"),
        "export_w": answer.get("export_w"),
        "1-0:1.8.1": answer.get("1-0:1.8.1"),
        "1-0:1.8.2": answer.get("1-0:1.8.2"),
        "p3_listening": bool(p3.get("listening")),
        "associations": p3.get("associations", 0),
        "p3_errors": p3.get("errors", 0),
        "pushes_sent": p3.get("pushes_sent", 0),
        "push_failures": p3.get("push_failures", 0),
    }


async def fleet_status(fleet_dir: Path, meter: int | None = None) -> dict[str, Any]:
    """Per meter and aggregated: meters up, workers up, restarts, sessions, pushes, errors."""
    spec = FleetSpec.load(fleet_dir)
    indices = [check_meter(spec, meter)] if meter is not None else list(spec.indices)
    workers = read_worker_status(fleet_dir)
    worker_of = {m: w.get("worker") for w in workers for m in w.get("meters", [])}
    answers = await call_meters(fleet_dir, indices, {"cmd": "status"}, STATUS_TIMEOUT_S)
    starts = read_start_reports(fleet_dir, workers)
    meters = [_meter_summary(i, spec, worker_of.get(i), answers[i], starts.get(i)) for i in indices]
    up = [m for m in meters if m["up"]]
    return {
        "meters": len(meters),
        "meters_up": len(up),
        "meters_starting": sum(1 for m in meters if m["state"] == "starting"),
        "meters_failed": sum(1 for m in meters if m["state"] == "failed"),
        "meters_unreachable": sum(1 for m in meters if m["state"] == "unreachable"),
        "powered": sum(1 for m in up if m["powered"]),
        "workers": len(workers),
        "workers_up": sum(1 for w in workers if w.get("state") == "running"),
        "worker_restarts": sum(int(w.get("restarts", 0)) for w in workers),
        "associations": sum(int(m["associations"]) for m in up),
        "p3_errors": sum(int(m["p3_errors"]) for m in up),
        "pushes_sent": sum(int(m["pushes_sent"]) for m in up),
        "push_failures": sum(int(m["push_failures"]) for m in up),
        "worker_states": workers,
        "meter_states": meters,
    }


def check_meter(spec: FleetSpec, meter: int, option: str = "--meter") -> int:
    if meter not in spec.indices:
        raise ConfigError(
            f"{option} {meter}: the fleet has meters {spec.first} to {spec.indices[-1]}"
        )
    return meter


def choose_meters(spec: FleetSpec, fraction: float, seed: int) -> list[int]:
    """round(fraction x count) meters (at least one), chosen by `seed` (reproducible)."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"--fraction {fraction}: expected more than 0 and at most 1")
    count = max(1, round(fraction * spec.count))
    return sorted(random.Random(seed).sample(list(spec.indices), count))


async def fleet_send(
    fleet_dir: Path, meters: list[int], request: Mapping[str, Any]
) -> dict[str, Any]:
    """`request` to each of `meters` (each meter's control server validates it): the answers
    of those that took it, the errors of those that did not."""
    answers = await call_meters(fleet_dir, meters, request, 10.0)
    failed = {str(i): str(a) for i, a in answers.items() if isinstance(a, ControlError)}
    results = {str(i): a for i, a in answers.items() if not isinstance(a, ControlError)}
    return {"meters": meters, "request": dict(request), "results": results, "failed": failed}


async def fleet_outage(fleet_dir: Path, meters: list[int], seconds: float) -> dict[str, Any]:
    """A grid outage: a power failure of `seconds` (meter time) on each of `meters`, through
    each meter's own control command (the meter validates `seconds`)."""
    sent = await fleet_send(fleet_dir, meters, {"cmd": "power-failure", "seconds": seconds})
    return {"meters": meters, "seconds": seconds, "failed": sent["failed"]}
