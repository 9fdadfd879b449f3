"""`dsmr-twin probe`: the gurux-based head-end client reads the real twin's P3 over TCP."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.test_p3_process import Twin, free_port
from twin.cli import main


@pytest.fixture(scope="module")
def twin() -> Iterator[Twin]:
    with tempfile.TemporaryDirectory(prefix="probe-") as path:  # short: sockaddr_un
        running = Twin(Path(path), free_port())
        running.ctl("load", "--watts", "0")  # registers stand still: probe and ctl agree
        yield running
        running.stop()


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def probe(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """`dsmr-twin probe ...` in this process (the meter is the real twin process)."""

    def run(*args: str) -> Result:
        code = main(["probe", *args])
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


def test_public_client_lists_its_objects(twin: Twin, probe: Callable[..., Result]) -> None:
    result = probe(f"tcp://127.0.0.1:{twin.port}", "--client", "16")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("client 16 associated with ")
    listed = {line.split()[0] for line in lines[1:]}
    # P3 §5: the clock and the equipment identifier are readable by the public client.
    assert {"0-0:1.0.0", "0-0:96.1.1"} <= listed
    assert "1-0:1.8.1" not in listed  # energy registers only for the management client


def test_management_client_reads_registers_with_the_stored_keys(
    twin: Twin, probe: Callable[..., Result]
) -> None:
    target = f"tcp://127.0.0.1:{twin.port}"
    result = probe(target, "1-0:1.8.1", "--client", "1", "--keys-from", str(twin.state_dir))
    assert result.returncode == 0, result.stderr
    status = twin.status()
    wh = round(float(status["1-0:1.8.1"]) * 1000)
    assert f"1-0:1.8.1  class 3  {wh} Wh" in result.stdout.splitlines()
    guek, gak, _ = twin.keys()
    result = probe(target, "0-0:96.1.1", "--client", "1", "--guek", guek.hex(), "--gak", gak.hex())
    assert result.returncode == 0, result.stderr
    assert f"0-0:96.1.1  class 1  {status['equipment_id']}" in result.stdout.splitlines()


def test_wrong_keys_and_unknown_objects_are_clear_errors(
    twin: Twin, probe: Callable[..., Result]
) -> None:
    target = f"tcp://127.0.0.1:{twin.port}"
    wrong = probe(target, "--client", "1", "--guek", "00" * 16, "--gak", "00" * 16)
    assert wrong.returncode == 2
    assert "association" in wrong.stderr
    missing = probe(target, "1-0:99.99.99", "--client", "16")
    assert missing.returncode == 1
    assert "1-0:99.99.99: not in the object list of client 16" in missing.stderr
    refused = probe(f"tcp://127.0.0.1:{free_port()}")
    assert refused.returncode == 2
    assert "cannot connect" in refused.stderr
