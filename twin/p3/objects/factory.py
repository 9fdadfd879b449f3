"""`build_objects`: the DSMR 4.2.2 object model of one meter, bound live to its `Meter`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from twin.meter.events import EventLog
from twin.metering import Meter
from twin.p3.dlms.cosem import AttributeRef, DataAccessResult, SelectiveAccess
from twin.p3.objects import abstract, comm, electricity, mbus, profiles, readout
from twin.p3.objects.activation import RegisterActivation
from twin.p3.objects.association import AssociationLN, sap_assignment
from twin.p3.objects.base import CosemObject
from twin.p3.objects.clock import Clock, time_shift_limit
from twin.p3.objects.comlog import ComLog
from twin.p3.objects.definable import DefinableProfile
from twin.p3.objects.env import Env
from twin.p3.objects.image import ImageTransfer
from twin.p3.objects.meter_reset import MeterReset
from twin.p3.objects.ports import KeyService, PushPort
from twin.p3.objects.registry import ObjectRegistry
from twin.p3.objects.security import SecuritySetup
from twin.p3.objects.simple import AttributeStore, Stored
from twin.p3.objects.tariff import tariff_objects
from twin.p3.server.interfaces import ActionOutcome
from twin.ports import MbusPort, ModemStatus


class DsmrObjects:
    """`CosemObjects` for the core, plus the hooks the P3 service calls.

    - `tick()`: call about once a second; activates a passive calendar whose
      activate_passive_calendar_time has passed (P3 §5.4) and captures the definable load
      profile at its capture_period boundaries (§8.6), even when no CS is connected.
    - `association_released()`: call when an association ends (released, aborted or the
      connection lost); logs the communication session (P3 §5.10), completes a pending
      firmware activation (P3 §5.12) and a scheduled meter reset (P3 §8.5).
    - `session()`: the per-connection `CosemObjects` to give each DlmsServer; it records the
      management client's calls for the communication session log.
    - `display_lists`: the display readout lists 0-0:21.0.1..3 as the display reads them
      (P3 §5.15; a `twin.readout_lists.ReadoutLists`).
    """

    def __init__(self, env: Env) -> None:
        self.env = env
        # Of the current association (one at a time, P3 Table 3-1): association LN attr 6.
        self.mechanism: int | None = None
        # Called after every SET and ACTION: what `next_due` answers may have moved.
        self.on_change: list[Callable[[], None]] = []
        self.registry = ObjectRegistry([], env.meter.now)
        firmware = abstract.firmware_id(env)
        self.calendar, tariff = tariff_objects(env)
        self.image = ImageTransfer(env, firmware)
        objects = _objects(
            env, self.registry, firmware, tariff, self.image, mechanism=lambda: self.mechanism
        )
        for obj in objects:
            self.registry.add(obj)
        self.meter_reset = MeterReset(env)  # 0-1:94.31.5, runs in association_released
        self.registry.add(self.meter_reset)
        # P3 §8.6: reads its capture objects through the registry, so it comes last
        self.definable = DefinableProfile(env, self.registry)
        self.registry.add(self.definable)
        self.display_lists = readout.DisplayLists(
            [obj for obj in self.registry if isinstance(obj, readout.ReadoutList)]
        )

    def get(
        self, client: int, ref: AttributeRef, access: SelectiveAccess | None
    ) -> bytes | DataAccessResult:
        self.tick()
        return self.registry.get(client, ref, access)

    def set(
        self, client: int, ref: AttributeRef, access: SelectiveAccess | None, value: bytes
    ) -> DataAccessResult:
        self.tick()
        result = self.registry.set(client, ref, access, value)
        self._changed()  # a new activation time or capture period: the ticker re-plans
        return result

    def action(self, client: int, ref: AttributeRef, parameters: bytes | None) -> ActionOutcome:
        self.tick()
        outcome = self.registry.action(client, ref, parameters)
        self._changed()
        return outcome

    def _changed(self) -> None:
        for listener in self.on_change:
            listener()

    def session(self) -> Session:
        """The `CosemObjects` for one connection's DlmsServer: it records the management
        client's calls for the communication session log (P3 §5.10)."""
        return Session(self)

    def next_due(self) -> datetime | None:
        """When `tick` next has work on the meter clock (UTC): the passive calendar's
        activation (P3 §5.4) or the definable profile's next capture (P3 §8.6); None: none."""
        now = self.env.meter.now()
        dues = (self.calendar.activation_due(), self.definable.next_capture(now))
        return min((d for d in dues if d is not None), default=None)

    def tick(self) -> None:
        now = self.env.meter.now()
        self.calendar.activate_if_due(now)
        self.definable.tick(now)  # capture at each capture_period boundary (P3 §8.6)

    def association_released(self) -> None:
        """The association ended (RLRQ, silent release or lost connection): log the
        communication session (P3 §5.10), complete a pending firmware activation (§5.12) and
        a scheduled meter reset to factory setting (§8.5)."""
        self.env.comlog.flush()
        self.image.association_released()
        if self.meter_reset.association_released():  # P3 §8.5: after the association, last
            # capture_objects are back to the default: the buffer goes with them (class 7).
            self.definable.clear(self.env.meter.now())

    def objects(self) -> Iterator[CosemObject]:
        return iter(self.registry)


