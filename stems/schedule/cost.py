"""Analytic cost of a schedule: closed-form sums over its units (numpy), no simulation.

Off-chip traffic per operand (bits; b = bits per element, P = positions, tb = timesteps of the unit):

* W, read: a resident layer's weights once (at its first unit); a re-fetching layer's at every unit.
* V: a kept state is read at the layer's first unit and written at its last (``state_io: load_store``;
  nothing with ``none``); a spilled state is read and written per unit, P x channels x n_state x V bits
  (with ``none`` the first time batch reads nothing and the last writes nothing). Removed: 0.
* O, written: every unit of a layer that is a network output or has a consumer reading it through DRAM
  writes its region, P x tb x channels x O_final.
* I, read: every unit reading a DRAM input (the network input, or a producer over a ``dram`` edge)
  reads its receptive field minus what its stream window still holds from the previous unit of the same
  layer, time batch and row band (the overlap, limited to the window's width: the halo columns).

Summed, a column-tiled or layer-by-layer schedule reads each DRAM input once per consumer and timestep;
row bands re-read their row halo.

On-chip occupancy (per capacity pool, checked at every unit): resident weights and kept states from the
layer's first unit to its last; during each unit of a re-fetching layer, two output-channel slices of
its weights and its whole input tiles, or its whole weights, whichever holds less (`units.refetch_bits`;
either way every weight is read once per unit); stream windows (one column of a spilled state; one
output column of a layer with no on-chip reader; the receptive field of one output column of each DRAM
input) from the layer's first to its last unit in each time batch; and every
activation element read on chip from the unit that produces it to the last unit that reads it on chip
(a recomputed tile: to the last reader in the same step). A schedule whose occupancy exceeds a buffer
is infeasible: the report names the first unit and the largest tensors held there.

Energy = units' on-chip and compute energy (`UnitCostFn`) + DRAM bits x DRAM pJ/bit + the buffer writes
that receive DRAM reads and the buffer reads that feed DRAM writes. Latency = sum over units of
max(compute cycles, that unit's DRAM bits / DRAM port bandwidth): a unit's transfers overlap its own
compute (prefetch and write-back double-buffered; re-fetched weight slices arrive while the previous
slice computes, the first slice's fetch not charged apart), units do not overlap each other.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stems.hardware.spec import Direction, Hardware
from stems.schedule.bounds import compulsory_traffic
from stems.schedule.model import EdgeHome, ModelChange, Schedule, StateIO, StatePolicy, WeightPolicy
from stems.schedule.result import OPERANDS, Traffic, Violation
from stems.schedule.unitcost import OnChip, TileShape, UnitCost, UnitCostFn, default_unit_cost
from stems.schedule.units import Plan, Unit, build_plan, output_channels, refetch_bits
from stems.workload.model import Workload


@dataclass(frozen=True)
class ScheduleCost:
    """Everything a schedule costs on one hardware, with the compulsory traffic beside it."""

    schedule: str
    workload: str
    traffic: Traffic
    compulsory: Traffic
    peak_bits: dict[str, int]
    capacity_bits: dict[str, int]
    violation: Violation | None
    onchip_pj: float
    compute_pj: float
    offchip_pj: float
    latency_cycles: int
    clock_hz: float
    n_units: int
    model_changes: tuple[ModelChange, ...] = field(default=())
    buffer_bits: int = 0
    """Peak on-chip working set (activations, stream windows, re-fetched weights), summed over the
    pools: the on-chip memory beyond the stored tensors (resident weights and kept states)."""

    @property
    def feasible(self) -> bool:
        return self.violation is None

    @property
    def total_pj(self) -> float:
        return self.onchip_pj + self.compute_pj + self.offchip_pj

    @property
    def latency_s(self) -> float:
        return self.latency_cycles / self.clock_hz

    @property
    def retraining_required(self) -> bool:
        return bool(self.model_changes)

    @property
    def vs_bound(self) -> float:
        """Off-chip traffic over the compulsory traffic (1.0 = at the physical limit)."""
        return self.traffic.total_bits / max(self.compulsory.total_bits, 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schedule": self.schedule,
            "workload": self.workload,
            "feasible": self.feasible,
            "infeasible_reason": self.violation.message() if self.violation else None,
            "offchip": self.traffic.to_dict(),
            "compulsory": self.compulsory.to_dict(),
            "vs_bound": self.vs_bound,
            "peak_bits": dict(self.peak_bits),
            "capacity_bits": dict(self.capacity_bits),
            "energy_pj": {
                "onchip": self.onchip_pj,
                "compute": self.compute_pj,
                "offchip": self.offchip_pj,
                "total": self.total_pj,
            },
            "latency_cycles": self.latency_cycles,
            "latency_s": self.latency_s,
            "units": self.n_units,
            "retraining_required": self.retraining_required,
            "model_changes": [
                {"layer": m.layer, "state_bits_saved": m.state_bits_saved, "note": m.note}
                for m in self.model_changes
            ],
        }


# ----------------------------------------------------------------------------------------------------
# Decisions seen from one layer


def onchip_readers(plan: Plan, schedule: Schedule, producer: str) -> list[str]:
    return [
        c for c in plan.workload.successors(producer) if schedule.edge_home(producer, c) is EdgeHome.ONCHIP
    ]


def writes_dram(plan: Plan, schedule: Schedule, layer: str) -> bool:
    if layer in plan.recompute:
        return False
    succ = plan.workload.successors(layer)
    return not succ or any(schedule.edge_home(layer, c) is EdgeHome.DRAM for c in succ)


def dram_sources(plan: Plan, schedule: Schedule, layer: str) -> list[str]:
    return [s.name for s in plan.sources[layer] if schedule.edge_home(s.name, layer) is EdgeHome.DRAM]


# ----------------------------------------------------------------------------------------------------
# Per-unit arrays


@dataclass
class _Arrays:
    idx: dict[str, np.ndarray]  # unit indices per layer
    batch: np.ndarray
    tb: np.ndarray
    positions: np.ndarray
    rows: np.ndarray  # output rows per unit
    first_in_batch: dict[str, list[tuple[int, int]]]  # layer -> [(first, last)] per time batch


def _arrays(plan: Plan) -> _Arrays:
    key = "arrays"
    if key not in plan.cache:
        units = plan.units
        batch = np.fromiter((u.batch for u in units), np.int64, len(units))
        tb = np.fromiter((u.t1 - u.t0 for u in units), np.int64, len(units))
        positions = np.fromiter((u.positions for u in units), np.int64, len(units))
        rows = np.fromiter((u.rows[1] - u.rows[0] for u in units), np.int64, len(units))
        idx = {
            n: np.fromiter((u.index for u in us), np.int64, len(us)) for n, us in plan.units_by_layer.items()
        }
        spans: dict[str, list[tuple[int, int]]] = {}
        for n, us in plan.units_by_layer.items():
            per: dict[int, list[int]] = defaultdict(list)
            for u in us:
                per[u.batch].append(u.index)
            spans[n] = [(v[0], v[-1]) for _, v in sorted(per.items())]
        plan.cache[key] = _Arrays(idx, batch, tb, positions, rows, spans)
    return plan.cache[key]  # type: ignore[return-value]


def _read_arrays(plan: Plan, layer: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Per unit of `layer`: bits of `source` newly read from DRAM (window carry-over applied), and the
    read rows (for the window size)."""
    key = ("dramread", layer, source)
    if key not in plan.cache:
        us = plan.units_by_layer[layer]
        span = plan.read_span(layer, source)
        eb = plan.source(layer, source).element_bits
        new = np.zeros(len(us), np.int64)
        rows = np.zeros(len(us), np.int64)
        prev: tuple[Unit, tuple[int, int], tuple[int, int]] | None = None
        for k, u in enumerate(us):
            rd = next((r for r in u.reads if r.source == source), None)
            if rd is None:
                prev = None
                continue
            nr = rd.rows[1] - rd.rows[0]
            area = nr * (rd.cols[1] - rd.cols[0])
            carried = 0
            if prev is not None and prev[0].batch == u.batch and prev[0].rows == u.rows:
                pc = prev[2]
                lo = max(rd.cols[0], pc[0], pc[1] - span)
                hi = min(rd.cols[1], pc[1])
                carried = nr * max(0, hi - lo)
            new[k] = (area - carried) * eb * u.timesteps
            rows[k] = nr
            prev = (u, rd.rows, rd.cols)
        plan.cache[key] = (new, rows)
    return plan.cache[key]  # type: ignore[return-value]


