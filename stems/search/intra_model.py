"""The intra-layer mapping of one unrolling as a CP-SAT model (OR-Tools `cp_model`), exact in energy.

Same formulation as `stems.search.lattice` (whose docstring argues exactness), posed to a constraint
solver instead of a dynamic program:

* Events. One per (operand o, architecture level a) whose charge varies: inputs a = 0 .. n-1 (a = 0
  is the bottom reuse run), outputs a = 1 .. n-1. Event e sits at a lattice point: integer exponents
  x[e, k] in 0 .. E_k, one per axis k (a loop's prime factor; E_k its multiplicity in the trips),
  i.e. how many of that loop's prime factors lie below it. Its cell c[e] = sum_k x[e, k] * stride_k.
* Loop order. The points of one operand are non-decreasing (x[e, k] <= x[e', k], cuts never
  decrease going out); two events of different operands are ordered by a Boolean b: b => x[e] <= x[e']
  on every axis, not b => x[e'] <= x[e]. Pairwise comparable points form a chain, and every chain is
  the prefix structure of a loop order (`Lattice.mapping` writes it out).
* Stateful rule, bottom runs, operand bypass: domains. c[e] ranges over cells where no T factor sits
  before every C, FY, FX factor; an input's level-0 event over cells holding reuse loops only; an
  operand has events only at the levels that store it.
* Exact costs. cost[e] = table[c[e]] (`AddElement`): the cost model's charge of that level at that
  point, scaled to integers (`scale`, rounding error below 1/scale pJ per event). Partial sums:
  psum[e] = table[c[e]]. Capacity: the tile of level a-1 takes held[e] bits, from two tables by the
  previous event's psum flag; per level, the operands sharing it sum to at most its size (double
  buffering is in the tables).
* Objective: minimise the sum of cost[e] (energy); the reported mapping is priced by stems.cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from ortools.sat.python import cp_model

from stems.search.lattice import Chain, Event, Lattice
from stems.search.solver import SolveOptions, SolveResult, solve

INT_MAX = 2**62
DEFAULT_OPTIONS = SolveOptions()


@dataclass
class Model:
    """A built model with the handles needed to read a solution back."""

    model: cp_model.CpModel
    scale: float
    events: list[tuple[int, int]]  # (term index, a)
    x: dict[tuple[int, int], list[cp_model.IntVar]]
    cost: dict[tuple[int, int], cp_model.IntVar]
    fixed: float


def _int_table(values: np.ndarray, scale: float) -> list[int]:
    """Scaled integer charges (0 where the point is not allowed: its cell is outside the domain)."""
    out = np.where(np.isfinite(values), np.rint(values * scale), 0.0)
    return [int(v) for v in out]


def build(lat: Lattice, cutoff: float | None = None, scale: float | None = None) -> Model | None:
    """The CP-SAT model of `lat`'s unrolling (None when an event has no allowed point at all)."""
    grid = lat.grid
    shape = grid.shape
    strides = [int(math.prod(shape[k + 1 :])) for k in range(len(shape))]
    full = np.broadcast_to
    valid = lat.valid if lat.valid is not None else np.ones(shape, dtype=bool)
    events = [(i, a) for i, t in enumerate(lat.terms) for a in range(t.first, t.n)]
    # every event's allowed cells and its cost table
    tables, allowed = {}, {}
    worst = 0.0
    for i, a in events:
        t = lat.terms[i]
        c = full(t.cost[a], shape)
        ok = np.isfinite(c) & valid
        if a >= 1:
            lv = t.spec.levels[a - 1]
            ok &= full(np.minimum(t.held[a][0], t.held[a][1]), shape) <= lv.size_bits
        if not ok.any():
            return None
        tables[i, a] = c
        allowed[i, a] = ok
        worst += float(c[ok].max())
    if scale is None:
        scale = min(1e6, (INT_MAX / 4) / max(worst + abs(lat.fixed), 1.0))
    m = cp_model.CpModel()
    x: dict = {}
    cell: dict = {}
    cost: dict = {}
    psum: dict = {}
    for i, a in events:
        e = (i, a)
        x[e] = (
            [m.NewIntVar(0, ex, f"x_{i}_{a}_{k}") for k, (_, _, ex) in enumerate(grid.axes)]
            if grid.axes
            else []
        )
        cells = np.flatnonzero(allowed[e].ravel())
        cell[e] = m.NewIntVarFromDomain(cp_model.Domain.FromValues(cells.tolist()), f"c_{i}_{a}")
        m.Add(cell[e] == sum(s * v for s, v in zip(strides, x[e], strict=True)) if x[e] else cell[e] == 0)
        flat = _int_table(tables[e].ravel(), scale)
        hi = max(flat[c] for c in cells)
        cost[e] = m.NewIntVar(0, hi, f"cost_{i}_{a}")
        m.AddElement(cell[e], flat, cost[e])
        t = lat.terms[i]
        if t.flagged and a >= 1:
            psum[e] = m.NewBoolVar(f"psum_{i}_{a}")
            m.AddElement(cell[e], full(t.psum[a], shape).ravel().astype(int).tolist(), psum[e])
    # one operand's points never decrease going out
    for i, t in enumerate(lat.terms):
        mine = [(i, a) for a in range(t.first, t.n)]
        for e, f in pairwise(mine):
            for u, v in zip(x[e], x[f], strict=True):
                m.Add(u <= v)
    # events of different operands are ordered: all points form one chain
    for p, e in enumerate(events):
        for f in events[p + 1 :]:
            if e[0] == f[0]:
                continue
            b = m.NewBoolVar(f"before_{e}_{f}")
            for u, v in zip(x[e], x[f], strict=True):
                m.Add(u <= v).OnlyEnforceIf(b)
                m.Add(v <= u).OnlyEnforceIf(b.Not())
    # capacity, per level: the tiles of the operands holding it, at their partial-sum bits
    need: dict[str, list] = {}
    for i, t in enumerate(lat.terms):
        levels = t.spec.levels

        def flag_of(a: int, t=t, i=i):
            """The partial-sum flag left by event a (a constant for the fixed level 0)."""
            if not t.flagged:
                return 0
            if a == 0 or (i, a) not in psum:
                return int(t.psum0)
            return psum[i, a]

        for a in range(max(1, t.first), t.n):
            e = (i, a)
            size = levels[a - 1].size_bits
            h0 = [min(round(v), size + 1) for v in full(t.held[a][0], shape).ravel()]
            h1 = [min(round(v), size + 1) for v in full(t.held[a][1], shape).ravel()]
            held = m.NewIntVar(0, size, f"held_{i}_{a}")
            prev = flag_of(a - 1)
            if isinstance(prev, int):
                m.AddElement(cell[e], h1 if prev else h0, held)
            else:
                g0 = m.NewIntVar(0, size + 1, f"h0_{i}_{a}")
                g1 = m.NewIntVar(0, size + 1, f"h1_{i}_{a}")
                m.AddElement(cell[e], h0, g0)
                m.AddElement(cell[e], h1, g1)
                m.Add(held == g1).OnlyEnforceIf(prev)
                m.Add(held == g0).OnlyEnforceIf(prev.Not())
            need.setdefault(levels[a - 1].name, []).append(held)
        top = levels[-1]
        last = flag_of(t.n - 1)
        h0, h1 = (round(v) for v in t.top_held)
        if isinstance(last, int):
            need.setdefault(top.name, []).append(h1 if last else h0)
        else:
            need.setdefault(top.name, []).append(h0 + (h1 - h0) * last)
    for name, parts in need.items():
        m.Add(sum(parts) <= lat.nest.hw.level(name).size_bits)
    objective = sum(cost.values())
    if cutoff is not None and math.isfinite(cutoff):
        m.Add(objective <= math.floor((cutoff - lat.fixed) * scale * (1 + 1e-9) + len(events)))
    m.Minimize(objective)
    return Model(m, scale, events, x, cost, lat.fixed)


