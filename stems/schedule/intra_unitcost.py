"""A unit's cost inside the chip from the intra-layer search: the least-energy mapping of the unit's own
loop nest (its tile of output positions, its time batch) under the buffer the schedule budgets.

The schedule prices what crosses the chip boundary (DRAM traffic, the buffer's fills and drains); this
prices the rest as the unit's intra-layer mapping needs it: compute, neuron updates, every access of the
levels below the buffer, and the buffer's own reads to and writes from the levels below (an input tile
read twice from the buffer because the PEs' local memories cannot hold it counts twice here, where
`default_unit_cost` assumes one read per element). Cycles are the mapping's temporal iterations plus the
worst on-chip bandwidth stall (off-chip stalls are the schedule's). Pools, adds and views keep the
default price: the intra-layer search maps conv and dense layers only.

The unit's sub-layer has the unit's T, OY and OX and no padding (the tile reads its halo'd input); its
mapping is searched with the whole hardware, so operands enter from DRAM: once each when the unit fits
the buffer, as the schedule guarantees for what it keeps there, and that entry is not counted here.
"""

from __future__ import annotations

import math
from dataclasses import replace

from stems.errors import StemsInputError
from stems.hardware.spec import Direction, Hardware
from stems.schedule.unitcost import OnChip, TileShape, UnitCost, default_unit_cost
from stems.search.intra import map_layer
from stems.workload.model import Layer, Op, Window

BUFFER_SIDE = (Direction.TO_LOW, Direction.FROM_LOW)
"""The buffer's accesses a unit makes itself: reads to the levels below, writes coming back from them."""


def unit_layer(layer: Layer, tile: TileShape, time_batch: int) -> Layer:
    """The layer restricted to one unit: `time_batch` timesteps of a `tile.rows` x `tile.cols` region."""
    dims = replace(layer.dims, T=time_batch, OY=tile.rows, OX=tile.cols)
    w = layer.window
    return replace(layer, dims=dims, window=Window(stride=w.stride, dilation=w.dilation))


def intra_unit_cost(layer: Layer, tile: TileShape, time_batch: int, hw: Hardware) -> UnitCost:
    """The unit cost of a conv or dense unit from its least-energy intra-layer mapping (see the module)."""
    if layer.op not in (Op.CONV, Op.DENSE):
        return default_unit_cost(layer, tile, time_batch, hw)
    found = map_layer(unit_layer(layer, tile, time_batch), hw)
    if found.cost is None:
        raise StemsInputError(f"no intra-layer mapping of a unit fits: {found.reason}", where=layer.name)
    cost = found.cost
    buffers = OnChip.of(hw).levels
    offchip = hw.offchip.name
    onchip_pj = 0.0
    for operand, per_level in cost.traffic.items():
        buffer = buffers.get(operand)
        for level, t in per_level.items():
            if level == offchip:
                continue
            if buffer is not None and level == buffer.name:
                onchip_pj += sum(
                    t.bits[d] * buffer.pj_per_bit(operand, d) for d in BUFFER_SIDE if t.bits.get(d)
                )
            else:
                onchip_pj += t.energy_pj
    stall = max((s for name, s in cost.level_stall_cycles.items() if name != offchip), default=0.0)
    cycles = math.ceil(cost.temporal_cycles + stall)
    return UnitCost(onchip_pj, cost.compute_pj + cost.neuron_pj, cycles)
