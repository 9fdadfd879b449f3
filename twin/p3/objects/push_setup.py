"""The chapter 9 objects with behaviour: push setup (class 40, P3 §9.3) and the push script
table (class 9, §9.2), plus the write checks of the chapter 9 time windows and lists.

A push is handed to the `PushPort` of the `Env` (the GPRS controller through a relay), which
queues it and answers on receipt; windows, randomisation and retries happen there
(twin/p3/gprs/controller.py, twin/p3/gprs/push_time.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from twin.p3.dlms.cosem import DataAccessResult
from twin.p3.gprs.push_time import PatternError, parse_execution_time, parse_windows
from twin.p3.objects.base import ObjectError, Request
from twin.p3.objects.configured import Attribute, Check, Configured
from twin.p3.objects.env import Env
from twin.p3.objects.values import Data, Tag, ValueTypeError
from twin.ports import PortResult


class PushSetup(Configured):
    """Push setup (class 40, P3 §9.3). Method 1 push(integer 0) hands the push to the
    `PushPort` (the GPRS controller), which answers on receipt; without one (no GPRS
    controller running) it answers temporary-failure."""

    def __init__(self, env: Env, code: str, table: Mapping[int, Attribute]) -> None:
        super().__init__(40, 0, code, env.attrs, table, methods={1: "/X/"}, checks=_PUSH_CHECKS)
        self.env = env

    def invoke(self, index: int, parameters: Data | None, request: Request) -> Data | None:
        if parameters is not None:
            parameters.integer()  # Blue Book class 40: push (data), data ::= integer(0)
        _port_push(self.env, self.obis)
        return None


class ScriptTable(Configured):
    """Push script table 0-0:10.0.108 (class 9, P3 §9.2). execute(long-unsigned id) runs the
    script's actions; the only action a DSMR script holds is "execute method 1 (push) of a
    push setup". Script 0 is the null script (Blue Book); an unknown id, or an action other
    than a push of one of the setups, answers other-reason."""

    def __init__(self, env: Env, setups: set[bytes], scripts: Data) -> None:
        table = {2: ("/RW/", scripts)}
        super().__init__(9, 0, "0-0:10.0.108", env.attrs, table, methods={1: "/X/"})
        self.env, self.setups = env, setups
        self.checks = {2: self._check_scripts}

    def invoke(self, index: int, parameters: Data | None, request: Request) -> Data | None:
        if parameters is None:
            raise ObjectError(DataAccessResult.TYPE_UNMATCHED, "execute needs a script id")
        script_id = parameters.integer()
        if script_id == 0:
            return None
        targets = {s.items[0].integer(): s.items[1] for s in self.values[2].get().items}
        actions = targets.get(script_id)
        if actions is None:
            raise ObjectError(DataAccessResult.OTHER_REASON, f"no script {script_id}")
        setups = [self._push_target(action) for action in actions.items]
        for setup in setups:
            _port_push(self.env, setup)
        return None

    def _push_target(self, action: Data) -> bytes:
        service, class_id, ln, method, _parameter = action.items
        target = ln.octets()
        if (service.integer(), class_id.integer(), method.integer()) != (2, 40, 1):
            raise ObjectError(DataAccessResult.OTHER_REASON, "only push actions are supported")
        if target not in self.setups:
            raise ObjectError(DataAccessResult.OTHER_REASON, "not a push setup")
        return target

    def _check_scripts(self, value: Data) -> None:
        """scripts: array of {script_identifier, actions: array of action_specification
        {service_id, class_id, logical_name, index, parameter}} (Blue Book class 9)."""
        for script in value.expect(Tag.ARRAY).items:
            _shaped(script, [Tag.LONG_UNSIGNED, Tag.ARRAY])
            for action in script.items[1].items:
                _shaped(action, [Tag.ENUM, Tag.LONG_UNSIGNED, Tag.OCTET_STRING, Tag.INTEGER, None])
                _obis_length(action.items[2])


def _port_push(env: Env, setup: bytes) -> None:
    if env.push is None:
        raise ObjectError(DataAccessResult.TEMPORARY_FAILURE, "no GPRS controller")
    result = env.push.push(setup)
    if result is not PortResult.SUCCESS:
        raise ObjectError(DataAccessResult(int(result)))


def _shaped(value: Data, tags: list[Tag | None]) -> None:
    """A structure of exactly these element tags (None: any)."""
    items = value.expect(Tag.STRUCTURE).items
    if len(items) != len(tags):
        raise ValueTypeError("structure has the wrong number of elements")
    for item, tag in zip(items, tags, strict=True):
        if tag is not None:
            item.expect(tag)


def _obis_length(value: Data) -> None:
    if len(value.octets()) != 6:
        raise ValueTypeError("a logical name is 6 bytes")


def check_windows(value: Data) -> None:
    """Time windows: array of {start_time, end_time} date-time octet-strings (P3 §9 intro)."""
    pairs = []
    for item in value.expect(Tag.ARRAY).items:
        _shaped(item, [Tag.OCTET_STRING, Tag.OCTET_STRING])
        pairs.append((item.items[0].octets(), item.items[1].octets()))
    try:
        parse_windows(pairs)
    except PatternError as exc:
        raise ValueTypeError(str(exc)) from exc


def check_execution_times(value: Data) -> None:
    """execution_time: array of {time octet-string[4], date octet-string[5]} (P3 §9.1.1)."""
    for item in value.expect(Tag.ARRAY).items:
        _shaped(item, [Tag.OCTET_STRING, Tag.OCTET_STRING])
        try:
            parse_execution_time(item.items[0].octets(), item.items[1].octets())
        except PatternError as exc:
            raise ValueTypeError(str(exc)) from exc


def _object_list(value: Data) -> None:
    """push_object_list: capture_object_definitions {class_id, logical_name, attribute_index,
    data_index}."""
    for item in value.expect(Tag.ARRAY).items:
        _shaped(item, [Tag.LONG_UNSIGNED, Tag.OCTET_STRING, Tag.INTEGER, Tag.LONG_UNSIGNED])
        _obis_length(item.items[1])


_PUSH_CHECKS: Mapping[int, Check] = {2: _object_list, 4: check_windows}