def _paint_alloc(plan: Plan, producer: str) -> np.ndarray:
    key = ("alloc", producer)
    if key not in plan.cache:
        d = plan.layer(producer).dims
        a = np.full((plan.timesteps, d.OY, d.OX), -1, np.int32)
        for u in plan.units_by_layer[producer]:
            a[u.t0 : u.t1, u.rows[0] : u.rows[1], u.cols[0] : u.cols[1]] = u.index
        assert (a >= 0).all(), f"{producer}: units do not cover the output"
        plan.cache[key] = a
    return plan.cache[key]  # type: ignore[return-value]


def _paint_last(plan: Plan, producer: str, consumer: str) -> np.ndarray:
    key = ("last", producer, consumer)
    if key not in plan.cache:
        d = plan.layer(producer).dims
        a = np.full((plan.timesteps, d.OY, d.OX), -1, np.int32)
        for v in plan.units_by_layer[consumer]:
            for rd in v.reads:
                if rd.source == producer:
                    a[v.t0 : v.t1, rd.rows[0] : rd.rows[1], rd.cols[0] : rd.cols[1]] = v.index
        plan.cache[key] = a
    return plan.cache[key]  # type: ignore[return-value]


def _activation_delta(plan: Plan, producer: str, readers: tuple[str, ...]) -> np.ndarray:
    """Occupancy delta (length n + 1) of `producer`'s output read on chip by `readers`."""
    key = ("actdelta", producer, readers)
    if key not in plan.cache:
        n = len(plan.units)
        layer = plan.layer(producer)
        eb = output_channels(layer) * layer.precision.O_final
        if producer in plan.recompute:
            last_of: dict[tuple[int, tuple[int, int]], int] = {}
            for c in readers:
                for v in plan.units_by_layer[c]:
                    if any(r.source == producer for r in v.reads):
                        k = (v.batch, v.step)
                        last_of[k] = max(last_of.get(k, -1), v.index)
            delta = np.zeros(n + 1, np.int64)
            for u in plan.units_by_layer[producer]:
                bits = u.positions * u.timesteps * eb
                delta[u.index] += bits
                delta[max(u.index, last_of.get((u.batch, u.step), u.index)) + 1] -= bits
        else:
            alloc = _paint_alloc(plan, producer)
            last = alloc.copy()
            for c in readers:
                np.maximum(last, _paint_last(plan, producer, c), out=last)
            delta = np.bincount(alloc.ravel(), minlength=n + 1).astype(np.int64) * eb
            delta -= np.bincount(last.ravel() + 1, minlength=n + 1).astype(np.int64) * eb
        plan.cache[key] = delta
    return plan.cache[key]  # type: ignore[return-value]