def solve_unrolling(
    lat: Lattice,
    options: SolveOptions = DEFAULT_OPTIONS,
    cutoff: float | None = None,
    hint: Chain | None = None,
) -> tuple[Chain | None, SolveResult, float | None]:
    """The optimal chain of one unrolling by CP-SAT (its charge recomputed exactly from the tables),
    the solve's record, and CP-SAT's lower bound in pJ (None without one)."""
    built = build(lat, cutoff)
    if built is None:
        empty = cp_model.CpModel()
        empty.Add(empty.NewConstant(0) == 1)
        return None, solve(empty, options)[0], None
    if hint is not None:
        where = {(e.operand, e.a): e.point for e in hint.events}
        for i, a in built.events:
            point = where.get((lat.terms[i].spec.name, a))
            if point is not None:
                for v, p in zip(built.x[i, a], point, strict=True):
                    built.model.AddHint(v, p)
    result, solver = solve(built.model, options)
    bound = None if result.best_bound is None else result.best_bound / built.scale + lat.fixed
    if not result.status.has_solution:
        return None, result, bound
    events = []
    value = lat.fixed
    for i, a in built.events:
        point = tuple(int(solver.Value(v)) for v in built.x[i, a]) or (0,)
        t = lat.terms[i]
        events.append(Event(t.spec.name, a, point))
        value += float(np.broadcast_to(t.cost[a], lat.grid.shape)[point])
    events.sort(key=lambda e: (sum(e.point), e.operand, e.a))
    return Chain(value, tuple(events), lat._held(events)), result, bound
