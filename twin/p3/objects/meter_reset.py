"""Meter reset to factory setting 0-1:94.31.5 (class 9, P3 §8.5).

execute(1) schedules the reset; it is carried out "after the release of the active application
association" (P3 §8.5), when the service calls `DsmrObjects.association_released()` (a lost
connection ends the association too). A pending reset lives in memory only: if the twin stops
before the association ends, nothing is reset, as on a meter that loses power first.

What the reset does ("Metrological registers (1-0:1.8.1, 1.8.2, 2.8.1, 2.8.2) are not changed;
other objects will be reset to factory setting. Also the security policy is reset"):
- every attribute the CS wrote (the `AttributeStore`) reads its default again: thresholds,
  location, clock time zone/DST settings, calendar passive tables and special days, register
  activation, readout lists, communication and push settings, M-Bus client setup overrides,
  the image transfer state, the alarm filter. Kept: the active firmware identifier (the
  firmware that runs is no setting; a reset does not roll back an upgrade).
- the tariff program goes back to the configuration's (event 9 if it differed: the tariff
  times in force changed), the consumer message is cleared, the administrative status is on.
- security policy: back to the factory setting, which in this twin is 3 (keys are created with
  policy 3 and it can never be lowered, P3 §3.2.1); `security_activate(3)` restores it. The
  keys, the HLS secret and the invocation counter are never touched: a counter used in a nonce
  must not repeat, and the head-end could not reach the meter without its keys.
- measured data is no setting and stays: event logs, load and billing profiles, failure and
  sag/swell counters, M-Bus values, the 10-minute averages, the alarm register, the clock.
P3 §4.2.1 lists no event for a factory reset, so none is logged for it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import ClassVar

from twin.meter.alarms import FACTORY_ALARM_FILTER
from twin.meter.model import MeterModel
from twin.meter.state import ADMIN_ON
from twin.metering import TARIFF_SETTING, program_from_config
from twin.p3.dlms.cosem import DataAccessResult
from twin.p3.objects.base import CosemObject, ObjectError, Request
from twin.p3.objects.env import Env
from twin.p3.objects.values import Data, Tag, ValueTypeError, array, struct, u16
from twin.ports import PortResult

log = logging.getLogger(__name__)

CODE = "0-1:94.31.5"
SCRIPT = 1  # the one script of the table (attribute 2 is array[1])
FACTORY_SECURITY_POLICY = 3  # twin.p3.keys: KeyMaterial is created with policy 3
KEPT_ATTRIBUTES = frozenset({"firmware.active"})


class MeterReset(CosemObject):
    class_id: ClassVar[int] = 9

    def __init__(self, env: Env) -> None:
        super().__init__(CODE, {1: "/R/", 2: "/R/"}, {1: "/X/"})
        self.env = env
        self.pending = False

    def read(self, index: int, request: Request) -> Data:
        if index == 2:
            # The actions are the twin's own (not COSEM writes), so the script lists none.
            return array([struct(u16(SCRIPT), array([]))])
        return super().read(index, request)

    def invoke(self, index: int, parameters: Data | None, request: Request) -> Data | None:
        """execute(data: long-unsigned script identifier)."""
        if parameters is None:
            raise ValueTypeError("execute needs the script identifier")
        if parameters.expect(Tag.LONG_UNSIGNED).integer() != SCRIPT:
            raise ObjectError(DataAccessResult.OTHER_REASON, "no such script")
        self.pending = True
        log.info("meter reset to factory setting scheduled for the end of the association")
        return None

    def association_released(self) -> bool:
        """Carry out a scheduled reset; True if one was done."""
        if not self.pending:
            return False
        self.pending = False
        reset_to_factory(self.env)
        return True


def reset_to_factory(env: Env) -> None:
    """Everything but the metrological registers (and measured data) back to factory."""
    env.attrs.clear(keep=KEPT_ATTRIBUTES)
    meter = env.meter
    program = program_from_config(meter.config)
    meter.store.put_setting(TARIFF_SETTING, None)  # a restart uses the configuration's again

    def restore(m: MeterModel, now: datetime) -> None:
        if m.program != program:
            m.set_tariff_program(now, program)
        m.set_message("", "")
        m.set_admin_state(ADMIN_ON)
        m.set_alarm_filter(FACTORY_ALARM_FILTER)

    meter.act(restore)
    result = env.keys.security_activate(FACTORY_SECURITY_POLICY)
    if result is not PortResult.SUCCESS:
        log.warning("security policy not restored to %d: %s", FACTORY_SECURITY_POLICY, result)
    log.info("meter reset to factory setting done")
