"""Price one layer under intra-layer mappings on one hardware: energy, latency, traffic, validity.

`price_batch` prices many mappings of one layer at once (numpy over the batch); `price` is the same
code on a batch of one, so the two agree exactly; `price_encoded` takes a batch already encoded
(`stems.cost.encode`). Energy is

    sum over operands, levels and directions of (bits moved, rounded up per transfer to the port's
    minimum access) x the port's pJ per bit,
    + compute.energy_per_op(I bits, W bits) x operations (x input rate if the PEs skip zero inputs),
    + neuron_update_pj x neurons x timesteps.

A level that `skips_zeros` moves only the non-zero inputs (rates.I) and finished outputs (rates.O),
packed per transfer; latency assumes dense traffic.
On ANN-equivalent layers (T = 1, no state) every number is zigzag-dse 3.9.1's; see `stems.cost.nest`
for the SNN semantics (T, and the state V).
"""

from __future__ import annotations

import copyreg
from collections.abc import Mapping as MappingABC
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from types import MappingProxyType

import numpy as np

from stems.cost.encode import Encoded, encode
from stems.cost.latency import latency
from stems.cost.mapping import Mapping
from stems.cost.nest import Nest
from stems.cost.traffic import Move, OperandTraffic, operand_traffic
from stems.hardware.spec import Direction, Hardware
from stems.workload.model import Layer

DIRECTIONS = tuple(Direction)


# a Cost's read-only mappings pickle as the dicts they wrap, so that a Cost priced in a worker process
# (`stems.search.intra.map_workload`) comes back whole instead of being priced again
def _read_only(d: dict) -> MappingProxyType:
    return MappingProxyType(d)


copyreg.pickle(MappingProxyType, lambda p: (_read_only, (dict(p),)))


@lru_cache(maxsize=64)
def nest_of(layer: Layer, hw: Hardware) -> Nest:
    """The layer's nest on `hw` (cached: building it once per layer keeps batches cheap)."""
    return Nest.of(layer, hw)


@dataclass(frozen=True)
class LevelTraffic:
    """One operand at one memory level, per direction: elements moved (zeros included), bits moved
    (rounded up per transfer to the port's minimum access; only non-zeros where the level skips
    zeros), the same in ZigZag words (one full-width port access); and their energy."""

    elements: MappingABC[Direction, float]
    bits: MappingABC[Direction, float]
    words: MappingABC[Direction, float]
    energy_pj: float


@dataclass(frozen=True)
class Cost:
    """The price of one mapping. When `valid` is False, `reason` says why and the numbers are NaN
    (a malformed mapping) or what the mapping would cost if it fitted (a capacity overflow)."""

    valid: bool
    reason: str
    energy_pj: float
    compute_pj: float
    neuron_pj: float
    memory_pj: float
    traffic: MappingABC[str, MappingABC[str, LevelTraffic]]  # operand -> level -> traffic
    offchip_bytes: MappingABC[str, float]  # per operand, across the outermost level's boundary
    latency_cycles: float
    ideal_cycles: float  # operations / PEs: the array never idle
    temporal_cycles: float  # temporal iterations of the mapping (no stalls)
    stall_cycles: float  # the worst level's: the array waits for the slowest memory
    level_stall_cycles: MappingABC[str, float]  # bandwidth stall per memory level (its worst port)
    onload_cycles: float
    offload_cycles: float
    drain_cycles: float
    spatial_utilisation: float  # ideal / temporal cycles
    utilisation: float  # ideal / latency cycles


