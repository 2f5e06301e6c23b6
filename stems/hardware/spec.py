"""The hardware model every later stage reads: a PE array, its compute units and a memory hierarchy.

Units are fixed so nothing downstream converts: sizes and bandwidths in bits (per cycle),
energies in pJ, the clock in Hz. The semantics follow ZigZag's, so a spec converts to ZigZag
objects one to one: a memory level has ports, each (operand, direction) of the level is served
by exactly one port, and a transfer through a port is charged per bit, rounded up to the port's
minimum access (ZigZag charges ceil(bits / bw_min) * bw_min / bw_max words of r_cost each).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

MEMORY_OPERANDS = ("I", "W", "O", "V")
"""Operands a memory level can hold: inputs, weights, partial sums/outputs, neuron state."""


class Direction(StrEnum):
    """A data movement at one level, named as ZigZag names it (its short code in brackets).

    TO_LOW (tl): read out to the level below (or the PEs); FROM_HIGH (fh): written by the level
    above (a fill); FROM_LOW (fl): written by the level below (partial sums or state coming back);
    TO_HIGH (th): read out to the level above (a write-back).
    """

    TO_LOW = "to_low"
    FROM_HIGH = "from_high"
    FROM_LOW = "from_low"
    TO_HIGH = "to_high"

    @property
    def is_read(self) -> bool:
        return self in (Direction.TO_LOW, Direction.TO_HIGH)


def directions_of(operand: str) -> tuple[Direction, ...]:
    """Movements an operand makes: inputs and weights only flow down; O and V also come back up."""
    if operand in ("O", "V"):
        return tuple(Direction)
    return (Direction.TO_LOW, Direction.FROM_HIGH)


class PortKind(StrEnum):
    READ = "read"
    WRITE = "write"
    READ_WRITE = "read_write"

    def allows(self, direction: Direction) -> bool:
        if self is PortKind.READ_WRITE:
            return True
        return direction.is_read == (self is PortKind.READ)


@dataclass(frozen=True)
class Port:
    """One physical port of a memory level; the (operand, direction) pairs it serves share its bandwidth.

    `bw_bits` is both the bits per cycle and the word one access moves (ZigZag's bandwidth_max);
    a transfer is rounded up to a multiple of `min_bits` (bandwidth_min). Energies are per bit
    moved through this port; the one the port cannot do is 0.
    """

    name: str
    kind: PortKind
    bw_bits: int
    min_bits: int
    read_pj_per_bit: float
    write_pj_per_bit: float
    serves: frozenset[tuple[str, Direction]]


@dataclass(frozen=True)
class MemoryLevel:
    """One memory of the hierarchy. `served_dims` are the array dimensions that share one instance;
    the level is replicated over the others (see `Hardware.instances`)."""

    name: str
    size_bits: int
    operands: frozenset[str]
    served_dims: frozenset[str]
    ports: tuple[Port, ...]  # sorted by name
    skips_zeros: bool = False  # stores and moves only non-zero elements (compressed / event-driven)
    double_buffered: bool = False  # ZigZag's force_double_buffering: a tile takes twice its size

    def port(self, operand: str, direction: Direction) -> Port:
        """The port that carries `operand` in `direction` at this level."""
        for p in self.ports:
            if (operand, direction) in p.serves:
                return p
        raise KeyError(f"{self.name} has no port for {operand} {direction}")

    def pj_per_bit(self, operand: str, direction: Direction) -> float:
        """Energy of moving one bit of `operand` in `direction` (before rounding to the minimum access)."""
        p = self.port(operand, direction)
        return p.read_pj_per_bit if direction.is_read else p.write_pj_per_bit


@dataclass(frozen=True)
class ArrayDim:
    """One dimension of the PE array and the loop dimensions that may unroll spatially along it."""

    name: str
    size: int
    loops: tuple[str, ...]
    systolic: bool = False  # operands hop one PE per cycle: ZigZag adds size-1 drain cycles


@dataclass(frozen=True)
class PEArray:
    dims: tuple[ArrayDim, ...]

    @property
    def n_pes(self) -> int:
        return math.prod(d.size for d in self.dims)

    def dim(self, name: str) -> ArrayDim:
        return next(d for d in self.dims if d.name == name)


class Scaling(StrEnum):
    """How an unlisted (input bits, weight bits) pair is priced from the nearest listed one."""

    CONSTANT = "constant"  # same energy (ZigZag: one unit_energy whatever the precision)
    BITS_PRODUCT = "bits_product"  # scaled by input_bits * weight_bits (the STEMS code: 0.07 -> 0.16)


@dataclass(frozen=True)
class ComputeUnits:
    """Energy per operation of the PEs and the side units.

    An operation with a 1-bit input is an accumulate (the spike gates the weight into the adder),
    anything wider is a MAC. `op_energy` lists (input_bits, weight_bits, pJ); `energy_per_op`
    prices any pair from it.
    """

    op_energy: tuple[tuple[int, int, float], ...]
    scaling: Scaling = Scaling.BITS_PRODUCT
    neuron_update_pj: float = 0.0  # per neuron per timestep (leak, threshold, reset)
    pool_pj: float = 0.0  # per pooling-window element, on the pooling unit
    eltwise_pj: float = 0.0  # per element of an add or mul, on the SIMD unit
    skips_zero_inputs: bool = False  # event-driven: only non-zero inputs cost an operation

    def energy_per_op(self, input_bits: int, weight_bits: int) -> float:
        """pJ for one operation at this precision pair.

        A listed pair is used as is. Otherwise the nearest listed pair of the same kind
        (accumulate for 1-bit inputs, MAC otherwise; any kind if none is listed) is taken,
        nearest by |log(bits product ratio)|, ties to the larger product, then scaled by
        `scaling`.
        """
        for i, w, pj in self.op_energy:
            if (i, w) == (input_bits, weight_bits):
                return pj
        product = input_bits * weight_bits
        same_kind = [e for e in self.op_energy if (e[0] == 1) == (input_bits == 1)] or list(self.op_energy)
        i, w, pj = min(same_kind, key=lambda e: (abs(math.log(e[0] * e[1] / product)), -e[0] * e[1], e))
        if self.scaling is Scaling.CONSTANT:
            return pj
        return pj * product / (i * w)


@dataclass(frozen=True)
class Hardware:
    """An accelerator: PE array, compute units and memories ordered innermost (registers) first.

    The last memory is the backing store (off-chip DRAM in the shipped specs) and holds every
    operand. Provenance fields do not take part in equality.
    """

    name: str
    version: int
    clock_hz: float
    array: PEArray
    compute: ComputeUnits
    memories: tuple[MemoryLevel, ...]
    description: str = field(default="", compare=False)
    source_path: str = field(default="", compare=False)
    sha256: str = field(default="", compare=False)  # of the effective spec, overrides applied
    overrides: tuple[str, ...] = field(default=(), compare=False)

    def levels_of(self, operand: str) -> tuple[MemoryLevel, ...]:
        """The chain a tile of `operand` walks, innermost first."""
        return tuple(m for m in self.memories if operand in m.operands)

    def level(self, name: str) -> MemoryLevel:
        return next(m for m in self.memories if m.name == name)

    @property
    def offchip(self) -> MemoryLevel:
        return self.memories[-1]

    def instances(self, level: MemoryLevel) -> int:
        """How many copies of `level` the array has: the product of the dimensions it does not serve."""
        return math.prod(d.size for d in self.array.dims if d.name not in level.served_dims)
