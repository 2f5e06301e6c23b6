"""What one unit costs inside the chip, injected into the schedule cost: a protocol and a simple default.

The intra-layer search will supply the real per-unit cost (its best mapping of that layer, tile and time
batch); until then `default_unit_cost` prices a unit as

* compute: operations x `hw.compute.energy_per_op(I bits, W bits)` for conv/dense (synaptic ops, i.e.
  C*FY*FX (+ recurrent) per output), x `pool_pj` for pools (FY*FX per output), x `eltwise_pj` for
  add/mul (one per output); plus `neuron_update_pj` per neuron per timestep;
* on-chip: one read of every input element the unit reads and of every weight (once per unit), one
  write of every output element, and one read plus one write of every state word per timestep, each at
  the per-bit energy of the on-chip buffer that holds the operand (`OnChip`);
* cycles: operations / number of PEs (rounded up).

`OnChip` maps operands to the buffers whose capacity the schedule budgets: the outermost on-chip level
holding each operand (on stems-edge all four share the global buffer). Activations count against the
level holding I, weights against W's, state against V's. A level replicated over the array (a register
per PE, a memory per core) budgets all its copies: a unit's tensors are spread over them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from stems.errors import StemsInputError
from stems.hardware.spec import Direction, Hardware, MemoryLevel
from stems.workload.model import Layer, Op

OPERANDS = ("W", "I", "O", "V")


@dataclass(frozen=True)
class TileShape:
    """The output region of a unit and what it reads per timestep (all inputs, halos included)."""

    rows: int
    cols: int
    input_bits_per_step: int


@dataclass(frozen=True)
class UnitCost:
    energy_pj_onchip: float
    compute_pj: float
    cycles: int


class UnitCostFn(Protocol):
    def __call__(self, layer: Layer, tile: TileShape, time_batch: int, hw: Hardware) -> UnitCost: ...


@dataclass(frozen=True)
class OnChip:
    """The on-chip buffer of each operand (None: the operand cannot stay on chip)."""

    levels: dict[str, MemoryLevel | None]
    copies: dict[str, int]  # per level name: its instances over the array

    @classmethod
    def of(cls, hw: Hardware, buffer: str | None = None) -> OnChip:
        """`buffer` names one level for every operand; otherwise each operand's outermost on-chip level."""
        if buffer is not None:
            try:
                level = hw.level(buffer)
            except StopIteration:
                raise StemsInputError(f"hardware {hw.name} has no memory '{buffer}'") from None
            return cls(dict.fromkeys(OPERANDS, level), {level.name: hw.instances(level)})
        onchip = hw.memories[:-1]
        levels: dict[str, MemoryLevel | None] = {}
        for op in OPERANDS:
            held = [m for m in onchip if op in m.operands]
            levels[op] = held[-1] if held else None
        return cls(levels, {m.name: hw.instances(m) for m in onchip})

    def pool(self, cls_: str) -> str:
        """Capacity pool (a level name) of a tensor class: 'W', 'V' or 'A' (activations, on I's level)."""
        level = self.levels["I" if cls_ == "A" else cls_]
        return level.name if level is not None else f"<no on-chip {cls_}>"

    def capacities(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in ("A", "W", "V"):
            level = self.levels["I" if c == "A" else c]
            out[self.pool(c)] = level.size_bits * self.copies[level.name] if level is not None else 0
        return out

    def pj(self, operand: str, direction: Direction) -> float:
        level = self.levels[operand]
        if level is None:
            return 0.0
        try:
            return level.pj_per_bit(operand, direction)
        except KeyError:
            return 0.0


def unit_ops(layer: Layer, positions: int, time_batch: int) -> int:
    """Operations of a unit computing `positions` output positions for `time_batch` timesteps."""
    d = layer.dims
    outputs = positions * d.B * d.G * d.K * time_batch
    if layer.op.has_weights:
        return outputs * (d.C * d.FY * d.FX + layer.recurrent_c)
    if layer.op.is_pool:
        return outputs * d.FY * d.FX
    if layer.op in (Op.ADD, Op.MUL):
        return outputs
    return 0


def default_unit_cost(layer: Layer, tile: TileShape, time_batch: int, hw: Hardware) -> UnitCost:
    """The documented default (see the module docstring)."""
    d = layer.dims
    c = hw.compute
    positions = tile.rows * tile.cols
    outputs = positions * d.B * d.G * d.K * time_batch
    ops = unit_ops(layer, positions, time_batch)
    if layer.op.has_weights:
        per_op = c.energy_per_op(layer.precision.I, layer.precision.W)
    elif layer.op.is_pool:
        per_op = c.pool_pj
    elif layer.op in (Op.ADD, Op.MUL):
        per_op = c.eltwise_pj
    else:
        per_op = 0.0
    compute = ops * per_op + (outputs * c.neuron_update_pj if layer.neuron is not None else 0.0)
    buf = OnChip.of(hw)
    onchip = (
        tile.input_bits_per_step * time_batch * buf.pj("I", Direction.TO_LOW)
        + layer.weights * layer.precision.W * buf.pj("W", Direction.TO_LOW)
        + outputs * layer.precision.O_final * buf.pj("O", Direction.FROM_LOW)
    )
    if layer.stateful:
        assert layer.neuron is not None
        words = outputs * layer.neuron.n_state * layer.precision.V
        onchip += words * (buf.pj("V", Direction.TO_LOW) + buf.pj("V", Direction.FROM_LOW))
    return UnitCost(onchip, compute, math.ceil(ops / hw.array.n_pes))