@dataclass(frozen=True)
class CostTable:
    """Prices of a batch of mappings of one layer, one row per mapping.

    `elements`, `bits`, `words` and `access_pj` are (rows, operands, levels, directions) with `operands`,
    `levels` (all memories of the hardware, innermost first) and `directions` naming the axes;
    a level that does not hold an operand has zeros.
    """

    operands: tuple[str, ...]
    levels: tuple[str, ...]
    directions: tuple[Direction, ...]
    valid: np.ndarray
    malformed: MappingABC[int, tuple[str, ...]]  # rows whose mapping itself is wrong, and how
    overflows: tuple[Overflow, ...]
    elements: np.ndarray
    bits: np.ndarray
    words: np.ndarray
    access_pj: np.ndarray
    compute_pj: np.ndarray
    neuron_pj: np.ndarray
    offchip_bytes: np.ndarray  # (rows, operands)
    latency_cycles: np.ndarray
    ideal_cycles: float
    temporal_cycles: np.ndarray
    stall_cycles: np.ndarray
    level_stall_cycles: np.ndarray  # (rows, levels): bandwidth stall of each level's worst port
    onload_cycles: np.ndarray
    offload_cycles: np.ndarray
    drain_cycles: np.ndarray
    holds: np.ndarray  # (operands, levels): the level holds the operand

    def __len__(self) -> int:
        return len(self.valid)

    def reason(self, i: int) -> str:
        """Why row `i` is invalid ('' if it is valid)."""
        if i in self.malformed:
            return "; ".join(self.malformed[i])
        return "; ".join(o.reason(i) for o in self.overflows if o.over[i])

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(self.reason(i) if not ok else "" for i, ok in enumerate(self.valid))

    @property
    def memory_pj(self) -> np.ndarray:
        return self.access_pj.sum(axis=(1, 2, 3))

    @property
    def energy_pj(self) -> np.ndarray:
        return self.memory_pj + self.compute_pj + self.neuron_pj

    @property
    def spatial_utilisation(self) -> np.ndarray:
        return self.ideal_cycles / self.temporal_cycles

    @property
    def utilisation(self) -> np.ndarray:
        return self.ideal_cycles / self.latency_cycles

    def cost(self, i: int) -> Cost:
        """Row `i` as a `Cost`."""
        traffic = {
            op: MappingProxyType(
                {
                    lv: LevelTraffic(
                        elements=MappingProxyType(
                            dict(zip(self.directions, self.elements[i, o, l].tolist(), strict=True))
                        ),
                        bits=MappingProxyType(
                            dict(zip(self.directions, self.bits[i, o, l].tolist(), strict=True))
                        ),
                        words=MappingProxyType(
                            dict(zip(self.directions, self.words[i, o, l].tolist(), strict=True))
                        ),
                        energy_pj=float(self.access_pj[i, o, l].sum()),
                    )
                    for l, lv in enumerate(self.levels)
                    if self.holds[o, l]
                }
            )
            for o, op in enumerate(self.operands)
        }
        return Cost(
            valid=bool(self.valid[i]),
            reason=self.reason(i),
            energy_pj=float(self.energy_pj[i]),
            compute_pj=float(self.compute_pj[i]),
            neuron_pj=float(self.neuron_pj[i]),
            memory_pj=float(self.memory_pj[i]),
            traffic=MappingProxyType(traffic),
            offchip_bytes=MappingProxyType(
                dict(zip(self.operands, self.offchip_bytes[i].tolist(), strict=True))
            ),
            latency_cycles=float(self.latency_cycles[i]),
            ideal_cycles=float(self.ideal_cycles),
            temporal_cycles=float(self.temporal_cycles[i]),
            stall_cycles=float(self.stall_cycles[i]),
            level_stall_cycles=MappingProxyType(
                dict(zip(self.levels, self.level_stall_cycles[i].tolist(), strict=True))
            ),
            onload_cycles=float(self.onload_cycles[i]),
            offload_cycles=float(self.offload_cycles[i]),
            drain_cycles=float(self.drain_cycles[i]),
            spatial_utilisation=float(self.spatial_utilisation[i]),
            utilisation=float(self.utilisation[i]),
        )


def price(layer: Layer, hw: Hardware, mapping: Mapping) -> Cost:
    """The cost of `layer` on `hw` under `mapping` (a batch of one: equal to `price_batch`)."""
    return price_batch(layer, hw, [mapping]).cost(0)


def price_batch(layer: Layer, hw: Hardware, mappings: Sequence[Mapping]) -> CostTable:
    """Price many mappings of one conv or dense layer at once."""
    return price_encoded(layer, hw, encode(nest_of(layer, hw), mappings))


