"""P1 capture files (twin/p1/capture.py): framing a byte stream, loading, CRCs checked on load."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

from tests.support import FIXTURES, p1_fixture
from twin.cli import main
from twin.cli_common import EXIT_CONFIG, EXIT_PORT
from twin.p1.capture import (
    CapturedTelegram,
    CaptureError,
    TelegramFramer,
    header_line,
    load_capture,
    telegram_line,
)

KAIFA = p1_fixture("tv1-kaifa-4.2")
SPEC = p1_fixture("spec-4.2.2-example")


def capture_text(*telegrams: tuple[float, bytes]) -> str:
    lines = [header_line("test", "2026-12-07T00:00:00+00:00")]
    lines += [telegram_line(CapturedTelegram(t, data)) for t, data in telegrams]
    return "\n".join(lines) + "\n"


def corrupt(telegram: bytes) -> bytes:
    """One value digit changed: the CRC no longer matches."""
    return telegram.replace(b"1-0:1.8.1(001581", b"1-0:1.8.1(001582")


def test_a_capture_file_loads_back_as_written() -> None:
    loaded = load_capture(capture_text((0.0, KAIFA), (10.25, SPEC)))
    assert loaded == [CapturedTelegram(0.0, KAIFA), CapturedTelegram(10.25, SPEC)]


def test_a_bad_crc_is_refused_on_load_naming_the_telegram() -> None:
    with pytest.raises(CaptureError, match=r"telegram 2: CRC 6796 is wrong"):
        load_capture(capture_text((0.0, SPEC), (10.0, corrupt(KAIFA))))


def test_a_bad_crc_in_a_plain_telegram_file_is_refused() -> None:
    text = (FIXTURES / "p1" / "tv1-kaifa-4.2.txt").read_text()
    with pytest.raises(CaptureError, match=r"^telegram 1: CRC"):
        load_capture(corrupt(text.encode()).decode())


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ('{"t": -1, "telegram": "x"}', r"telegram 1 \(line 2\): 't' = -1"),
        ('{"t": 1e300, "telegram": "x"}', r"telegram 1 \(line 2\): 't' = 1e\+300"),
        ('{"t": "0", "telegram": "x"}', r"telegram 1 \(line 2\): 't' must be a number"),
        ('{"t": 0}', r"telegram 1 \(line 2\): expected exactly 't' and 'telegram'"),
        ("[1]", r"line 2: not a JSON object"),
        ("{", r"line 2: not JSON"),
    ],
)
def test_malformed_lines_are_refused_naming_the_line(line: str, error: str) -> None:
    with pytest.raises(CaptureError, match=error):
        load_capture(header_line("test", "now") + "\n" + line + "\n")


def test_times_must_not_run_back() -> None:
    text = capture_text((5.0, KAIFA), (4.0, KAIFA))
    with pytest.raises(CaptureError, match=r"telegram 2 \(line 3\): 't' = 4.0 is not a time"):
        load_capture(text)


def test_a_file_that_is_no_capture_is_refused() -> None:
    with pytest.raises(CaptureError, match="not a P1 capture"):
        load_capture("hello\n")
    with pytest.raises(CaptureError, match="line 1: not a dsmr-twin/p1-capture"):
        load_capture(json.dumps({"format": "other"}) + "\n")


@pytest.mark.parametrize("name", [p.stem for p in sorted((FIXTURES / "p1").glob("*.txt"))])
def test_every_public_fixture_loads_as_a_plain_capture(name: str) -> None:
    text = (FIXTURES / "p1" / f"{name}.txt").read_text()
    assert load_capture(text) == [CapturedTelegram(0.0, p1_fixture(name))]


def test_a_plain_file_of_several_telegrams_has_the_10_s_cadence() -> None:
    text = "\n".join((FIXTURES / "p1" / f"{n}.txt").read_text() for n in ("tv1-kaifa-4.2",) * 3)
    assert [t.offset_s for t in load_capture(text)] == [0.0, 10.0, 20.0]


def test_the_framer_cuts_telegrams_from_pieces_and_skips_noise() -> None:
    framer = TelegramFramer()
    stream = b"3F\r\n" + KAIFA + corrupt(KAIFA) + b"garbage" + SPEC
    found = []
    for start in range(0, len(stream), 100):  # 100-byte pieces arriving 1 s apart
        found += framer.feed(stream[start : start + 100], float(start // 100))
    assert [t.data for t in found] == [KAIFA, SPEC]
    assert found[0].offset_s == 0.0  # the '/' arrived in the first piece
    assert found[1].offset_s == float((4 + 2 * len(KAIFA) + 7) // 100)
    assert framer.crc_errors == 1
    assert framer.dropped_bytes == 4 + len(b"garbage")


def test_a_new_start_abandons_an_unfinished_telegram() -> None:
    framer = TelegramFramer()
    assert framer.feed(KAIFA[:200], 0.0) == []
    assert framer.feed(SPEC, 1.0) == [CapturedTelegram(1.0, SPEC)]
    assert framer.dropped_bytes == 200


def test_the_cli_refuses_a_corrupted_capture_naming_the_telegram(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capture = tmp_path / "bad.jsonl"
    capture.write_text(capture_text((0.0, SPEC), (10.0, corrupt(KAIFA))), encoding="utf-8")
    code = main(["p1", "replay", str(capture), "--p1", "tcp://127.0.0.1:0"])
    assert code == EXIT_CONFIG
    assert f"{capture}: telegram 2: CRC 6796 is wrong" in capsys.readouterr().err


def test_the_cli_replays_a_public_capture(capsys: pytest.CaptureFixture[str]) -> None:
    fixture = FIXTURES / "p1" / "tv1-kaifa-4.2.txt"
    code = main(["p1", "replay", str(fixture), "--p1", "tcp://127.0.0.1:0", "--speed", "100"])
    assert code == 0
    assert "1 telegrams sent, 0 skipped" in capsys.readouterr().out


@pytest.mark.parametrize("speed", ["nan", "inf", "1e30", "0", "-2", "1e-300"])
def test_the_cli_refuses_a_speed_a_replay_cannot_keep(
    speed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # inf or 1e30 with --loop would send without pause; 1e-300 would never send.
    fixture = FIXTURES / "p1" / "tv1-kaifa-4.2.txt"
    code = main(["p1", "replay", str(fixture), "--p1", "tcp://127.0.0.1:0", "--speed", speed])
    assert code == EXIT_CONFIG
    assert "--speed" in capsys.readouterr().err


def test_the_cli_refuses_a_bad_p1_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fixture = FIXTURES / "p1" / "tv1-kaifa-4.2.txt"
    assert main(["p1", "replay", str(fixture), "--p1", "ftp://x"]) == EXIT_CONFIG
    assert "p1.endpoint" in capsys.readouterr().err
    assert main(["p1", "record", str(tmp_path / "c"), "--from", "ftp://x"]) == EXIT_CONFIG
    assert "bad P1 source 'ftp://x'" in capsys.readouterr().err


def test_the_cli_records_a_tcp_dongle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture = tmp_path / "dongle.jsonl"
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def dongle() -> None:
            peer, _ = server.accept()
            with peer:
                peer.sendall(KAIFA + corrupt(KAIFA) + SPEC)
                peer.recv(1)  # until the recorder hangs up

        sender = threading.Thread(target=dongle)
        sender.start()
        argv = ["p1", "record", str(capture), "--from", f"tcp://127.0.0.1:{port}", "--count", "2"]
        code = main(argv)
        sender.join(5)
    assert code == 0
    out = capsys.readouterr().out
    assert "2 telegrams from tcp 127.0.0.1" in out
    assert "1 with a bad CRC left out" in out
    assert [t.data for t in load_capture(capture.read_text())] == [KAIFA, SPEC]


def test_the_cli_names_a_line_it_cannot_open(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-tty"
    code = main(["p1", "record", str(tmp_path / "c.jsonl"), "--from", f"serial://{missing}"])
    assert code == EXIT_PORT
    assert f"cannot open {missing}" in capsys.readouterr().err