def _window_bits(plan: Plan, schedule: Schedule, layer: str) -> dict[str, int]:
    """Stream windows of a layer (per time batch), by tensor class 'A' or 'V'."""
    ar = _arrays(plan)
    lay = plan.layer(layer)
    idx = ar.idx[layer]
    tb = int(ar.tb[idx[0]])
    maxrows = int(ar.rows[idx].max())
    out = {"A": 0, "V": 0}
    if lay.stateful and schedule.state_of(layer) is StatePolicy.SPILL:
        assert lay.neuron is not None
        out["V"] += maxrows * output_channels(lay) * lay.neuron.n_state * lay.precision.V
    if not onchip_readers(plan, schedule, layer) and layer not in plan.recompute:
        out["A"] += maxrows * output_channels(lay) * lay.precision.O_final * tb
    for s in dram_sources(plan, schedule, layer):
        _, rows = _read_arrays(plan, layer, s)
        out["A"] += int(rows.max()) * plan.read_span(layer, s) * plan.source(layer, s).element_bits * tb
    return out


def _beyond_windows(plan: Plan, layer: str) -> int:
    """Bits the input tiles of a layer's largest unit hold beyond its stream windows, over all inputs."""
    key = ("beyond", layer)
    if key not in plan.cache:
        us = plan.units_by_layer[layer]
        out = 0
        for src in plan.sources[layer]:
            reads = [r for u in us for r in u.reads if r.source == src.name]
            if reads:
                area = max((r.rows[1] - r.rows[0]) * (r.cols[1] - r.cols[0]) for r in reads)
                window = max(r.rows[1] - r.rows[0] for r in reads) * plan.read_span(layer, src.name)
                out += max(0, area - window) * src.element_bits * us[0].timesteps
        plan.cache[key] = out
    return plan.cache[key]  # type: ignore[return-value]


