"""The numbers every result file reports for one design point, under one set of names.

The same names are the columns of `points.csv`/`pareto.csv`, the keys of a mapping file's `metrics`, and
the keys of `summary.json`'s `best`, `baselines` and `lower_bound` entries. Units are in the names:
pJ, cycles, seconds, bytes, bits.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from stems.hardware.spec import Direction, Hardware
from stems.schedule.cost import ScheduleCost, unit_costs, unit_traffic
from stems.schedule.model import Schedule, StatePolicy
from stems.schedule.result import OPERANDS, Traffic
from stems.schedule.unitcost import OnChip, UnitCost, UnitCostFn, default_unit_cost
from stems.schedule.units import Plan, build_plan
from stems.workload.knobs import network_changes
from stems.workload.model import Workload

OBJECTIVES = ("energy_pj", "latency_cycles", "offchip_bytes", "onchip_peak_bytes")
"""What a search can minimise (the names the schedule search uses)."""

METRICS = (
    "energy_pj",
    "latency_cycles",
    "offchip_bytes",
    "offchip_bytes_W",
    "offchip_bytes_I",
    "offchip_bytes_O",
    "offchip_bytes_V",
    "onchip_peak_bytes",
    "state_bits",
    "state_kept_bits",
    "state_removed_bits",
    "footprint_weights_bytes",
    "footprint_states_bytes",
    "footprint_params_bytes",
    "footprint_buffers_bytes",
    "energy_onchip_pj",
    "energy_compute_pj",
    "energy_offchip_pj",
    "latency_s",
    "vs_bound",
    "retraining_required",
    "feasible",
)
"""Per design point, in this order (see `METRIC_DOCS`)."""

METRIC_DOCS = {
    "energy_pj": "energy of one inference (all timesteps): on-chip + compute + off-chip, pJ",
    "latency_cycles": "cycles of one inference: per unit max(compute, DRAM transfer), units in sequence",
    "offchip_bytes": "bytes crossing the chip boundary (DRAM reads + writes, all operands)",
    "offchip_bytes_W": "off-chip bytes of weights (read)",
    "offchip_bytes_I": "off-chip bytes of inputs: the network input and activations streamed back (read)",
    "offchip_bytes_O": "off-chip bytes of outputs: activations and network outputs written",
    "offchip_bytes_V": "off-chip bytes of neuron state (read + written)",
    "onchip_peak_bytes": "peak on-chip occupancy, summed over the capacity pools (on stems-edge: the global buffer)",
    "state_bits": "neuron state bits of the network as run (state removed by the schedule excluded)",
    "state_kept_bits": "state bits kept on chip for a layer's whole span (state policy `keep`)",
    "state_removed_bits": "state bits the schedule removes (a model change: retraining required)",
    "footprint_weights_bytes": "memory footprint of the weights at their bit widths (wherever they live)",
    "footprint_states_bytes": "memory footprint of the neuron states kept across timesteps: state_bits / 8",
    "footprint_params_bytes": "memory footprint of the neuron parameters (threshold, leaks) at param_bits, "
    "per layer or per neuron (param_scope)",
    "footprint_buffers_bytes": "on-chip working memory beyond the stored tensors: the peak, over units, of "
    "what the buffers hold besides resident weights and kept states (activations, stream windows, "
    "re-fetched weights), summed over the capacity pools; the four footprints add up to the memory the "
    "design needs",
    "energy_onchip_pj": "on-chip memory energy: unit accesses plus buffer fills and drains of DRAM transfers, pJ",
    "energy_compute_pj": "PE array, neuron, pooling and element-wise energy, pJ",
    "energy_offchip_pj": "DRAM energy, pJ",
    "latency_s": "latency_cycles / clock",
    "vs_bound": "offchip_bytes / the compulsory off-chip bytes of the network (1.0 = at the physical limit)",
    "retraining_required": "the schedule changes the network (removes state)",
    "feasible": "every unit fits the on-chip buffers",
}


NETWORK_COLUMNS = ("retraining", "network_changes", "accuracy", "accuracy_known")
"""Per design point beside the metrics: `retraining` (`required` when the network differs from the model
as loaded: T, a bit width, the neuron model or its parameters, a stateful flag, or state the schedule
removes; else `none`), `network_changes` (what moved, short), and the measured `accuracy` of its network
(`stems.results.accuracy`; empty and `accuracy_known` False when unknown)."""


def network_columns(base: Workload, workload: Workload, cost: ScheduleCost) -> dict[str, str]:
    """`retraining` and `network_changes` of a point whose network is `workload`, against `base`."""
    changes = network_changes(base, workload, removed=len(cost.model_changes))
    return {"retraining": "required" if changes else "none", "network_changes": "; ".join(changes)}


def onchip_peak_bytes(cost: ScheduleCost) -> float:
    return sum(cost.peak_bits.values()) / 8


def traffic_bytes(traffic: Traffic) -> dict[str, float]:
    """offchip_bytes and offchip_bytes_<operand> of a traffic record."""
    out = {"offchip_bytes": traffic.total_bytes}
    out.update({f"offchip_bytes_{op}": traffic.bits(op) / 8 for op in OPERANDS})
    return out


def metrics_of(workload: Workload, schedule: Schedule, cost: ScheduleCost) -> dict[str, Any]:
    """The `METRICS` of one priced schedule, as plain Python numbers."""
    removed = sum(m.state_bits_saved for m in cost.model_changes)
    total_state = sum(layer.state_bits for layer in workload)
    kept = sum(
        layer.state_bits
        for layer in workload
        if layer.stateful and schedule.state_of(layer.name) is StatePolicy.KEEP
    )
    out: dict[str, Any] = {
        "energy_pj": float(cost.total_pj),
        "latency_cycles": int(cost.latency_cycles),
        **traffic_bytes(cost.traffic),
        "onchip_peak_bytes": float(onchip_peak_bytes(cost)),
        "state_bits": int(total_state - removed),
        "state_kept_bits": int(kept),
        "state_removed_bits": int(removed),
        "footprint_weights_bytes": sum(x.weights * x.precision.W for x in workload) / 8,
        "footprint_states_bytes": (total_state - removed) / 8,
        "footprint_params_bytes": sum(x.param_bits for x in workload) / 8,
        "footprint_buffers_bytes": cost.buffer_bits / 8,
        "energy_onchip_pj": float(cost.onchip_pj),
        "energy_compute_pj": float(cost.compute_pj),
        "energy_offchip_pj": float(cost.offchip_pj),
        "latency_s": float(cost.latency_s),
        "vs_bound": float(cost.vs_bound),
        "retraining_required": bool(cost.retraining_required),
        "feasible": bool(cost.feasible),
    }
    return {k: out[k] for k in METRICS}


def schedule_summary(schedule: Schedule, workload: Workload) -> str:
    """One short line: each segment's mode and layer count, then the residency decisions that differ
    from the defaults, e.g. ``TB-F(1c) x12 | TB-LBL x18; V spill 4/16; W refetch 2; edges dram 3``."""
    t = workload.timesteps
    parts = [f"{s.label(t)} x{len(s.layers)}" for s in schedule.segments]
    text = " | ".join(parts)
    stateful = [x.name for x in workload if x.stateful]
    extra = []
    spill = sum(schedule.state_of(n) is StatePolicy.SPILL for n in stateful)
    remove = sum(schedule.state_of(n) is StatePolicy.REMOVE for n in stateful)
    if stateful:
        kept = len(stateful) - spill - remove
        state = f"V keep {kept}/{len(stateful)}"
        if spill:
            state += f" spill {spill}"
        if remove:
            state += f" remove {remove}"
        extra.append(state)
    refetch = sum(str(v) == "refetch" for v in schedule.weights.values())
    if refetch:
        extra.append(f"W refetch {refetch}")
    dram = sum(str(v) == "dram" for v in schedule.edges.values())
    if dram:
        extra.append(f"edges dram {dram}/{len(workload.edges)}")
    if str(schedule.state_io) != "load_store":
        extra.append(f"state_io {schedule.state_io}")
    return "; ".join([text, *extra])


def _pj(level: Any, operand: str, direction: Direction) -> float:
    try:
        return level.pj_per_bit(operand, direction)
    except KeyError:
        return 0.0


@dataclass(frozen=True)
class _Priced:
    """A schedule unrolled once: its plan, per-unit costs and per-unit DRAM bits (read, written)."""

    plan: Plan
    costs: list[UnitCost]
    reads: dict[str, np.ndarray]
    writes: dict[str, np.ndarray]

    @classmethod
    def of(cls, workload: Workload, schedule: Schedule, hw: Hardware, unit_cost: UnitCostFn) -> _Priced:
        plan = build_plan(workload, schedule)
        reads, writes = unit_traffic(plan, schedule)
        return cls(plan, unit_costs(plan, hw, unit_cost), reads, writes)


@dataclass(frozen=True)
class PointDetails:
    """Where a design point's energy goes: per layer and per (memory level, operand)."""

    layers: pd.DataFrame
    breakdown: pd.DataFrame


