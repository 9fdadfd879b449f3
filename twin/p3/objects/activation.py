"""Register activation 0-0:14.0.0 (class 6 v0, P3 §5.4) and the mask names the currently active
tariff 0-0:96.14.0 shows ("value = active_mask of register activation object").

- register_assignment (array[48] of {class_id, logical_name}): the energy registers
  1-0:1.8.1, 1-0:1.8.2, 1-0:2.8.1, 1-0:2.8.2 (class 3, P3 §6.2).
- mask_list (array[8] of {mask_name, index_list array[64] of unsigned}): mask 0x0001 (tariff 1)
  enables registers 1 and 3 (1-0:1.8.1, 1-0:2.8.1), mask 0x0002 (tariff 2) registers 2 and 4.
  Indices are 1-based positions in register_assignment.
- active_mask: the mask of the active tariff, as the two octets 0-0:96.14.0 shows.

Writes and the methods add_register, add_mask (replaces a mask of the same name, Blue Book
class 6) and delete_mask are validated (shape, sizes, indices that name an assigned register,
unique mask names) and persisted.

Resolved here: which registers integrate is fixed by the tariff (P3 §6.2: tariff n counts into
1-0:1.8.n / 2.8.n), and the tariff follows the activity calendar 0-0:13.0.0 through the script
table 0-0:10.0.100 (P3 §5.4), which is also what P1 shows. A written mask_list or
register_assignment is kept as the CS's description and does not change that mapping.
active_mask always reads the mask of the active tariff; writing it succeeds only with that
same name (a no-op): forcing another tariff would make P1, 0-0:96.14.0 and the calendar
disagree, so it answers other-reason. Change tariffs through the activity calendar.
"""

from __future__ import annotations

from typing import ClassVar

from twin.p3.dlms.cosem import DataAccessResult
from twin.p3.objects.base import CosemObject, ObjectError, Request, obis_bytes
from twin.p3.objects.env import Env
from twin.p3.objects.simple import Stored, conform
from twin.p3.objects.values import Data, Tag, ValueTypeError, array, octets, struct, u8, u16

CODE = "0-0:14.0.0"
MAX_REGISTERS = 48  # register_assignment array[48]
MAX_MASKS = 8  # mask_list: array register_act_mask (size=8)
MAX_INDICES = 64  # index_array (size=64)
REGISTER_CLASSES = frozenset({3, 4, 5})  # register, extended register, demand register
ENERGY = ("1-0:1.8.1", "1-0:1.8.2", "1-0:2.8.1", "1-0:2.8.2")
OBJECT_DEFINITION = struct(u16(0), octets(bytes(6)))
MASK = struct(octets(b""), array([u8(0)]))


def mask_name(tariff: int) -> bytes:
    """The mask (and 0-0:96.14.0 value) of tariff 1 or 2: octet-string[2] 0x0001 / 0x0002."""
    return int(tariff).to_bytes(2, "big")


DEFAULT_ASSIGNMENT = array([struct(u16(3), octets(obis_bytes(code))) for code in ENERGY])
DEFAULT_MASKS = array(
    [
        struct(octets(mask_name(1)), array([u8(1), u8(3)])),
        struct(octets(mask_name(2)), array([u8(2), u8(4)])),
    ]
)


class RegisterActivation(CosemObject):
    class_id: ClassVar[int] = 6

    def __init__(self, env: Env) -> None:
        rights = {1: "/R/", 2: "/RW/", 3: "/RW/", 4: "/RW/"}
        super().__init__(CODE, rights, dict.fromkeys((1, 2, 3), "/X/"))
        self.env = env
        self.assignment = Stored(env.attrs, f"{CODE}#2", DEFAULT_ASSIGNMENT)
        self.masks = Stored(env.attrs, f"{CODE}#3", DEFAULT_MASKS)

    def active(self) -> bytes:
        return mask_name(self.env.reading().tariff)

    def read(self, index: int, request: Request) -> Data:
        if index == 2:
            return self.assignment.get()
        if index == 3:
            return self.masks.get()
        if index == 4:
            return octets(self.active())
        return super().read(index, request)

    def write(self, index: int, value: Data, request: Request) -> None:
        if index == 2:
            self._save(_items(value), list(self.masks.get().items))
        elif index == 3:
            self._save(list(self.assignment.get().items), _items(value))
        elif value.expect(Tag.OCTET_STRING).octets() != self.active():
            raise ObjectError(DataAccessResult.OTHER_REASON, "the calendar sets the tariff")

    def invoke(self, index: int, parameters: Data | None, request: Request) -> Data | None:
        if parameters is None:
            raise ValueTypeError("register activation methods need a parameter")
        registers = list(self.assignment.get().items)
        masks = list(self.masks.get().items)
        if index == 1:  # add_register(object_definition): appended
            registers.append(parameters)
        elif index == 2:  # add_mask(register_act_mask): replaces a mask of the same name
            name = conform(MASK, parameters).items[0]
            masks = [m for m in masks if m.items[0] != name] + [parameters]
        else:  # delete_mask(mask_name)
            name = parameters.expect(Tag.OCTET_STRING)
            if all(m.items[0] != name for m in masks):
                raise ObjectError(DataAccessResult.OTHER_REASON, "no such mask")
            masks = [m for m in masks if m.items[0] != name]
        self._save(registers, masks)
        return None

    def _save(self, registers: list[Data], masks: list[Data]) -> None:
        _check_registers(registers)
        _check_masks(masks, len(registers))
        self.assignment.put(array(registers))
        self.masks.put(array(masks))


def _items(value: Data) -> list[Data]:
    return list(value.expect(Tag.ARRAY).items)


def _check_registers(registers: list[Data]) -> None:
    if len(registers) > MAX_REGISTERS:
        raise ValueTypeError(f"register_assignment is array[{MAX_REGISTERS}]")
    seen = set()
    for item in registers:
        class_id, name = conform(OBJECT_DEFINITION, item).items
        if len(name.octets()) != 6:
            raise ValueTypeError("logical name is octet-string[6]")
        if class_id.integer() not in REGISTER_CLASSES:
            raise ObjectError(DataAccessResult.OTHER_REASON, "not a register class")
        if name.octets() in seen:
            raise ObjectError(DataAccessResult.OTHER_REASON, "register assigned twice")
        seen.add(name.octets())


def _check_masks(masks: list[Data], registers: int) -> None:
    if len(masks) > MAX_MASKS:
        raise ValueTypeError(f"mask_list holds at most {MAX_MASKS} masks")
    names = set()
    for mask in masks:
        name, indices = conform(MASK, mask).items
        if len(indices.items) > MAX_INDICES:
            raise ValueTypeError(f"index_list is array[{MAX_INDICES}]")
        if any(not 1 <= i.integer() <= registers for i in indices.items):
            raise ObjectError(DataAccessResult.OTHER_REASON, "index names no assigned register")
        if name.octets() in names:
            raise ObjectError(DataAccessResult.OTHER_REASON, "mask name used twice")
        names.add(name.octets())
