"""Command-line commands of P3 (see EXTENSIONS in twin/cli.py).

- `dsmr-twin keys show [--json] [--state-dir DIR] [--config FILE]`: what a head-end needs
  (system title, GUEK, GAK, master key) from the store; the twin need not run. Only the
  service user and root can read them (the database is 0600); others are told so. On a state
  directory without keys they are created (from the configuration or at random) and stored,
  exactly as the first start of the twin would.
- `dsmr-twin ctl wakeup --sms SENDER | --csd CALLER`: a GPRS wake-up (triggered mode), received
  by the simulated modem and read through its AT dialogue (twin/p3/gprs/modem_service.py); an error
  when p3.modem is a real modem (send it a real SMS or call) or "none".
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
from pathlib import Path
from typing import Any

from twin.config import load_config
from twin.p3.keys import load_or_create, read_keys
from twin.store import DATABASE, Store, StoreError


def add_commands(commands: Any) -> None:
    keys = commands.add_parser("keys", help="P3 keys and system title")
    sub = keys.add_subparsers(dest="keys_command", required=True)
    show = sub.add_parser("show", help="print the system title, GUEK, GAK and master key (hex)")
    show.add_argument("--json", action="store_true", help="print a JSON object")
    show.add_argument("--state-dir", type=Path, default=None)
    show.add_argument("--config", type=Path, default=None, help="TOML configuration file")


def add_ctl_commands(ctl: Any) -> None:
    wakeup = ctl.add_parser(
        "wakeup", help="wake a triggered GPRS meter by SMS or CSD call (simulated modem)"
    )
    who = wakeup.add_mutually_exclusive_group(required=True)
    who.add_argument("--sms", metavar="SENDER", help="an empty SMS from SENDER")
    who.add_argument("--csd", metavar="CALLER", help="a CSD call from CALLER (rejected)")


def ctl_request(args: argparse.Namespace) -> dict[str, Any] | None:
    if args.ctl_command != "wakeup":
        return None
    if args.sms is not None:
        return {"cmd": "wakeup", "kind": "sms", "sender": args.sms}
    return {"cmd": "wakeup", "kind": "csd", "sender": args.csd}


def _check_may_read_keys(database: Path) -> None:
    """Only the service user (and root) can read the keys (twin/store.py DATABASE_MODE): say
    so, rather than letting SQLite fail on a file it may not open."""
    if not database.exists() or (
        os.access(database, os.R_OK | os.W_OK) and os.access(database.parent, os.W_OK)
    ):
        return
    try:
        owner = pwd.getpwuid(database.stat().st_uid).pw_name
    except (KeyError, OSError):
        owner = "the service user"
    raise StoreError(
        f"the keys in {database} are readable by only the service user ({owner}) and root,"
        f" so that operators in the twin's group cannot copy them: run"
        f" `sudo -u {owner} dsmr-twin keys show --state-dir {database.parent}`"
    )


def run(args: argparse.Namespace) -> int | None:
    if args.command != "keys":
        return None
    from twin.cli_common import default_state_dir

    state_dir = args.state_dir or default_state_dir()
    _check_may_read_keys(state_dir / DATABASE)
    store = Store.open(state_dir)
    try:
        # Read only: writing here could hide a key the head-end replaced (see keys.py).
        material = read_keys(store) or load_or_create(store, load_config(args.config).p3)[0]
    finally:
        store.close()
    shown = material.public()
    if args.json:
        print(json.dumps(shown))
    else:
        for name, value in shown.items():
            print(f"{name:<13} {value}")
    return 0
