"""Search the inter-layer schedule space: the proven optimum of each objective and epsilon-constraint
sweeps for the Pareto front over energy, latency, off-chip bytes and on-chip peak.

The space (`stems.schedule.search_space`): the network's blocks (stages) are cut into segments of
consecutive stages; each segment takes a time batch (every divisor of T) and a tile (layer by layer or a
fused column tile from a short menu); every weighted layer keeps its weights resident or refetches them,
every stateful layer keeps or spills its state (or removes it, when allowed), every edge is read on chip
or through DRAM.

Exact decomposition (`stems.schedule.search_dp`): segments follow each other and only the reader sets of
activations crossing a boundary tie neighbours together, so a schedule is a path through (boundary,
crossing reader sets) and each segment's residency is a small CP-SAT problem (`search_local`) priced by
exact tables (`search_tables`: the sums `stems.schedule.cost.evaluate` computes). The optimum is found
with lower bounds on every segment and CP-SAT only on the segments of the best path until that path is
exact. Every returned point is re-priced with `evaluate`, and the decomposition's totals are checked
against it (energy to within the rounding of the units' energies to 1/scale pJ).

Points. `optimum:<objective>` minimises the objective, then the sum of the other additive objectives
asked for, then the on-chip peak (if asked for): no schedule of the space dominates it. The sweep from
the first objective's optimum towards each other objective's optimum (`pareto_steps` bounds, evenly
spaced) labels each point `pareto:<objective><=<bound>` and each is the exact least first objective
under that bound (same tie-break): a bound on the on-chip peak is a capacity, so the grid bounds are
used as they are; a bound on an additive objective couples the segments, so a grid bound is met by the
optimum of first + lambda x other for the least lambda found by bisection that meets it, and the label
states that schedule's own value (the bound for which it is provably the least). Steps that land on
the same schedule are reported once.

Solves. `options.time_limit_s` bounds each point (and each CP-SAT solve in it); a point cut short is
reported `feasible` with the bound the decomposition proved. `options.workers` processes build the
tables (forked, with the default unit cost only) and threads run the segments' CP-SAT solves (one worker each, so results do not depend on the
worker count or timing). `stop` is checked between segment solves: the current point is abandoned
and the outcome says `interrupted`. Tables do not depend on the buffer capacity and are cached for the
last few (workload, hardware without capacities, unit cost, space) combinations.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from stems.errors import StemsInputError
from stems.hardware.spec import Hardware
from stems.schedule.bounds import lower_bound
from stems.schedule.cost import ScheduleCost, evaluate
from stems.schedule.model import Schedule
from stems.schedule.search_dp import Graph, Interrupted, PathResult, shortest
from stems.schedule.search_local import energy_scale, evaluate_choice
from stems.schedule.search_space import SearchSpace
from stems.schedule.search_tables import Choice, Tables, build_tables, schedule_of
from stems.schedule.unitcost import OnChip, UnitCostFn, default_unit_cost
from stems.search.solver import SolveOptions, SolveResult, Status
from stems.workload.model import Workload

OBJECTIVES = ("energy_pj", "latency_cycles", "offchip_bytes", "onchip_peak_bytes")


@dataclass(frozen=True)
class SchedulePoint:
    label: str  # "optimum:energy_pj", "pareto:offchip_bytes<=1.2e6", ...
    schedule: Schedule
    cost: ScheduleCost  # the exact `evaluate` result
    solve: SolveResult  # of the labelled objective's solve, in its units (pJ, cycles, bytes)

    def value(self, objective: str) -> float:
        return objective_value(self.cost, objective)


@dataclass(frozen=True)
class SearchOutcome:
    points: tuple[SchedulePoint, ...]
    space: str
    wall_s: float
    stopped: str  # "complete" | "time limit" | "interrupted"
    infeasible_reason: str | None


def objective_value(cost: ScheduleCost, objective: str) -> float:
    if objective == "energy_pj":
        return cost.total_pj
    if objective == "latency_cycles":
        return float(cost.latency_cycles)
    if objective == "offchip_bytes":
        return cost.traffic.total_bytes
    if objective == "onchip_peak_bytes":
        return sum(cost.peak_bits.values()) / 8
    raise StemsInputError(f"unknown objective '{objective}'; known: {', '.join(OBJECTIVES)}")


# ----------------------------------------------------------------------------------------------------
# Tables are independent of the buffer capacity: keep the last few, so a sweep over buffer sizes builds
# them once per network.

_CACHE: list[tuple[tuple, Tables]] = []
_CACHE_SIZE = 4


def _tables(
    workload: Workload,
    hw: Hardware,
    unit_cost: UnitCostFn,
    buffer: str | None,
    allow_removal: bool,
    space: SearchSpace,
    workers: int,
) -> Tables:
    # the default unit cost does not depend on memory sizes: the buffer capacity can vary under one key
    sizeless = (
        replace(hw, memories=tuple(replace(m, size_bits=0) for m in hw.memories))
        if unit_cost is default_unit_cost
        else hw
    )
    key = (id(workload), sizeless, buffer, id(unit_cost), allow_removal, space)
    for k, (kk, tab) in enumerate(_CACHE):
        if kk == key and tab.workload is workload:
            _CACHE.append(_CACHE.pop(k))
            return tab
    tab = build_tables(
        workload,
        hw,
        unit_cost=unit_cost,
        buffer=buffer,
        allow_removal=allow_removal,
        space=space,
        # forked processes only for the default unit cost: another may hold state or solver threads
        workers=workers if unit_cost is default_unit_cost else 1,
    )
    _CACHE.append((key, tab))
    del _CACHE[:-_CACHE_SIZE]
    return tab


def clear_cache() -> None:
    _CACHE.clear()


def describe_space(tables: Tables, space: SearchSpace) -> str:
    t = tables
    w = t.workload
    n = len(t.stages)
    batches = space.batches_for(w.timesteps)
    tiles = ", ".join("LBL" if x is None else f"F({x}c)" for x in space.tile_menu())
    # segment structures: f(j) = sum over candidates ending at stage j of f(first - 1)
    count = {-1: 1}
    for j in range(n):
        count[j] = sum(count[c.first - 1] for c in t.candidates if c.last == j)
    structures = count[n - 1]
    st = 3 if t.allow_removal else 2
    residency = 2 ** len(t.weighted) * st ** len(t.stateful) * 2 ** len(w.edges)
    cuts = f"{2 ** (n - 1)} cut patterns" if space.cuts else "no cuts: one segment"
    text = (
        f"{n} stages (blocks {', '.join(s.label for s in t.stages)}), segments = runs of consecutive "
        f"stages ({cuts}); per segment a time batch in {{{', '.join(map(str, batches))}}} x a tile in "
        f"{{{tiles}}} (columns of the segment's widest layer, full height, halo cached; a tile giving the "
        f"units of layer by layer or of a narrower tile is that choice) = {len(t.candidates)} "
        f"(segment, configuration) candidates, {structures:,} segment structures; per weighted layer "
        f"resident/refetch ({len(t.weighted)}), per stateful layer keep/spill{'/remove' if t.allow_removal else ''} "
        f"({len(t.stateful)}), per edge on-chip/DRAM ({len(w.edges)}): {residency:.3g} residency choices; "
        f"state_io load_store. Space: {structures * residency:.3g} schedules."
    )
    if t.notes:
        text += " Notes: " + "; ".join(t.notes)
    return text


# ----------------------------------------------------------------------------------------------------

METRIC = {"energy_pj": "E", "offchip_bytes": "O", "latency_cycles": "L", "onchip_peak_bytes": "P"}


class _Search:
    def __init__(
        self, workload, hw, tables, graph, objectives, caps, unit_cost, buffer, options, progress, stop
    ):
        self.w, self.hw, self.t, self.g = workload, hw, tables, graph
        self.objectives = objectives
        self.metrics = [METRIC[o] for o in objectives]
        self.caps = caps
        self.unit_cost, self.buffer = unit_cost, buffer
        self.options, self.progress, self.stop = options, progress, stop
        self.points: list[SchedulePoint] = []
        self.model_values: list[dict[str, int]] = []
        self.hit_time_limit = False
        self.scale_exact = True

    def say(self, text: str) -> None:
        if self.progress is not None:
            self.progress(text)

    def deadline(self) -> float:
        return time.perf_counter() + self.options.time_limit_s

    def additive(self, exclude: str) -> tuple[str, ...]:
        return tuple(m for m in self.metrics if m not in ("P", exclude))

    def order(self, primary: str) -> tuple[tuple, tuple[str, ...]]:
        """Lexicographic order of a point whose first aim is the additive `primary`, and its aggregators."""
        order: list = [primary]
        aggs = ["sum"]
        rest = self.additive(primary)
        if rest:
            order.append(rest)
            aggs.append("sum")
        if "P" in self.metrics:
            order.append("P")
            aggs.append("max")
        return tuple(order), tuple(aggs)

    def optimum(self, metric: str, caps: dict[str, int]) -> tuple[PathResult | None, float]:
        start = time.perf_counter()
        if metric == "P":
            res = shortest(self.g, ("P",), ("max",), caps, self.options, self.stop, self.deadline())
            if res is None:
                return None, time.perf_counter() - start
            least = res.value[0]
            rest = self.additive("P")
            if rest:
                capped = {pool: min(c, least) for pool, c in caps.items()}
                tie = shortest(
                    self.g, (rest, "P"), ("sum", "max"), capped, self.options, self.stop, self.deadline()
                )
                if tie is not None and tie.value[1] <= least:
                    st = res.status if tie.status is Status.OPTIMAL else Status.FEASIBLE
                    res = PathResult(
                        tie.edges, tie.choices, (least,), st, res.bound, res.local_solves + tie.local_solves
                    )
            if len(caps) > 1:  # several capacity pools: a sum of per-pool largest-ofs, not proven here
                res.status = Status.FEASIBLE
            return res, time.perf_counter() - start
        order, aggs = self.order(metric)
        res = shortest(self.g, order, aggs, caps, self.options, self.stop, self.deadline())
        return res, time.perf_counter() - start

    def point(
        self, label: str, metric: str, res: PathResult, wall: float, pure: bool = True
    ) -> SchedulePoint:
        """Re-price the path with `evaluate`, check the tables' totals against it, record the point.
        `pure`: the path's first value is `metric` itself (else its bound is known only when optimal)."""
        t = self.t
        choice = _choice(self.g, res)
        schedule = schedule_of(t, choice, name=label)
        cost = evaluate(self.w, schedule, self.hw, unit_cost=self.unit_cost, buffer=self.buffer)
        if cost.violation is not None:
            raise AssertionError(f"schedule search: {label} does not fit: {cost.violation.message()}")
        totals = {"E": 0, "O": 0, "L": 0, "P": 0}
        rounded = 0
        for e, ch in zip(res.edges, res.choices, strict=True):
            p = self.g.problem(e)
            v = evaluate_choice(p, ch)
            for k in ("E", "O", "L"):
                totals[k] += v[k]
            totals["P"] = max(totals["P"], v["P"])
            rounded += p.rounded + 2
        scale = self.g.scale
        exact_e = cost.total_pj
        tol = rounded * 0.5 / scale + 1e-9 * abs(exact_e) + (0 if self.scale_exact else 1e-4 * abs(exact_e))
        checks = [
            ("energy_pj", totals["E"] / scale, exact_e, tol),
            ("offchip bits", totals["O"], cost.traffic.total_bits, 0),
            (
                "on-chip peak bits",
                totals["P"],
                sum(cost.peak_bits.values()),
                0 if len(cost.peak_bits) == 1 else -1,
            ),
        ]
        if self.g.with_latency:
            checks.append(("latency_cycles", totals["L"], cost.latency_cycles, 0))
        for name, model, exact, tolerance in checks:
            if tolerance >= 0 and abs(model - exact) > tolerance:
                raise AssertionError(
                    f"schedule search: {label}: the tables' {name} {model!r} differ from the exact {exact!r}"
                )
        value = objective_value(cost, _NAME[metric])
        status = res.status
        if status is Status.OPTIMAL:
            bound = _to_units(metric, totals[metric], scale)
        else:
            bound = _to_units(metric, res.bound[0], scale) if pure else None
            if bound is not None and value <= bound:
                status = Status.OPTIMAL  # the exact price meets a proven lower bound
        result = SolveResult(
            status=status,
            objective=value,
            best_bound=bound,
            wall_s=wall,
            workers=self.options.workers,
            seed=self.options.seed,
        )
        # not proven for lack of time, unless the on-chip peak over several pools (never proven) is why
        if status is not Status.OPTIMAL and not (metric == "P" and len(self.caps) > 1):
            self.hit_time_limit = True
        pt = SchedulePoint(label, schedule, cost, result)
        self.points.append(pt)
        self.model_values.append(totals)
        return pt


