from __future__ import annotations

from pathlib import Path

import pytest

from twin.config import Config, ConfigError, config_from_mapping, load_config


def test_no_file_gives_a_complete_simulated_meter() -> None:
    config = load_config(None)
    assert config == Config()
    assert config.meter.phases == 3
    assert config.p1.endpoint.startswith("pty://")
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
"""
    )
    config = load_config(path)
    assert config.meter.phases == 1
    assert config.clock.speed == 3600.0
    assert config.clock.start_time() is not None
    assert config.tariff.working_days == ("mon", "tue")
    assert config.p1.request == "gpio:17"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"meter": {"phase": 3}}, "unknown key 'meter.phase' (meter allows: "),
        ({"meterr": {}}, "unknown key 'meterr' (top level allows: clock, display, gas,"),
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
    args = argparse.Namespace(config=path, speed=60.0, p1=None, p3="tcp://127.0.0.1:4059")
    config = _run_config(args)
    assert config.p3.endpoint == "tcp://127.0.0.1:4059"
    assert config.p3.guek == "000102030405060708090a0b0c0d0e0f"
    assert config.clock.speed == 60.0
    assert config.clock.start == "2026-01-01T00:00:00+00:00"
