"""P3 in a scenario run (twin/scenario_run.py): the meter's COSEM object model, with the
head-end's SET and ACTION as timeline events, and with `--p3 tcp://HOST:PORT` the P3 TCP
service (P3 §3; no GPRS modem: always listening), so a head-end or dlms-cosem can read the
scenario's meter while it runs (paced with `--speed`).

The object model is the running twin's (`build_objects`, bound live to the meter and, with P2,
to the M-Bus master as its class 72 port). Its ticker (passive calendar activation, P3 §5.4;
the definable load profile's captures, §8.6) runs at every due point of the runner, and the
calendar's activate_passive_calendar_time and the definable profile's capture boundaries are
due points, so each happens at its meter time on every run.

Two event kinds (control commands of the run) apply what a head-end's management client
(client SAP 1, P3 §2.1) would, each as one short association: the access rights of the
management client, the communication session log entry when it is released (P3 §5.10) and
what waits for the release (a firmware activation, §5.12):

    [[event]]
    cmd = "p3-set"            # SET-Request-Normal of one attribute
    class_id = 20
    obis = "0-0:13.0.0"
    attribute = 10
    data = "090C07EA..."      # the value as A-XDR Data (IEC 62056-6-2 / Green Book), hex

    [[event]]
    cmd = "p3-action"         # ACTION-Request-Normal of one method
    class_id = 20
    obis = "0-0:13.0.0"
    method = 1
    data = "0F00"             # the parameters (A-XDR Data, hex); none if left out

A value that is no single A-XDR Data is refused before the run starts; one the meter does not
take (the object model's answer is not success) ends the run with an error naming the event.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from twin.clock import SystemClock
from twin.config import Config
from twin.control import ControlError, ControlServer
from twin.control_fields import Field, integer
from twin.metering import Meter
from twin.p3.dlms.cosem import ActionResult, AttributeRef, DataAccessResult
from twin.p3.dlms.errors import P3Error
from twin.p3.keys import KeyStore
from twin.p3.objects import build_objects
from twin.p3.objects import values as v
from twin.p3.objects.base import obis_bytes
from twin.p3.objects.factory import DsmrObjects, Session
from twin.p3.objects.ports import PushRelay
from twin.p3.server.association import MANAGEMENT_CLIENT
from twin.p3.service import P3Service
from twin.p3.wiring import parse_endpoint
from twin.ports import MbusPort
from twin.scenario import ScenarioError

KEY_STREAM = "p3 keys"  # its own stream of the scenario's seed (twin/scenario_p2.py has others)
HLS_GMAC = 5  # the management client's authentication (P3 §3.2.2: HLS 5, GMAC)
_OBIS = re.compile(r"\d{1,3}-\d{1,3}:\d{1,3}\.\d{1,3}\.\d{1,3}(\.\d{1,3})?")
MAX_DATA_BYTES = 65535  # more than any attribute of the DSMR object model holds


def _obis(value: object) -> bool:
    if not isinstance(value, str) or _OBIS.fullmatch(value) is None:
        return False
    try:
        obis_bytes(value)
    except ValueError:
        return False
    return True


def _data(value: object) -> bool:
    """Hex of exactly one A-XDR Data value."""
    if not isinstance(value, str) or not 2 <= len(value) <= 2 * MAX_DATA_BYTES:
        return False
    try:
        v.decode(bytes.fromhex(value))
    except (ValueError, P3Error):
        return False
    return True


OBIS = Field("obis", "an OBIS code such as '0-0:13.0.0' (groups 0..255)", _obis)
CLASS_ID = integer("class_id", 1, 65535)  # a COSEM interface class (Green Book §4.1)
DATA = "hex of one A-XDR Data value (IEC 62056-6-2), e.g. '0F00'"
P3_SET_FIELDS = (
    CLASS_ID,
    OBIS,
    integer("attribute", 1, 127),  # DLMS attribute indexes are signed 8-bit, 1..127 in use
    Field("data", DATA, _data),
)
P3_ACTION_FIELDS = (
    CLASS_ID,
    OBIS,
    integer("method", 1, 127),
    Field("data", DATA, _data, default=None, nullable=True),
)


class ScenarioHeadEnd:
    """The object model of the scenario's meter and the `p3-set`/`p3-action` commands."""

    def __init__(
        self,
        config: Config,
        meter: Meter,
        control: ControlServer,
        state_dir: Path,
        *,
        mbus: MbusPort | None,
        seed: int,
    ) -> None:
        self.meter = meter
        # What a P3 association uses; the keys the scenario does not set come from its seed,
        # so a head-end set up for one run reaches the meter of every run.
        keys = random.Random(f"{KEY_STREAM} {seed}")
        self.keys = KeyStore(meter.store, config.p3, urandom=keys.randbytes)
        # The push setups' method 1 (P3 §9.3) reaches the scenario's GPRS controller
        # (twin/scenario_gprs.py), which attaches itself here.
        self.relay = PushRelay()
        self.objects: DsmrObjects = build_objects(
            meter, keys=self.keys, mbus=mbus, modem=None, state_dir=state_dir, push=self.relay
        )
        # `--p3 tcp://HOST:PORT`: the TCP service (P3 §3), so a head-end can read the running
        # scenario's meter; what it does is of course not part of the reproducible timeline.
        self.service: P3Service | None = None
        if config.p3.serves:
            host, port = parse_endpoint(config.p3.endpoint)
            self.service = P3Service(
                meter,
                self.keys,
                self.objects,
                host,
                port,
                net_clock=SystemClock(),  # network timers run in real time, as in a twin
                association_timeout_s=config.p3.association_timeout_s,
            )
        control.add_command("p3-set", self._set, P3_SET_FIELDS)
        control.add_command("p3-action", self._action, P3_ACTION_FIELDS)

    async def serve(self) -> None:
        """Serve P3 over TCP until cancelled (at once done without `--p3`)."""
        if self.service is not None:
            await self.service.run()

    def next_due(self) -> datetime | None:
        """The meter time of the object model's next scheduled work: a passive calendar's
        activation (P3 §5.4) or a capture of the definable load profile (§8.6)."""
        planned = [
            self.objects.calendar.activation_due(),
            self.objects.definable.next_capture(self.meter.now()),
        ]
        return min((when for when in planned if when is not None), default=None)

    def tick(self) -> None:
        """What the object model runs on the meter clock, at the step's time."""
        self.objects.tick()
        if (refused := self.objects.calendar.refused) is not None:
            # A passive calendar the twin cannot run, due now: the scenario is wrong.
            raise ScenarioError(f"the object model's tick at {self.meter.now()}: {refused[1]}")

    async def _set(self, request: Mapping[str, Any]) -> object:
        ref = AttributeRef(request["class_id"], obis_bytes(request["obis"]), request["attribute"])
        session = self._associated()
        try:
            result = session.set(MANAGEMENT_CLIENT.sap, ref, None, bytes.fromhex(request["data"]))
        finally:
            session.released()
        if result is not DataAccessResult.SUCCESS:
            raise ControlError(f"the meter answered the SET with {result.name}")
        return {"result": result.name}

    async def _action(self, request: Mapping[str, Any]) -> object:
        ref = AttributeRef(request["class_id"], obis_bytes(request["obis"]), request["method"])
        data = request["data"]
        session = self._associated()
        try:
            outcome = session.action(
                MANAGEMENT_CLIENT.sap, ref, bytes.fromhex(data) if data is not None else None
            )
        finally:
            session.released()
        if outcome.result is not ActionResult.SUCCESS:
            raise ControlError(f"the meter answered the ACTION with {outcome.result.name}")
        returned = outcome.return_value
        return {"result": outcome.result.name, "return": returned.hex() if returned else None}

    def _associated(self) -> Session:
        session = self.objects.session()
        session.associated(HLS_GMAC)
        return session
