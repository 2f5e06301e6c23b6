"""Intra-layer mapping search: for each conv or dense layer, the spatial unrolling, loop order and per-level
tiling that minimise the objective under `stems.cost`, with a proof of optimality.

The space (`SPACE`): every unrolling of `stems.search.spatial.unrollings`; every order of the
trips' prime factors (so every merged-factor order too: a merged loop is its primes side by side);
every cut of every operand at every level that holds it (uneven mappings; bypassed levels have none);
capacity per level and instance (shared levels jointly, double buffering, partial-sum bits) and the
stateful rule (every T loop outside every C, FY and FX loop). `stems.cost.price` decides validity and
price; the reported mapping is always priced by it.

Energy is solved exactly per unrolling by `stems.search.lattice` (a dynamic program over the divisor
lattice of the trips); a level shared by several operands is split into per-operand budgets by
branch and bound when the unsplit optimum overflows it. Unrollings are visited most-parallel first
and skipped when a lower bound exceeds the incumbent (`Lattice.root_bound`, first over the innermost
events only; unrollings with the same trips share one grid, and operands that see the same tiles
share their terms); inside a lattice, partial chains above the incumbent are dropped. Among tied optima (up to `TIES` chains per
unrolling) the least latency wins, then the canonical order, so runs are identical.
`engine="cpsat"` solves each unrolling's CP-SAT model (`stems.search.intra_model`) instead: the same
optimum, much slower. Latency, EDP and energy under a latency bound: `stems.search.intra_latency`.

Layers with the same shape, precisions, neuron state, rates and hardware are solved once (`cache`);
`map_workload` solves distinct layers in parallel processes and merges results in layer order.
"""

from __future__ import annotations

import gc
import heapq
import json
import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from multiprocessing import get_context

import numpy as np

from stems.cost.mapping import Mapping
from stems.cost.model import Cost, nest_of, price_batch
from stems.cost.nest import Nest
from stems.cost.sample import prime_factors
from stems.errors import StemsInputError
from stems.hardware.spec import Hardware
from stems.search.intra_latency import map_latency
from stems.search.intra_model import solve_unrolling
from stems.search.lattice import Chain, Grid, Lattice, origin_bound
from stems.search.solver import SolveOptions, SolveResult, Status
from stems.search.spatial import Unrolling, unrollings
from stems.workload.model import Layer, Op

SPACE = (
    "spatial: per array dimension, allowed loops unrolled by divisors of their size (a loop on a "
    "single dimension also by its fullest non-dividing fill); temporal: every order of the prime "
    "factors of the remaining trips; cuts: every non-decreasing cut per operand at every level "
    "holding it (uneven); capacity and the stateful T rule as stems.cost checks them"
)
OBJECTIVES = ("energy", "latency", "edp")
ENGINES = ("lattice", "cpsat")
DEFAULT_OPTIONS = SolveOptions()
REL_TOL = 1e-9
TIES = 16  # tied optimal chains per unrolling compared by latency


@dataclass(frozen=True)
class SearchStats:
    """How the answer was found: unrollings in the space, solved and pruned; lattice solves; and the
    candidates priced exactly at the end (energy: tied optimal chains; latency: local-search descents)."""

    unrollings: int = 0
    solved: int = 0
    pruned: int = 0
    dp_solves: int = 0
    refined: int = 0
    cache_hit: bool = False


@dataclass(frozen=True)
class LayerMapping:
    """The result for one layer: the mapping, its exact cost, how it was solved, the space searched,
    and for an infeasible layer (no mapping fits) why."""

    layer: str
    objective: str
    mapping: Mapping | None
    cost: Cost | None
    solve: SolveResult
    space: str = SPACE
    reason: str = ""
    stats: SearchStats = field(default_factory=SearchStats)

    @property
    def optimal(self) -> bool:
        return self.solve.status is Status.OPTIMAL

    @property
    def feasible(self) -> bool:
        return self.mapping is not None


# -- cache ------------------------------------------------------------------------------------------

_CACHE: dict[tuple, LayerMapping] = {}


def layer_key(layer: Layer) -> tuple:
    """Everything about a layer that changes its mapping problem (not its name, block or sources)."""
    neuron = (layer.neuron.n_state, layer.neuron.stateful) if layer.neuron else None
    return (
        layer.op,
        layer.dims,
        layer.precision,
        layer.window,
        neuron,
        layer.stateful,
        layer.rates,
        layer.recurrent_c,
    )


