"""P1 telegram formats: fixed widths, removed 4.2.2 objects, size, phases."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

import pytest

from tests.support import spec_example_reading
from twin.catalogue import BY_CODE, CATALOGUE, P1Format, P1Kind
from twin.meter.state import FailureRecord
from twin.p1.telegram import TelegramEncoder, TelegramError, fixed, hex_text

ENCODER = TelegramEncoder("TWN", "DSMR-TWIN-422")


@pytest.mark.parametrize(
    ("value", "fmt", "text"),
    [
        (123456789, P1Format(P1Kind.FIXED, 9, 3, "kWh"), "123456.789*kWh"),
        (0, P1Format(P1Kind.FIXED, 9, 3, "kWh"), "000000.000*kWh"),
        # An energy register rolls over at its width, as on a real meter's display.
        (1_000_000_001, BY_CODE["1-0:1.8.1"].p1, "000000.001*kWh"),
        (1193, P1Format(P1Kind.FIXED, 5, 3, "kW"), "01.193*kW"),
        (7, P1Format(P1Kind.FIXED, 3, 0, "A"), "007*A"),
        (4, P1Format(P1Kind.FIXED, 5, 0), "00004"),
        (12785123, P1Format(P1Kind.FIXED, 8, 3, "m3"), "12785.123*m3"),
    ],
)
def test_fixed_widths(value: int, fmt: P1Format, text: str) -> None:
    assert fixed(value, fmt) == text


@pytest.mark.parametrize(
    ("code", "value"),
    [("1-0:1.7.0", 150_000), ("1-0:21.7.0", 100_000), ("1-0:31.7.0", 1000), ("1-0:2.7.0", -1)],
)
def test_an_instantaneous_value_out_of_its_width_is_an_error_not_a_wrapped_string(
    code: str, value: int
) -> None:
    # 150 kW once went out as 1-0:1.7.0(50.000*kW): a reader cannot tell that from 50 kW.
    fmt = BY_CODE[code].p1
    assert fmt is not None
    with pytest.raises(TelegramError, match=rf"= {value} does not fit"):
        fixed(value, fmt)
    reading = replace(spec_example_reading(), import_w=150_000)
    with pytest.raises(TelegramError, match=r"1-0:1\.7\.0 = 150000"):
        ENCODER.encode(reading)


def test_hex_octet_strings_and_non_ascii() -> None:
    assert hex_text("K8EG") == "4B384547"
    with pytest.raises(TelegramError):
        hex_text("é")
    with pytest.raises(TelegramError):
        TelegramEncoder("TWN", "a/b")


def test_no_breaker_threshold_or_valve_lines_in_4_2_2() -> None:
    telegram = ENCODER.encode(spec_example_reading()).decode()
    # DSMR 4.2.2 release notes §3: 0-0:17.0.0, 0-0:96.3.10 and 0-n:24.4.0 were removed.
    assert not re.search(r"^(0-0:17\.0\.0|0-0:96\.3\.10|0-\d:24\.4\.0)", telegram, re.M)


def test_every_line_ends_in_crlf_and_crc_is_upper_case_hex() -> None:
    telegram = ENCODER.encode(spec_example_reading())
    assert telegram.count(b"\n") == telegram.count(b"\r\n")
    assert re.search(rb"!([0-9A-F]{4})\r\n$", telegram)
    assert telegram.startswith(b"/TWN5DSMR-TWIN-422\r\n\r\n1-3:0.2.8(42)\r\n")


def test_single_phase_telegram_has_no_l2_l3_lines() -> None:
    reading = replace(
        spec_example_reading(),
        phases=1,
        import_w_phase=(1111,),
        export_w_phase=(0,),
        current_a=(5,),
        sags=(1,),
        swells=(0,),
    )
    text = ENCODER.encode(reading).decode()
    for code in ("1-0:52.32.0", "1-0:72.36.0", "1-0:51.7.0", "1-0:41.7.0", "1-0:62.7.0"):
        assert code not in text
    assert "1-0:31.7.0(005*A)" in text


def test_default_telegram_stays_within_esphome_buffer() -> None:
    # Worst case without a text message: ten long failures logged, an 8-digit message code.
    base = spec_example_reading()
    log = tuple(FailureRecord(base.time - timedelta(hours=i), 2_147_483_647) for i in range(10))
    reading = replace(base, failure_log=log, message_code="12345678", message_text="")
    assert len(ENCODER.encode(reading)) < 1500


def test_catalogue_codes_are_unique_and_reduced() -> None:
    codes = [obj.code for obj in CATALOGUE]
    assert len(codes) == len(set(codes))
    assert all(re.fullmatch(r"\d-\d:\d+\.\d+\.\d+", code) for code in codes)
