"""One segment's residency problem: a candidate segment with the reader sets of the activations that
cross its boundaries fixed (a *case*), its own decisions free, its units within the buffer.

Decisions come in exclusive groups: per weighted layer resident / refetch, per stateful layer keep /
spill (/ remove), per producer whose readers are all in the segment its on-chip reader set (or none).
Energy and off-chip bits are the case's constant plus one amount per chosen option; latency is a table
per layer over the options of its own groups and of its inputs' producers; the buffer holds, at every
remaining occupancy row, the row's constant plus one amount per chosen option (`search_tables`).

`bounds` gives valid lower bounds cheaply (options that alone overflow a row are struck out until
nothing changes); `solve` finds the exact lexicographic optimum with CP-SAT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from ortools.sat.python import cp_model

from stems.schedule.search_tables import Tables, subsets
from stems.search.solver import SolveOptions, SolveResult, Status, solve

METRICS = ("E", "O", "L", "P")  # energy (1/scale pJ), off-chip bits, latency cycles, peak bits (all pools)


def terms(entry) -> list[tuple[str, int]]:
    """An order entry as (metric, weight) pairs: a metric, or a tuple of metrics / (metric, weight)."""
    if isinstance(entry, str):
        return [(entry, 1)]
    return [(x, 1) if isinstance(x, str) else (x[0], int(x[1])) for x in entry]


def energy_scale(per_bit: list[float]) -> tuple[int, bool]:
    """The least scale at which every per-bit energy is an integer (True), else 10^4 (rounded, False)."""
    den = 1
    for v in per_bit:
        f = Fraction(v).limit_denominator(10**6)
        if abs(float(f) - v) > 1e-12 * max(1.0, abs(v)):
            return 10**4, False
        den = math.lcm(den, f.denominator)
    if den > 10**5:
        return 10**4, False
    return den, True


@dataclass
class Local:
    """The residency problem of candidate `ci` in one case. Options of all groups lie side by side
    (`starts[g]` is where group g's begin): energy and bits per option, and per capacity pool the rows
    (constant per row, rows x options) - shared with the tables, not copied."""

    ci: int
    assignment: tuple[tuple[str, tuple[str, ...]], ...]
    groups: list[tuple[tuple[str, str], tuple]]  # (("W"|"V"|"P", layer), option names)
    starts: np.ndarray
    energy: np.ndarray  # per option (integer, 1/scale pJ)
    bits: np.ndarray  # per option
    e_const: int
    b_const: int
    rows: dict[str, tuple[np.ndarray, np.ndarray]]  # pool -> (const per row, rows x options)
    latency: list[tuple[str, np.ndarray, list[list[tuple[int, list[int]]] | None]]]
    # per layer: (name, latency of each combination, per combination the (group, allowed options) it needs)
    rounded: int  # energies rounded to the scale (the rest is exact)
    exact: dict = field(default_factory=dict)

    @property
    def sizes(self) -> list[int]:
        return [len(o) for _, o in self.groups]

    @property
    def gidx(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.groups)), self.sizes)


def _case_const(tables: Tables, ci: int, assignment, scale: int) -> tuple[int, int]:
    """Energy and bits the case fixes: crossing producers' writes (made here) or reads (read here)."""
    t = tables
    cand = t.candidates[ci]
    inside = {n for s in t.stages[cand.first : cand.last + 1] for n in s.layers}
    e = b = 0
    pw, pr = t.pj_write, t.pj_read
    for p, readers in assignment:
        cs = t.consumers[p]
        if p in inside:
            if readers != cs:
                b += t.output_bits[p]
                e += round(t.output_bits[p] * pw["O"] * scale)
        else:
            for c in cs:
                if c not in readers:
                    tab = t.classes[c][t.layer_class[(ci, c)]]
                    bits = dict(tab.dram_reads)[p]
                    b += bits
                    e += round(bits * pr["I"] * scale)
    return e, b


def _group_costs(t: Tables, ci: int, n: str, key: str, scale: int, inside: set[str]):
    """Options, their energies (1/scale pJ) and off-chip bits for one group of layer `n`."""
    pr, pw = t.pj_read, t.pj_write
    tab = t.classes[n][t.layer_class[(ci, n)]]
    if key == "W":
        w = t.weight_bits[n]
        b = np.array([w, w * tab.total_units], np.int64)
        return ("resident", "refetch"), np.round(b * pr["W"] * scale).astype(np.int64), b
    if key == "V":
        S = t.state_bits[n]
        opts = ("keep", "spill", "remove") if t.allow_removal else ("keep", "spill")
        b = np.array([2 * S, 2 * S * tab.n_batches, 0][: len(opts)], np.int64)
        e = np.round(np.array([S, S * tab.n_batches, 0][: len(opts)]) * (pr["V"] + pw["V"]) * scale)
        e = e.astype(np.int64)
        if len(opts) == 3:
            e[2] = round(tab.energy_removed * scale) - round(tab.energy * scale)
        return opts, e, b
    cs = t.consumers[n]
    opts = ((), *subsets(cs))
    b = np.zeros(len(opts), np.int64)
    e = np.zeros(len(opts), np.int64)
    for k, R in enumerate(opts):
        if cs != R:
            b[k] += t.output_bits[n]
            e[k] += round(t.output_bits[n] * pw["O"] * scale)
        for c in cs:
            if c not in R:
                tc = t.classes[c][t.layer_class[(ci, c)]]
                bits = dict(tc.dram_reads)[n]
                b[k] += bits
                e[k] += round(bits * pr["I"] * scale)
    return opts, e, b


def build_local(tables: Tables, ci: int, case_index: int, scale: int, with_latency: bool) -> Local:
    t = tables
    cand = t.candidates[ci]
    layers = [n for s in t.stages[cand.first : cand.last + 1] for n in s.layers]
    inside = set(layers)
    pr, pw = t.pj_read, t.pj_write
    rows_by_pool = t.rows[ci]
    pools = list(rows_by_pool)
    assignment = rows_by_pool[pools[0]].cases[case_index].assignment
    fixed = dict(assignment)
    e_const, b_const = _case_const(t, ci, assignment, scale)
    rounded = 0
    keys: list[tuple[str, str]] = []
    for n in layers:
        tab = t.classes[n][t.layer_class[(ci, n)]]
        e_const += round(tab.energy * scale) + round(tab.input_reads * pr["I"] * scale)
        b_const += tab.input_reads
        rounded += 1
        if t.weight_bits[n]:
            keys.append(("W", n))
        if n in t.stateful:
            keys.append(("V", n))
        cs = t.consumers[n]
        if not cs:
            b_const += t.output_bits[n]
            e_const += round(t.output_bits[n] * pw["O"] * scale)
        elif cs[0] in inside:
            keys.append(("P", n))
    # the first pool's group order, so its rows are used as they are; the rest after
    first = [k for k, _ in rows_by_pool[pools[0]].groups]
    order = first + [k for k in keys if k not in set(first)]
    assert set(order) == set(keys), "rows name a group that is not a decision of the segment"
    groups, energy, bits = [], [], []
    for key in order:
        opts, e, b = _group_costs(t, ci, key[1], key[0], scale, inside)
        groups.append((key, opts))
        energy.append(e)
        bits.append(b)
    sizes = [len(o) for _, o in groups]
    starts = np.cumsum([0, *sizes[:-1]]).astype(np.int64) if sizes else np.zeros(0, np.int64)
    n_opts = int(sum(sizes))
    index = {k: g for g, (k, _) in enumerate(groups)}
    rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for pool, r in rows_by_pool.items():
        const = r.cases[case_index].const
        if r.options.shape[1] == n_opts and [k for k, _ in r.groups] == order:
            rows[pool] = (const, r.options)
            continue
        v = np.zeros((len(const), n_opts), np.int64)
        for g, (key, options) in enumerate(r.groups):
            s0 = int(starts[index[key]])
            v[:, s0 : s0 + len(options)] = r.options[:, int(r.starts[g]) : int(r.starts[g]) + len(options)]
        rows[pool] = (const, v)
    latency = []
    if with_latency:
        for n in layers:
            tab = t.classes[n][t.layer_class[(ci, n)]]
            needs: list[list[tuple[int, list[int]]] | None] = []
            for f, st, wd, src in t.combos[n]:
                need: list[tuple[int, list[int]]] = []
                ok = True
                if ("W", n) in index:
                    need.append((index[("W", n)], [f]))
                if st is not None:
                    need.append((index[("V", n)], [("keep", "spill", "remove").index(st)]))
                cs = t.consumers[n]
                if cs:
                    if ("P", n) in index:
                        opts = groups[index[("P", n)]][1]
                        need.append(
                            (index[("P", n)], [k for k, R in enumerate(opts) if (cs != R) == bool(wd)])
                        )
                    elif (fixed[n] != cs) != bool(wd):
                        ok = False
                for p, d in zip(t.sources[n], src, strict=True):
                    if ("P", p) in index:
                        opts = groups[index[("P", p)]][1]
                        need.append(
                            (index[("P", p)], [k for k, R in enumerate(opts) if (n not in R) == bool(d)])
                        )
                    elif (n not in fixed[p]) != bool(d):
                        ok = False
                needs.append(need if ok else None)
            latency.append((n, np.array(tab.latency, np.int64), needs))
    return Local(
        ci,
        assignment,
        groups,
        starts,
        np.concatenate(energy) if energy else np.zeros(0, np.int64),
        np.concatenate(bits) if bits else np.zeros(0, np.int64),
        e_const,
        b_const,
        rows,
        latency,
        rounded,
    )


# ----------------------------------------------------------------------------------------------------
# Bounds


@dataclass
class Bounds:
    feasible: bool
    allowed: np.ndarray  # per option: not ruled out by the capacity
    lo: dict[str, int]  # metric -> lower bound


_INF = np.iinfo(np.int64).max // 4


def bounds(p: Local, caps: dict[str, int]) -> Bounds:
    """Strike out every option that overflows some row even with every other group at its least, until
    nothing changes; then bound each metric by its least over the options left."""
    starts, gidx = p.starts, p.gidx
    allowed = np.ones(len(gidx), bool)
    if len(gidx):
        while True:
            changed = False
            for pool, (const, v) in p.rows.items():
                if not len(const):
                    continue
                cap = caps.get(pool, 0)
                mins = np.minimum.reduceat(np.where(allowed, v, _INF), starts, axis=1)
                lo = const + mins.sum(axis=1)
                if (lo > cap).any():
                    return Bounds(False, allowed, {})
                over = (((lo[:, None] - mins)[:, gidx] + v) > cap).any(axis=0) & allowed
                if over.any():
                    allowed &= ~over
                    changed = True
                    if not np.logical_or.reduceat(allowed, starts).all():
                        return Bounds(False, allowed, {})
            if not changed:
                break
    else:
        for pool, (const, _) in p.rows.items():
            if len(const) and const.max() > caps.get(pool, 0):
                return Bounds(False, allowed, {})

    def least(x: np.ndarray) -> int:
        return int(np.minimum.reduceat(np.where(allowed, x, _INF), starts).sum()) if len(gidx) else 0

    lo_l = 0
    for _, lat, needs in p.latency:
        best = None
        for val, need in zip(lat, needs, strict=True):
            if need is None or not all(allowed[p.starts[g] + np.asarray(opts)].any() for g, opts in need):
                continue
            best = val if best is None else min(best, val)
        lo_l += int(best or 0)
    lo_p = 0
    for const, v in p.rows.values():
        if len(const):
            extra = (
                np.minimum.reduceat(np.where(allowed, v, _INF), starts, axis=1).sum(axis=1)
                if len(gidx)
                else 0
            )
            lo_p += int((const + extra).max())
    return Bounds(
        True,
        allowed,
        {"E": p.e_const + least(p.energy), "O": p.b_const + least(p.bits), "L": lo_l, "P": lo_p},
    )


def implied(const: np.ndarray, v: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Indices of the rows no other row bounds under every decision (row i is implied by row j when
    const_i - const_j + sum over groups of max over options (v_i - v_j) <= 0): the rows a model needs."""
    n = len(const)
    if not len(starts):
        return np.array([int(np.argmax(const))]) if n else np.arange(0)
    if n <= 1:
        return np.arange(n)
    sizes = np.diff([*starts.tolist(), v.shape[1]])
    hi = const + np.maximum.reduceat(v, starts, axis=1).sum(axis=1)
    lo = const + np.minimum.reduceat(v, starts, axis=1).sum(axis=1)
    mean = const + (np.add.reduceat(v, starts, axis=1) / sizes).sum(axis=1)
    order = np.lexsort((-mean, -hi))  # an implied row has a smaller or equal most and mean: implying first
    alive = np.zeros(n, bool)
    alive[order] = True
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    keep: list[int] = []
    while alive.any():
        rest = np.flatnonzero(alive)
        j = int(rest[np.argmin(rank[rest])])
        keep.append(j)
        alive[j] = False
        rest = rest[rest != j]
        if not len(rest):
            break
        alive[rest[hi[rest] <= lo[j]]] = False
        maybe = rest[(hi[rest] > lo[j]) & (mean[rest] <= mean[j] + 1e-6)]
        if len(maybe):
            slack = const[maybe] - const[j] + np.maximum.reduceat(v[maybe] - v[j], starts, axis=1).sum(axis=1)
            alive[maybe[slack <= 0]] = False
    return np.sort(np.asarray(keep, np.int64))


# ----------------------------------------------------------------------------------------------------
# Exact solve


class _Model:
    def __init__(
        self, p: Local, caps: dict[str, int], allowed: np.ndarray, need_latency: bool, need_peak: bool
    ):
        m = cp_model.CpModel()
        self.m = m
        self.p = p
        starts = p.starts
        self.b = []
        for g, (_, opts) in enumerate(p.groups):
            vs = [m.new_bool_var(f"g{g}o{k}") for k in range(len(opts))]
            for k, v in enumerate(vs):
                if not allowed[starts[g] + k]:
                    m.add(v == 0)
            m.add_exactly_one(vs)
            self.b.append(vs)
        flat = [v for vs in self.b for v in vs]
        self.metric: dict[str, cp_model.LinearExprT] = {}
        self.metric["E"] = p.e_const + sum(int(c) * v for c, v in zip(p.energy, flat, strict=True) if c)
        self.metric["O"] = p.b_const + sum(int(c) * v for c, v in zip(p.bits, flat, strict=True) if c)
        peaks = []
        for pool, (const, v) in p.rows.items():
            top = int(caps.get(pool, 0))
            pk = m.new_int_var(0, max(top, 0), f"peak[{pool}]")
            if len(const):
                hi = const + (
                    np.maximum.reduceat(np.where(allowed, v, -_INF), starts, axis=1).sum(axis=1)
                    if len(starts)
                    else 0
                )
                rows = np.flatnonzero(hi > top) if not need_peak else np.arange(len(const))
                key = ("implied", pool, need_peak, top)
                if key not in p.exact:
                    sub = implied(const[rows], v[rows], starts) if len(rows) > 1 else np.arange(len(rows))
                    p.exact[key] = rows[sub]
                for r in p.exact[key]:
                    nz = np.flatnonzero(v[r])
                    m.add(pk >= int(const[r]) + sum(int(v[r, j]) * flat[j] for j in nz))
            peaks.append(pk)
        self.metric["P"] = sum(peaks)
        if need_latency:
            lats = []
            for name, lat, needs in p.latency:
                lo = m.new_int_var(0, int(lat.max()), f"lat[{name}]")
                for val, need in zip(lat, needs, strict=True):
                    if need is None or not val:
                        continue
                    lits = []
                    for g, opts in need:
                        if len(opts) == 1:
                            lits.append(self.b[g][opts[0]])
                        else:
                            aux = m.new_bool_var("")
                            m.add(aux == sum(self.b[g][k] for k in opts))
                            lits.append(aux)
                    m.add(lo >= int(val)).only_enforce_if(lits)
                lats.append(lo)
            self.metric["L"] = sum(lats)

    def choice(self, solver: cp_model.CpSolver) -> tuple[int, ...]:
        return tuple(next(k for k, v in enumerate(vs) if solver.boolean_value(v)) for vs in self.b)


def solve_lex(
    p: Local,
    caps: dict[str, int],
    order: tuple,
    *,
    bound: tuple[str, int] | None = None,
    options: SolveOptions,
) -> tuple[tuple[int, ...] | None, tuple[int, ...], SolveResult]:
    """Lexicographic optimum of `order` (entries: see `terms`) under the capacity and an optional upper
    bound on one metric. Returns (values per order entry, chosen option per group, the solve record:
    optimal when every stage was proven); values None when infeasible."""
    key = (tuple(sorted(caps.items())), order, bound)
    if key in p.exact:
        return p.exact[key]
    b = bounds(p, caps)
    if not b.feasible:
        out = (None, (), SolveResult(Status.INFEASIBLE, None, None, 0.0, 1, options.seed))
        p.exact[key] = out
        return out
    used = {m for o in order for m, _ in terms(o)} | ({bound[0]} if bound else set())
    mod = _Model(p, caps, b.allowed, "L" in used, "P" in used)
    m = mod.m

    def expr(o):
        return sum(w * mod.metric[x] for x, w in terms(o))

    if bound is not None:
        m.add(mod.metric[bound[0]] <= bound[1])
    values: list[int] = []
    choice: tuple[int, ...] = ()
    wall = 0.0
    status = Status.OPTIMAL
    first: SolveResult | None = None
    for k, o in enumerate(order):
        inst = m if k == len(order) - 1 else m.clone()
        inst.minimize(expr(o))
        if choice:
            for g, vs in enumerate(mod.b):
                for j, v in enumerate(vs):
                    inst.add_hint(v, j == choice[g])
        res, solver = solve(inst, options)
        wall += res.wall_s
        first = first or res
        if not res.status.has_solution:
            out = (None, (), SolveResult(res.status, None, None, wall, res.workers, res.seed))
            p.exact[key] = out
            return out
        if res.status is not Status.OPTIMAL:
            status = Status.FEASIBLE
        v = round(solver.objective_value)
        values.append(v)
        choice = mod.choice(solver)
        if k < len(order) - 1:
            m.add(expr(o) <= v)
    assert first is not None
    out = (
        tuple(values),
        choice,
        SolveResult(status, first.objective, first.best_bound, wall, first.workers, first.seed),
    )
    p.exact[key] = out
    return out


def evaluate_choice(p: Local, choice: tuple[int, ...]) -> dict[str, int]:
    """The metrics of one option per group (for checks and for peaks of a fixed choice)."""
    cols = [int(p.starts[g]) + k for g, k in enumerate(choice)]
    e = p.e_const + int(p.energy[cols].sum())
    b = p.b_const + int(p.bits[cols].sum())
    peak = 0
    for const, v in p.rows.values():
        if len(const):
            peak += int((const + v[:, cols].sum(axis=1)).max())
    lat = 0
    for _, table, needs in p.latency:
        for val, need in zip(table, needs, strict=True):
            if need is not None and all(choice[g] in opts for g, opts in need):
                lat += int(val)
                break
    return {"E": e, "O": b, "L": lat, "P": peak}


def iter_cases(tables: Tables, ci: int) -> range:
    return range(len(next(iter(tables.rows[ci].values())).cases))
