"""`dsmr-twin p1 record|replay` (see EXTENSIONS in twin/cli.py).

- `p1 record FILE --from URL`: capture the telegrams of any P1 line (a twin's pty, a serial
  P1 cable, a TCP dongle) with their arrival times into FILE (twin/p1/capture.py).
- `p1 replay FILE --p1 URL`: play a capture, or a plain telegram file, onto a pty, TCP port
  or UART with its cadence, honouring the Request line (twin/p1/replay.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from pathlib import Path
from typing import Any

from hardware.ports import PortError
from twin.cli_common import EXIT_CONFIG, EXIT_PORT
from twin.config import ConfigError, config_from_mapping
from twin.p1.capture import CaptureError, load_capture

log = logging.getLogger(__name__)


def add_commands(commands: Any) -> None:
    p1 = commands.add_parser("p1", help="record or replay P1 telegrams")
    sub = p1.add_subparsers(dest="p1_command", required=True)
    rec = sub.add_parser("record", help="capture the telegrams of a P1 line into FILE")
    rec.add_argument("file", type=Path)
    rec.add_argument(
        "--from",
        dest="source",
        required=True,
        help="serial:///dev/ttyUSB0 (115200 8N1), pty://PATH (a twin's link) or tcp://HOST:PORT",
    )
    rec.add_argument("--count", type=int, help="stop after N telegrams")
    rec.add_argument("--seconds", type=float, help="stop after S seconds")
    rec.add_argument("--baudrate", type=int, default=115200)
    play = sub.add_parser("replay", help="play a capture (or a plain telegram file) on a P1 line")
    play.add_argument("file", type=Path)
    play.add_argument("--p1", required=True, help="pty://LINK, tcp://HOST:PORT or uart:///dev/X")
    play.add_argument("--loop", action="store_true", help="start again after the last telegram")
    play.add_argument("--speed", type=float, default=1.0, help="faster than recorded (2: twice)")
    play.add_argument("--request", default="always", help="'always' or 'gpio:N' (BCM pin)")
    play.add_argument("--request-active-high", action="store_true")
    play.add_argument("--baudrate", type=int, default=115200)
    play.add_argument("--no-pace", action="store_true", help="hand telegrams over at once")


def add_ctl_commands(ctl: Any) -> None:
    return None


def ctl_request(args: argparse.Namespace) -> dict[str, Any] | None:
    return None


def run(args: argparse.Namespace) -> int | None:
    if args.command != "p1":
        return None
    try:
        if args.p1_command == "record":
            return _record(args)
        return _replay(args)
    except CaptureError as exc:
        print(f"dsmr-twin: {args.file}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ValueError as exc:  # ConfigError, a bad URL or request line
        print(f"dsmr-twin: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except PortError as exc:
        print(f"dsmr-twin: {exc}", file=sys.stderr)
        return EXIT_PORT


def _check_line(baudrate: int, endpoint: str | None = None) -> None:
    """The same checks as the twin's own [p1] settings (twin/config.py)."""
    p1: dict[str, object] = {"baudrate": baudrate}
    if endpoint is not None:
        p1["endpoint"] = endpoint
    config_from_mapping({"p1": p1})


def _record(args: argparse.Namespace) -> int:
    from hardware.p1_source import open_p1_source
    from twin.p1.record import record

    _check_line(args.baudrate)
    if args.count is not None and args.count < 1:
        raise ConfigError("--count must be at least 1")
    if args.seconds is not None and not args.seconds > 0:
        raise ConfigError("--seconds must be positive")
    source = open_p1_source(args.source, args.baudrate)
    try:
        with args.file.open("w", encoding="utf-8") as out:
            try:
                summary = record(source, out, count=args.count, seconds=args.seconds)
            except KeyboardInterrupt:
                print("interrupted; the telegrams so far are in the file", file=sys.stderr)
                return 0
    finally:
        source.close()
    print(
        f"{args.file}: {summary.telegrams} telegrams from {source.description};"
        f" {summary.crc_errors} with a bad CRC left out, {summary.dropped_bytes} stray bytes"
    )
    return 0


def _replay(args: argparse.Namespace) -> int:
    from hardware.registry import open_p1_sink, open_request_line
    from twin.p1.replay import ReplayService, check_speed

    _check_line(args.baudrate, args.p1)
    try:
        check_speed(args.speed)
    except ValueError as exc:
        raise ConfigError(f"--speed: {exc}") from exc
    if args.request == "simulated":
        raise ConfigError("--request is 'always' or 'gpio:N' (nothing toggles a simulated line)")
    try:
        text = args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CaptureError(f"cannot read: {exc}") from exc
    telegrams = load_capture(text)  # every CRC checked before the line opens
    sink = open_p1_sink(args.p1, Path.cwd(), baudrate=args.baudrate, pace=not args.no_pace)
    request = open_request_line(args.request, args.request_active_high)
    service = ReplayService(telegrams, sink, request, speed=args.speed, loop=args.loop)
    log.info("replaying %d telegrams from %s on %s", len(telegrams), args.file, sink.description)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends a replay: show what it did
        asyncio.run(service.run())
    status = service.status()
    print(
        f"{status['telegrams_sent']} telegrams sent, {status['telegrams_skipped']} skipped"
        f" (Request down), {status['telegrams_aborted']} cut off, {status['rounds']} rounds"
    )
    return 0
