"""M-Bus objects of P3 chapter 7 for channels x = 1..4: client setup 0-x:24.1.0 (class 72),
master port setup 0-x:24.6.0 (class 74), equipment id 0-x:96.1.0, master value 0-x:24.2.1
(class 4), AMR status 0-x:96.10.3 and the hourly profile 0-x:24.3.0 (class 7).

Values come from the model's M-Bus readings (P2, or the gas stand-in); the short ID and link
status from the `MbusPort` when the P2 service runs. Methods go to the port; without one the
answer is temporary-failure. DSMR 4.2.2 has no valve objects.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import ClassVar

from twin.catalogue import UNIT_CODES
from twin.meter.profiles import MBUS_HOURLY_ENTRIES
from twin.meter.state import MbusReading
from twin.p3.dlms.cosem import DataAccessResult
from twin.p3.objects.base import CosemObject, ObjectError, Request, obis_bytes
from twin.p3.objects.env import Env
from twin.p3.objects.profile_generic import CLOCK, Profile, Row
from twin.p3.objects.simple import DataObject, Generic, Stored
from twin.p3.objects.values import (
    NOT_SPECIFIED,
    Data,
    Tag,
    array,
    date_time,
    encode,
    enum_,
    null,
    octets,
    scaler_unit,
    u8,
    u16,
    u32,
)
from twin.ports import MbusDevice, MbusPort, PortResult

CHANNELS = range(1, 5)
GAS_SCALER = -3  # value_thousandths: m3 with scaler -3 (OSGP models G4-G6 gas the same way)
NO_DEVICE = MbusDevice(0, 0, 0, 0, 0)
# client setup attributes that come from the device's short ID (P3 §7.1 attrs 5..14)
_SHORT_ID: dict[int, Callable[[MbusDevice], Data]] = {
    5: lambda d: u8(d.primary_address),
    6: lambda d: u32(d.identification_number),
    7: lambda d: u16(d.manufacturer_id),
    8: lambda d: u8(d.version),
    9: lambda d: u8(d.device_type),
    10: lambda d: u8(d.access_number),
    11: lambda d: u8(d.status),
    12: lambda d: u8(d.alarm),
    13: lambda d: u16(d.configuration),
    14: lambda d: enum_(d.encryption_key_status),
}


def reading_of(env: Env, channel: int) -> MbusReading | None:
    for device in env.reading().mbus:
        if device.channel == channel:
            return device
    return None


class MbusClientSetup(CosemObject):
    class_id: ClassVar[int] = 72

    def __init__(self, env: Env, channel: int) -> None:
        rights = {1: "/R/", 2: "/R/", 3: "/R/"} | dict.fromkeys(range(4, 10), "/RW/")
        super().__init__(
            f"0-{channel}:24.1.0",
            rights | dict.fromkeys(range(10, 15), "/R/"),
            dict.fromkeys(range(1, 9), "/X/"),
        )
        self.env, self.channel = env, channel
        self.capture_period = Stored(env.attrs, f"mbus{channel}.capture_period", u32(3600))
        self.overrides = {
            i: Stored(env.attrs, f"mbus{channel}.attr{i}", null()) for i in range(5, 10)
        }

    def device(self) -> MbusDevice:
        port = self.env.mbus
        found = port.device(self.channel) if port is not None else None
        if found is not None:
            return found
        reading = reading_of(self.env, self.channel)
        return NO_DEVICE if reading is None else MbusDevice(0, 0, 0, 0, reading.device_type)

    def read(self, index: int, request: Request) -> Data:
        if index == 2:
            return octets(obis_bytes(f"0-{self.channel}:24.6.0"))
        if index == 3:
            return array([])  # capture_definition: from the telegrams (P3 §7.1 note 9)
        if index == 4:
            return self.capture_period.get()
        if index in self.overrides and self.overrides[index].get() != null():
            return self.overrides[index].get()
        if index in _SHORT_ID:
            return _SHORT_ID[index](self.device())
        return super().read(index, request)

    def write(self, index: int, value: Data, request: Request) -> None:
        if index == 4:
            self.capture_period.set(value)
            return
        template = _SHORT_ID[index](NO_DEVICE)
        if value.tag is not template.tag:
            raise ObjectError(DataAccessResult.TYPE_UNMATCHED)
        self.overrides[index].put(value)

    def invoke(self, index: int, parameters: Data | None, request: Request) -> Data | None:
        port = self.env.mbus
        if port is None:
            raise ObjectError(DataAccessResult.TEMPORARY_FAILURE, "no M-Bus master running")
        result = _call(port, self.channel, index, parameters)
        if result is not PortResult.SUCCESS:
            raise ObjectError(DataAccessResult(int(result)))
        if index == 2:  # slave_deinstall: primary_address 0 etc. (P3 §7.1), from the port again
            for stored in self.overrides.values():
                stored.put(null())
        return None


def _call(port: MbusPort, channel: int, index: int, parameters: Data | None) -> PortResult:
    """Methods 1..8 of class 72 (P3 §7.1)."""
    without: dict[int, Callable[[int], PortResult]] = {
        2: port.slave_deinstall,
        3: port.capture,
        4: port.reset_alarm,
        5: port.synchronize_clock,
    }
    if index in without:
        return without[index](channel)
    if index == 1:
        address = parameters.expect(Tag.UNSIGNED).integer() if parameters else 0
        return port.slave_install(channel, address)
    if parameters is None:
        return PortResult.TYPE_UNMATCHED
    with_data: dict[int, Callable[[int, bytes], PortResult]] = {
        6: port.data_send,
        7: port.set_encryption_key,
        8: port.transfer_key,  # the wrapped key MSB first, as received (P3 §3.2.3)
    }
    payload = encode(parameters) if index == 6 else parameters.octets()
    return with_data[index](channel, payload)


class ExtendedRegister(Generic):
    class_id: ClassVar[int] = 4


def master_value(env: Env, channel: int) -> CosemObject:
    """0-x:24.2.1: value double-long-unsigned, scaler_unit from the VIF, status, capture time."""

    def value(_r: Request) -> Data:
        reading = reading_of(env, channel)
        return u32(reading.value_thousandths if reading else 0)

    def capture(_r: Request) -> Data:
        reading = reading_of(env, channel)
        when = reading.capture if reading else None
        return date_time(when) if when else octets(NOT_SPECIFIED)

    unit = scaler_unit(GAS_SCALER, UNIT_CODES["m3"])
    getters = {2: value, 3: lambda _r: unit, 4: lambda _r: octets(b"\x00"), 5: capture}
    return ExtendedRegister(f"0-{channel}:24.2.1", dict.fromkeys(range(1, 6), "/R/"), getters)


def device_configuration(env: Env, channel: int) -> CosemObject:
    """0-x:24.2.2 (class 4, P3 §7.3.2): the device's version fields as received over P2;
    empty until a port reports them (MbusDevice does not carry them yet), count {0, 255}."""

    def capture(_r: Request) -> Data:
        reading = reading_of(env, channel)
        when = reading.capture if reading else None
        return date_time(when) if when else octets(NOT_SPECIFIED)

    unit = scaler_unit(0, 255)
    getters = {
        2: lambda _r: octets(b""),
        3: lambda _r: unit,
        4: lambda _r: octets(b"\x00"),
        5: capture,
    }
    return ExtendedRegister(f"0-{channel}:24.2.2", dict.fromkeys(range(1, 6), "/R/"), getters)


class MbusPortSetup(Generic):
    class_id: ClassVar[int] = 74


def channel_objects(env: Env, channel: int) -> list[CosemObject]:
    def equipment(_r: Request) -> Data:
        reading = reading_of(env, channel)
        return octets(reading.equipment_id if reading else "")

    return [
        MbusClientSetup(env, channel),
        MbusPortSetup(f"0-{channel}:24.6.0", {1: "/R/", 2: "/R/"}, {2: lambda _r: enum_(3)}),
        DataObject(f"0-{channel}:96.1.0", "/R/", equipment),
        master_value(env, channel),
        device_configuration(env, channel),
        DataObject(f"0-{channel}:96.10.3", "R/R/", lambda r: u8(_period_status(env, channel, r))),
        hourly_profile(env, channel),
    ]


def _period_status(env: Env, channel: int, request: Request) -> int:
    env.reading()  # the model up to now: a whole hour that passed is captured, its bits reset
    return env.meter.model.mbus_period_status(channel, request.now)


def hourly_profile(env: Env, channel: int) -> Profile:
    """0-x:24.3.0 (P3 §7.4): {clock; AMR status 0-x:96.10.3; 0-x:24.2.1 value; its capture
    time}, one row per whole hour from the store (captured by the meter model), 240 entries."""
    columns = [
        CLOCK,
        (1, f"0-{channel}:96.10.3", 2),
        (4, f"0-{channel}:24.2.1", 2),
        (4, f"0-{channel}:24.2.1", 5),
    ]

    def rows() -> list[Row]:
        return [
            Row(
                r.time,
                (
                    date_time(r.time),
                    u8(r.status),
                    u32(r.value),
                    date_time(r.capture) if r.capture else octets(NOT_SPECIFIED),
                ),
            )
            for r in env.store().mbus_hourly(channel)[-MBUS_HOURLY_ENTRIES:]
        ]

    def reset(_now: datetime) -> None:
        env.store().clear_mbus_hourly(channel)  # env.store() commits pending rows first

    return Profile(
        f"0-{channel}:24.3.0", columns, rows, period=3600, entries=MBUS_HOURLY_ENTRIES, reset=reset
    )


def mbus_objects(env: Env) -> list[CosemObject]:
    return [obj for channel in CHANNELS for obj in channel_objects(env, channel)]
