"""Plain data objects: consumer messages (P3 §5.11) on P1, error/alarm registers (§5.6),
administrative in/out and the configuration object (§8.1, §8.3), identification (§5.2)."""

from __future__ import annotations

from pathlib import Path

from tests.unit.p3.objects.conftest import (
    Twin,
    advance,
    attr,
    big_set,
    gx_decode,
    make_twin,
    read,
    ref,
    write,
)
from twin.meter.events import EventCode, EventLog
from twin.p1.telegram import TelegramEncoder
from twin.p3.dlms.cosem import DataAccessResult
from twin.p3.objects import values as v


def telegram(twin: Twin) -> str:
    return TelegramEncoder("TWN", "DSMR-TWIN-422").encode(twin.meter.publish()).decode()


def test_consumer_message_shows_on_p1(twin: Twin) -> None:
    client = twin.management()
    text = b"Storing op 1 dec 08:00-10:00 " * 10  # 290 characters
    assert big_set(client, 1, "0-0:96.13.0", 2, v.encode(v.octets(text))) == 0
    assert write(client, 1, "0-0:96.13.1", 2, v.encode(v.octets(b"1234"))) == 0
    p1 = telegram(twin)
    assert f"0-0:96.13.0({text.hex().upper()})" in p1  # P1 §5.5: hex of the ASCII
    assert "0-0:96.13.1(31323334)" in p1
    assert bytes(read(client, 1, "0-0:96.13.0", 2)) == text
    assert write(client, 1, "0-0:96.13.1", 2, v.encode(v.octets(b"123456789"))) == 12  # os[8]
    assert write(client, 1, "0-0:96.13.1", 2, v.encode(v.octets(b"12ab"))) == 12  # digits only


def test_alarm_register_clears_and_logs(twin: Twin) -> None:
    twin.meter.act(lambda m, _now: m.set_alarms(0b101))
    client = twin.management()
    assert read(client, 1, "0-0:97.98.0", 2) == 5
    assert write(client, 1, "0-0:97.98.0", 2, v.encode(v.u32(4))) == 0  # keep bit 2 only
    assert twin.meter.model.state.alarm_register == 4
    assert write(client, 1, "0-0:97.98.0", 2, v.encode(v.u32(0))) == 0
    assert twin.meter.model.state.alarm_register == 0
    codes = [e.code for e in twin.meter.store.events(EventLog.STANDARD)]
    assert codes == [EventCode.ALARM_REGISTER_CLEARED]
    assert read(client, 1, "0-0:97.98.10", 2) == 0xFFFFFFFF
    assert write(client, 1, "0-0:97.98.10", 2, v.encode(v.u32(0x0F))) == 0
    assert read(client, 1, "0-0:97.98.10", 2) == 0x0F
    assert read(client, 1, "0-0:97.97.0", 2) == 0


def test_events_set_the_error_register_and_the_filtered_alarm_register(twin: Twin) -> None:
    client = twin.management()
    assert write(client, 1, "0-0:97.98.10", 2, v.encode(v.u32(1 << 2))) == 0  # power up only
    twin.meter.act(lambda m, now: m.log_event(now, EventCode.FAILED_LOGIN))  # fraud: bit 13
    twin.meter.act(lambda m, now: m.power_failure(now, 1))
    advance(twin, 60)  # the supply's return is seen at the next minute
    assert read(client, 1, "0-0:97.97.0", 2) == (1 << 13) | (1 << 2)
    assert read(client, 1, "0-0:97.98.0", 2) == 1 << 2
    assert write(client, 1, "0-0:97.97.0", 2, v.encode(v.u32(0))) == 0  # cleared by the CS
    assert read(client, 1, "0-0:97.97.0", 2) == 0
    codes = [e.code for e in twin.meter.store.events(EventLog.STANDARD)]
    assert codes[-1] == EventCode.ERROR_REGISTER_CLEARED


def test_administrative_state_and_configuration_object(twin: Twin) -> None:
    client = twin.management()
    assert read(client, 1, "0-1:94.31.0", 2) == 2  # on (default)
    assert write(client, 1, "0-1:94.31.0", 2, v.encode(v.enum_(1))) == 0
    assert twin.meter.publish().admin_state == 1
    assert write(client, 1, "0-1:94.31.0", 2, v.encode(v.enum_(7))) == 12
    assert write(client, 1, "0-1:94.31.0", 2, v.encode(v.u8(1))) == 12  # enum, not unsigned
    config = gx_decode(client.get(attr(1, "0-1:94.31.3", 2)))
    assert [int(config[0]), str(config[1])] == [1, "0100001000000000"]
    no_hls = v.struct(v.enum_(2), v.bits("0100000000000000"))
    assert write(client, 1, "0-1:94.31.3", 2, v.encode(no_hls)) == 250  # P3 §8.3: other reason
    triggered = v.struct(v.enum_(2), v.bits("0000001000000000"))
    assert write(client, 1, "0-1:94.31.3", 2, v.encode(triggered)) == 0
    assert read(client, 1, "0-1:94.31.2", 2) == 72


def test_written_settings_persist(tmp_path: Path) -> None:
    twin = make_twin(tmp_path)
    assert write(twin.management(), 1, "0-0:96.1.3", 2, v.encode(v.octets(b"Kerkstraat 1"))) == 0
    twin.meter.store.close()
    again = make_twin(tmp_path)
    assert bytes(read(again.public(), 1, "0-0:96.1.3", 2)) == b"Kerkstraat 1"
    again.meter.store.close()


def test_identification(twin: Twin) -> None:
    client = twin.public()
    assert (
        bytes(read(client, 1, "0-0:96.1.0", 2)) == b"0099000000000018"
    )  # the last 16 characters (os[16])
    assert bytes(read(client, 1, "0-0:42.0.0", 2)) == b"TWN9000000000018"
    assert bytes(read(client, 1, "1-0:0.2.0", 2)) == b"0.1.0"
    assert twin.objects.get(1, ref(1, "0-0:96.1.4", 2), None) != DataAccessResult.READ_WRITE_DENIED