def cache_key(layer: Layer, hw: Hardware, objective: str, latency_bound: float | None, options: SolveOptions):
    return (layer_key(layer), hw, objective, latency_bound, options.time_limit_s, options.proof_depth)


def clear_cache() -> None:
    _CACHE.clear()


def cache_size() -> int:
    return len(_CACHE)


# -- one layer --------------------------------------------------------------------------------------


def map_layer(
    layer: Layer,
    hw: Hardware,
    objective: str = "energy",
    options: SolveOptions = DEFAULT_OPTIONS,
    *,
    latency_bound: float | None = None,
    use_cache: bool = True,
    engine: str = "lattice",
) -> LayerMapping:
    """The optimal mapping of one conv or dense layer on `hw` for `objective` ("energy", "latency" or
    "edp"); with `latency_bound` (cycles), the least energy among mappings within that latency.

    `engine` (energy): "lattice", the dynamic program of `stems.search.lattice` (fast), or "cpsat",
    the same formulation as a CP-SAT model per unrolling (`stems.search.intra_model`; exact too,
    three orders of magnitude slower, `options` applies to each unrolling's solve)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
    if layer.op not in (Op.CONV, Op.DENSE):
        raise StemsInputError(
            f"intra-layer mapping covers conv and dense layers, not {layer.op}", where=layer.name
        )
    key = cache_key(layer, hw, objective, latency_bound, options)
    if engine != "lattice":  # CP-SAT's ties may depend on its workers and seed
        key = (*key, engine, options.workers, options.seed)
    if use_cache and key in _CACHE:
        hit = _CACHE[key]
        return replace(hit, layer=layer.name, stats=replace(hit.stats, cache_hit=True))
    start = time.perf_counter()
    if objective == "energy" and latency_bound is None:
        result = _map_energy(layer, hw, options, start, engine)
    else:
        result = map_latency(layer, hw, objective, options, start, latency_bound)
    if use_cache:
        _CACHE[key] = result
    return result


@dataclass
class _Candidate:
    value: float  # memory energy charged by the lattice (pJ)
    unrolling: Unrolling
    lattice: Lattice
    chain: Chain


def _map_energy(layer: Layer, hw: Hardware, options: SolveOptions, start: float, engine: str) -> LayerMapping:
    nest = nest_of(layer, hw)
    space = unrollings(nest)
    constant = _constant_pj(layer, hw)
    deadline = start + options.time_limit_s
    best = math.inf
    cands: list[_Candidate] = []
    solved = pruned = dp_solves = 0
    timed_out = False
    bound_left = math.inf
    grids: dict[tuple[int, ...], Grid] = {}  # unrollings with the same trips share their lattice
    memo: dict = {}  # and operands that see the same tiles share their terms (`operand_terms`)
    # most parallel first: a good incumbent early prunes the rest
    ordered = sorted(space, key=lambda u: (-math.prod(u.used), u.trips))
    for u in ordered:
        if time.perf_counter() > deadline:
            timed_out = True
            bound_left = min(bound_left, 0.0)
            break
        if engine == "cpsat":
            lat = Lattice(nest, u)
            left = max(deadline - time.perf_counter(), 0.01)
            chain, res, lb = solve_unrolling(lat, replace(options, time_limit_s=left), cutoff=best)
            dp_solves += 1
            if res.status is Status.OPTIMAL:
                found = [(chain.value, chain)]
            else:
                found = [(chain.value, chain)] if chain is not None else []
                if res.status is not Status.INFEASIBLE:
                    timed_out = True
                    bound_left = min(bound_left, lb if lb is not None else 0.0)
            if not found:
                pruned += 1
                continue
            solved += 1
            for value, ch in found:
                if value <= best * (1 + REL_TOL) + 1e-9:
                    cands.append(_Candidate(value, u, lat, ch))
                best = min(best, value)
            cands = [c for c in cands if c.value <= best * (1 + REL_TOL) + 1e-9]
            continue
        if u.trips not in grids:
            grids[u.trips] = Grid(u.trips)
        lat = _bounded_lattice(nest, u, grids[u.trips], best * (1 + REL_TOL) + 1e-9, memo)
        if lat is None:
            pruned += 1  # even a lower bound of u's optimum exceeds the incumbent
            continue
        found, n_dp, lb = _solve_shared(lat, best, deadline, ties=TIES)
        dp_solves += n_dp
        if lb is not None:  # stopped by the deadline inside the branch and bound
            timed_out = True
            bound_left = min(bound_left, lb)
        if not found:
            pruned += 1
            continue
        solved += 1
        for value, chain in found:
            if value <= best * (1 + REL_TOL) + 1e-9:
                cands.append(_Candidate(value, u, lat, chain))
            best = min(best, value)
        cands = [c for c in cands if c.value <= best * (1 + REL_TOL) + 1e-9]
    wall = time.perf_counter() - start
    stats = SearchStats(len(space), solved, pruned, dp_solves, len(cands))
    if not cands:
        status = Status.TIMED_OUT if timed_out else Status.INFEASIBLE
        reason = "" if timed_out else explain_infeasible(layer, hw, space)
        return LayerMapping(
            layer.name,
            "energy",
            None,
            None,
            SolveResult(status, None, None, wall, options.workers, options.seed),
            reason=reason,
            stats=stats,
        )
    mapping, cost = _pick(layer, hw, cands)
    charged = min(c.value for c in cands) + constant
    _check(cost, charged, layer)
    bound = min(charged, bound_left + constant) if timed_out else charged
    status = Status.FEASIBLE if timed_out and bound < cost.energy_pj * (1 - REL_TOL) else Status.OPTIMAL
    wall = time.perf_counter() - start
    result = SolveResult(status, cost.energy_pj, bound, wall, options.workers, options.seed)
    return LayerMapping(layer.name, "energy", mapping, cost, result, stats=stats)


def _bounded_lattice(nest: Nest, u: Unrolling, grid: Grid, cutoff: float, memo: dict) -> Lattice | None:
    """u's lattice, or None when a lower bound of its optimum (memory energy) exceeds `cutoff`.

    Building an operand's event terms is most of the cost of a pruned unrolling, and the innermost
    events (an input's bottom reuse run, the registers) carry most of the bound, through the
    confined events of `Lattice.root_bound` and their charges at the origin; so the bound is taken
    first from those charges alone (`origin_bound`, no lattice built), then over events 0 and 1 of
    every operand (the other events' terms are not built when it prunes), then over all events."""
    if math.isfinite(cutoff) and origin_bound(nest, u) > cutoff:
        return None
    lat = Lattice(nest, u, grid=grid, memo=memo)
    if lat.root_bound(upto=1) > cutoff or lat.root_bound() > cutoff:
        return None
    return lat


def _constant_pj(layer: Layer, hw: Hardware) -> float:
    """Energy every mapping pays: operations and neuron updates."""
    nest = nest_of(layer, hw)
    op_pj = hw.compute.energy_per_op(layer.precision.I, layer.precision.W) * nest.ops
    if hw.compute.skips_zero_inputs:
        op_pj *= layer.rates.I
    return op_pj + hw.compute.neuron_update_pj * layer.neurons * layer.dims.T


def _check(cost: Cost, charged: float, layer: Layer) -> None:
    """The lattice's charge must be the cost model's price (the exactness argument of stems.search.lattice)."""
    if not cost.valid or not math.isclose(cost.energy_pj, charged, rel_tol=1e-7, abs_tol=1e-6):
        raise AssertionError(
            f"{layer.name}: the lattice charged {charged!r} pJ but stems.cost prices {cost.energy_pj!r} "
            f"(valid={cost.valid}, {cost.reason}): a bug in stems.search"
        )


def _canonical(m: Mapping) -> str:
    return json.dumps(m.to_dict(), sort_keys=True)


def _pick(layer: Layer, hw: Hardware, cands: list[_Candidate]) -> tuple[Mapping, Cost]:
    """Among tied optima: least energy as priced, then least latency, then the canonical order."""
    maps = list(dict.fromkeys(c.lattice.mapping(t) for c in cands for t in c.chain.tied(c.lattice)))
    table = price_batch(layer, hw, maps)
    energy = table.energy_pj
    low = np.nanmin(np.where(table.valid, energy, np.inf))
    tied = [i for i in range(len(maps)) if table.valid[i] and energy[i] <= low * (1 + REL_TOL) + 1e-9]
    i = min(tied, key=lambda i: (float(table.latency_cycles[i]), _canonical(maps[i])))
    return maps[i], table.cost(i)


# -- shared levels: branch and bound over per-operand budgets -----------------------------------------


def _shared_levels(lat: Lattice) -> list[tuple[str, int, list[str]]]:
    out = []
    for lv in lat.nest.hw.memories:
        users = [t.spec.name for t in lat.terms if any(x.name == lv.name for x in t.spec.levels)]
        if len(users) > 1:
            out.append((lv.name, lv.size_bits, users))
    return out


def _solve_shared(
    lat: Lattice, incumbent: float, deadline: float, ties: int = 1, joint: bool = True
) -> tuple[list[tuple[float, Chain]], int, float | None]:
    """Optimal chains of one unrolling with shared levels jointly within capacity (all ties found in
    the search), the lattice solves spent, and the best open bound if the deadline stopped it. Each
    solve looks among its tied optima for one whose tiles fit the shared levels together first
    (`Lattice.solve(room=...)`): such a chain needs no further split. `joint` False: only the first
    solve, each operand's tile within what the others' least tiles leave of a shared level (a
    relaxation: its least is a lower bound, and its chain may overflow the level jointly)."""
    shared = _shared_levels(lat)
    room = {name: size for name, size, _ in shared}
    seq = 0
    n_dp = 0
    heap: list = []
    found: list[tuple[float, Chain]] = []
    best = incumbent

    def push(lo: dict, hi: dict) -> None:
        nonlocal seq, n_dp
        budgets = {}
        for name, size, users in shared:
            for op in users:
                others = sum(lo.get((o, name), 0.0) for o in users if o != op)
                budgets[op, name] = min(hi.get((op, name), math.inf), size - others)
        chain = lat.solve(budgets, cutoff=best, ties=ties, room=room)
        n_dp += 1
        if chain is None:
            return
        heapq.heappush(heap, (chain.value, seq, chain, lo, hi))
        seq += 1

    # every mapping's tile takes at least its least size: a floor for each operand's share
    least = _least_held(lat)
    floor = {(u, name): least.get((u, name), 0.0) for name, _, users in shared for u in users}
    push(floor, {})
    if not joint:
        return [(heap[0][0], heap[0][2])] if heap else [], n_dp, None
    if heap and shared and not math.isfinite(best):
        # an incumbent for the cutoff: each shared level split in proportion to the unsplit tiles
        root = heap[0][2]
        budgets = {}
        for name, size, users in shared:
            need = sum(root.held[u, name] for u in users)
            if need > size:
                floor = {u: min(least.get((u, name), 0.0), root.held[u, name]) for u in users}
                spare = size - sum(floor.values())
                extra = need - sum(floor.values())
                for u in users:  # each its least tile, the rest in proportion to what it wanted
                    budgets[u, name] = floor[u] + max(spare, 0.0) * (root.held[u, name] - floor[u]) / extra
        if budgets:
            quick = lat.solve(budgets)
            n_dp += 1
            if quick is not None and all(
                sum(quick.held[u, n] for u in us) <= sz for n, sz, us in shared
            ):  # a valid mapping: its charge bounds the optimum from above
                best = min(best, quick.value)
    while heap:
        value, _, chain, lo, hi = heapq.heappop(heap)
        if value > best * (1 + REL_TOL) + 1e-9:
            break
        if time.perf_counter() > deadline:
            return found, n_dp, value
        over = None
        for name, size, users in shared:
            need = sum(chain.held[u, name] for u in users)
            if need > size:
                over = (name, size, users)
                break
        if over is None:
            found.append((value, chain))
            best = min(best, value)
            continue
        # a tied chain within every shared level is as good
        fits = [
            c for c in chain.tied(lat) if all(sum(c.held[u, n] for u in us) <= sz for n, sz, us in shared)
        ]
        if fits:
            found.append((value, fits[0]))
            best = min(best, value)
            continue
        name, size, users = over
        free = [u for u in users if lo.get((u, name), 0.0) < chain.held[u, name]]
        op = max(free, key=lambda u: (chain.held[u, name], u))
        h = chain.held[op, name]
        push(lo, {**hi, (op, name): h - 0.5})
        push({**lo, (op, name): h}, hi)
    return found, n_dp, None


def _least_held(lat: Lattice) -> dict[tuple[str, str], float]:
    """The smallest bits each operand's tile can take at each level it uses (any point, any flag)."""
    out = {}
    for t in lat.terms:
        levels = t.spec.levels
        for a in range(max(1, t.first), t.n):
            out[t.spec.name, levels[a - 1].name] = t.least_held(a)
        out[t.spec.name, levels[-1].name] = min(t.top_held)
    return out


# -- infeasible layers ------------------------------------------------------------------------------


def explain_infeasible(layer: Layer, hw: Hardware, space: Sequence[Unrolling]) -> str:
    """Why nothing fits: the operand and level that overflow at their smallest tile (over every unrolling)."""
    nest = nest_of(layer, hw)
    least: dict[tuple[str, str], float] = {}
    for u in space:
        lat = Lattice(nest, u)
        for t in lat.terms:
            levels = t.spec.levels
            for a in range(max(1, t.first), t.n):
                h = float(np.min(t.held[a][0])) if not t.flagged else float(min(np.min(x) for x in t.held[a]))
                key = (t.spec.name, levels[a - 1].name)
                least[key] = min(least.get(key, math.inf), h)
            key = (t.spec.name, levels[-1].name)
            least[key] = min(least.get(key, math.inf), min(t.top_held))
    msgs = []
    for (op, lv), h in sorted(least.items()):
        size = hw.level(lv).size_bits
        if h > size:
            msgs.append(
                f"{op} at {lv} needs at least {h:.0f} bits at its smallest tile, but {lv} holds {size}"
            )
    by_level: dict[str, float] = {}
    for (_, lv), h in least.items():
        by_level[lv] = by_level.get(lv, 0.0) + h
    for lv, h in sorted(by_level.items()):
        size = hw.level(lv).size_bits
        users = [op for (op, x) in least if x == lv]
        if len(users) > 1 and h > size and not msgs:
            msgs.append(
                f"{lv} is shared by {', '.join(users)}: their smallest tiles need {h:.0f} bits together, "
                f"but it holds {size}"
            )
    if not msgs:
        msgs.append(
            "no mapping satisfies capacity and the stateful rule together (no single level overflows alone)"
        )
    return "nothing fits: " + "; ".join(msgs)


# -- a workload -------------------------------------------------------------------------------------


def mappable(layer: Layer) -> bool:
    """Layers the intra-layer search maps: conv and dense (pool, add, view... are not priced yet)."""
    return layer.op in (Op.CONV, Op.DENSE)


def _solve_one(args) -> LayerMapping:
    layer, hw, objective, options, latency_bound = args
    return map_layer(layer, hw, objective, options, latency_bound=latency_bound, use_cache=False)


def map_workload(
    workload,
    hw: Hardware,
    objective: str = "energy",
    options: SolveOptions = DEFAULT_OPTIONS,
    workers: int = 1,
    *,
    latency_bound: float | None = None,
) -> list[LayerMapping]:
    """Map every conv and dense layer of `workload` (a Workload or a sequence of layers), in order.

    Identical layers are solved once; distinct ones in `workers` processes. Other layers (pool, add,
    view, ...) are skipped: the cost model does not price them yet.
    """
    layers = [x for x in workload if mappable(x)]
    keys = [cache_key(x, hw, objective, latency_bound, options) for x in layers]
    todo: dict[tuple, Layer] = {}
    for k, x in zip(keys, layers, strict=True):
        if k not in _CACHE and k not in todo:
            todo[k] = x
    jobs = [(x, hw, objective, options, latency_bound) for x in todo.values()]
    if workers > 1 and len(jobs) > 1:
        ctx = get_context("fork") if os.name == "posix" else None
        # a forked worker inherits the parent's heap: frozen, the garbage collector no longer traverses
        # it on every full collection while the search allocates
        init = gc.freeze if ctx is not None else None
        pool = ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx, initializer=init)
        try:
            # largest problems first keeps the workers busy to the end
            order = sorted(range(len(jobs)), key=lambda i: -_work(jobs[i][0], hw))
            futures = [pool.submit(_solve_one, jobs[i]) for i in order]
            done = {i: f.result() for i, f in zip(order, futures, strict=True)}
        finally:
            # with every answer in, the workers exit on their own: joining them took 7-15 ms a run
            pool.shutdown(wait=False, cancel_futures=True)
        results = [done[i] for i in range(len(jobs))]
    else:
        results = [_solve_one(j) for j in jobs]
    for k, r in zip(todo, results, strict=True):
        _CACHE[k] = r
    out = []
    first: set[tuple] = set()
    for k, x in zip(keys, layers, strict=True):
        r = _CACHE[k]
        hit = k in first or k not in todo
        first.add(k)
        out.append(replace(r, layer=x.name, stats=replace(r.stats, cache_hit=hit)))
    return out


def _work(layer: Layer, hw: Hardware) -> int:
    """A layer's expected search effort: its unrollings times the prime factors of their trips."""
    space = unrollings(nest_of(layer, hw))
    return sum(sum(len(prime_factors(t)) for t in u.trips) for u in space)
