"""Replay oracle: execute a schedule unit by unit against an explicit on-chip buffer and count every bit.

Deliberately simple and independent of `stems.schedule.cost` (it shares only the unit sequence and the
result containers): the buffer holds named allocations (weights, states, stream windows, recomputed
tiles) and, per producing layer, a presence mask over (timestep, row, column) of the activation elements
on chip; reference counts, taken by a first pass over the units, say when an element's last on-chip
reader has run. Each unit allocates what it needs (a re-fetching layer: two output-channel slices of
its weights and its whole input tiles, or all its weights, whichever is less), checks that every element
it reads is really there (on chip, or already written to DRAM), produces its output, checks capacity,
writes back and frees.
A missing element raises `ReplayError` (a schedule the units cannot execute: a bug, never a cost).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from stems.hardware.spec import Direction, Hardware
from stems.schedule.model import INPUT, EdgeHome, Schedule, StateIO, StatePolicy, WeightPolicy
from stems.schedule.result import OPERANDS, Traffic, Violation
from stems.schedule.unitcost import OnChip, TileShape, UnitCostFn, default_unit_cost
from stems.schedule.units import Plan, build_plan
from stems.workload.model import Workload


class ReplayError(AssertionError):
    """A unit read data that was neither on chip nor in DRAM, or produced an element twice."""


@dataclass(frozen=True)
class ReplayResult:
    traffic: Traffic
    peak_bits: dict[str, int]
    violation: Violation | None
    onchip_pj: float
    compute_pj: float
    offchip_pj: float
    latency_cycles: int
    n_units: int

    @property
    def feasible(self) -> bool:
        return self.violation is None

    @property
    def total_pj(self) -> float:
        return self.onchip_pj + self.compute_pj + self.offchip_pj


class _Buffer:
    def __init__(self, caps: dict[str, int]):
        self.caps = caps
        self.named: dict[str, tuple[str, int]] = {}
        self.act_pool = ""
        self.present: dict[str, np.ndarray] = {}
        self.element_bits: dict[str, int] = {}
        self.count: dict[str, int] = defaultdict(int)  # elements present, per layer

    def alloc(self, name: str, pool: str, bits: int) -> None:
        if bits <= 0:
            return
        if name in self.named:
            raise ReplayError(f"{name} allocated twice")
        self.named[name] = (pool, bits)

    def free(self, name: str) -> None:
        self.named.pop(name, None)

    def used(self) -> dict[str, int]:
        out = dict.fromkeys(self.caps, 0)
        for pool, bits in self.named.values():
            out[pool] = out.get(pool, 0) + bits
        for layer, n in self.count.items():
            out[self.act_pool] = out.get(self.act_pool, 0) + n * self.element_bits[layer]
        return out

    def put(self, layer: str, region: tuple[slice, ...]) -> None:
        view = self.present[layer][region]
        if view.any():
            raise ReplayError(f"elements of {layer} produced twice")
        self.present[layer][region] = True
        self.count[layer] += view.size

    def drop_unreferenced(self, layer: str, region: tuple[slice, ...], refs: np.ndarray) -> None:
        """Free the elements of `region` no later unit reads on chip."""
        view = self.present[layer][region]
        gone = view & (refs[region] <= 0)
        self.count[layer] -= int(gone.sum())
        view &= ~gone

    def contents(self, pool: str) -> list[tuple[str, int]]:
        items: dict[str, int] = defaultdict(int)
        for name, (p, bits) in self.named.items():
            if p == pool:
                items[name] += bits
        if pool == self.act_pool:
            for layer, n in self.count.items():
                if n:
                    items[f"output of {layer}"] += n * self.element_bits[layer]
        return sorted(items.items(), key=lambda kv: -kv[1])


def replay(
    workload: Workload,
    schedule: Schedule,
    hw: Hardware,
    *,
    unit_cost: UnitCostFn = default_unit_cost,
    buffer: str | None = None,
    plan: Plan | None = None,
) -> ReplayResult:
    plan = plan or build_plan(workload, schedule)
    wl = plan.workload
    onchip = OnChip.of(hw, buffer)
    caps = onchip.capacities()
    pool_a, pool_w, pool_v = onchip.pool("A"), onchip.pool("W"), onchip.pool("V")
    units = plan.units
    t_all = wl.timesteps
    load_store = schedule.state_io is StateIO.LOAD_STORE

    def onchip_edge(src: str, dst: str) -> bool:
        return src != INPUT and schedule.edge_home(src, dst) is EdgeHome.ONCHIP

    # ---- first pass: who comes first and last, and who reads what on chip
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    first_b: dict[tuple[str, int], int] = {}
    last_b: dict[tuple[str, int], int] = {}
    max_rows: dict[str, int] = defaultdict(int)
    max_read_rows: dict[tuple[str, str], int] = defaultdict(int)
    max_read_area: dict[tuple[str, str], int] = defaultdict(int)
    refs: dict[str, np.ndarray] = {}
    tile_readers: dict[tuple[str, int, tuple[int, int]], int] = defaultdict(int)
    for layer in wl:
        d = layer.dims
        refs[layer.name] = np.zeros((t_all, d.OY, d.OX), np.int32)
    for u in units:
        first.setdefault(u.layer, u.index)
        last[u.layer] = u.index
        first_b.setdefault((u.layer, u.batch), u.index)
        last_b[(u.layer, u.batch)] = u.index
        max_rows[u.layer] = max(max_rows[u.layer], u.rows[1] - u.rows[0])
        for rd in u.reads:
            max_read_rows[(u.layer, rd.source)] = max(
                max_read_rows[(u.layer, rd.source)], rd.rows[1] - rd.rows[0]
            )
            max_read_area[(u.layer, rd.source)] = max(
                max_read_area[(u.layer, rd.source)], (rd.rows[1] - rd.rows[0]) * (rd.cols[1] - rd.cols[0])
            )
            if onchip_edge(rd.source, u.layer):
                if rd.source in plan.recompute:
                    tile_readers[(rd.source, u.batch, u.step)] += 1
                else:
                    refs[rd.source][u.t0 : u.t1, rd.rows[0] : rd.rows[1], rd.cols[0] : rd.cols[1]] += 1

    buf = _Buffer(caps)
    buf.act_pool = pool_a
    in_dram: dict[str, np.ndarray] = {}
    for layer in wl:
        d = layer.dims
        buf.present[layer.name] = np.zeros((t_all, d.OY, d.OX), bool)
        buf.element_bits[layer.name] = d.B * d.G * d.K * layer.precision.O_final
        in_dram[layer.name] = np.zeros((t_all, d.OY, d.OX), bool)
    tiles: dict[tuple[str, int, tuple[int, int]], tuple[tuple[int, int], tuple[int, int]]] = {}
    windows: dict[tuple[str, str], tuple[int, tuple[int, int], np.ndarray]] = {}

    reads = dict.fromkeys(OPERANDS, 0)
    writes = dict.fromkeys(OPERANDS, 0)
    peak = dict.fromkeys(caps, 0)
    violation: Violation | None = None
    onchip_pj = compute_pj = 0.0
    latency = 0
    dram = hw.offchip

    def dram_pj(op: str, direction: Direction) -> float:
        try:
            return dram.pj_per_bit(op, direction)
        except KeyError:
            return 0.0

    for u in units:
        layer = wl.layer(u.layer)
        name = u.layer
        d = layer.dims
        chans = d.B * d.G * d.K
        moved: dict[tuple[str, Direction], int] = defaultdict(int)
        tb = u.t1 - u.t0
        succ = wl.successors(name)
        has_onchip_reader = any(onchip_edge(name, c) for c in succ)

        # weights
        if layer.weights:
            wbits = layer.weights * layer.precision.W
            if schedule.weights_of(name) is WeightPolicy.RESIDENT:
                if u.index == first[name]:
                    buf.alloc(f"weights of {name}", pool_w, wbits)
                    moved[("W", Direction.TO_LOW)] += wbits
            else:
                # slice by slice (the one computing, the next arriving; the input tiles stay whole) or
                # the whole tensor (the inputs stream through their windows), whichever holds less
                slices = 2 * wbits // (d.G * d.K)
                beyond = 0
                for s in plan.sources[name]:
                    window = max_read_rows[(name, s.name)] * plan.read_span(name, s.name)
                    beyond += max(0, max_read_area[(name, s.name)] - window) * s.element_bits * tb
                if slices + beyond < wbits:
                    buf.alloc(f"weight slices of {name} (unit {u.index})", pool_w, slices)
                    buf.alloc(f"input tiles of {name} (unit {u.index})", pool_a, beyond)
                else:
                    buf.alloc(f"weights of {name} (unit {u.index})", pool_w, wbits)
                moved[("W", Direction.TO_LOW)] += wbits
        # state
        state_words = 0
        if layer.stateful:
            assert layer.neuron is not None
            state_words = u.positions * chans * layer.neuron.n_state * layer.precision.V
            if schedule.state_of(name) is StatePolicy.KEEP:
                if u.index == first[name]:
                    buf.alloc(f"state of {name}", pool_v, layer.state_bits)
                    if load_store:
                        moved[("V", Direction.TO_LOW)] += layer.state_bits
            else:
                if u.index == first_b[(name, u.batch)]:
                    win = max_rows[name] * chans * layer.neuron.n_state * layer.precision.V
                    buf.alloc(f"stream windows of {name} (state)", pool_v, win)
                if load_store or u.batch > 0:
                    moved[("V", Direction.TO_LOW)] += state_words
        # stream windows of DRAM inputs and of an output nobody reads on chip
        if u.index == first_b[(name, u.batch)]:
            for src in plan.sources[name]:
                if not onchip_edge(src.name, name):
                    win = (
                        max_read_rows[(name, src.name)]
                        * plan.read_span(name, src.name)
                        * src.element_bits
                        * tb
                    )
                    buf.alloc(f"stream windows of {name} (input {src.name})", pool_a, win)
            if not has_onchip_reader:
                buf.alloc(
                    f"stream windows of {name} (output)",
                    pool_a,
                    max_rows[name] * chans * layer.precision.O_final * tb,
                )
        # inputs
        in_bits = 0
        for rd in u.reads:
            src = plan.source(name, rd.source)
            area = (rd.rows[1] - rd.rows[0]) * (rd.cols[1] - rd.cols[0])
            in_bits += area * src.element_bits
            sl = (slice(u.t0, u.t1), slice(*rd.rows), slice(*rd.cols))
            if onchip_edge(rd.source, name):
                if rd.source in plan.recompute:
                    got = tiles.get((rd.source, u.batch, u.step))
                    ok = got is not None and got[0][0] <= rd.rows[0] and rd.rows[1] <= got[0][1]
                    ok = ok and got is not None and got[1][0] <= rd.cols[0] and rd.cols[1] <= got[1][1]
                    if not ok:
                        raise ReplayError(
                            f"{u.label()} reads a recomputed tile of {rd.source} that is not on chip"
                        )
                elif not buf.present[rd.source][sl].all():
                    raise ReplayError(f"{u.label()} reads elements of {rd.source} that are not on chip")
                continue
            if rd.source != INPUT and not in_dram[rd.source][sl].all():
                raise ReplayError(
                    f"{u.label()} reads elements of {rd.source} that were never written to DRAM"
                )
            mask = np.zeros(src.shape, bool)
            mask[slice(*rd.rows), slice(*rd.cols)] = True
            held = windows.get((name, rd.source))  # what the stream window kept from the previous unit
            carried = held is not None and held[0] == u.batch and held[1] == u.rows
            new = mask & ~held[2] if carried else mask  # type: ignore[index]
            moved[("I", Direction.TO_LOW)] += int(new.sum()) * src.element_bits * tb
            keep = np.zeros(src.shape, bool)
            lo = max(rd.cols[0], rd.cols[1] - plan.read_span(name, rd.source))
            keep[slice(*rd.rows), lo : rd.cols[1]] = True
            windows[(name, rd.source)] = (u.batch, u.rows, keep)
        for src in plan.sources[name]:
            if not any(rd.source == src.name for rd in u.reads):
                windows.pop((name, src.name), None)
        # output
        region = (slice(u.t0, u.t1), slice(*u.rows), slice(*u.cols))
        if has_onchip_reader:
            if name in plan.recompute:
                buf.alloc(_tile(name, u.batch, u.step), pool_a, u.positions * tb * buf.element_bits[name])
                tiles[(name, u.batch, u.step)] = (u.rows, u.cols)
            else:
                buf.put(name, region)
        # capacity
        used = buf.used()
        for pool, bits in used.items():
            peak[pool] = max(peak.get(pool, 0), bits)
            if violation is None and bits > caps.get(pool, 0):
                violation = Violation(
                    u.index, u.label(), pool, bits, caps.get(pool, 0), tuple(buf.contents(pool))
                )
        # write-backs
        if name not in plan.recompute and (not succ or any(not onchip_edge(name, c) for c in succ)):
            in_dram[name][region] = True
            moved[("O", Direction.FROM_LOW)] += u.positions * tb * buf.element_bits[name]
        if layer.stateful:
            if schedule.state_of(name) is StatePolicy.KEEP:
                if u.index == last[name]:
                    if load_store:
                        moved[("V", Direction.FROM_LOW)] += layer.state_bits
                    buf.free(f"state of {name}")
            elif load_store or u.batch < t_all // tb - 1:
                moved[("V", Direction.FROM_LOW)] += state_words
        # release
        for rd in u.reads:
            if not onchip_edge(rd.source, name):
                continue
            if rd.source in plan.recompute:
                key = (rd.source, u.batch, u.step)
                tile_readers[key] -= 1
                if tile_readers[key] == 0:
                    buf.free(_tile(*key))
                continue
            sl = (slice(u.t0, u.t1), slice(*rd.rows), slice(*rd.cols))
            refs[rd.source][sl] -= 1
            buf.drop_unreferenced(rd.source, sl, refs[rd.source])
        if has_onchip_reader:
            if name in plan.recompute:
                if tile_readers[(name, u.batch, u.step)] == 0:
                    buf.free(_tile(name, u.batch, u.step))
            else:
                buf.drop_unreferenced(name, region, refs[name])
        if layer.weights:
            if schedule.weights_of(name) is WeightPolicy.REFETCH:
                for what in ("weight slices", "input tiles", "weights"):
                    buf.free(f"{what} of {name} (unit {u.index})")
            elif u.index == last[name]:
                buf.free(f"weights of {name}")
        if u.index == last_b[(name, u.batch)]:
            for n_ in [n_ for n_ in buf.named if n_.startswith(f"stream windows of {name} (")]:
                buf.free(n_)
        # energy and time
        cost = unit_cost(layer, TileShape(u.rows[1] - u.rows[0], u.cols[1] - u.cols[0], in_bits), tb, hw)
        onchip_pj += cost.energy_pj_onchip
        compute_pj += cost.compute_pj
        port_bits: dict[str, int] = defaultdict(int)
        port_bw: dict[str, int] = {}
        for (op, direction), bits in moved.items():
            if not bits:
                continue
            if direction is Direction.TO_LOW:
                reads[op] += bits
                onchip_pj += bits * onchip.pj(op, Direction.FROM_HIGH)
            else:
                writes[op] += bits
                onchip_pj += bits * onchip.pj(op, Direction.TO_HIGH)
            port = dram.port(op, direction)
            port_bits[port.name] += bits
            port_bw[port.name] = port.bw_bits
        transfer = max((-(-b // port_bw[p]) for p, b in port_bits.items()), default=0)
        latency += max(cost.cycles, transfer)
    offchip_pj = sum(reads[op] * dram_pj(op, Direction.TO_LOW) for op in OPERANDS) + sum(
        writes[op] * dram_pj(op, Direction.FROM_LOW) for op in OPERANDS
    )
    return ReplayResult(
        traffic=Traffic(reads, writes),
        peak_bits=peak,
        violation=violation,
        onchip_pj=onchip_pj,
        compute_pj=compute_pj,
        offchip_pj=offchip_pj,
        latency_cycles=latency,
        n_units=len(units),
    )


def _tile(layer: str, batch: int, step: tuple[int, int]) -> str:
    return f"recomputed tile of {layer} (batch {batch}, step {step})"