class Session:
    """Per-connection view of the object model that counts comlog codes; call `released()`
    when the association ends (or the connection is lost)."""

    def __init__(self, objects: DsmrObjects) -> None:
        self.objects = objects
        self.comlog = objects.env.comlog

    def get(
        self, client: int, ref: AttributeRef, access: SelectiveAccess | None
    ) -> bytes | DataAccessResult:
        self.comlog.record(client, ref)
        return self.objects.get(client, ref, access)

    def set(
        self, client: int, ref: AttributeRef, access: SelectiveAccess | None, value: bytes
    ) -> DataAccessResult:
        self.comlog.record(client, ref, method=True)
        return self.objects.set(client, ref, access, value)

    def action(self, client: int, ref: AttributeRef, parameters: bytes | None) -> ActionOutcome:
        self.comlog.record(client, ref, method=True)
        return self.objects.action(client, ref, parameters)

    def associated(self, mechanism: int) -> None:
        """The association is established with this authentication mechanism (0-5)."""
        self.objects.mechanism = mechanism

    def released(self) -> None:
        self.objects.mechanism = None
        self.objects.association_released()


def _objects(
    env: Env,
    registry: ObjectRegistry,
    firmware: Stored,
    tariff: list[CosemObject],
    image: ImageTransfer,
    *,
    mechanism: Callable[[], int | None],
) -> list[CosemObject]:
    return [
        # P3 chapter 5: abstract objects
        sap_assignment(abstract.logical_device_name(env)),
        AssociationLN(env, registry.visible, mechanism),
        SecuritySetup(env),
        *abstract.identification(env, firmware),
        Clock(env),
        time_shift_limit(env),
        *tariff,
        electricity.tariff_indicator(env),
        RegisterActivation(env),
        profiles.billing_profile(env),
        *abstract.alarms(env),
        *(profiles.event_log(env, log) for log in EventLog),
        *profiles.event_code_objects(env),
        profiles.power_failure_log(env),
        *abstract.messages(env),
        readout.p1_readout(env, lambda client, ref: registry.get(client, ref, None)),
        *readout.display_readouts(env, lambda client, ref: registry.get(client, ref, None)),
        image,
        abstract.amr_status(env),
        # chapter 6: electricity
        *electricity.registers(env),
        *electricity.counters(env),
        *electricity.thresholds(env),
        profiles.load_profile(env),
        profiles.daily_profile(env),
        # chapter 7: M-Bus; chapter 8: country specific; chapter 9 and §3.1: GPRS
        *mbus.mbus_objects(env),
        *abstract.country_specific(env),
        *comm.setup_objects(env),
        *comm.push_objects(env),
        *comm.local_port_objects(env),
    ]


def build_objects(
    meter: Meter,
    *,
    keys: KeyService,
    mbus: MbusPort | None,
    modem: ModemStatus | None,
    state_dir: Path,
    push: PushPort | None = None,
) -> DsmrObjects:
    """The object model of `meter` for the P3 DLMS server core (a `CosemObjects`); `push`
    serves the push setups' method 1 (P3 §9.3; a `PushRelay` the GPRS controller attaches to)."""
    attrs = AttributeStore(meter.store)
    env = Env(meter, attrs, keys, mbus, modem, state_dir, ComLog(meter), push)
    return DsmrObjects(env)
