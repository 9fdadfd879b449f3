"""Communication objects: TCP-UDP, IPv4, PPP and GPRS modem setup (P3 §3.1, Tables 3-1..3-4),
GPRS network information 0-1:94.31.4 (§8.4) and the GPRS wake-up objects of chapter 9 (push
setups, push script table, push scheduler, register monitor, auto answer, message handler).

Writable settings are persisted and read back (`Configured`, twin/p3/objects/configured.py);
the P3 service reads what it needs as the management client would (twin/p3/objects/settings.py, e.g.
inactivity_time_out in twin/p3/service.py).

Chapter 9: the push setups' method 1 and the push script table's execute
(twin/p3/objects/push_setup.py) hand the push to the `PushPort` of the `Env`, the GPRS
controller (twin/p3/gprs/controller.py), which plans and runs it. The push scheduler 0-0:15.0.4, the
register monitor 0-0:16.1.0 and the wake-up lists of auto answer 0-0:2.2.0 and message handler
0-0:2.3.0 are settings here: the controller evaluates them on the meter clock and executes
their scripts through this object model (twin/p3/gprs/push_triggers.py, push_wakeup.py). Writes of
the time windows, the execution times, the push object lists and the scripts are checked
(type-unmatched for malformed values, P3 §9 intro, Blue Book classes 9, 22 and 40).
"""

from __future__ import annotations

from twin.p3.objects.base import CosemObject, Request, obis_bytes
from twin.p3.objects.configured import Attribute, Configured
from twin.p3.objects.env import Env
from twin.p3.objects.push_setup import (
    PushSetup,
    ScriptTable,
    check_execution_times,
    check_windows,
)
from twin.p3.objects.simple import DataObject
from twin.p3.objects.values import (
    Data,
    array,
    boolean,
    enum_,
    i8,
    octets,
    struct,
    u8,
    u16,
    u32,
)

TCP_PORT = 4059
INACTIVITY_TIME_OUT_S = 300  # P3 Table 3-1 default


def _script(code: str, selector: int) -> Data:
    return struct(octets(obis_bytes(code)), u16(selector))


def _capture(class_id: int, code: str, index: int) -> Data:
    return struct(u16(class_id), octets(obis_bytes(code)), i8(index), u16(0))


def setup_objects(env: Env) -> list[CosemObject]:
    a = env.attrs
    empty = octets(b"")
    qos = struct(
        struct(u8(0), u8(0), u8(0), u8(0), u8(0)), struct(u8(0), u8(0), u8(0), u8(0), u8(0))
    )
    ppp_auth = struct(octets(b""), octets(b""))
    return [
        Configured(
            41,
            0,
            "0-0:25.0.0",
            a,
            {
                2: ("/R/", u16(TCP_PORT)),
                3: ("/RW/", octets(obis_bytes("0-0:25.1.0"))),
                4: ("/RW/", u16(576)),
                5: ("/R/", u8(1)),
                6: ("/RW/", u16(INACTIVITY_TIME_OUT_S)),
            },
        ),
        Configured(
            42,
            0,
            "0-0:25.1.0",
            a,
            {
                2: ("/RW/", octets(obis_bytes("0-0:25.3.0"))),
                3: ("/RW/", u32(0)),
                4: ("/RW/", array([])),
                5: ("/RW/", array([])),
                6: ("/RW/", u32(0)),
                7: ("/RW/", u32(0)),
                8: ("/RW/", boolean(True)),
                9: ("/RW/", u32(0)),
                10: ("/RW/", u32(0)),
            },
        ),
        Configured(
            44,
            0,
            "0-0:25.3.0",
            a,
            {
                2: ("/RW/", octets(obis_bytes("0-0:25.4.0"))),
                3: ("/RW/", array([])),
                4: ("/RW/", array([])),
                5: ("/RW/", ppp_auth),
            },
        ),
        Configured(
            45, 0, "0-0:25.4.0", a, {2: ("/RW/", empty), 3: ("/RW/", u16(0)), 4: ("/RW/", qos)}
        ),
        network_info(env),
    ]