_NAME = {v: k for k, v in METRIC.items()}


def _to_units(metric: str, value: float, scale: int) -> float:
    if metric == "E":
        return value / scale
    if metric in ("O", "P"):
        return value / 8
    return float(value)


def _from_units(metric: str, value: float, scale: int) -> int:
    if metric == "E":
        return math.floor(value * scale + 1e-6)
    if metric in ("O", "P"):
        return math.floor(value * 8 + 1e-9)
    return math.floor(value + 1e-9)


def _choice(graph: Graph, res: PathResult) -> Choice:
    t = graph.t
    resident: set[str] = set()
    state: dict[str, str] = {}
    onchip: set[tuple[str, str]] = set()
    cands = []
    for e, ch in zip(res.edges, res.choices, strict=True):
        p = graph.problem(e)
        cands.append(e.ci)
        for (key, opts), k in zip(p.groups, ch, strict=True):
            kind, n = key
            if kind == "W" and opts[k] == "resident":
                resident.add(n)
            elif kind == "V":
                state[n] = opts[k]
            elif kind == "P":
                onchip.update((n, c) for c in opts[k])
        for prod, readers in p.assignment:
            onchip.update((prod, c) for c in readers)
    return Choice(
        candidates=tuple(cands),
        resident=frozenset(resident),
        state=tuple((n, state[n]) for n in t.stateful),
        onchip=frozenset(onchip),
    )