def occupancy(
    plan: Plan, schedule: Schedule, onchip: OnChip, *, stored: bool = True
) -> dict[str, np.ndarray]:
    """On-chip bits held at each unit, per capacity pool; `stored=False` leaves out resident weights and
    kept states (the working set: `ScheduleCost.buffer_bits`)."""
    n = len(plan.units)
    ar = _arrays(plan)
    deltas: dict[str, np.ndarray] = {}

    def delta(cls_: str) -> np.ndarray:
        pool = onchip.pool(cls_)
        if pool not in deltas:
            deltas[pool] = np.zeros(n + 1, np.int64)
        return deltas[pool]

    for name in plan.order:
        lay = plan.layer(name)
        idx = ar.idx[name]
        first, last = int(idx[0]), int(idx[-1])
        if lay.weights:
            dw = delta("W")
            if schedule.weights_of(name) is not WeightPolicy.RESIDENT:
                wb, ab = refetch_bits(lay, _beyond_windows(plan, name))
                dw[idx] += wb
                dw[idx + 1] -= wb
                delta("A")[idx] += ab
                delta("A")[idx + 1] -= ab
            elif stored:
                w = lay.weights * lay.precision.W
                dw[first] += w
                dw[last + 1] -= w
        if stored and lay.stateful and schedule.state_of(name) is StatePolicy.KEEP:
            dv = delta("V")
            dv[first] += lay.state_bits
            dv[last + 1] -= lay.state_bits
        win = _window_bits(plan, schedule, name)
        for cls_, bits in win.items():
            if bits:
                d = delta(cls_)
                for a, b in ar.first_in_batch[name]:
                    d[a] += bits
                    d[b + 1] -= bits
        readers = tuple(onchip_readers(plan, schedule, name))
        if readers:
            delta("A")[:] += _activation_delta(plan, name, readers)
    for c in ("A", "W", "V"):
        delta(c)
    return {pool: np.cumsum(d[:n]) for pool, d in deltas.items()}


def first_violation(plan: Plan, occ: dict[str, np.ndarray], caps: dict[str, int]) -> tuple[int, str] | None:
    best: tuple[int, str] | None = None
    for pool, arr in occ.items():
        over = np.flatnonzero(arr > caps.get(pool, 0))
        if over.size and (best is None or over[0] < best[0]):
            best = (int(over[0]), pool)
    return best


def held_at(plan: Plan, schedule: Schedule, onchip: OnChip, unit: int, pool: str) -> list[tuple[str, int]]:
    """What a pool holds at one unit, by tensor (slow; for reports)."""
    ar = _arrays(plan)
    items: dict[str, int] = defaultdict(int)
    for name in plan.order:
        lay = plan.layer(name)
        idx = ar.idx[name]
        first, last = int(idx[0]), int(idx[-1])
        if lay.weights:
            whole = lay.weights * lay.precision.W
            if schedule.weights_of(name) is WeightPolicy.RESIDENT:
                if onchip.pool("W") == pool and first <= unit <= last:
                    items[f"weights of {name}"] += whole
            elif unit in set(idx.tolist()):
                wb, ab = refetch_bits(lay, _beyond_windows(plan, name))
                if onchip.pool("W") == pool:
                    items[f"weight slices of {name}" if wb < whole else f"weights of {name}"] += wb
                if onchip.pool("A") == pool and ab:
                    items[f"input tiles of {name}"] += ab
        kept = lay.stateful and schedule.state_of(name) is StatePolicy.KEEP
        if kept and onchip.pool("V") == pool and first <= unit <= last:
            items[f"state of {name}"] += lay.state_bits
        win = _window_bits(plan, schedule, name)
        for cls_, bits in win.items():
            if bits and onchip.pool(cls_) == pool and any(a <= unit <= b for a, b in ar.first_in_batch[name]):
                items[f"stream windows of {name}"] += bits
        readers = tuple(onchip_readers(plan, schedule, name))
        if readers and onchip.pool("A") == pool:
            held = int(np.cumsum(_activation_delta(plan, name, readers))[unit])
            if held:
                items[f"output of {name}"] += held
    return sorted(items.items(), key=lambda kv: -kv[1])


# ----------------------------------------------------------------------------------------------------
# Traffic, energy, latency


def unit_costs(plan: Plan, hw: Hardware, unit_cost: UnitCostFn) -> list[UnitCost]:
    cache: dict[tuple[str, int, int, int, int], UnitCost] = {}
    out = []
    for u in plan.units:
        in_bits = sum(
            (r.rows[1] - r.rows[0]) * (r.cols[1] - r.cols[0]) * plan.source(u.layer, r.source).element_bits
            for r in u.reads
        )
        key = (u.layer, u.rows[1] - u.rows[0], u.cols[1] - u.cols[0], u.timesteps, in_bits)
        if key not in cache:
            cache[key] = unit_cost(plan.layer(u.layer), TileShape(key[1], key[2], in_bits), u.timesteps, hw)
        out.append(cache[key])
    return out


