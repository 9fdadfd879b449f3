"""Abstract objects of P3 chapter 5 and the country specific objects of chapter 8 that are
plain values: identification, messages, error/alarm registers, administrative in/out,
configuration object, connection watchdog, comlog counters, firmware ids."""

from __future__ import annotations

from twin.catalogue import BY_CODE
from twin.meter.events import EventCode
from twin.p3.dlms.cosem import DataAccessResult
from twin.p3.objects.base import CosemObject, ObjectError, Request
from twin.p3.objects.comlog import COUNTER_OBJECTS
from twin.p3.objects.env import Env
from twin.p3.objects.simple import DataObject, Getter, Stored
from twin.p3.objects.values import Data, Tag, bits, enum_, octets, struct, u8, u16, u32

FIRMWARE = "0.1.0"  # the twin's firmware version, shown as the active firmware identifier
P1_VERSION_OF = BY_CODE["1-3:0.2.8"].value  # the P1 version, from the catalogue
HLS_ON_P3_BITS = (4, 5, 6)  # configuration object flags HLS_3/4/5_on_P3_enable (P3 §8.3)


def logical_device_name(env: Env) -> bytes:
    """0-0:42.0.0: 16 octets, the 3-letter FLAG id then 13 characters unique for the maker
    (Blue Book §4.2 COSEM logical device name): the end of the equipment identifier."""
    meter = env.meter.config.meter
    return (meter.manufacturer.upper() + meter.equipment_id[-13:]).encode("ascii")


def constant(code: str, rights: str, value: Data) -> DataObject:
    return DataObject(code, rights, lambda _r: value)


def stored(
    env: Env, code: str, rights: str, default: Data, max_len: int | None = None
) -> DataObject:
    s = Stored(env.attrs, code, default, max_len)
    return DataObject(code, rights, s.get, s.set)


def identification(env: Env, firmware: Stored) -> list[CosemObject]:
    """P3 §5.1-§5.2 and §6.1: all public readable, location writable by management."""
    meter = env.meter.config.meter
    equipment = meter.equipment_id.encode("ascii")
    return [
        constant("0-0:42.0.0", "R/R/", octets(logical_device_name(env))),
        constant("0-0:96.1.0", "R/R/", octets(equipment[-16:])),  # serial number, os[16]
        constant("0-0:96.1.1", "R/R/", octets(equipment)),  # equipment identifier, os[48]
        stored(env, "0-0:96.1.3", "R/RW/", octets(b""), 48),  # location information
        constant("0-0:96.1.4", "R/R/", octets(b"TWIN-HW-1")),
        constant("0-0:96.1.7", "R/R/", octets(f"HW1 SW{FIRMWARE} CFG1".encode())),
        constant("0-0:96.1.8", "R/R/", octets(b"")),
        DataObject("1-0:0.2.0", "R/R/", firmware.get),  # changes on image activation
        constant("1-0:0.2.8", "R/R/", octets(b"00000000")),
        constant("1-1:0.2.0", "R/R/", octets(FIRMWARE.encode())),
        constant("1-1:0.2.8", "R/R/", octets(b"00000000")),
        constant("1-2:0.2.0", "R/R/", octets(FIRMWARE.encode())),
        constant("1-2:0.2.8", "R/R/", octets(b"00000000")),
        DataObject("1-3:0.2.8", "R/R/", lambda _r: octets(str(P1_VERSION_OF(env.reading())))),
    ]


def firmware_id(env: Env) -> Stored:
    """The active firmware identifier 1-0:0.2.0 (P3 §6.1); image activation replaces it."""
    return Stored(env.attrs, "firmware.active", octets(FIRMWARE.encode()), 48)


def messages(env: Env) -> list[CosemObject]:
    """Consumer message text/code (P3 §5.11): written by management, shown on P1."""

    def text(_r: Request) -> Data:
        return octets(env.meter.model.state.message_text)

    def code(_r: Request) -> Data:
        return octets(env.meter.model.state.message_code)

    def set_text(value: Data, _r: Request) -> None:
        new = _ascii(value, 1024)
        env.meter.act(lambda m, _now: m.set_message(m.state.message_code, new))

    def set_code(value: Data, _r: Request) -> None:
        new = _ascii(value, 8)
        env.meter.act(lambda m, _now: m.set_message(new, m.state.message_text))

    return [
        DataObject("0-0:96.13.0", "/RW/", text, set_text),
        DataObject("0-0:96.13.1", "/RW/", code, set_code),
    ]


