"""The fields of control requests, declared once per command and checked before any handler.

The control server is the authority over what an operator may ask: the CLI checks little, and
anyone in the socket's group can write raw JSON. So every command declares its fields here with
type and range, and `parse_fields` answers anything else with an error that names the field
and what is allowed. Handlers then only ever see values of the declared type and range.

Types are JSON's, strictly: a number is never a boolean (Python's `True == 1`), a whole number
is never a float (`40.0`), a string is never coerced from a number.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from twin.clock import parse_aware_time


class ControlError(ValueError):
    """A control request that cannot be carried out; the message goes back to the operator.

    `kind` types the answer (`{"ok": false, "kind": ..., "error": ...}`) so a client can tell
    a malformed request from one the meter refused. The server adds "too-long" (a line over
    its limit) and "internal" (a bug, logged with its traceback).
    """

    kind = "refused"


class EncodingError(ControlError):
    """The line is not UTF-8."""

    kind = "encoding"


class NotJsonError(ControlError):
    """The line is not JSON (or JSON Python cannot hold: too deep, a 5000-digit number)."""

    kind = "syntax"


class RequestError(ControlError):
    """The line is not a request: not an object, no command, an unknown command."""

    kind = "request"


class FieldError(ControlError):
    """A field is missing, unknown, of the wrong type or out of its range."""

    kind = "field"


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Final = _Required()
SHOWN_CHARS = 40  # of a bad value in an error: enough to recognise it, never a 64 KiB echo


def shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def _same(value: Any) -> object:
    return value


@dataclass(frozen=True, slots=True)
class Field:
    """One field: what it accepts, and what it is called when it does not."""

    name: str
    allowed: str  # completes "'name' must be ...": "a number from 0 to 10"
    accepts: Callable[[Any], bool]
    default: object = REQUIRED  # REQUIRED: the field must be present
    nullable: bool = False  # JSON null is a value of its own (e.g. "clear the override")
    convert: Callable[[Any], object] = _same
    # The JSON type a client sends ("number", "integer", "flag", "choice", "text", "moment")
    # and a choice's options: the web console draws its forms from these declarations.
    kind: str = "text"
    options: tuple[str, ...] = ()

    def describe(self) -> dict[str, object]:
        """The field as a client needs it to offer it (a form, a hint)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "options": list(self.options),
            "allowed": self._allowed(),
            "required": self.default is REQUIRED,
            "nullable": self.nullable,
        }

    def take(self, request: Mapping[str, Any]) -> object:
        if self.name not in request:
            if self.default is REQUIRED:
                raise FieldError(f"'{self.name}' is required: {self._allowed()}")
            return self.default
        value = request[self.name]
        if value is None and self.nullable:
            return None
        if not self.accepts(value):
            raise FieldError(f"'{self.name}' must be {self._allowed()}; got {shown(value)}")
        return self.convert(value)

    def _allowed(self) -> str:
        return f"{self.allowed} or null" if self.nullable else self.allowed


def _number_text(value: float) -> str:
    return f"{value:.10g}"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def number(
    name: str, low: float, high: float, *, default: object = REQUIRED, nullable: bool = False
) -> Field:
    """A finite JSON number from `low` to `high`, as a float."""

    def accepts(value: object) -> bool:
        # NaN compares false with everything and +-inf lies outside any finite range, so the
        # range test alone refuses them (and never converts a 5000-digit integer to float).
        return _is_number(value) and low <= value <= high  # type: ignore[operator]

    allowed = f"a number from {_number_text(low)} to {_number_text(high)}"
    return Field(name, allowed, accepts, default, nullable, float, kind="number")


def integer(name: str, low: int, high: int, *, default: object = REQUIRED) -> Field:
    """A whole JSON number (not a float, not a boolean) from `low` to `high`."""

    def accepts(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high

    return Field(name, f"a whole number from {low} to {high}", accepts, default, kind="integer")


def flag(name: str, *, default: object = REQUIRED) -> Field:
    """JSON true or false."""
    return Field(name, "true or false", lambda value: isinstance(value, bool), default, kind="flag")


def choice(name: str, options: Sequence[str], *, default: object = REQUIRED) -> Field:
    """One of a few strings."""
    allowed = "one of " + ", ".join(repr(o) for o in options)
    return Field(
        name,
        allowed,
        lambda value: isinstance(value, str) and value in options,
        default,
        kind="choice",
        options=tuple(options),
    )


def text(
    name: str,
    pattern: str,
    described: str,
    *,
    default: object = REQUIRED,
    nullable: bool = False,
) -> Field:
    """A string that matches `pattern` in full (its length bound included)."""
    compiled = re.compile(pattern)

    def accepts(value: object) -> bool:
        return isinstance(value, str) and compiled.fullmatch(value) is not None

    return Field(name, described, accepts, default, nullable)


def parse_fields(request: Mapping[str, Any], fields: Sequence[Field]) -> dict[str, Any]:
    """The request's fields, checked and with defaults; "cmd" stays. Unknown fields are an
    error: a misspelt optional field would otherwise be ignored without a word."""
    names = [f.name for f in fields]
    for key in request:
        if key != "cmd" and key not in names:
            known = ", ".join(repr(n) for n in names) or "none"
            raise FieldError(f"unknown field {shown(key)} for {request['cmd']!r} (fields: {known})")
    return {"cmd": request["cmd"], **{f.name: f.take(request) for f in fields}}


def moment(name: str, *, default: object = REQUIRED) -> Field:
    """An ISO 8601 date and time with its UTC offset ("2026-12-31T00:00:00+01:00"), as an
    aware datetime: a time without an offset is ambiguous in the repeated October hour."""
    return Field(
        name,
        "an ISO 8601 time with its UTC offset, e.g. 2026-12-31T00:00:00+01:00",
        lambda value: isinstance(value, str) and parse_aware_time(value) is not None,
        default,
        convert=parse_aware_time,
        kind="moment",
    )
