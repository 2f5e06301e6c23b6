"""Physical limits: the compulsory off-chip traffic of a network and the smallest buffer each layer needs.

Compulsory traffic (a lower bound on every schedule's off-chip bits, at any buffer size): every weight
read once, the network input read once (the positions the first layers' receptive fields cover), every
network output written once, and - with ``state_io: load_store``, the paper's model - every state word of
a stateful layer read once and written once (``state_io: none``: zero). Activations between layers and
re-fetches are never compulsory. A schedule that removes state is bounded on its effective workload.

Smallest footprint: under the schedule model the least a layer can occupy on chip is its unit with a
1 x 1 output tile, one timestep, weights re-fetched, state spilled and every input and output streamed
through DRAM: two output-channel slices of the weights (`units.refetch_bits`; a 1 x 1 tile's input
tiles are its stream windows), one state column (one word per channel), the input stream windows and
one output column. If that exceeds a buffer, no schedule of the network fits on the hardware.
"""

from __future__ import annotations

from dataclasses import dataclass

from stems.hardware.spec import Hardware
from stems.schedule.model import INPUT, StateIO
from stems.schedule.result import OPERANDS, Traffic
from stems.schedule.unitcost import OnChip
from stems.schedule.units import output_channels, read_range, refetch_bits, sources_of
from stems.workload.model import Workload


def compulsory_traffic(workload: Workload, state_io: StateIO = StateIO.LOAD_STORE) -> Traffic:
    reads = dict.fromkeys(OPERANDS, 0)
    writes = dict.fromkeys(OPERANDS, 0)
    t = workload.timesteps
    for layer in workload:
        reads["W"] += layer.weights * layer.precision.W
        if state_io is StateIO.LOAD_STORE:
            reads["V"] += layer.state_bits
            writes["V"] += layer.state_bits
        if not workload.successors(layer.name):
            writes["O"] += t * layer.outputs_per_step * layer.precision.O_final
        for src in sources_of(workload, layer):
            if src.name != INPUT:
                continue
            d = layer.dims
            r = read_range(layer, src, 0, 0, d.OY)
            c = read_range(layer, src, 1, 0, d.OX)
            reads["I"] += t * (r[1] - r[0]) * (c[1] - c[0]) * src.element_bits
    return Traffic(reads, writes)


@dataclass(frozen=True)
class Footprint:
    """Least on-chip bits one layer needs, per capacity pool (level name)."""

    layer: str
    bits: dict[str, int]


def smallest_footprints(workload: Workload, hw: Hardware, buffer: str | None = None) -> list[Footprint]:
    onchip = OnChip.of(hw, buffer)
    out = []
    for layer in workload:
        need: dict[str, int] = {}

        def add(pool: str, bits: int, need: dict[str, int] = need) -> None:
            need[pool] = need.get(pool, 0) + bits

        d = layer.dims
        add(onchip.pool("W"), refetch_bits(layer, 0)[0])
        if layer.stateful:
            assert layer.neuron is not None
            add(onchip.pool("V"), output_channels(layer) * layer.neuron.n_state * layer.precision.V)
        add(onchip.pool("A"), output_channels(layer) * layer.precision.O_final)
        for src in sources_of(workload, layer):
            rows = max(
                (b - a for a, b in (read_range(layer, src, 0, y, y + 1) for y in range(d.OY))), default=0
            )
            span = max(
                (b - a for a, b in (read_range(layer, src, 1, x, x + 1) for x in range(d.OX))), default=0
            )
            add(onchip.pool("A"), rows * span * src.element_bits)
        out.append(Footprint(layer.name, {k: v for k, v in need.items() if v}))
    return out


@dataclass(frozen=True)
class LowerBound:
    """Compulsory traffic, its DRAM energy, and whether every layer's smallest unit fits the buffers."""

    traffic: Traffic
    offchip_pj: float
    capacities: dict[str, int]
    too_big: tuple[tuple[str, str, int, int], ...]  # (layer, pool, needed bits, capacity bits)

    @property
    def fits(self) -> bool:
        return not self.too_big

    def report(self) -> str:
        if self.fits:
            return "every layer's smallest unit fits on chip"
        return "; ".join(
            f"layer {n} needs at least {need / 8192:.1f} KiB in {pool} (1x1 tile, one timestep, everything "
            f"streamed) but {pool} holds {cap / 8192:.1f} KiB"
            for n, pool, need, cap in self.too_big
        )


def lower_bound(
    workload: Workload, hw: Hardware, *, buffer: str | None = None, state_io: StateIO = StateIO.LOAD_STORE
) -> LowerBound:
    """The compulsory traffic of `workload` on `hw` (its buffer sizes decide only `fits`)."""
    traffic = compulsory_traffic(workload, state_io)
    pj = traffic.offchip_pj(hw)
    caps = OnChip.of(hw, buffer).capacities()
    too_big = []
    for fp in smallest_footprints(workload, hw, buffer):
        for pool, bits in fp.bits.items():
            if bits > caps.get(pool, 0):
                too_big.append((fp.layer, pool, bits, caps.get(pool, 0)))
    return LowerBound(traffic, pj, caps, tuple(too_big))
