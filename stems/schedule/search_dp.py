"""The exact decomposition of the schedule search: segments in a row, joined where activations cross.

Stages form a chain; a boundary's *state* is the reader set chosen for each producer whose output
crosses it. A candidate segment in one case is an edge from (first stage, incoming state) to (last
stage + 1, outgoing state), and every schedule of the space is a path from (0, -) to (n, -). Energy,
off-chip bits and latency add up along the path; the on-chip peak is the largest of the segments'
peaks; the buffer capacity holds per segment. So the optimum of a lexicographic value (weighted sums,
then a largest-of component) is a shortest path, found exactly with edge values computed only where
needed (`shortest`): every edge starts with a valid lower bound (`search_local.bounds`), the best path
is found, its bounded edges are solved exactly (`search_local.solve_lex`), and so on until the best path
is exact - then no other path can beat it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from stems.schedule.search_local import Bounds, Local, bounds, build_local, iter_cases, solve_lex, terms
from stems.schedule.search_tables import Tables
from stems.search.solver import SolveOptions, Status

Node = tuple[int, tuple[tuple[str, tuple[str, ...]], ...]]


class Interrupted(Exception):
    pass


@dataclass(frozen=True)
class Edge:
    ci: int
    case: int
    u: Node
    v: Node


@dataclass
class PathResult:
    edges: list[Edge]
    choices: list[tuple[int, ...]]
    value: tuple[int, ...]
    status: Status
    bound: tuple[int, ...]
    local_solves: int


class Graph:
    def __init__(self, tables: Tables, scale: int, with_latency: bool) -> None:
        self.t = tables
        self.scale = scale
        self.with_latency = with_latency
        self.n = len(tables.stages)
        self.edges: list[Edge] = []
        self.local: dict[tuple[int, int], Local] = {}
        self._bounds: dict[tuple, dict[Edge, Bounds]] = {}
        for c in tables.candidates:
            inside = {n for s in tables.stages[c.first : c.last + 1] for n in s.layers}
            for k in iter_cases(tables, c.index):
                asg = next(iter(tables.rows[c.index].values())).cases[k].assignment
                inc = tuple((p, r) for p, r in asg if p not in inside)
                out = tuple((p, r) for p, r in asg if p in inside)
                self.edges.append(Edge(c.index, k, (c.first, inc), (c.last + 1, out)))
        self.edges.sort(key=lambda e: (e.u[0], e.v[0], e.ci, e.case))

    def problem(self, e: Edge) -> Local:
        key = (e.ci, e.case)
        if key not in self.local:
            self.local[key] = build_local(self.t, e.ci, e.case, self.scale, self.with_latency)
        return self.local[key]

    def bounds(self, caps: dict[str, int]) -> dict[Edge, Bounds]:
        """Every feasible edge's bounds under these capacities (cached: they serve every objective)."""
        key = tuple(sorted(caps.items()))
        if key not in self._bounds:
            out = {}
            for e in self.edges:
                b = bounds(self.problem(e), caps)
                if b.feasible:
                    out[e] = b
            self._bounds[key] = out
            del_keys = list(self._bounds)[:-4]
            for k in del_keys:
                del self._bounds[k]
        return self._bounds[key]


# ----------------------------------------------------------------------------------------------------


def _combine(a: tuple, b: tuple, aggs: Sequence[str]) -> tuple:
    return tuple(max(x, y) if g == "max" else x + y for x, y, g in zip(a, b, aggs, strict=True))


def best_path(
    graph: Graph, values: dict[Edge, tuple], aggs: Sequence[str]
) -> tuple[list[Edge], tuple] | None:
    """Lexicographically least path (values combined by `aggs`), or None."""
    start: Node = (0, ())
    best: dict[Node, tuple[tuple, Edge | None]] = {start: (tuple(0 for _ in aggs), None)}
    for e in graph.edges:  # sorted by first stage: every edge into e.u is already relaxed
        if e not in values or e.u not in best:
            continue
        cand = _combine(best[e.u][0], values[e], aggs)
        cur = best.get(e.v)
        if cur is None or cand < cur[0]:
            best[e.v] = (cand, e)
    end: Node = (graph.n, ())
    if end not in best:
        return None
    path = []
    node = end
    while node != start:
        e = best[node][1]
        assert e is not None
        path.append(e)
        node = e.u
    path.reverse()
    return path, best[end][0]


def _lower(lo: dict[str, int], order: tuple) -> tuple[int, ...]:
    return tuple(sum(w * lo[m] for m, w in terms(o)) for o in order)


def shortest(
    graph: Graph,
    order: tuple,
    aggs: Sequence[str],
    caps: dict[str, int],
    options: SolveOptions,
    stop: threading.Event | None,
    deadline: float | None,
) -> PathResult | None:
    """The exact lexicographic optimum of `order` (entries: a metric, or (metric, weight) pairs summed),
    or, past the deadline, the best path made exact with its lower bound kept (status feasible)."""
    known: dict[Edge, tuple | None] = {}
    choices: dict[Edge, tuple[int, ...]] = {}
    status: dict[Edge, Status] = {}
    lbs = {e: _lower(b.lo, order) for e, b in graph.bounds(caps).items()}
    solves = 0
    local_opts = SolveOptions(options.time_limit_s, 1, options.seed)
    pool = ThreadPoolExecutor(max_workers=max(1, options.workers))
    try:
        while True:
            values = {e: v for e, lb in lbs.items() if (v := known.get(e, lb)) is not None}
            found = best_path(graph, values, aggs)
            if found is None:
                return None
            path, value = found
            todo = [e for e in path if e not in known]
            if not todo:
                worst = Status.OPTIMAL if all(status[e] is Status.OPTIMAL for e in path) else Status.FEASIBLE
                return PathResult(path, [choices[e] for e in path], value, worst, value, solves)
            if stop is not None and stop.is_set():
                raise Interrupted
            if deadline is not None and time.perf_counter() > deadline:
                return _fallback(graph, path, value, order, aggs, caps, local_opts, solves)

            def run(e: Edge):
                return solve_lex(graph.problem(e), caps, order, options=local_opts)

            for e, (vals, choice, res) in zip(todo, pool.map(run, todo), strict=True):
                solves += 1
                known[e] = vals
                if vals is not None:
                    choices[e] = choice
                    status[e] = res.status
    finally:
        pool.shutdown(wait=True)


def _fallback(graph, path, bound, order, aggs, caps, opts, solves) -> PathResult | None:
    """Out of time: make the current best path exact edge by edge (a feasible answer, the bound kept)."""
    chs, total = [], None
    for e in path:
        vals, ch, _ = solve_lex(graph.problem(e), caps, order, options=opts)
        if vals is None:
            return None
        chs.append(ch)
        total = vals if total is None else _combine(total, vals, aggs)
    return PathResult(path, chs, total, Status.FEASIBLE, bound, solves + len(path))