def search_schedules(
    workload: Workload,
    hw: Hardware,
    *,
    objectives: Sequence[str] = OBJECTIVES,
    pareto_steps: int = 6,
    allow_state_removal: bool = False,
    unit_cost: UnitCostFn = default_unit_cost,
    buffer: str | None = None,
    options: SolveOptions = SolveOptions(),  # noqa: B008 - frozen, as in the API
    progress: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
    space: SearchSpace | None = None,
) -> SearchOutcome:
    """The optimum of each objective and, for every objective after the first, `pareto_steps` points of
    the first objective's least value under an upper bound on that one, from its value at the first's
    optimum down to its own optimum (`pareto:<objective><=<bound>`)."""
    start = time.perf_counter()
    objectives = tuple(dict.fromkeys(objectives))
    if not objectives:
        raise StemsInputError("give at least one objective")
    for o in objectives:
        if o not in OBJECTIVES:
            raise StemsInputError(f"unknown objective '{o}'; known: {', '.join(OBJECTIVES)}")
    if pareto_steps < 0:
        raise StemsInputError("pareto_steps must be >= 0")
    space = space or SearchSpace()
    caps = OnChip.of(hw, buffer).capacities()
    where = ", ".join(f"{pool} {cap / 8192:g} KiB" for pool, cap in caps.items())

    def outcome(s, text, stopped, reason=None) -> SearchOutcome:
        points = tuple(s.points) if s is not None else ()
        return SearchOutcome(points, text, time.perf_counter() - start, stopped, reason)

    least = workload
    if allow_state_removal:  # the smallest footprint has every state removed
        least = Schedule((), state={x.name: "remove" for x in workload if x.stateful}).effective_workload(
            workload
        )
    lb = lower_bound(least, hw, buffer=buffer)
    if not lb.fits:
        return outcome(None, "", "complete", f"nothing fits ({where}): {lb.report()}")
    if stop is not None and stop.is_set():
        return outcome(None, "", "interrupted")
    tables = _tables(workload, hw, unit_cost, buffer, allow_state_removal, space, options.workers)
    text = describe_space(tables, space)
    scale, scale_exact = energy_scale(list(tables.pj_read.values()) + list(tables.pj_write.values()))
    graph = _graph(tables, scale, "latency_cycles" in objectives)
    s = _Search(workload, hw, tables, graph, objectives, caps, unit_cost, buffer, options, progress, stop)
    s.scale_exact = scale_exact
    optimum: dict[str, SchedulePoint] = {}
    try:
        for o in objectives:
            s.say(f"{o} optimum")
            res, wall = s.optimum(METRIC[o], caps)
            if res is None:
                if not s.points:
                    return outcome(s, text, "complete", _why_infeasible(s, where))
                continue
            optimum[o] = s.point(f"optimum:{o}", METRIC[o], res, wall)
        primary = objectives[0]
        for o in objectives[1:]:
            if primary in optimum and o in optimum and pareto_steps > 0:
                _sweep(s, primary, o, optimum, pareto_steps)
    except Interrupted:
        return outcome(s, text, "interrupted")
    return outcome(s, text, "time limit" if s.hit_time_limit else "complete")


