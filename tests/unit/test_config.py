from __future__ import annotations

from pathlib import Path

import pytest

from twin.config import Config, ConfigError, config_from_mapping, load_config


def test_no_file_gives_a_complete_simulated_meter() -> None:
    config = load_config(None)
    assert config == Config()
    assert config.meter.phases == 3
    assert config.p1.endpoint.startswith("pty://")
    # P1 §5.1: the simulated lines keep the wire's 115200 baud timing unless told otherwise.
    assert (config.p1.pace, config.p1.baudrate) == (True, 115200)
    assert config.gas.enabled


def test_a_full_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "twin.toml"
    path.write_text(
        """
[meter]
phases = 1
equipment_id = "E1234"
[clock]
speed = 3600
start = "2026-01-01T00:00:00+01:00"
[tariff]
normal_end = "21:00"
working_days = ["mon", "tue"]
extra_holidays = ["2026-12-31"]
[p1]
endpoint = "tcp://127.0.0.1:0"
request = "gpio:17"
pace = false
baudrate = 9600
"""
    )
    config = load_config(path)
    assert config.meter.phases == 1
    assert config.clock.speed == 3600.0
    assert config.clock.start_time() is not None
    assert config.tariff.working_days == ("mon", "tue")
    assert config.p1.request == "gpio:17"
    assert (config.p1.pace, config.p1.baudrate) == (False, 9600)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"meter": {"phase": 3}}, "unknown key 'meter.phase' (meter allows: "),
        ({"meterr": {}}, "unknown key 'meterr' (top level allows: clock, display, fleet, gas,"),
        ({"meter": {"phases": 2}}, "'meter.phases' = 2 is not allowed: expected one of 1, 3"),
        ({"clock": {"speed": -1}}, "'clock.speed' = -1 is not allowed: expected a number from"),
        ({"clock": {"speed": "fast"}}, "'clock.speed' must be of type float"),
        ({"load": {"ev": "yes"}}, "'load.ev' must be of type bool"),
        ({"meter": {"phases": True}}, "'meter.phases' must be of type int"),
        (
            {"tariff": {"normal_start": "7"}},
            "'tariff.normal_start' = '7' is not allowed: expected HH:MM",
        ),
        ({"tariff": {"working_days": ["monday"]}}, "'tariff.working_days'"),
        ({"p1": {"endpoint": "serial:/dev/x"}}, "'p1.endpoint'"),
        ({"p1": {"request": "gpio:x"}}, "'gpio:N'"),
        ({"p1": {"baudrate": 115201}}, "'p1.baudrate' = 115201 is not allowed: expected one of"),
        ({"p1": {"pace": "yes"}}, "'p1.pace' must be of type bool"),
        ({"meter": {"identification": "a/b"}}, "without '/' or '!'"),
        ({"meter": "x"}, "'meter' must be a table"),
        # 3 x 121 A x 260 V would not fit 1-0:1.7.0 F5(3,3) (99.999 kW) on P1.
        ({"meter": {"max_current_a": 121}}, "'meter.max_current_a' = 121 is not allowed"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(
    table: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(table)
    assert message in str(caught.value)


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[meter\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)


def test_the_documented_example_lists_every_key_with_its_default() -> None:
    import dataclasses
    import tomllib

    example = Path(__file__).parents[2] / "docs" / "config.example.toml"
    assert load_config(example) == Config()
    table = tomllib.loads(example.read_text())
    for section in dataclasses.fields(Config):
        keys = {f.name for f in dataclasses.fields(getattr(Config(), section.name))}
        # Optional keys without a default value are documented as comments.
        documented = set(table[section.name]) | ({"seed"} if section.name == "meter" else set())
        assert documented == keys, section.name


def test_command_line_options_replace_only_their_key(tmp_path: Path) -> None:
    import argparse

    from twin.cli import _run_config

    path = tmp_path / "twin.toml"
    path.write_text(
        '[p3]\nguek = "000102030405060708090a0b0c0d0e0f"\n'
        '[clock]\nstart = "2026-01-01T00:00:00+00:00"\n'
    )
    args = argparse.Namespace(config=path, speed=60.0, p1=None, p3="tcp://127.0.0.1:4059", web=None)
    config = _run_config(args)
    assert config.p3.endpoint == "tcp://127.0.0.1:4059"
    assert config.p3.guek == "000102030405060708090a0b0c0d0e0f"
    assert config.clock.speed == 60.0
    assert config.clock.start == "2026-01-01T00:00:00+00:00"


def test_p3_is_served_on_loopback_by_default_and_none_turns_it_off(tmp_path: Path) -> None:
    import argparse

    from twin.cli import _run_config

    # A newcomer's head-end finds the meter at once, but only from this machine.
    assert Config().p3.endpoint == "tcp://127.0.0.1:4059"
    assert Config().p3.serves
    args = argparse.Namespace(config=None, speed=None, p1=None, p3="none", web=None)
    assert not _run_config(args).p3.serves
    path = tmp_path / "twin.toml"
    path.write_text('[p3]\nendpoint = "none"\n')
    assert not load_config(path).p3.serves


# What `run` refuses, `run --check` refuses with the same message (one validation path).
_REFUSED_FILES = [
    pytest.param(b"\x00\xff\xfe binary \x89PNG", "not UTF-8 text", id="binary"),
    pytest.param(b'[clock]\nstart = "9999-12-31T00:00:00+00:00"\n', "'clock.start'", id="y9999"),
    pytest.param(b'[clock]\nstart = "0001-01-01T00:00:00+01:00"\n', "'clock.start'", id="y0001"),
    pytest.param(b'[clock]\nstart = "1999-12-31T22:00:00+00:00"\n', "'clock.start'", id="y1999"),
    pytest.param(b'[p3]\nendpoint = "tcp://0.0.0.0:99999"\n', "'p3.endpoint'", id="p3-port"),
    pytest.param(b'[p1]\nendpoint = "tcp://0.0.0.0:99999"\n', "'p1.endpoint'", id="p1-port"),
    pytest.param(b'[p1]\nendpoint = "tcp://:8000"\n', "'p1.endpoint'", id="p1-no-host"),
    pytest.param(b'[meter]\nequipment_id = ""\n', "'meter.equipment_id'", id="empty-id"),
    pytest.param(b'[p3]\npush_destination = "h:99999"\n', "'p3.push_destination'", id="push"),
]


@pytest.mark.parametrize(("content", "message"), _REFUSED_FILES)
def test_run_check_refuses_what_run_refuses_with_the_same_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    from twin.cli import main

    path = tmp_path / "twin.toml"
    path.write_bytes(content)
    state = tmp_path / "state"
    assert main(["run", "--check", "--config", str(path), "--state-dir", str(state)]) == 2
    checked = capsys.readouterr().err
    assert message in checked
    assert main(["run", "--config", str(path), "--state-dir", str(state)]) == 2
    assert capsys.readouterr().err == checked
    assert not state.exists()  # refused before anything was created


def test_clock_start_inside_the_meters_range_is_accepted() -> None:
    # The range of the meter clock itself (twin/clock.py TIME_MIN..TIME_MAX, both in UTC and
    # in Dutch local time): local 2000-01-01 01:00 is its first instant, 2099-12-31 23:59:59 its
    # last.
    for start in ("2000-01-01T01:00:00+01:00", "2099-12-31T23:59:59+01:00"):
        assert config_from_mapping({"clock": {"start": start}}).clock.start == start


def test_clock_start_the_meter_clock_cannot_carry_is_refused() -> None:
    # Local 2000-01-01 00:30 is 1999-12-31 23:30 UTC: P2 type-I dates (UTC) cannot carry it.
    for start in ("2000-01-01T00:30:00+01:00", "2100-01-01T00:00:00+01:00"):
        with pytest.raises(ConfigError, match=r"'clock\.start'"):
            config_from_mapping({"clock": {"start": start}})


def test_a_config_with_keys_readable_by_others_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from twin.cli import main

    path = tmp_path / "twin.toml"
    path.write_text('[p3]\nguek = "000102030405060708090a0b0c0d0e0f"\n')
    path.chmod(0o640)
    assert main(["run", "--check", "--config", str(path)]) == 0
    assert "readable by others" in caplog.text
    assert "000102030405060708090a0b0c0d0e0f" not in caplog.text
    caplog.clear()
    path.chmod(0o600)
    assert main(["run", "--check", "--config", str(path)]) == 0
    assert "readable by others" not in caplog.text