def network_info(env: Env) -> CosemObject:
    """0-1:94.31.4 {signal_strength integer dBm, number_of_base_stations integer, network_id}."""

    def value(_r: Request) -> Data:
        info = env.modem.network_info() if env.modem is not None else None
        if info is None:
            return struct(i8(-128), i8(0), octets(b""))  # no network
        return struct(
            i8(max(-128, min(127, info.signal_strength_dbm))),
            i8(info.base_stations),
            octets(info.network_id),
        )

    return DataObject("0-1:94.31.4", "/R/", value)


def push_objects(env: Env) -> list[CosemObject]:
    """Chapter 9: wake-up triggers and the three push setups (class 40 version 0)."""
    a = env.attrs
    equipment = _capture(1, "0-0:96.1.1", 2)
    destination = struct(enum_(0), octets(b""), enum_(128))  # TCP, "host:port", octet-string
    push_common: dict[int, Attribute] = {
        3: ("/RW/", destination),
        4: ("/RW/", array([])),
        5: ("/RW/", u16(0)),
        6: ("/RW/", u8(0)),
        7: ("/RW/", u16(0)),
    }
    pushes = [
        ("0-0:25.9.0", [equipment, _capture(22, "0-0:15.0.4", 1)]),
        ("0-1:25.9.0", [equipment, _capture(1, "0-0:97.98.0", 2)]),
        ("0-2:25.9.0", [equipment, _capture(28, "0-0:2.2.0", 1)]),
    ]
    scripts = array(
        [
            struct(
                u16(i), array([struct(enum_(2), u16(40), octets(obis_bytes(code)), i8(1), i8(0))])
            )
            for i, (code, _) in enumerate(pushes, start=1)
        ]
    )
    setups = {obis_bytes(code) for code, _ in pushes}
    return [
        *(
            PushSetup(env, code, {2: ("/RW/", array(objects))} | push_common)
            for code, objects in pushes
        ),
        ScriptTable(env, setups, scripts),
        Configured(
            22,
            0,
            "0-0:15.0.4",
            a,
            {
                2: ("/RW/", _script("0-0:10.0.108", 1)),
                3: ("/RW/", enum_(1)),
                4: ("/RW/", array([])),
            },
            checks={4: check_execution_times},
        ),
        Configured(
            21,
            0,
            "0-0:16.1.0",
            a,
            {
                2: ("/R/", array([u32(0)])),
                3: ("/R/", struct(u16(1), octets(obis_bytes("0-0:97.98.0")), i8(2))),
                4: (
                    "/RW/",
                    array([struct(_script("0-0:10.0.108", 2), _script("0-0:10.0.108", 0))]),
                ),
            },
        ),
        Configured(
            28,
            1,
            "0-0:2.2.0",
            a,
            {
                2: ("/R/", enum_(200)),
                3: ("/RW/", array([])),
                4: ("/R/", enum_(0)),
                5: ("/R/", u8(0)),
                6: ("/R/", struct(u8(1), u8(1))),
                7: ("/R/", array([])),
                8: ("/RW/", array([])),
            },
            checks={3: check_windows},
        ),
        Configured(
            60,
            0,
            "0-0:2.3.0",
            a,
            {2: ("/RW/", array([])), 3: ("/R/", array([])), 4: ("/RW/", array([]))},
            checks={2: check_windows},
        ),
    ]


def local_port_objects(env: Env) -> list[CosemObject]:
    """P0: local port setup 0-0:20.0.0 (class 19, P3 §5.13) and IEC HDLC setup 0-0:22.0.0
    (class 23, §5.14); management read only, values as the tables give them. The table's
    response_time "200" is read as 200 ms, enum 1 (Blue Book class 19: 0 = 20 ms, 1 = 200 ms)."""
    a, r = env.attrs, "/R/"
    local = {2: (r, enum_(0)), 3: (r, enum_(5)), 4: (r, enum_(5)), 5: (r, enum_(1))}
    local |= {6: (r, octets(b"17")), 7: (r, octets(b"")), 8: (r, octets(b"")), 9: (r, octets(b""))}
    hdlc = {2: (r, enum_(5)), 3: (r, u8(1)), 4: (r, u8(1)), 5: (r, u16(128)), 6: (r, u16(128))}
    hdlc |= {7: (r, u16(25)), 8: (r, u16(120)), 9: (r, u16(17))}
    return [Configured(19, 1, "0-0:20.0.0", a, local), Configured(23, 1, "0-0:22.0.0", a, hdlc)]
