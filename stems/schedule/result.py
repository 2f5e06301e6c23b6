"""Plain result containers the analytic cost and the replay both fill, so tests compare like with like."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stems.hardware.spec import Direction, Hardware, MemoryLevel

OPERANDS = ("W", "I", "O", "V")


@dataclass(frozen=True)
class Traffic:
    """Bits moved across the chip boundary, per operand: W and I are read from DRAM (I = the network
    input and activations streamed back), O is written (activations and network outputs), V both ways."""

    reads: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OPERANDS, 0))
    writes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OPERANDS, 0))

    def bits(self, operand: str) -> int:
        return self.reads[operand] + self.writes[operand]

    @property
    def per_operand_bits(self) -> dict[str, int]:
        return {op: self.bits(op) for op in OPERANDS}

    @property
    def total_bits(self) -> int:
        return sum(self.reads.values()) + sum(self.writes.values())

    @property
    def total_bytes(self) -> float:
        return self.total_bits / 8

    def offchip_pj(self, hw: Hardware) -> float:
        """Energy of these bits at the off-chip level: reads out to the chip, writes coming back."""
        dram = hw.offchip
        return sum(self.reads[op] * _pj_per_bit(dram, op, Direction.TO_LOW) for op in OPERANDS) + sum(
            self.writes[op] * _pj_per_bit(dram, op, Direction.FROM_LOW) for op in OPERANDS
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "read_bits": dict(self.reads),
            "write_bits": dict(self.writes),
            "bytes": {op: self.bits(op) / 8 for op in OPERANDS},
            "total_bytes": self.total_bytes,
        }


@dataclass(frozen=True)
class Violation:
    """The first unit at which a buffer overflows, and what it holds there (largest first)."""

    unit: int
    unit_label: str
    pool: str
    occupancy_bits: int
    capacity_bits: int
    items: tuple[tuple[str, int], ...]

    def message(self) -> str:
        top = ", ".join(f"{name} {bits / 8192:.1f} KiB" for name, bits in self.items[:6])
        return (
            f"{self.unit_label} needs {self.occupancy_bits / 8192:.1f} KiB in {self.pool} but it holds "
            f"{self.capacity_bits / 8192:.1f} KiB; largest tensors there: {top}"
        )


def _pj_per_bit(level: MemoryLevel, operand: str, direction: Direction) -> float:
    """0 where the level has no port for the operand in that direction (it never moves that way)."""
    try:
        return level.pj_per_bit(operand, direction)
    except KeyError:
        return 0.0
