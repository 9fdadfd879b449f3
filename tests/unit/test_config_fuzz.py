"""Fuzzing the configuration loader: any file gives a `Config` or a `ConfigError` whose
message names the key (or the file, when it is not TOML at all), never another exception;
`dsmr-twin run --check` answers such a file with exit code 2 and one line, no traceback."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.config_documents import SCHEMA, documents, tables, toml_text
from twin.cli import main
from twin.config import Config, ConfigError, load_config

KEY_NAMED = re.compile(r"'[^']+'")  # every value error quotes the dotted key it is about


def check_file(path: Path) -> Config | ConfigError:
    """Load `path`; a ConfigError is returned, any other exception fails the test."""
    try:
        return load_config(path)
    except ConfigError as exc:
        message = str(exc)
        if message.startswith(str(path)):  # the file itself: unreadable, not UTF-8, not TOML
            assert message != f"{path}: "
        else:
            assert KEY_NAMED.search(message), message
            named = KEY_NAMED.search(message).group(0).strip("'")  # type: ignore[union-attr]
            section = named.split(".")[0].removeprefix("unknown key ")
            assert section in SCHEMA or "unknown key" in message, message
        return exc


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=documents)
def test_any_file_gives_a_config_or_a_config_error_naming_the_key(document: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "twin.toml"
        path.write_bytes(document)
        check_file(path)


def test_bytes_that_are_not_utf8_are_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "twin.toml"
    path.write_bytes(b'[meter]\nidentification = "\xff\xfe"\n')
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(path)


def test_toml_nested_too_deeply_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "twin.toml"
    path.write_text("a = " + "[" * 3000 + "]" * 3000 + "\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(document=st.one_of(tables().map(toml_text).map(str.encode), documents))
def test_run_check_exits_0_or_2_without_traceback(
    document: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "twin.toml"
        path.write_bytes(document)
        argv = ["run", "--check", "--config", str(path), "--state-dir", directory]
        code = main(argv)
        out, err = capsys.readouterr()
        loaded = check_file(path)
    if isinstance(loaded, ConfigError):
        assert code == 2
        assert err.startswith("dsmr-twin: "), err
    assert code in (0, 2)
    assert "Traceback" not in err
    if code == 0:
        assert out == "configuration is valid\n"


@pytest.mark.parametrize(
    "document",
    [
        b"\xff\xfe\x00garbage",  # the two tracebacks the fuzz found
        b"a = " + b"[" * 3000 + b"]" * 3000,
    ],
)
def test_the_real_command_refuses_a_bad_file_without_traceback(
    document: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "twin.toml"
    path.write_bytes(document)
    result = subprocess.run(
        [sys.executable, "-m", "twin", "run", "--check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("dsmr-twin: ")
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
