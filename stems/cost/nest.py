"""The layer as the cost model sees it: loop sizes, and each operand's relevancy, precision and memory chain.

A conv or dense layer is the loop nest
``O[t][b][g][k][oy][ox] += W[g][k][c][fy][fx] * I[t][b][g][c][iy][ix]`` with
``iy = stride * oy + dilation * fy`` (and x alike); a dense layer's recurrent inputs extend C. Each
operand sees every loop as relevant (it indexes the operand), as a window loop (OY/FY and OX/FX
index I through the sliding window) or as irrelevant (a reuse loop). T is relevant to I and O and
irrelevant to W: weights are reused across timesteps.

SNN state. A stateful layer (``layer.stateful``) adds V, and V is the accumulator, as in the STEMS
fork: within a timestep the reduction's partial sums are added straight into the neuron state, so V
takes over the partial-sum traffic O has in an ANN.

* V is an output-like operand indexed by B, G, K, OY, OX; T, C, FY and FX are its reuse loops. One
  element is a neuron's whole state (n_state x V bits).
* Where V is kept, the array read-modify-writes its tile as it would partial sums. V crosses a
  memory boundary once per reuse iteration above the boundary's stationary cut: once per T
  iteration above it, or once per tile when all T iterations run inside the tile (time batching);
  if a mapping splits the reduction across that boundary, once per reduction iteration above it too.
  The stateful rule (every T loop outside every C, FY, FX loop) makes a timestep's sum complete
  before the neuron updates.
* O of a stateful layer carries only the finished output (O_final bits): one write per neuron per
  timestep, no partial sums (C, FY and FX do not iterate its accesses: they are "absent" for O).
* The neuron update costs neuron_update_pj once per neuron per timestep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

from stems.errors import StemsInputError
from stems.hardware.spec import Direction, Hardware, MemoryLevel, Port
from stems.workload.model import LOOP_DIMS, REDUCTION_DIMS, Layer, Op

DIM_INDEX = {d: i for i, d in enumerate(LOOP_DIMS)}
PAD = len(LOOP_DIMS)
"""Dimension index of a padding loop (factor 1) in the batched arrays."""

OPERAND_ORDER = ("O", "W", "I", "V")
"""Operands in ZigZag's layer order (output first), V last; the order the latency model walks them."""


_SERVE_ORDER = {op: i for i, op in enumerate(("I", "W", "O", "V"))}
_DIR_ORDER = {Direction.FROM_HIGH: 0, Direction.TO_LOW: 1, Direction.FROM_LOW: 2, Direction.TO_HIGH: 3}


@dataclass(frozen=True)
class OperandSpec:
    """One operand of the nest: what indexes it, its bits and the memory levels holding it (innermost first).

    `absent` loops do not iterate the operand's accesses at all (O of a stateful layer, whose reduction
    runs in V); they are priced as if their factor were 1 for this operand.
    """

    name: str
    output: bool
    relevant: frozenset[str]
    window: bool
    absent: frozenset[str]
    bits: int
    psum_bits: int
    levels: tuple[MemoryLevel, ...]
    entry: tuple[int, ...]
    """Per array dim: index of the lowest of `levels` serving it (len(levels) if none does)."""

    @property
    def reuse(self) -> frozenset[str]:
        """Irrelevant loops: every loop that indexes the operand neither directly nor through the window."""
        window = {"OY", "FY", "OX", "FX"} if self.window else set()
        return frozenset(LOOP_DIMS) - self.relevant - window


@dataclass(frozen=True)
class Nest:
    """A conv or dense layer on a hardware, ready to price: built once, shared by every mapping priced."""

    layer: Layer
    hw: Hardware
    sizes: tuple[int, ...]
    """Loop sizes in LOOP_DIMS order; a dense layer's recurrent inputs extend C."""
    operands: tuple[OperandSpec, ...]
    input_yx: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]

    @classmethod
    def of(cls, layer: Layer, hw: Hardware) -> Nest:
        if layer.op not in (Op.CONV, Op.DENSE):
            raise StemsInputError(
                f"the intra-layer cost model prices conv and dense layers, not {layer.op}", where=layer.name
            )
        if layer.recurrent_c and layer.op is not Op.DENSE:
            raise StemsInputError("recurrent weights are supported on dense layers only", where=layer.name)
        d = layer.dims
        sizes = tuple(getattr(d, x) + (layer.recurrent_c if x == "C" else 0) for x in LOOP_DIMS)
        p = layer.precision
        stateful = layer.stateful
        state_bits = p.V * (layer.neuron.n_state if layer.neuron else 0)
        specs = [
            ("O", True, {"T", "B", "G", "K", "OY", "OX"}, False, p.O_final, p.O),
            ("W", False, {"G", "K", "C", "FY", "FX"}, False, p.W, p.W),
            ("I", False, {"T", "B", "G", "C"}, True, p.I, p.I),
        ]
        if stateful:
            specs.append(("V", True, {"B", "G", "K", "OY", "OX"}, False, state_bits, state_bits))
        operands = []
        for name, output, relevant, window, bits, psum_bits in specs:
            levels = hw.levels_of(name)
            entry = tuple(
                next((i for i, lv in enumerate(levels) if a.name in lv.served_dims), len(levels))
                for a in hw.array.dims
            )
            absent = frozenset(REDUCTION_DIMS) if (name == "O" and stateful) else frozenset()
            operands.append(
                OperandSpec(name, output, frozenset(relevant), window, absent, bits, psum_bits, levels, entry)
            )
        w = layer.window
        if layer.op is Op.DENSE:
            input_yx, stride, dilation = (1, 1), (1, 1), (1, 1)
        else:
            input_yx = (w.input_size(d.OY, d.FY, 0), w.input_size(d.OX, d.FX, 1))
            stride, dilation = w.stride, w.dilation
        return cls(layer, hw, sizes, tuple(operands), input_yx, stride, dilation)

    def operand(self, name: str) -> OperandSpec:
        return next(o for o in self.operands if o.name == name)

    @cached_property
    def port_moves(self) -> tuple[tuple[Port, tuple[tuple[str, int, Direction], ...]], ...]:
        """Every port of the hardware, outermost level last, with the moves it serves as (operand, its
        memory level index, direction) in ZigZag's order of service (I, W, O, V; fills first)."""
        out = []
        for lv in self.hw.memories:
            for port in lv.ports:
                keys = [
                    (op.name, op.levels.index(lv), d)
                    for op in self.operands
                    for name, d in port.serves
                    if name == op.name
                ]
                keys.sort(key=lambda k: (_SERVE_ORDER[k[0]], _DIR_ORDER[k[2]]))
                out.append((port, tuple(keys)))
        return tuple(out)

    @cached_property
    def port_of(self) -> dict[tuple[str, int, Direction], Port]:
        """The port serving each move (operand, memory level index, direction): its level's first."""
        out: dict = {}
        for port, keys in self.port_moves:
            for k in keys:
                out.setdefault(k, port)
        return out

    @property
    def operand_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.operands)

    @property
    def ops(self) -> int:
        """Synaptic operations (MACs, or accumulates for spike inputs) of the whole layer, all timesteps."""
        return math.prod(self.sizes)
