"""The web console's access token, kept in the state directory for the service user alone.

Generated once with `secrets` (256 bits) and written with the database's mode (0600): whoever can
read it may drive the meter from a browser on a non-loopback address. `dsmr-twin web-token`
prints it to whoever can read the file (the service user, root).
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

TOKEN_NAME = "web-token"  # noqa: S105  (the file's name, not a secret)
TOKEN_BYTES = 32


class TokenError(OSError):
    """The token file cannot be read or written."""


def token_path(state_dir: Path) -> Path:
    return state_dir / TOKEN_NAME


def read_token(state_dir: Path) -> str:
    """The stored token (TokenError when there is none or it cannot be read)."""
    path = token_path(state_dir)
    try:
        token = path.read_text(encoding="ascii").strip()
    except FileNotFoundError as exc:
        raise TokenError(
            f"no web token in {state_dir}: it is made when the twin first serves the console"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenError(f"cannot read {path}: {exc}") from exc
    if not token:
        raise TokenError(f"{path} is empty: remove it and restart the twin to make a new one")
    return token


def load_or_create_token(state_dir: Path) -> str:
    """The stored token, or a new one (`write_new_token`)."""
    if token_path(state_dir).exists():
        return read_token(state_dir)
    return write_new_token(state_dir)


def write_new_token(state_dir: Path) -> str:
    """A new token, written with mode 0600 (never readable by others, not even for a moment)
    and put in place whole; or the token another process put there first, which it serves."""
    path = token_path(state_dir)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    try:
        # mkstemp: mode 0600 from the start, and a name of its own (a fixed one, left by a
        # process killed while writing, would stop every later start with the same pid).
        descriptor, name = tempfile.mkstemp(prefix=f".{TOKEN_NAME}.", dir=state_dir)
    except OSError as exc:
        raise TokenError(f"cannot write {path}: {exc.strerror or exc}") from exc
    temporary = Path(name)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(token + "\n")
        # A link, not a rename: it never replaces a token that another twin made meanwhile.
        os.link(temporary, path)
    except FileExistsError:
        return read_token(state_dir)
    except OSError as exc:
        raise TokenError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        temporary.unlink(missing_ok=True)
    return token