def point_details(
    workload: Workload,
    schedule: Schedule,
    cost: ScheduleCost,
    hw: Hardware,
    *,
    unit_cost: UnitCostFn = default_unit_cost,
    buffer: str | None = None,
) -> PointDetails:
    """`layer_energy` and `energy_breakdown` of one point, unrolling the schedule once."""
    priced = _Priced.of(workload, schedule, hw, unit_cost)
    return PointDetails(
        layer_energy(workload, schedule, hw, buffer=buffer, priced=priced),
        energy_breakdown(workload, schedule, cost, hw, buffer=buffer, priced=priced),
    )


def layer_energy(
    workload: Workload,
    schedule: Schedule,
    hw: Hardware,
    *,
    unit_cost: UnitCostFn = default_unit_cost,
    buffer: str | None = None,
    priced: _Priced | None = None,
) -> pd.DataFrame:
    """Per layer (network order): energy split into compute, on-chip and off-chip pJ, and the off-chip
    bytes the layer's units move. The columns sum to the schedule's totals (`stems.schedule.evaluate`)."""
    p = priced or _Priced.of(workload, schedule, hw, unit_cost)
    onchip = OnChip.of(hw, buffer)
    dram = hw.offchip
    n = len(p.plan.units)
    off = np.zeros(n)
    fill = np.zeros(n)
    bits = np.zeros(n, np.int64)
    for op in OPERANDS:
        r, w = p.reads[op], p.writes[op]
        off += r * _pj(dram, op, Direction.TO_LOW) + w * _pj(dram, op, Direction.FROM_LOW)
        fill += r * onchip.pj(op, Direction.FROM_HIGH) + w * onchip.pj(op, Direction.TO_HIGH)
        bits += r + w
    acc: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for u, c in zip(p.plan.units, p.costs, strict=True):
        a = acc[u.layer]
        a["compute_pj"] += c.compute_pj
        a["onchip_pj"] += c.energy_pj_onchip + float(fill[u.index])
        a["offchip_pj"] += float(off[u.index])
        a["offchip_bytes"] += int(bits[u.index]) / 8
    rows = []
    for layer in workload:
        a = acc.get(layer.name, {})
        compute, on, offc = a.get("compute_pj", 0.0), a.get("onchip_pj", 0.0), a.get("offchip_pj", 0.0)
        rows.append(
            {
                "layer": layer.name,
                "block": layer.block,
                "op": str(layer.op),
                "energy_pj": compute + on + offc,
                "energy_compute_pj": compute,
                "energy_onchip_pj": on,
                "energy_offchip_pj": offc,
                "offchip_bytes": a.get("offchip_bytes", 0.0),
            }
        )
    return pd.DataFrame(rows)


