"""What GET, SET and ACTION share (Green Book §9.3): the limits of requests with a list and
the assembly of values that arrive in numbered blocks (SET with blocks, ACTION with pblocks)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from twin.p3.dlms.initiate import NOT_POSSIBLE, NOT_SUPPORTED, Conformance
from twin.p3.dlms.set_action import DataBlock

First = TypeVar("First")
MAX_BLOCKED_VALUE = 0xFFFF  # bytes accepted over all blocks of one SET or ACTION


def list_refusal(conformance: Conformance, count: int, max_items: int) -> bytes | None:
    """The ExceptionResponse for a request with a list that this association may not make
    (no multiple-references conformance, or not 1..max_items references), else None."""
    if Conformance.MULTIPLE_REFERENCES not in conformance:
        return NOT_SUPPORTED.to_bytes()
    if not 0 < count <= max_items:
        return NOT_POSSIBLE.to_bytes()  # P3 §2.1.3: at most 16 references
    return None


class BlockError(enum.Enum):
    OUT_OF_SEQUENCE = "block number is not the previous + 1"
    TOO_LARGE = "more bytes than one value may have"


@dataclass(slots=True)
class Incoming(Generic[First]):
    """A value arriving in blocks: the request that opened the transfer and the blocks."""

    first: First
    parts: list[bytes] = field(default_factory=list)
    block_number: int = 0
    size: int = 0

    def append(self, block: DataBlock) -> BlockError | None:
        if block.number != self.block_number + 1:
            return BlockError.OUT_OF_SEQUENCE
        self.parts.append(block.raw)
        self.block_number = block.number
        self.size += len(block.raw)
        return BlockError.TOO_LARGE if self.size > MAX_BLOCKED_VALUE else None

    def data(self) -> bytes:
        return b"".join(self.parts)