WEIGHTED_MAX = 10**18  # the largest weighted term of a sweep's weighted sum (64-bit safe in CP-SAT)


def _ceiling(t: Tables, metric: str, scale: int) -> int:
    """An upper bound of a metric over the whole space (sizes the sweeps' weights)."""
    bits = energy = latency = 0
    for n in t.classes:
        cl = t.classes[n]
        b = t.weight_bits[n] * max(c.total_units for c in cl) + t.output_bits[n]
        b += 2 * t.state_bits[n] * max(c.n_batches for c in cl)
        b += max(c.input_reads + sum(x for _, x in c.dram_reads) for c in cl)
        bits += b
        energy += max(max(c.energy, c.energy_removed) for c in cl)
        latency += max(max(c.latency) for c in cl)
    if metric == "O":
        return bits
    if metric == "L":
        return latency
    per_bit = max([*t.pj_read.values(), *t.pj_write.values()])
    return math.ceil((energy + bits * per_bit) * scale)


def _sweep(s: _Search, primary: str, o: str, optimum: dict[str, SchedulePoint], steps: int) -> None:
    """`steps` points from the primary's optimum towards o's optimum, each the exact least primary
    under its label's bound on o.

    A bound on the on-chip peak is a capacity: the points are exact for the bounds of an even grid. A
    bound on an additive objective (energy, latency, off-chip bytes) couples the segments, so each grid
    bound is met by the optimum of primary + lambda x o for the least lambda found (bisection) that
    meets it: that schedule is the exact least primary under the bound of its own value of o (any
    better one would have a smaller weighted sum), which is the bound its label states."""
    pm, om = METRIC[primary], METRIC[o]
    hi = optimum[primary].value(o)
    lo = optimum[o].value(o)
    if hi <= lo:
        return
    scale = s.g.scale
    lam_max = max(1, WEIGHTED_MAX // max(1, 2 * _ceiling(s.t, om, scale)))
    probes: dict[int, tuple[PathResult, int] | None] = {}
    order_pm, aggs_pm = s.order(pm) if pm != "P" else ((), ())

    def probe(lam: int):
        if lam not in probes:
            rest = tuple(m for m in s.metrics if m not in ("P", pm))
            order: list = [((pm, 1), (om, lam))]
            aggs = ["sum"]
            if rest:
                order.append(rest)
                aggs.append("sum")
            if "P" in s.metrics:
                order.append("P")
                aggs.append("max")
            res = shortest(s.g, tuple(order), tuple(aggs), s.caps, s.options, s.stop, s.deadline())
            probes[lam] = None if res is None else (res, _path_metric(s.g, res, om))
        return probes[lam]

    for i in range(1, steps + 1):
        eps = hi - (hi - lo) * i / steps
        s.say(f"Pareto step {i}/{steps}: {o} <= {eps:.4g}")
        t0 = time.perf_counter()
        bound = _from_units(om, eps, scale)
        if om == "P":  # a capacity
            if pm == "P":
                continue
            capped = {pool: min(c, bound) for pool, c in s.caps.items()}
            res = shortest(s.g, order_pm, aggs_pm, capped, s.options, s.stop, s.deadline())
            if res is not None:
                s.point(f"pareto:{o}<={_label(om, bound, scale)}", pm, res, time.perf_counter() - t0)
            continue
        if pm == "P":  # least peak with o bounded: the least capacity whose o-optimum meets the bound
            res = _least_capacity(s, om, bound)
            if res is not None:
                s.point(f"pareto:{o}<={_label(om, bound, scale)}", pm, res, time.perf_counter() - t0)
            continue
        lam_lo, lam_hi = 0, 1
        while True:  # grow lambda until the bound is met
            got = probe(lam_hi)
            if got is not None and got[1] <= bound:
                break
            lam_lo = lam_hi
            lam_hi *= 8
            if lam_hi > lam_max:
                lam_hi = 0
                break
        if not lam_hi:
            continue  # no weighted optimum meets this bound
        for _ in range(6):  # narrow it down: the least lambda meeting the bound keeps most of the primary
            if lam_hi - lam_lo <= 1:
                break
            mid = (lam_lo + lam_hi) // 2
            got = probe(mid)
            if got is not None and got[1] <= bound:
                lam_hi = mid
            else:
                lam_lo = mid
        res, value = probe(lam_hi)  # type: ignore[misc]
        label = f"pareto:{o}<={_label(om, value, scale)}"
        if any(p.label == label for p in s.points):
            continue  # the same schedule as an earlier step
        s.point(label, pm, res, time.perf_counter() - t0, pure=False)


def _least_capacity(s: _Search, om: str, bound: int) -> PathResult | None:
    """Least on-chip peak with `om` at most `bound`: bisect the capacity (each probe exact)."""
    lo = s.points[[p.label for p in s.points].index("optimum:onchip_peak_bytes")]
    top = max(s.caps.values())
    low = int(sum(lo.cost.peak_bits.values()))
    order = (om, *(m for m in s.metrics if m not in ("P", om)))
    aggs = tuple("sum" for _ in order)
    best = None
    exact = True
    while low <= top:
        mid = (low + top) // 2
        capped = {pool: min(c, mid) for pool, c in s.caps.items()}
        res = shortest(s.g, order, aggs, capped, s.options, s.stop, s.deadline())
        exact = exact and (res is None or res.status is Status.OPTIMAL)
        if res is not None and _path_metric(s.g, res, om) <= bound:
            best = res
            top = mid - 1
        else:
            low = mid + 1
    if best is None:
        return None
    peak = _path_metric(s.g, best, "P")
    status = Status.OPTIMAL if exact else Status.FEASIBLE
    return PathResult(best.edges, best.choices, (peak,), status, (peak,), best.local_solves)


def _path_metric(graph: Graph, res: PathResult, metric: str) -> int:
    vals = [
        evaluate_choice(graph.problem(e), ch)[metric] for e, ch in zip(res.edges, res.choices, strict=True)
    ]
    return max(vals) if metric == "P" else sum(vals)


def _label(metric: str, value: int, scale: int) -> str:
    return f"{_to_units(metric, value, scale):.10g}"


def _graph(tables: Tables, scale: int, with_latency: bool) -> Graph:
    key = (scale, with_latency)
    cache = tables.__dict__.setdefault("_graphs", {})
    if key not in cache:
        cache[key] = Graph(tables, scale, with_latency)
    return cache[key]


def _why_infeasible(s: _Search, where: str) -> str:
    """Nothing in the space fits: the least on-chip peak any schedule needs, and where it lands."""
    huge = {pool: 2**40 for pool in s.caps}
    try:
        res = shortest(s.g, ("P",), ("max",), huge, s.options, s.stop, s.deadline())
    except Interrupted:
        res = None
    if res is None:
        return f"no schedule of the space fits ({where})"
    schedule = schedule_of(s.t, _choice(s.g, res), name="least on-chip peak")
    cost = evaluate(s.w, schedule, s.hw, unit_cost=s.unit_cost, buffer=s.buffer)
    need = sum(cost.peak_bits.values()) / 8192
    detail = f"; with it, {cost.violation.message()}" if cost.violation else ""
    return f"no schedule of the space fits ({where}): the least on-chip peak over the space is {need:.1f} KiB{detail}"