def unit_traffic(plan: Plan, schedule: Schedule) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per unit DRAM bits read and written, per operand."""
    n = len(plan.units)
    ar = _arrays(plan)
    reads = {op: np.zeros(n, np.int64) for op in OPERANDS}
    writes = {op: np.zeros(n, np.int64) for op in OPERANDS}
    none = schedule.state_io is StateIO.NONE
    for name in plan.order:
        lay = plan.layer(name)
        idx = ar.idx[name]
        first, last = int(idx[0]), int(idx[-1])
        if lay.weights:
            w = lay.weights * lay.precision.W
            if schedule.weights_of(name) is WeightPolicy.RESIDENT:
                reads["W"][first] += w
            else:
                reads["W"][idx] += w
        if lay.stateful:
            assert lay.neuron is not None
            if schedule.state_of(name) is StatePolicy.KEEP:
                if not none:
                    reads["V"][first] += lay.state_bits
                    writes["V"][last] += lay.state_bits
            else:
                per = ar.positions[idx] * output_channels(lay) * lay.neuron.n_state * lay.precision.V
                b = ar.batch[idx]
                n_tb = plan.timesteps // int(ar.tb[idx[0]])
                reads["V"][idx] += np.where(none & (b == 0), 0, per)
                writes["V"][idx] += np.where(none & (b == n_tb - 1), 0, per)
        if writes_dram(plan, schedule, name):
            writes["O"][idx] += ar.positions[idx] * ar.tb[idx] * output_channels(lay) * lay.precision.O_final
        for s in dram_sources(plan, schedule, name):
            new, _ = _read_arrays(plan, name, s)
            reads["I"][idx] += new
    return reads, writes


def _port_cycles(hw: Hardware, reads: dict[str, np.ndarray], writes: dict[str, np.ndarray]) -> np.ndarray:
    dram = hw.offchip
    per_port: dict[str, np.ndarray] = {}
    bw: dict[str, int] = {}
    for op in OPERANDS:
        for arr, direction in ((reads[op], Direction.TO_LOW), (writes[op], Direction.FROM_LOW)):
            if not arr.any():
                continue
            port = dram.port(op, direction)
            bw[port.name] = port.bw_bits
            per_port[port.name] = per_port.get(port.name, 0) + arr
    n = len(next(iter(reads.values())))
    cycles = np.zeros(n, np.int64)
    for name, bits in per_port.items():
        cycles = np.maximum(cycles, -(-bits // bw[name]))
    return cycles


def evaluate(
    workload: Workload,
    schedule: Schedule,
    hw: Hardware,
    *,
    unit_cost: UnitCostFn = default_unit_cost,
    buffer: str | None = None,
    plan: Plan | None = None,
) -> ScheduleCost:
    """Price `schedule` on `hw`. Infeasible schedules still get every number, plus the violation."""
    if plan is None:
        plan = build_plan(workload, schedule)
    elif not plan.compatible(schedule):
        raise ValueError("the plan was built for a schedule with other segments, removals or recompute set")
    onchip = OnChip.of(hw, buffer)
    caps = onchip.capacities()
    occ = occupancy(plan, schedule, onchip)
    viol = None
    hit = first_violation(plan, occ, caps)
    if hit is not None:
        u, pool = hit
        viol = Violation(
            u,
            plan.units[u].label(),
            pool,
            int(occ[pool][u]),
            caps.get(pool, 0),
            tuple(held_at(plan, schedule, onchip, u, pool)),
        )
    reads, writes = unit_traffic(plan, schedule)
    traffic = Traffic(
        {op: int(a.sum()) for op, a in reads.items()}, {op: int(a.sum()) for op, a in writes.items()}
    )
    costs = unit_costs(plan, hw, unit_cost)
    offchip_pj = traffic.offchip_pj(hw)
    fill = sum(traffic.reads[op] * onchip.pj(op, Direction.FROM_HIGH) for op in OPERANDS) + sum(
        traffic.writes[op] * onchip.pj(op, Direction.TO_HIGH) for op in OPERANDS
    )
    cycles = np.fromiter((c.cycles for c in costs), np.int64, len(costs))
    latency = int(np.maximum(cycles, _port_cycles(hw, reads, writes)).sum())
    return ScheduleCost(
        schedule=schedule.name,
        workload=workload.name,
        traffic=traffic,
        compulsory=compulsory_traffic(plan.workload, schedule.state_io),
        peak_bits={p: int(a.max()) for p, a in occ.items()},
        capacity_bits=caps,
        violation=viol,
        onchip_pj=math.fsum(c.energy_pj_onchip for c in costs) + fill,
        compute_pj=math.fsum(c.compute_pj for c in costs),
        offchip_pj=offchip_pj,
        latency_cycles=latency,
        clock_hz=hw.clock_hz,
        n_units=len(plan.units),
        model_changes=schedule.model_changes(workload),
        buffer_bits=sum(int(a.max()) for a in occupancy(plan, schedule, onchip, stored=False).values()),
    )
