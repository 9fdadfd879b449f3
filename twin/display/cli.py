"""`dsmr-twin ctl screenshot FILE` and `dsmr-twin ctl button --press short|long`.

A command extension (see EXTENSIONS in twin/cli.py). The screenshot travels back in the answer
and is written here, by the operator: the service user may not reach the operator's directory.
"""

from __future__ import annotations

import argparse
import base64
import binascii
from pathlib import Path
from typing import Any

from twin.control import ControlError


def add_commands(commands: Any) -> None:
    """No top-level commands."""


def add_ctl_commands(ctl: Any) -> None:
    shot = ctl.add_parser("screenshot", help="save the display's current frame as a PNG")
    shot.add_argument("file", type=Path)
    button = ctl.add_parser("button", help="press the display button")
    button.add_argument("--press", choices=["short", "long"], default="short")


def ctl_request(args: argparse.Namespace) -> dict[str, Any] | None:
    if args.ctl_command == "screenshot":
        return {"cmd": "screenshot"}
    if args.ctl_command == "button":
        return {"cmd": "button", "press": args.press}
    return None


def save_screenshot(result: Any, file: Path) -> Path:
    """Write the PNG of a `screenshot` answer to `file` (raises ControlError)."""
    try:
        data = base64.b64decode(result["png_base64"], validate=True)
    except (KeyError, TypeError, binascii.Error) as exc:
        raise ControlError(f"the twin sent no screenshot: {exc}") from exc
    try:
        file.write_bytes(data)
    except OSError as exc:
        raise ControlError(f"cannot write {file}: {exc.strerror or exc}") from exc
    return file


def run(args: argparse.Namespace) -> int | None:
    return None