def _ascii(value: Data, max_len: int) -> str:
    raw = value.octets()
    if len(raw) > max_len or not raw.isascii():
        raise ObjectError(DataAccessResult.TYPE_UNMATCHED, "not ASCII or too long")
    return raw.decode("ascii")


def alarms(env: Env) -> list[CosemObject]:
    """Error register, alarm register and alarm filter (P3 §4.2.3-§4.2.4, §5.6), kept by the
    meter model: its events set the bits (twin/meter/alarms.py)."""
    state = env.meter.model.state

    def set_error(value: Data, request: Request) -> None:
        # Writing keeps the bits that are 1 in the value; 0 clears the register and logs
        # event 10 (P3 §4.2.1, error register cleared).
        keep = value.expect(Tag.DOUBLE_LONG_UNSIGNED).integer()
        env.meter.act(lambda m, _now: m.clear_errors(~keep & 0xFFFFFFFF))
        _log_when_cleared(env, keep, EventCode.ERROR_REGISTER_CLEARED)

    def set_alarm(value: Data, request: Request) -> None:
        # As the error register; 0 logs event 11 (alarm register cleared).
        keep = value.expect(Tag.DOUBLE_LONG_UNSIGNED).integer()
        env.meter.act(lambda m, _now: m.clear_alarms(~keep & 0xFFFFFFFF))
        _log_when_cleared(env, keep, EventCode.ALARM_REGISTER_CLEARED)

    def set_filter(value: Data, request: Request) -> None:
        mask = value.expect(Tag.DOUBLE_LONG_UNSIGNED).integer()
        env.meter.act(lambda m, _now: m.set_alarm_filter(mask))

    return [
        DataObject("0-0:97.97.0", "/RW/", lambda _r: u32(state.error_register), set_error),
        DataObject("0-0:97.98.0", "/RW/", lambda _r: u32(state.alarm_register), set_alarm),
        DataObject("0-0:97.98.10", "/RW/", lambda _r: u32(state.alarm_filter), set_filter),
    ]


def _log_when_cleared(env: Env, value: int, code: EventCode) -> None:
    if value == 0:
        env.meter.act(lambda m, now: m.log_event(now, code))


def amr_status(env: Env) -> CosemObject:
    """0-0:96.10.2 (P3 §4.2.5): the status flags of the running period (PDN, CAD, DNV, DST)."""
    return DataObject("0-0:96.10.2", "R/R/", lambda r: u8(env.meter.model.period_status(r.now)))


def _comlog_counter(env: Env, code: EventCode) -> Getter:
    """0-1:94.31.7..10: calls counted for events 73..76 in this association (P3 §8.7)."""
    return lambda _r: u16(min(env.comlog.count(code), 0xFFFF))


def country_specific(env: Env) -> list[CosemObject]:
    """P3 chapter 8: administrative in/out, watchdog, configuration object, comlog counters."""

    def admin(_r: Request) -> Data:
        return enum_(env.meter.model.state.admin_state)

    def set_admin(value: Data, _r: Request) -> None:
        new = value.expect(Tag.ENUM).integer()
        env.meter.act(lambda m, _now: m.set_admin_state(new))

    config = Stored(env.attrs, "0-1:94.31.3", struct(enum_(1), bits("0100001000000000")))

    def set_config(value: Data, _r: Request) -> None:
        flags = str(value.items[1].value) if len(value.items) == 2 else ""
        # P3 §8.3: accepted only if one of HLS_3/4/5_on_P3_enable stays set, else other reason.
        if not any(flags[i : i + 1] == "1" for i in HLS_ON_P3_BITS):
            raise ObjectError(DataAccessResult.OTHER_REASON, "no HLS enabled on P3")
        config.set(value)

    counters = [
        DataObject(code, "/R/", _comlog_counter(env, event))
        for event, code in COUNTER_OBJECTS.items()
    ]
    return [
        DataObject("0-1:94.31.0", "/RW/", admin, set_admin),
        stored(env, "0-1:94.31.2", "/RW/", u16(72)),
        DataObject("0-1:94.31.3", "/RW/", config.get, set_config),
        *counters,
    ]
