"""Error register 0-0:97.97.0 and alarm register 0-0:97.98.0 set by the meter's own events
through the alarm filter 0-0:97.98.10 (P3 §4.2.3, §4.2.4)."""

from __future__ import annotations

import json
from datetime import timedelta

from tests.support import amsterdam, model_at, steady_config
from twin.meter.alarms import FACTORY_ALARM_FILTER, error_bits
from twin.meter.events import COMMUNICATION_CODES, EventCode
from twin.meter.state import MeterState

START = amsterdam(2026, 11, 23, 12, 0)
POWER_UP_BIT = 1 << 2  # byte 1 bit 2
FRAUD_BIT = 1 << 13  # byte 2 bit 5: all fraud events grouped
COMM_ERROR_CH2 = 1 << 17  # byte 3 bit 1
NEW_DEVICE_CH1 = 1 << 24  # byte 4 bit 0


def test_a_power_failure_raises_power_up_in_both_registers() -> None:
    model = model_at(START, steady_config())
    model.power_failure(START, 5)
    model.advance(START + timedelta(minutes=1))  # the return is seen at the minute
    assert model.state.error_register == POWER_UP_BIT
    assert model.state.alarm_register == POWER_UP_BIT


def test_the_filter_decides_what_is_an_alarm_the_error_is_kept_anyway() -> None:
    model = model_at(START, steady_config())
    model.set_alarm_filter(FACTORY_ALARM_FILTER & ~POWER_UP_BIT)  # P3 §4.2.4: outages masked
    model.power_failure(START, 5)
    model.tamper(START + timedelta(minutes=1))  # event 40; the power is back by then
    model.log_event(START + timedelta(seconds=11), EventCode.FAILED_LOGIN)  # 46: same bit
    assert model.state.alarm_register == FRAUD_BIT
    assert model.state.error_register == POWER_UP_BIT | FRAUD_BIT


def test_mbus_communication_error_clears_itself_in_the_error_register_only() -> None:
    model = model_at(START, steady_config())
    model.log_event(START, 110)  # communication error M-Bus channel 2
    model.log_event(START, 105)  # new M-Bus device discovered channel 1
    assert model.state.error_register == COMM_ERROR_CH2 | NEW_DEVICE_CH1
    model.log_event(START + timedelta(hours=1), 111)  # communication ok channel 2
    assert model.state.error_register == NEW_DEVICE_CH1  # §4.2.3: clears itself
    assert model.state.alarm_register == COMM_ERROR_CH2 | NEW_DEVICE_CH1  # until the CS clears


def test_events_without_a_bit_set_nothing() -> None:
    model = model_at(START, steady_config())
    model.log_event(START, EventCode.DST_CHANGE)
    model.log_event(START, 102)  # replace battery M-Bus: no bit in the tables
    assert (model.state.error_register, model.state.alarm_register) == (0, 0)


def test_registers_and_filter_persist_and_old_records_load() -> None:
    model = model_at(START, steady_config())
    model.set_alarm_filter(0x0F)
    model.log_event(START, EventCode.FAILED_LOGIN)
    record = json.loads(json.dumps(model.state.to_record()))
    again = MeterState.from_record(record)
    assert (again.error_register, again.alarm_register, again.alarm_filter) == (
        FRAUD_BIT,
        0,
        0x0F,
    )
    for key in ("error_register", "alarm_filter"):
        del record[key]  # a checkpoint from before these were kept
    old = MeterState.from_record(record)
    assert (old.error_register, old.alarm_filter) == (0, FACTORY_ALARM_FILTER)


def test_communication_session_log_entries_raise_no_register_bit() -> None:
    """The meter tells no listener of them (twin/metering.py): nothing a trigger reads moves."""
    for code in COMMUNICATION_CODES:
        assert error_bits(code) == (0, 0)
