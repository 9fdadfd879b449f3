"""`dsmr-twin store check|backup|restore` (see EXTENSIONS in twin/cli.py; twin/store_backup.py).

- `store check`: is the database sound (SQLite quick_check, schema, a meter state), and which
  backups are there and sound. Exit status 0, or 3 (storage failing) if the database is not.
- `store backup`: take a backup now (also while the twin runs: an online copy).
- `store restore [--from FILE]`: the newest sound backup (or FILE) replaces the database; only
  while no twin runs on the state directory. The counters that make nonces move forward.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from twin.config import load_config
from twin.store import DATABASE
from twin.store_backup import check_file, list_backups, restore, take_backup


def add_commands(commands: Any) -> None:
    store = commands.add_parser("store", help="check, back up or restore the meter's database")
    sub = store.add_subparsers(dest="store_command", required=True)
    check = sub.add_parser("check", help="check the database and the backups")
    backup = sub.add_parser("backup", help="take a backup now (the twin may run)")
    backup.add_argument("--config", type=Path, default=None, help="for [store] backup_keep")
    again = sub.add_parser("restore", help="restore the last good backup (the twin stopped)")
    again.add_argument("--from", dest="source", type=Path, default=None, help="this backup")
    for parser in (check, backup, again):
        parser.add_argument("--state-dir", type=Path, default=None)


def add_ctl_commands(ctl: Any) -> None:
    return None


def ctl_request(args: argparse.Namespace) -> dict[str, Any] | None:
    return None


def run(args: argparse.Namespace) -> int | None:
    if args.command != "store":
        return None
    from twin.cli_common import EXIT_STORAGE, default_state_dir

    state_dir = args.state_dir or default_state_dir()
    now = datetime.now(UTC)
    if args.store_command == "check":
        problem = check_file(state_dir / DATABASE)
        print(f"{state_dir / DATABASE}: {problem or 'ok'}")
        for backup in list_backups(state_dir):
            print(f"  backup {backup.path.name}: {check_file(backup.path) or 'ok'}")
        return EXIT_STORAGE if problem else 0
    if args.store_command == "backup":
        keep = load_config(args.config).store.backup_keep
        print(take_backup(state_dir, keep, now).path)
        return 0
    done = restore(state_dir, args.source, now)
    print(f"restored {done.backup.path} (taken {done.backup.taken.isoformat()})")
    for path in done.moved_aside:
        print(f"  kept the replaced file as {path}")
    print(f"  lost: up to {done.tail_s:.0f} s of metering after the backup")
    for name, (before, after) in done.counters.items():
        print(f"  {name}: {before} -> {after}")
    return 0