def price_encoded(layer: Layer, hw: Hardware, enc: Encoded) -> CostTable:
    """`price_batch` of mappings already encoded for the layer's nest (`stems.cost.encode`)."""
    nest = nest_of(layer, hw)
    traffic = {o.name: operand_traffic(nest, enc, o) for o in nest.operands}
    cycles = enc.cycles
    rows = enc.rows
    levels = tuple(lv.name for lv in hw.memories)
    elements, bits, words, pj, holds = _accesses(nest, traffic, rows, levels)
    malformed = np.zeros(rows, dtype=bool)
    malformed[list(enc.reasons)] = True
    overflows = _capacity(nest, traffic)
    fits = ~np.any([o.over for o in overflows], axis=0) if overflows else np.ones(rows, dtype=bool)
    top = levels.index(hw.offchip.name)
    down_up = [DIRECTIONS.index(Direction.TO_LOW), DIRECTIONS.index(Direction.FROM_LOW)]
    offchip = bits[:, :, top, down_up].sum(axis=2) / 8
    compute = hw.compute
    op_pj = compute.energy_per_op(layer.precision.I, layer.precision.W) * nest.ops
    if compute.skips_zero_inputs:
        op_pj *= layer.rates.I
    lat = latency(nest, traffic, cycles, enc.sp_int)
    columns = [
        elements,
        bits,
        words,
        pj,
        offchip,
        *(x.astype(float) for x in (cycles, *vars(lat).values())),
    ]
    if malformed.any():
        for x in columns:
            x[malformed] = np.nan
    elements, bits, words, pj, offchip, cycles, latency_cycles, stall, onload, offload, drain, level_stall = (
        columns
    )
    per_row = lambda x: np.where(malformed, np.nan, x)  # noqa: E731
    return CostTable(
        operands=nest.operand_names,
        levels=levels,
        directions=DIRECTIONS,
        valid=~malformed & fits,
        malformed=MappingProxyType({i: tuple(r) for i, r in enc.reasons.items()}),
        overflows=overflows,
        elements=elements,
        bits=bits,
        words=words,
        access_pj=pj,
        compute_pj=per_row(op_pj),
        neuron_pj=per_row(compute.neuron_update_pj * layer.neurons * layer.dims.T),
        offchip_bytes=offchip,
        latency_cycles=latency_cycles,
        ideal_cycles=float(-(-nest.ops // hw.array.n_pes)),
        temporal_cycles=cycles,
        stall_cycles=stall,
        level_stall_cycles=level_stall,
        onload_cycles=onload,
        offload_cycles=offload,
        drain_cycles=drain,
        holds=holds,
    )


def _accesses(
    nest: Nest, traffic: dict[str, OperandTraffic], rows: int, levels: tuple[str, ...]
) -> tuple[np.ndarray, ...]:
    """(rows, operands, levels, directions) elements, port-rounded bits, words and pJ, and which
    (operand, level) pairs exist. Every access is priced at once, stacked (a batch's fixed cost is
    its number of numpy calls)."""
    shape = (rows, len(nest.operands), len(levels), len(DIRECTIONS))
    elements, bits, words, pj = np.zeros(shape), np.zeros(shape), np.zeros(shape), np.zeros(shape)
    holds = np.zeros(shape[1:3], dtype=bool)
    rates = {"I": nest.layer.rates.I, "O": nest.layer.rates.O}
    # per access: (operand, level, direction), its move, port and pJ per bit; and the accesses of
    # levels that move only non-zero data, with the operand's (rate, bits)
    where, moves, ports, pj_bit, sparse = [], [], [], [], {}
    for o, spec in enumerate(nest.operands):
        for m, lv in enumerate(spec.levels):
            l = levels.index(lv.name)
            holds[o, l] = True
            for d, direction in enumerate(DIRECTIONS):
                move = traffic[spec.name].moves.get((m, direction))
                port = nest.port_of.get((spec.name, m, direction))
                if move is not None and port is not None:  # (none: the outermost level's beyond itself)
                    where.append((o, l, d))
                    moves.append(move)
                    ports.append(port)
                    pj_bit.append([lv.pj_per_bit(spec.name, direction)])
                    if lv.skips_zeros and spec.name in rates:
                        sparse[len(where) - 1] = (rates[spec.name], spec.bits)
    if not where:
        return elements, bits, words, pj, holds
    at = (slice(None), *np.array(where).T)
    amount, move_bits, count, instances = (
        np.array([getattr(mv, field) for mv in moves]) for field in ("amount", "bits", "count", "instances")
    )
    min_bits = np.array([[p.min_bits] for p in ports])
    elements[at] = (amount * count * instances).T
    rounded = min_bits * np.ceil(amount * move_bits / min_bits)
    for j, (rate, final_bits) in sparse.items():
        rounded[j] = _nonzero(moves[j], ports[j].min_bits, rate, final_bits, rounded[j])
    moved = rounded * count * instances
    bits[at] = moved.T
    words[at] = (moved / np.array([[p.bw_bits] for p in ports])).T
    pj[at] = (moved * np.array(pj_bit)).T
    return elements, bits, words, pj, holds


def _nonzero(move: Move, least: int, rate: float, final_bits: int, dense: np.ndarray) -> np.ndarray:
    """Bits per transfer at a level that moves only non-zero inputs and finished outputs: the non-zero
    share of a transfer, packed and rounded up to the minimum access; a transfer expecting less than
    one non-zero element happens only that fraction of the time, one element per access."""
    expected = move.amount * rate
    packed = least * np.ceil(expected * move.bits / least)
    single = expected * least * np.ceil(move.bits / least)
    return np.where(move.bits == final_bits, np.where(expected >= 1, packed, single), dense)


@dataclass(frozen=True)
class Overflow:
    """One memory level's capacity check over a batch: bits its tiles need per instance, by operand."""

    level: str
    size_bits: int
    double_buffered: bool
    parts: tuple[tuple[str, np.ndarray], ...]

    @cached_property
    def need(self) -> np.ndarray:
        return sum(b for _, b in self.parts)

    @cached_property
    def over(self) -> np.ndarray:
        return self.need > self.size_bits

    def reason(self, i: int) -> str:
        split = ", ".join(f"{op} {b[i]:.0f}" for op, b in self.parts)
        note = " (double-buffered)" if self.double_buffered else ""
        return (
            f"{self.level} overflows: tiles need {self.need[i]:.0f} bits ({split}) of {self.size_bits}{note}"
        )


def _capacity(nest: Nest, traffic: dict[str, OperandTraffic]) -> tuple[Overflow, ...]:
    """Per level, the tiles one instance holds: jointly if shared, doubled if double-buffered and not
    the operand's whole remaining share."""
    out = []
    for lv in nest.hw.memories:
        parts = []
        for t in traffic.values():
            for m, own in enumerate(t.spec.levels):
                if own.name == lv.name:
                    b = t.held_bits[m + 1]
                    if lv.double_buffered:
                        b = np.where(t.whole[m + 1], b, 2 * b)
                    parts.append((t.spec.name, b))
        if parts:
            out.append(Overflow(lv.name, lv.size_bits, lv.double_buffered, tuple(parts)))
    return tuple(out)