OFFCHIP, FILLS, ONCHIP, COMPUTE = "off-chip", "fills and drains", "on-chip accesses", "compute"
"""The `kind` of a breakdown row: DRAM transfers, the buffer side of them, the units' own on-chip accesses,
and the PE array's work."""
UNIT_ACCESSES = "on-chip (unit accesses)"
"""Level name for the units' own on-chip energy when the unit cost does not split it by level and operand."""
PE_ARRAY = "PE array"


def energy_breakdown(
    workload: Workload,
    schedule: Schedule,
    cost: ScheduleCost,
    hw: Hardware,
    *,
    unit_cost: UnitCostFn = default_unit_cost,
    buffer: str | None = None,
    priced: _Priced | None = None,
) -> pd.DataFrame:
    """Energy per (memory level, kind, operand), rows summing to `cost.total_pj`:

    * the off-chip level, per operand: DRAM reads and writes;
    * each operand's on-chip buffer, per operand: the fills of DRAM reads and the drains of DRAM writes;
    * the units' own on-chip accesses: per (level, operand) when the unit cost reports a split
      (a `UnitCost.onchip_pj_by` mapping {(level, operand): pJ}), else one row (`UNIT_ACCESSES`,
      operand `all`);
    * the PE array (operand `compute`): operations, neuron updates, pooling and element-wise ops.
    """
    dram = hw.offchip
    onchip = OnChip.of(hw, buffer)
    t = cost.traffic
    rows: list[tuple[str, str, str, float]] = []
    for op in OPERANDS:
        pj = t.reads[op] * _pj(dram, op, Direction.TO_LOW) + t.writes[op] * _pj(dram, op, Direction.FROM_LOW)
        rows.append((dram.name, OFFCHIP, op, pj))
    fill_total = 0.0
    for op in OPERANDS:
        level = onchip.levels[op]
        pj = t.reads[op] * onchip.pj(op, Direction.FROM_HIGH) + t.writes[op] * onchip.pj(
            op, Direction.TO_HIGH
        )
        fill_total += pj
        if level is not None:
            rows.append((level.name, FILLS, op, pj))
    units_pj = cost.onchip_pj - fill_total
    p = priced or _Priced.of(workload, schedule, hw, unit_cost)
    split = _unit_split(p.costs)
    if split:
        rows += [(level, ONCHIP, op, pj) for (level, op), pj in split.items()]
        rest = units_pj - math.fsum(split.values())
        if abs(rest) > 1e-9 * max(abs(units_pj), 1.0):
            rows.append((UNIT_ACCESSES, ONCHIP, "all", rest))
    else:
        rows.append((UNIT_ACCESSES, ONCHIP, "all", units_pj))
    rows.append((PE_ARRAY, COMPUTE, "compute", cost.compute_pj))
    df = pd.DataFrame(rows, columns=["level", "kind", "operand", "energy_pj"])
    return df.groupby(["level", "kind", "operand"], sort=False, as_index=False)["energy_pj"].sum()


def _unit_split(costs: list[UnitCost]) -> dict[tuple[str, str], float]:
    """Per (level, operand) on-chip pJ of the units, if the unit cost reports it (else empty)."""
    out: dict[tuple[str, str], float] = defaultdict(float)
    for c in costs:
        by = getattr(c, "onchip_pj_by", None)
        if by is None:
            return {}
        for (level, op), pj in dict(by).items():
            out[(str(level), str(op))] += float(pj)
    return dict(out)
