"""Latency, EDP and energy-under-a-latency-bound for one layer: bound and refine with the exact cost model.

Latency is not a sum of per-level terms (ports share bandwidth, windows overlap, on-loading is a
min/max of links), so the lattice cannot minimise it directly. Instead:

* Bound. For any mapping of an unrolling u, latency >= cycles(u) + drain(u) (stall, on- and
  off-loading are >= 0), >= the busy cycles of a port + drain (the lattice minimises them), and >=
  what the outermost links add through on- and off-loading (`_loading_bound`, lattices of busy,
  overrun and reserved-bandwidth cycles, and for a repeating input link its first transfer plus
  another port's busy cycles); energy >= E*(u), u's exact energy optimum
  (`stems.search.lattice`). The latency lattices relax a level several operands share (each tile
  within what the others' least tiles leave, `_solve_shared(joint=False)`): one solve each, where
  splitting the level to hold the tiles jointly took most of a memory-bound SNN layer's search
  (under a latency bound, the least busy cycles stay joint: they also say whether anything fits).
  So latency >= L(u), the largest of these; EDP >= E*(u) x L(u); under a
  latency bound B, u is infeasible if L(u) > B and its energy is >= E*(u). For those two, E*(u) comes
  first: the loading bound then stops at the latency where u can no longer win (the incumbent over
  E*(u), or just above B). The bound leaves out the windows a port's moves share (a level that
  cannot double-buffer refills only in the last iteration of the irrelevant loops on top of it,
  which depends on the loop order between two lattice points) and the inner links' loading, and
  couples the two inputs' links only through the lattices it blends, so on layers whose optimum is
  set by them it stays below: the status is then `feasible` with the gap.
* Refine. Unrollings in order of that bound; seeds are each unrolling's energy optimum; a
  deterministic local search (move one prime loop, or one cut between its neighbours) prices every
  neighbourhood with the cost model (`stems.cost.price_encoded`, the neighbours encoded from the
  arrays of the mapping they move) and keeps the best by the exact objective. Latency:
  once an unrolling is bounded and more than `SCOUT` of those still to bound are faster than the
  incumbent by their cycles alone (a memory-bound layer: cycles say little of latency there), the
  least-busy mapping of each of them is priced and the best one descended at once, so that the
  incumbent the loading bounds stop at is good early.
* Prove. With the final incumbent as target, the unrollings whose bound is below it are bounded
  again, each event kept only at points where what it alone costs stays below the target, and the
  lattice bounds of a case that stays below blended in pairs (a Lagrangian relaxation of their
  maximum over one mapping); a case the blends leave just below the target is split once in two
  by one event's points (`BRANCH`), which closes a relaxation's gap. If no input's bound reaches
  the target, the one that came closest is bounded again split by the other input's link on the
  same port (repeating or made once):
  on-loading waits for both links, so its first transfers count at least the other's least, and
  where the other's link repeats, X plus its first transfer is one more lattice bound.
  A proof that fails still yields mappings: its lattices' minima, and those of its closest pairs'
  blends at a few weights (a Lagrangian heuristic), are priced; one that beats the incumbent is
  descended from, and the proof runs again with the new target.
* Prove deeper (`SolveOptions.proof_depth` > 1, after the quick proof failed): in the sub-cases
  of the other input's link, a case's strongest bound is blended with its first rival and then all
  its bounds at once (weights by a linear program, `_simplex_top`), and split by event points,
  several axes at once, up to that many levels (cases up to `DEEP_BRANCH` below the target); where
  the output's link is made once, the cases split by whether the port has spare bandwidth (each
  side with every port's busy cycles or overrun plus the links' first transfers). Its lattices
  charge the refill windows of levels that cannot double-buffer (`Lattice(windows=True)`). The
  cases before the sub-cases are not blended again.
* Status. `optimal` when the best exact value meets the smallest bound of every unrolling (energy
  under a latency bound: when an unrolling's energy optimum meets the latency bound and no other
  unrolling's E* is lower, which is exact); otherwise `feasible` with that bound and its gap.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Callable, Sequence
from functools import cache, reduce

import numpy as np

from stems.cost.encode import Encoded, encode, reorder
from stems.cost.mapping import Mapping
from stems.cost.model import nest_of, price_batch, price_encoded
from stems.cost.sample import prime_factors
from stems.cost.traffic import FROM_HIGH, FROM_LOW, TO_HIGH, TO_LOW
from stems.hardware.spec import Direction, Hardware
from stems.search.lattice import Chain, Lattice, TermsSum, level_port, operand_terms
from stems.search.solver import SolveOptions, SolveResult, Status
from stems.search.spatial import Unrolling, unrollings
from stems.workload.model import Layer

REL = 1e-9
REFINE = 2  # seeds refined by local search
REFINE_CLOSE, CLOSE = 12, 1e-3  # seeds refined when the best is within CLOSE (relative) of the bound
EXPLORE = 64  # unrollings given seeds (in order of their bound); the others only bound
PROVE_PASSES = 3  # latency: proof passes, each after a failed proof's minima improved the incumbent
MINIMA_PAIRS, MINIMA_WEIGHTS = 3, (0.2, 0.4, 0.6, 0.8)  # blends solved for their minima (`_loading_bound`)
SCOUT = 4  # latency: the rest are scouted when more unrollings than this are open (`map_latency`)
LAGRANGE_STEPS = 6  # cutting-plane steps per blended pair of bounds when proving (`_loading_bound`)
REFINE_GAP = 0.02  # a proof's parts by the other input's first transfer are split this close to the goal
BRANCH = 1e-3  # a case this close (relative) below its goal after blending is split (`_loading_bound`)
DEEP_BRANCH = 0.1  # the same where the proof may split further (`SolveOptions.proof_depth` > 1)
CAP = 1e3  # an infinite charge in a linear program of blend weights, as a multiple of the goal


def _value(objective: str, energy, latency, bound: float | None):
    """Sort keys of the objective (smaller is better), arrays in, arrays out."""
    if objective == "latency":
        return latency, energy
    if objective == "edp":
        return energy * latency, latency
    # energy under a latency bound: feasible first, then energy
    over = latency > bound * (1 + REL)
    return np.where(over, np.inf, energy), latency


def split_primes(m: Mapping) -> Mapping:
    """The same mapping with every temporal loop split into its prime factors (cuts kept in place)."""
    loops, where = [], [0]
    for d, f in m.temporal:
        loops += [(d, p) for p in prime_factors(f)]
        where.append(len(loops))
    cuts = {op: {lv: where[c] for lv, c in levels} for op, levels in m.cuts}
    return Mapping.of({a: dict(x) for a, x in m.spatial}, loops, cuts)


def merge_loops(m: Mapping) -> Mapping:
    """Adjacent loops of one dimension merged where no cut separates them."""
    bounds = {c for _, levels in m.cuts for _, c in levels}
    loops: list[tuple[str, int]] = []
    where = [0]
    for i, (d, f) in enumerate(m.temporal):
        if loops and loops[-1][0] == d and i not in bounds:
            loops[-1] = (d, loops[-1][1] * f)
        else:
            loops.append((d, f))
        where.append(len(loops))
    cuts = {op: {lv: where[c] for lv, c in levels} for op, levels in m.cuts}
    return Mapping.of({a: dict(x) for a, x in m.spatial}, loops, cuts)


def _moves(m: Mapping, window: int = 64) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """m's neighbours: move one loop by up to `window` positions (cuts stay at their positions);
    move one cut of one operand to any position between its neighbouring cuts (a descent then takes
    one step where it took one per loop: most steps moved a cut, and each round is one pricing
    call, whose fixed cost dominates). Each distinct mapping once, never m itself, as arrays with a
    row each: the loop order (positions in m's loops) and every operand's cuts (`_moved` builds
    one). Loop orders are told apart before anything is built (moving a loop past its neighbour is
    moving the neighbour back past it)."""
    loops = m.temporal
    n = len(loops)
    positions = tuple(range(n))
    orders = []
    seen = {loops}
    for i in range(n):
        rest, where = loops[:i] + loops[i + 1 :], positions[:i] + positions[i + 1 :]
        for j in range(max(0, i - window), min(n, i + window + 1)):
            moved = (*rest[:j], loops[i], *rest[j:])
            if moved not in seen:
                seen.add(moved)
                orders.append((*where[:j], i, *where[j:]))
    moved_cuts = []  # (operand index, level, new cut)
    for k, (_, levels) in enumerate(m.cuts):
        values = [c for _, c in levels]
        for j in range(len(values) - 1):
            lo = values[j - 1] if j else 0
            moved_cuts += [(k, j, c) for c in range(lo, values[j + 1] + 1) if c != values[j]]
    rows = len(orders) + len(moved_cuts)
    orders += [positions] * len(moved_cuts)
    cuts = {op: np.tile([c for _, c in levels], (rows, 1)) for op, levels in m.cuts}
    names = [op for op, _ in m.cuts]
    for r, (k, j, c) in enumerate(moved_cuts, start=rows - len(moved_cuts)):
        cuts[names[k]][r, j] = c
    return np.array(orders, dtype=np.int64).reshape(rows, n), cuts


def _moved(m: Mapping, order: np.ndarray, cuts: dict[str, np.ndarray], r: int) -> Mapping:
    """Row r of `_moves(m)` as a mapping (canonical, as m is)."""
    return Mapping(
        m.spatial,
        tuple(m.temporal[p] for p in order.tolist()),
        tuple(
            (op, tuple((lv, c) for (lv, _), c in zip(levels, cuts[op][r].tolist(), strict=True)))
            for op, levels in m.cuts
        ),
    )


class _Round:
    """One round's candidates, descent by descent: rows of a batch encoded from the descents' rows
    in the previous one (`stems.cost.encode.reorder`), and mappings built only for the rows a
    tie-break or a step asks for."""

    def __init__(self) -> None:
        self.parts: list[tuple[int, Mapping, np.ndarray, dict[str, np.ndarray]]] = []
        self.rows: list[int] = []  # each part's rows' source row in the previous batch, in order
        self.size = 0
        self.pieces: dict[int, tuple[str, list[str]]] = {}  # a part's `_text` before its loops, and theirs

    def add(self, m: Mapping, row: int, orders: np.ndarray, cuts: dict[str, np.ndarray]) -> tuple[int, int]:
        """m moved (`_moves`), m being row `row` of the previous batch; the span of rows taken."""
        self.parts.append((self.size, m, orders, cuts))
        self.rows += [row] * len(orders)
        self.size += len(orders)
        return self.size - len(orders), self.size

    def _part(self, i: int) -> tuple[int, Mapping, np.ndarray, dict[str, np.ndarray]]:
        return next(p for p in reversed(self.parts) if p[0] <= i)

    def keep(self, m: Mapping, row: int, previous: Encoded) -> None:
        """m itself, row `row` of the previous batch (a start, priced with the first round)."""
        cuts = {op: c[row][None] for op, c in previous.cuts.items()}
        self.add(m, row, np.arange(len(m.temporal))[None], cuts)

    def __getitem__(self, i: int) -> Mapping:
        lo, m, orders, cuts = self._part(i)
        return _moved(m, orders[i - lo], cuts, i - lo)

    def text(self, i: int) -> str:
        """`_text` of row i's mapping, from its part's pieces: a tie-break asks it of every tied
        row, and a plateau of equal neighbours has many."""
        lo, m, orders, cuts = self._part(i)
        if lo not in self.pieces:
            spatial = {a: dict(loops) for a, loops in m.spatial}
            self.pieces[lo] = f"{{'spatial': {spatial}, 'temporal': [", [str([d, f]) for d, f in m.temporal]
        head, loops = self.pieces[lo]
        temporal = ", ".join(loops[p] for p in orders[i - lo].tolist())
        per_op = []
        for op, levels in m.cuts:
            values = cuts[op][i - lo].tolist()
            inner = ", ".join(f"{lv!r}: {c}" for (lv, _), c in zip(levels, values, strict=True))
            per_op.append(f"{op!r}: {{{inner}}}")
        return f"{head}{temporal}], 'cuts': {{{', '.join(per_op)}}}}}"

    def batch(self, nest, previous: Encoded) -> Encoded:
        """The round's batch: each row's loop order padded to the previous batch's width."""
        width = previous.dim.shape[1]
        orders = np.concatenate(
            [
                np.concatenate(
                    [o, np.broadcast_to(np.arange(o.shape[1], width), (len(o), width - o.shape[1]))], 1
                )
                for _, _, o, _ in self.parts
            ]
        )
        cuts = {op: np.concatenate([c[op] for _, _, _, c in self.parts]) for op in previous.cuts}
        return reorder(nest, previous, np.array(self.rows, dtype=np.int64), orders, cuts)


def local_search(
    layer: Layer,
    hw: Hardware,
    starts: list[Mapping],
    objective: str,
    bound: float | None,
    deadline: float,
    rounds: int = 60,
    floor: float = -math.inf,
) -> list[tuple[Mapping, tuple]]:
    """Best-improvement descent from each of `starts` on the exact objective (deterministic). The
    descents run in lockstep so that each round prices all their neighbourhoods in one batch; they
    stop once one reaches `floor` (a lower bound of the objective: nothing can beat it). A descent
    that steps onto a mapping another has stood on follows that one's path from there, behind it, so
    it stops (its key stays above that descent's: the least key is the same). A round's batch is
    encoded from the previous one's arrays: a neighbour's names are those of the mapping it moves."""
    nest = nest_of(layer, hw)
    cur = [split_primes(m) for m in starts]
    batch = encode(nest, cur)
    at = list(range(len(cur)))  # each descent's row in `batch`
    keys: list = []  # the starts', priced in the first round's batch (one call's fixed cost, not two)
    visited: set[Mapping] = set()
    active = []
    for j, m in enumerate(cur):
        if m not in visited and j not in batch.reasons:  # a malformed mapping has no moves to make
            visited.add(m)
            active.append(j)
    for _ in range(rounds):
        if (
            not active
            or time.perf_counter() > deadline
            or (keys and min(k[0] for k in keys) <= floor * (1 + REL))
        ):
            break
        cand = _Round()
        if not keys:  # the starts themselves
            for j, m in enumerate(cur):
                cand.keep(m, at[j], batch)
        spans = [(j, *cand.add(cur[j], at[j], *_moves(cur[j]))) for j in active]
        if not cand.size:
            break
        batch = cand.batch(nest, batch)
        a, b = _columns(price_encoded(layer, hw, batch), objective, bound)
        if not keys:
            n = len(cur)
            keys = [_Key(float(x), float(y), m) for x, y, m in zip(a[:n], b[:n], cur, strict=True)]
            at = list(range(n))
            if min(k[0] for k in keys) <= floor * (1 + REL):
                break
        still = []
        for j, lo, hi in spans:
            best = _argmin(a, b, cand.text, lo, hi)
            if best is not None and (key := _Key(float(a[best]), float(b[best]), cand[best])) < keys[j]:
                cur[j], keys[j], at[j] = key[2], key, best
                if cur[j] not in visited:
                    visited.add(cur[j])
                    still.append(j)
        active = still
    if not keys:  # no round ran (past the deadline)
        keys = _keys(price_batch(layer, hw, cur), objective, bound, cur)
    return list(zip(cur, keys, strict=True))


def least_busy(
    nest, u: Unrolling, port, memo: dict | None, deadline: float, joint: bool = False
) -> tuple[Lattice, list, int, float | None]:
    """u's busy-cycle lattice on `port` and its optima, the lattice solves spent, and the best open
    bound if the deadline stopped it. `memo`: `operand_terms`' memo of the nest. A level several
    operands share holds their tiles jointly only with `joint` (`_solve_shared`); otherwise the
    least is a lower bound and its chain a seed that may overflow (priced, it is then invalid), and
    nothing found still means that nothing fits."""
    from stems.search.intra import _solve_shared

    lat = Lattice(nest, u, port=port, memo=memo, kind="busy")
    found, k, open_bound = _solve_shared(lat, math.inf, deadline, joint=joint)
    return lat, found, k, open_bound


def scout(
    layer: Layer,
    hw: Hardware,
    space: Sequence[Unrolling],
    port,
    deadline: float,
    memo: dict | None = None,
    solved: dict | None = None,
) -> tuple[list[tuple[Mapping, tuple]], int]:
    """A least-busy mapping on `port` of every unrolling in `space` (`least_busy`, as the search's
    main loop solves them for latency), priced; the best descended by `local_search`
    (latency), as [(mapping, key)]; and the lattice solves spent. A good incumbent early stops the
    loading bounds of the unrollings still to bound at it, or skips them. `memo`: `operand_terms`'
    memo of the nest, which the search's later lattices of these unrollings share; `solved` (a
    dict): each unrolling's busy lattice and its optima are stored there, for the search's main loop,
    which needs the same ones."""
    nest = nest_of(layer, hw)
    seeds = []
    solves = 0
    for u in space:
        if time.perf_counter() > deadline:
            break
        lat, found, k, open_bound = least_busy(nest, u, port, memo, deadline)
        solves += k
        if solved is not None and open_bound is None:
            solved[u] = (lat, found)
        if found:
            seeds.append(lat.mapping(min(found, key=lambda x: x[0])[1]))
    top = _cheapest(layer, hw, seeds, "latency", None)
    if top is None:
        return [], solves
    return local_search(layer, hw, [top[2]], "latency", None, deadline), solves


def _columns(table, objective: str, bound: float | None) -> tuple[np.ndarray, np.ndarray]:
    """The two numeric sort keys of every row (invalid rows inf)."""
    e = np.where(table.valid, table.energy_pj, np.inf)
    lat = np.where(table.valid, table.latency_cycles, np.inf)
    a, b = _value(objective, e, lat, bound)
    return np.where(table.valid, a, np.inf), np.where(table.valid, b, np.inf)


def _keys(table, objective: str, bound: float | None, maps: list[Mapping]) -> list[tuple]:
    """Sort keys of every row (invalid rows last); the mapping's text breaks exact ties only, so it
    is built lazily (`_Key`)."""
    a, b = _columns(table, objective, bound)
    return [_Key(float(x), float(y), m) for x, y, m in zip(a, b, maps, strict=True)]


def _cheapest(layer: Layer, hw: Hardware, maps: list[Mapping], objective: str, bound: float | None):
    """The least key (`_Key`, with its mapping) of `maps` priced; None if there are none."""
    if not maps:
        return None
    a, b = _columns(price_batch(layer, hw, maps), objective, bound)
    i = _argmin(a, b, lambda i: _text(maps[i]), 0, len(maps))
    return _Key(float(a[i]), float(b[i]), maps[i])


def _argmin(a: np.ndarray, b: np.ndarray, text: Callable[[int], str], lo: int, hi: int) -> int | None:
    """The row in [lo, hi) with the least key, as `_Key` orders them (numbers first, then the
    mapping's text among exact ties, the first such row), or None if the range is empty; `text`
    (a row's mapping's `_text`) is asked only for the tied rows."""
    if hi <= lo:
        return None
    rows = lo + np.flatnonzero(a[lo:hi] == a[lo:hi].min())
    rows = rows[b[rows] == b[rows].min()]
    return int(min(rows, key=text) if len(rows) > 1 else rows[0])


class _Key(tuple):
    """(objective, second key, mapping): compared on the numbers first, the mapping's text last."""

    def __new__(cls, a: float, b: float, m: Mapping | None):
        return super().__new__(cls, (a, b, m))

    def __lt__(self, other: tuple) -> bool:
        if (self[0], self[1]) != (other[0], other[1]):
            return (self[0], self[1]) < (other[0], other[1])
        return _text(self[2]) < _text(other[2])


class _Bound(float):
    """A lower bound of X + on- and off-loading in one case of `_loading_bound`: `const` plus the
    least charge of `lat`, reached at `chain` (None: nothing fits). Adding a number keeps it one."""

    def __new__(cls, value: float, lat: Lattice, chain: Chain | None, const: float = 0.0):
        self = super().__new__(cls, value)
        self.lat, self.chain, self.const = lat, chain, const
        return self

    def __add__(self, c: float) -> float:
        if isinstance(c, _Bound):  # two lattices' minima: their sum is a number, not one lattice's
            return float(self) + float(c)
        return _Bound(float(self) + c, self.lat, self.chain, self.const + float(c))

    __radd__ = __add__

    def at(self, chain: Chain) -> float:
        """This bound's charge of another lattice's chain."""
        return self.const + self.lat.charge(chain)


def _text(m: Mapping | None) -> str:
    return "" if m is None else str(m.to_dict())


def _outer_links(nest) -> dict[str, tuple[int, object]]:
    """Per operand W, I and O: its outermost link (lattice event) and the port of that link's upper
    end, where only that end uses the port (so a transfer on it is the link's own on- or off-loading,
    not a part of it)."""
    out = {}
    for spec in nest.operands:
        n = len(spec.levels)
        if spec.name not in ("W", "I", "O") or n < 2:
            continue
        up, down = (FROM_LOW, TO_HIGH) if spec.output else (TO_LOW, FROM_HIGH)
        hi = level_port(spec.levels[n - 1], spec.name, up)[0]
        if hi is not None and hi != level_port(spec.levels[n - 2], spec.name, down)[0]:
            out[spec.name] = (n - 1, hi)
    return out


def _inner_offload(nest) -> int:
    """Cycles off-loading takes at least besides the outermost output link: one per other link of O
    (the last outputs cross every link, each transfer at least one cycle)."""
    spec = next((s for s in nest.operands if s.name == "O"), None)
    if spec is None:
        return 0
    levels = spec.levels
    return sum(
        1
        for m in range(len(levels) - 2)
        if level_port(levels[m], "O", TO_HIGH)[0] or level_port(levels[m + 1], "O", FROM_LOW)[0]
    )


def _first_transfers(lat: Lattice, op: str, a: int) -> tuple[float, float, float]:
    """The least first transfer (cycles on the lattice's port, or at the link's lower end if that is
    slower) of `op`'s event `a` where its move repeats and where it is made once (inf if nowhere, or
    if the tile overflows the level below), and the least of the once move that prefetching cannot
    hide: stems.cost.latency stops at one innermost tile, so at a = 1 the whole lower end (its tile
    is that innermost tile) and the upper end's tile sent to `fanout` copies, above at least
    min(r, 1). Where an output's move carries partial sums, the final ones still take a cycle."""
    terms, slower, real, kept = _transfer_grids(lat, op, a)
    repeats, made_once = terms.repeats, terms.made_once
    often = float(slower[repeats].min()) if repeats.any() else math.inf
    once = float(real[made_once].min()) if made_once.any() else math.inf
    floor = float(kept[made_once].min()) if made_once.any() else math.inf
    return often, once, floor


def _transfer_grids(lat: Lattice, op: str, a: int) -> tuple:
    """`op`'s terms and, per point of `op`'s event `a`, the first transfer where its move repeats
    (the slower end), where it is made once, and what prefetching leaves of the latter
    (`_first_transfers`; inf where the tile overflows the level below)."""
    terms = next(t for t in lat.terms if t.spec.name == op)
    near = np.broadcast_to(terms.near[a], lat.grid.shape)
    if terms.spec.output:
        lo, _ = terms.rate[a]
        small = terms.ps_small[a]
        real = np.where(small, np.minimum(lo, 1.0), np.broadcast_to(lo, lat.grid.shape))
        near = np.where(small, np.minimum(near, 1.0), near)
    else:
        real = np.broadcast_to(terms.rate[a], lat.grid.shape)
    held = np.minimum(*terms.held[a]) if a else np.float64(0.0)
    fits = held <= (terms.spec.levels[a - 1].size_bits if a else math.inf)
    slower = np.where(fits, np.maximum(real, near), math.inf)
    real = np.where(fits, real, math.inf)
    if a == 1:
        kept = np.maximum(np.ceil(real / terms.fanout[a]), near)
        real = slower
    else:
        kept = np.minimum(real, 1.0)
    return terms, slower, real, kept


def _loading_bound(
    nest,
    u,
    grid,
    links: dict,
    cycles: float,
    deadline: float,
    target: float = math.inf,
    terms: dict | None = None,
    prove: bool = False,
    minima: list | None = None,
    busy: tuple[Lattice, float, Chain] | None = None,
    solved: dict | None = None,
    depth: int = 1,
) -> tuple[float, int]:
    """A lower bound of latency - drain over the mappings of `u` from the loading of the outermost
    links (`_outer_links`), and the lattice solves spent; it stops early once it reaches `target`.

    latency - drain = X + onload + offload with X = cycles + stall. The lattice minimises, over a
    port's loads: B, their busy cycles beyond first transfers (X >= B); S, the cycles their
    transfers overrun their periods (X >= cycles + S, part of the port's stall); and N, the bandwidth
    the repeating ones reserve (`Lattice(need=..., kind=...)`). On-loading waits at least for an
    input's outermost link (stems.cost.latency sums it, or keeps it as the last half-shared link),
    off-loading for every output link. A link whose move repeats waits for one whole transfer r at
    its slower end (the lattice adds it, `Lattice(onload=...)`, to B or S); one made once for r less
    what prefetching (or post-storing) with the port's spare bandwidth removes, at most
    (1 - N / width) X in all, and never below its floor f (one innermost tile, `_first_transfers`).
    So with r_in and r_out the input's and the output's outermost links on one port: both
    repeating, X + r_in + r_out; input repeating, output once, >= X + r_in + f_out and
    >= r_in + r_out + min(1, N / width) X; the reverse likewise; both once, >= X + f_in + f_out and
    >= r_in + r_out + min(1, N / width) X. The last terms are taken in one lattice (r and N of the
    same mapping, `Lattice(once=...)`): min(X, N X / width) >= min(X, N cycles / width), split by
    whether the port has spare bandwidth: without, X + r_in + r_out; with (N < width), r_in + r_out
    + N cycles / width over the mappings whose every load needs less than the width (`spare`). Each
    other output link adds at least a cycle. The bound is the least of these cases, each bounded
    from the minima. A lattice term that charges the mapping of the case's strongest bound so far no
    more than that bound is not solved: its least cannot raise the case (`below_lead`).

    `prove` (with a finite `target`): X + r_in (+ r_out where the output's link repeats) is also
    bounded by every other port's busy cycles or overrun plus those r (one lattice: `TermsSum`; a
    port whose charge another's matches or exceeds everywhere is left out, `_undominated`), and
    each lattice keeps an event only at points where what it alone costs (`_alone`) plus the
    cheapest first transfers stays below the target; a mapping elsewhere is at least the target, so
    the bound returned is at most `target`. A case whose terms all stay below also blends its
    strongest lattice bound with each that exceeds it at its chain (`lagrange`): for any weight w,
    min over mappings of (1 - w) f + w g is below max(f, g) of every mapping. One that the blends
    leave within `BRANCH` below the goal is split by an event's points, each part bounded alone
    (`branch`). If neither input's cases reach the target, the input that came closest is
    bounded again in two sub-cases, the other input's outermost link on the same port repeating or
    made once (every lattice keeps to its points, `scope`): on-loading >= max of the two links'
    loading, so the input's first transfers count at least the other's least there, r or its floor f
    (`Lattice(at_least=...)`), and X + that least is one more term; where the other's link repeats,
    so are the busy cycles and the cycles + overrun with that link's own first transfer (X + r of
    the other input, bounded as the input's own is), and so is X + r of the other input (+ r of the
    output where the case has its link repeat) from the busy cycles of the level that input's link
    fills; the lesser sub-case bounds the input. On-loading waits for the longer of the two first
    transfers, which no sum of charges bounds tightly: so the sub-case where the other's link
    repeats is split by its r, best first, in halves of r's distinct values (each part floors the
    input's r at its own least r; a part is not split by `branch`), while its least part stays
    within `REFINE_GAP` below the goal; the least part bounds them all.
    `terms`: `operand_terms`' memo for this nest (operands not singled out share their terms).
    `busy` (lattice, least, chain): the least busy cycles on the outermost port with no link
    designated, which the caller has solved (used outside a proof, whose lattices keep to fewer points).
    `minima` (a list): every lattice minimum met is appended as (lattice, chain); and if the bound
    stays below `target`, the minima of the `MINIMA_PAIRS` pairs whose blend came closest to the
    goal, at each of `MINIMA_WEIGHTS` (a Lagrangian heuristic: a blend's minimum balances both
    charges, so it is often a good mapping where neither term alone is; the caller prices them).
    `solved` (a dict the caller keeps per unrolling): each term's lattice minimum, from this call
    and earlier ones, with the goal that ruled its points. A call whose goal is no higher keeps to
    fewer points of the same charges: an earlier minimum whose mapping keeps to them is its too,
    without a solve.
    `depth` > 1 (with `prove`): the deeper proof (module docstring): the other input's sub-cases
    blended by `joint` too and split `depth` levels deep, the once output's case split by spare
    bandwidth (`by_spare_bandwidth`), and no blends before the sub-cases."""
    from stems.search.intra import _solve_shared

    n_dp = 0
    solved = {} if solved is None else solved
    skipped: list = []  # (top, f, g): pairs `lagrange` did not blend, as they cannot reach the goal
    memo: dict = {}
    ports = _ports(nest.hw, nest)
    if busy is not None and not prove:  # the least busy cycles on the outermost port, already solved
        lat, value, chain = busy
        memo[ports[0], (), "busy", None] = _Bound(value, lat, chain)
        solved[ports[0], (), "busy", None] = (memo[ports[0], (), "busy", None], math.inf)
    goal = proof_goal = target - _inner_offload(nest)
    alone = _alone(nest, u, grid, cycles, terms) if prove and math.isfinite(goal) else {}
    specs = {s.name: s for s in nest.operands}
    firsts: dict = {}
    masks: dict = {}
    # the other input's link, when it shares the port: (name, where each event may be, floors of the
    # first transfers of the links designated), which every lattice of the current sub-case keeps to
    scope: list = [None, None, {}]
    lead: list = [None]  # the strongest lattice bound so far of the case being evaluated (`case`)
    # how many more times a case may be split (`branch`): once, and `depth` times in the sub-cases
    # of the other input's link (`op_bound`'s split), where a deeper proof closes its gaps
    splits = [1]
    # in a part of a split case (`branch`, or op_bound's sub-cases): the whole case's scope, the
    # event whose points it divides, its part of them, and the input whose first transfers it floors
    half: list = [None]
    spares: dict = {}
    strongest = cache(lambda cands, kind: _undominated(nest, u, grid, cands, kind, cycles, terms, depth > 1))

    def first(op: str, a: int, floor: float = 0.0):
        """`op`'s event `a` charging only its first transfer (at least `floor`) on its outermost
        link's port."""
        if (op, a, floor) not in firsts:
            port = links[op][1]
            firsts[op, a, floor] = operand_terms(
                nest, u, grid, specs[op], port, terms, a, cycles, "first", at_least=floor
            )
        return firsts[op, a, floor]

    def least_first(e: tuple[str, int]) -> float:
        return float(np.min(first(*e).cost[e[1]]))

    def allowed(designated: tuple, more: float = 0.0) -> dict | None:
        """Where each event may be in a mapping below `goal` when the `designated` links repeat:
        X >= what the event alone costs (`_alone`), and on- and off-loading >= the designated
        links' first transfers (at the event's own point if it is one of them), and `more`."""
        if not alone:
            return None
        if (designated, more) not in masks:
            extra = sum(map(least_first, designated)) + more
            out = {}
            for e, low in alone.items():
                add = extra - least_first(e) + first(*e).cost[e[1]] if e in designated else extra
                out[e] = low + add < goal
            masks[designated, more] = out
        return masks[designated, more]

    def spare(port) -> dict:
        """Where each event's own bandwidth need on `port` stays below its width: a mapping whose
        loads leave the port some spare bandwidth (N < width) has every event there."""
        if port not in spares:
            out = {}
            for spec in nest.operands:
                t = operand_terms(nest, u, grid, spec, port, terms, None, cycles, "need")
                for a in range(t.first, t.n):
                    out[spec.name, a] = t.cost[a] < cycles
            spares[port] = out
        return spares[port]

    def least_chain(lat: Lattice, key: tuple | None = None) -> _Bound:
        """lat's least charge and its chain (`key`: the term's, for `solved`). Without a proof, a
        least above `goal` is not needed exactly: every term adds a non-negative amount to its
        lattice's least and only asks whether it reaches `goal` (the bound returned is at most the
        target), so the solve stops there. A level several operands share is not split to hold
        their tiles jointly (`_solve_shared(joint=False)`): a bound either way, and on a
        memory-bound SNN layer those splits took most of the search."""
        nonlocal n_dp
        earlier, points = solved.get(key, (None, 0.0))
        if (
            earlier is not None
            and points >= (goal if prove else math.inf)
            and lat.charge(earlier.chain) == float(earlier)
        ):
            value, chain = float(earlier), earlier.chain
        else:
            cutoff = math.inf if prove else goal
            found, k, _ = _solve_shared(lat, cutoff, deadline, joint=False)
            n_dp += k
            if not found:
                return _Bound(cutoff, lat, None)
            value, chain = min(found, key=lambda x: x[0])
            if key is not None:
                # the goal its points were ruled by (a proof's are fewer as the goal falls; none
                # were ruled out without a proof)
                solved[key] = (_Bound(value, lat, chain), goal if prove else math.inf)
        if minima is not None:
            minima.append((lat, chain))
        return _Bound(value, lat, chain)

    def lattice(port, kind: str, designated: tuple, more: float = 0.0, narrow=None, **charges) -> Lattice:
        """The lattice of the `kind` charge on `port`, with points as `allowed` (and `narrow`)."""
        return Lattice(
            nest,
            u,
            port=port,
            grid=grid,
            need=_need(kind, cycles),
            kind=kind,
            memo=terms,
            allowed=_both(_both(allowed(designated, more), narrow), scope[1]),
            at_least=scope[2],
            windows=depth > 1,
            **charges,
        )

    def blended(bounds: Sequence[_Bound], weights: Sequence[float]) -> _Bound:
        """The bounds weighted (the weights sum to 1), in one lattice: a lower bound of their maximum
        over the mappings they all allow."""
        weights = tuple(weights)
        known = {
            parts[0].spec.name: TermsSum(parts, weights)
            for parts in zip(*(b.lat.terms for b in bounds), strict=True)
        }
        allowed = reduce(_both, (b.lat.allowed for b in bounds), None)
        b = least_chain(Lattice(nest, u, grid=grid, known=known, allowed=allowed, windows=depth > 1))
        return b + sum(w * x.const for w, x in zip(weights, bounds, strict=True))

    def lagrange(bounds: list[_Bound], goal: float) -> tuple[float, Chain | None]:
        """max over w of min over mappings of (1 - w) f + w g, for the strongest bound f and each g
        that exceeds it at f's chain, most first, by cutting planes: each chain c adds the line
        w -> (1 - w) f(c) + w g(c) above that (concave) curve; the next w maximises the lowest line,
        until the blend meets it. A pair whose lines already stay below `goal` is not solved. Also
        the chain of the last blend solved (else of the first rival): where the blends turned to.
        A deeper proof pairs f with the first rival only (`joint` follows with every bound)."""
        f = max(bounds)
        best = float(f)
        other = None
        rivals = sorted(((b.at(f.chain), i) for i, b in enumerate(bounds) if b is not f), reverse=True)
        if depth > 1:  # the first rival only: `joint` then blends every bound at once
            rivals = rivals[:1]
        for at_f, i in rivals:
            g = bounds[i]
            if at_f <= f or best >= goal:
                break
            other = other or g.chain
            lines = [(float(f), at_f), (f.at(g.chain), float(g))]
            for _ in range(LAGRANGE_STEPS):
                w, top = _highest_point(lines)
                if top < goal or top <= best * (1 + REL):
                    if minima is not None and top < goal:
                        skipped.append((top, f, g))
                    break
                b = blended((f, g), (1 - w, w))
                best = max(best, float(b))
                if b.chain is None or best >= goal:
                    break
                other = b.chain
                lines.append((f.at(b.chain), g.at(b.chain)))
        return best, other

    def joint(bounds: list[_Bound], goal: float, best: float) -> float:
        """max over weights of min over mappings of the bounds weighted, all of them at once, by
        cutting planes (`_simplex_top`): a mapping that two bounds leave below the goal may be one a
        third rules out, which no pair's blend (`lagrange`) sees. Stops where the planes stay below
        `goal` (no weights can reach it) or the blend meets them; `best` is what the pairs reached."""
        planes = [[x.at(b.chain) for x in bounds] for b in bounds]
        for _ in range(LAGRANGE_STEPS):
            weights, top = _simplex_top(planes, goal)
            if top < goal or top <= best * (1 + REL):
                break
            used = [i for i, w in enumerate(weights) if w > 0]
            b = blended([bounds[i] for i in used], [weights[i] for i in used])
            best = max(best, float(b))
            if b.chain is None or best >= goal:
                break
            planes.append([x.at(b.chain) for x in bounds])
        return best

    def branch(terms, goal: float, lead_chain: Chain, other: Chain) -> float:
        """A case split by one event's points, and the least of the parts' values (-inf if a part
        other than the last stays below `goal`: the split then cannot prove the case, and the parts
        not bounded could be lower). The event is the first of `lead_chain` placed elsewhere in
        `other`, and the parts divide its points between the two places on every axis where they
        differ, most first: at or below the lesser place on the first axis; above it there and at or
        below on the second; ...; above on all. A blend may stay below the goal only because
        mappings of both kinds are open to it (the gap of a Lagrangian relaxation), and the parts
        keep the kinds apart at once (split one axis at a time, each part above on that axis was
        bounded, blended and split again, about ten lattice solves a level). The parts' cases are
        split again while `splits` allows."""
        places = {(e.operand, e.a): e.point for e in other.events}
        event = next((e for e in lead_chain.events if places.get((e.operand, e.a), e.point) != e.point), None)
        if event is None:
            return -math.inf
        p, q = event.point, places[event.operand, event.a]
        axes = sorted((j for j in range(len(p)) if p[j] != q[j]), key=lambda j: -abs(p[j] - q[j]))
        sides = []
        rest = np.ones(grid.shape, dtype=bool)
        for axis in axes:
            shape = [1] * len(grid.shape)
            shape[axis] = grid.shape[axis]
            below = np.arange(grid.shape[axis]).reshape(shape) <= min(p[axis], q[axis])
            sides.append(rest & below)
            rest = rest & ~below
        sides.append(rest)
        cut = tuple((axis, min(p[axis], q[axis])) for axis in axes)
        saved, saved_half = list(scope), half[0]
        parts = []
        splits[0] -= 1
        for side in sides:
            where = {(event.operand, event.a): side}
            half[0] = (saved[0], (event.operand, event.a), where[event.operand, event.a], None)
            scope[:] = [
                (saved[0], event.operand, event.a, cut, len(parts)),
                _both(saved[1], where),
                saved[2],
            ]
            parts.append(case(terms, goal))
            if parts[-1] < goal:
                break
        scope[:] = saved
        half[0] = saved_half
        splits[0] += 1
        return min(parts) if len(parts) == len(sides) else -math.inf

    def known(key: tuple) -> bool:
        """Whether a term's bound (`memo` key, the scope last) is known. In a part of a split case
        (`half`), the whole case's bound of the same term is the part's too if its mapping keeps to
        the part and the term charges the same there (it does not designate the input whose first
        transfers the part floors): restricted to fewer mappings, the least is then the same."""
        if key in memo or half[0] is None:
            return key in memo
        whole, event, mask, floored = half[0]
        if floored is not None and _designates(key[:-1], floored):
            return False
        b = memo.get((*key[:-1], whole))
        if not isinstance(b, _Bound) or b.chain is None:
            return False
        point = next((e.point for e in b.chain.events if (e.operand, e.a) == event), None)
        if point is None or not mask[point]:
            return False
        memo[key] = b
        return True

    def coupled(port, often: tuple, once: tuple, more: float, some_spare: bool) -> float:
        """Least first transfers of the `often` links (where they repeat) and the `once` links (where
        made once), plus the bandwidth N the repeating loads reserve, in one mapping: r + N x cycles /
        width, with points as `allowed` (`more`: the once links' floors) and, with `some_spare`, as
        `spare`."""
        key = (port, often, once, more, some_spare, scope[0])
        if not known(key):
            narrow = spare(port) if some_spare else None
            lat = lattice(port, "need", often, more, narrow, onload=dict(often), once=dict(once))
            memo[key] = least_chain(lat, key)
        return memo[key]

    def least(port, onload: tuple = (), kind: str = "busy", lat: Lattice | None = None) -> float:
        """The least `kind` charge on `port` where the `onload` links repeat (`lat`: its lattice, if
        already built)."""
        key = (port, onload, kind, scope[0])
        if not known(key):
            memo[key] = least_chain(lat or lattice(port, kind, onload, onload=dict(onload)), key)
        return memo[key]

    def below_lead(lat: Lattice, more: float) -> bool:
        """Whether a term, `lat`'s least plus `more`, cannot exceed the case's strongest lattice bound
        so far (`lead`): it charges that bound's own mapping no more. Such a term neither raises the
        case's value nor is blended with that bound (`lagrange`), so it is not solved."""
        f = lead[0]
        return f is not None and lat.charge(f.chain) + more <= f

    def least_term(port, onload: tuple, kind: str) -> float:
        """A case's term: busy cycles ("busy") or cycles + overrun ("stall") on `port` (`least`);
        -inf if `below_lead`."""
        base = _x_offset(kind, cycles)
        if known((port, onload, kind, scope[0])):
            return least(port, onload, kind) + base
        lat = lattice(port, kind, onload, onload=dict(onload))
        return -math.inf if below_lead(lat, base) else least(port, onload, kind, lat) + base

    def case(terms, goal: float) -> float:
        """max of lazily computed terms, stopping at the first that reaches `goal`; when proving,
        the lattice bounds are also blended (`lagrange`)."""
        value = -math.inf
        seen = []
        values = []
        for term in terms:
            lead[0] = max(seen, default=None)
            x = term()
            values.append(float(x))
            value = max(value, x)
            if value >= goal:
                return value
            if isinstance(x, _Bound) and x.chain is not None:
                seen.append(x)
        # a deeper proof does not blend the cases before its split (`op_bound(split=True)`): the
        # quick proof blended them already, and the parts of the split are where its solves pay
        if prove and len(seen) > 1 and not (depth > 1 and scope[0] is None):
            low, other = lagrange(seen, goal)
            if depth > 1 and low < goal and len(seen) > 2:
                low = joint(seen, goal, low)
            value = max(value, low)
            # only against the proof's own goal (a case's goal may be the least of the cases before it)
            if (
                splits[0]
                and other is not None
                and goal == proof_goal
                and time.perf_counter() <= deadline  # a deep split may keep splitting all its parts
                and goal * (1 - (DEEP_BRANCH if depth > 1 else BRANCH)) <= value < goal
            ):
                # the parts' terms strongest first: the term that proves a part is often among them,
                # and a strong lead early lets `below_lead` skip more
                ranked = sorted(range(len(terms)), key=lambda j: -values[j])
                value = max(value, branch([terms[j] for j in ranked], goal, max(seen).chain, other))
        return value

    def least_case(cases: list, goal: float, each: list | None = None) -> float:
        """The least of the cases' values; each case stops once it reaches the least so far, which it
        then cannot lower. `each` (a list): every case's value is appended."""
        low = math.inf
        for c in cases:
            value = case(c, min(goal, low))
            low = min(low, value)
            if each is not None:
                each.append(value)
        return low

    def with_first(other, charged: tuple, kind: str, designated: tuple, more: float) -> float:
        """Busy cycles (`kind` "busy") or cycles + overrun ("stall") of port `other` plus the first
        transfers of the `charged` links (one input's, and maybe the output's) on their links' port,
        where those moves repeat: X + on- and off-loading >= B or cycles + S of any port plus r of
        one input and of the output (each charged operand's terms there carry its r besides its own
        charge). Points as `allowed` when the `designated` links repeat; `more` is added. A case's
        term: -inf if `below_lead`."""
        key = (other, charged, kind, designated, more, scope[0])
        if not known(key):
            summed = {
                name: TermsSum(
                    (
                        _port_charge(nest, u, grid, specs[name], other, kind, cycles, terms),
                        first(name, e, scope[2].get(name, 0.0)),
                    )
                )
                for name, e in charged
            }
            add = more + _x_offset(kind, cycles)
            lat = lattice(other, kind, designated, more, known=summed)
            if below_lead(lat, add):
                return -math.inf
            memo[key] = least_chain(lat, key) + add
        return memo[key]

    def op_bound(op: str, goal: float, split: bool = False) -> float:
        """The least case for input `op`'s outermost link (and the output's, on the same port); with
        `split`, the least over the two sub-cases of the other input's link (see above)."""
        a, port = links[op]
        probe = Lattice(nest, u, port=port, grid=grid, memo=terms)
        in_often, in_once, in_floor = _first_transfers(probe, op, a)
        i = ((op, a),)
        others = [p for p in ports if p != port]

        def cross(designated: tuple, more: float = 0.0) -> list:
            """X + r_in (+ r_out where the output's link is designated; + `more`: what it adds at
            least otherwise) from the other ports."""
            if not prove:
                return []
            return [
                lambda p=p, kind=kind: with_first(p, designated, kind, designated, more)
                for kind in ("busy", "stall")
                for p in strongest(tuple(others), kind)
            ]

        def either(spare_none: float, spare_some) -> float:
            """The least of the two bounds of a once link: the port has no spare bandwidth, or some
            (`spare_some(True)` among those mappings only, `spare_some(False)` among all); the
            second alone when the first reaches the goal (a mapping below it has some spare)."""
            if spare_none >= goal:
                return spare_some(True)
            return float(min(spare_none, spare_some(False)))

        def x_min() -> float:  # X over all mappings
            return max(cycles + least(port, (), "stall"), least(port))

        def x_terms(designated: tuple) -> list:
            """X (+ r) over the mappings repeating the `designated` links, as a case's terms: busy
            cycles and cycles + overrun, each a lattice bound (`lagrange` may blend them)."""
            return [lambda kind=kind: least_term(port, designated, kind) for kind in ("busy", "stall")]

        def by_spare_bandwidth(often: tuple, once: tuple, floor: float) -> list:
            """The terms of the once links' bound split in two cases (deeper proofs): the port has no
            spare bandwidth (N >= width: nothing post-stores, so X + r of every link) or some (N <
            width: r + N X / width, and a mapping below the goal has X < goal, so r + N X / width >=
            r + X + N goal / width - goal). Either way X is bounded by every port's busy cycles or
            cycles + overrun, in one lattice with the links' first transfers (and N)."""

            def term(p, kind: str, spare_some: bool) -> float:
                key = ("spare" if spare_some else "none", p, often, once, kind, scope[0])
                if not known(key):
                    summed = {}
                    repeating, made_once = dict(often), dict(once)
                    for name, spec in specs.items():
                        parts = [_port_charge(nest, u, grid, spec, p, kind, cycles, terms)]
                        weights = [1.0]
                        if spare_some:
                            parts.append(
                                operand_terms(nest, u, grid, spec, port, terms, None, cycles, "need")
                            )
                            weights.append(proof_goal / cycles)
                        if name in repeating:
                            parts.append(first(name, repeating[name], scope[2].get(name, 0.0)))
                            weights.append(1.0)
                        if name in made_once:
                            e = made_once[name]
                            parts.append(
                                operand_terms(nest, u, grid, spec, port, terms, e, cycles, "first", once=True)
                            )
                            weights.append(1.0)
                        summed[name] = TermsSum(tuple(parts), tuple(weights))
                    narrow = spare(port) if spare_some else None
                    lat = lattice(p, kind, often, floor, narrow, known=summed)
                    add = _x_offset(kind, cycles) - (proof_goal if spare_some else 0.0)
                    if below_lead(lat, add):
                        return -math.inf
                    memo[key] = least_chain(lat, key) + add
                return memo[key]

            return [
                [
                    lambda p=p, kind=kind, spare_some=spare_some: term(p, kind, spare_some)
                    for kind in ("busy", "stall")
                    for p in strongest(tuple(ports), kind)
                ]
                for spare_some in (False, True)
            ]

        def x_plus(first: float, designated: tuple) -> float:  # X + r over the mappings repeating it
            return max(cycles + first, least(port, designated), cycles + least(port, designated, "stall"))

        # per case: the links it designates, the output's among them, and what off-loading adds
        # at least when the output's link is made once (the other input's sub-cases below)
        meta = [(i, (), 0.0), ((), (), 0.0)]
        cases = [
            [
                lambda: cycles + in_often,
                lambda: least_term(port, i, "busy"),
                lambda: least_term(port, i, "stall"),
                *cross(i),
            ],
            [
                lambda: in_once,
                *x_terms(()),
                lambda: x_min() + in_floor,
                lambda: either(x_min() + in_once, lambda s: coupled(port, (), i, in_floor, s)),
            ],
        ]
        if "O" in links and links["O"][1] == port:
            o = (("O", links["O"][0]),)
            out_often, out_once, out_floor = _first_transfers(probe, "O", links["O"][0])
            meta = [(i + o, o, 0.0), (i, (), out_floor), (o, o, 0.0), ((), (), out_floor)]
            cases = [
                [
                    lambda: cycles + in_often + out_often,
                    lambda: least_term(port, i + o, "busy"),
                    lambda: least_term(port, i + o, "stall"),
                    *cross(i + o),
                ],
                [
                    lambda: cycles + in_often + out_floor,
                    *x_terms(i),
                    lambda: either(
                        out_once + x_plus(in_often, i), lambda s: coupled(port, i, o, out_floor, s)
                    ),
                    *cross(i, out_floor),
                ],
                [
                    lambda: cycles + out_often + in_floor,
                    *x_terms(o),
                    lambda: x_plus(out_often, o) + in_floor,
                    lambda: either(
                        in_once + x_plus(out_often, o), lambda s: coupled(port, o, i, in_floor, s)
                    ),
                ],
                [
                    lambda: in_once + out_once,
                    *x_terms(()),
                    lambda: x_min() + in_floor + out_floor,
                    lambda: either(
                        x_min() + in_once + out_once,
                        lambda s: coupled(port, (), i + o, in_floor + out_floor, s),
                    ),
                ],
            ]
            if prove and depth > 1:  # the input repeating, the output once: by spare bandwidth
                none, some = by_spare_bandwidth(i, o, out_floor)
                common = [lambda: cycles + in_often + out_floor, *x_terms(i)]
                meta[1:2] = [meta[1]] * 2
                cases[1:2] = [
                    [*common, lambda: out_once + x_plus(in_often, i), *none, *cross(i, out_floor)],
                    [*common, lambda: coupled(port, i, o, out_floor, True), *some, *cross(i, out_floor)],
                ]
        rival = "I" if op == "W" else "W"
        if not split:
            return least_case(cases, goal)
        if not (rival in links and links[rival][1] == port):
            return -math.inf
        # on-loading waits for both inputs' outermost links: split by the other's, repeating or made
        # once; op's first transfers count at least the other's least there (`Lattice(at_least=...)`)
        b, _ = links[rival]
        _, _, r_floor = _first_transfers(probe, rival, b)
        rival_terms, r, _, _ = _transfer_grids(probe, rival, b)
        repeats = rival_terms.repeats & np.isfinite(r)

        def sub_case(name, where: np.ndarray, floor: float, parent=None, proven=()) -> tuple:
            """The least case where the other input's link keeps to `where` (a part of `parent`'s,
            whose cases `proven` reached the goal: on fewer mappings they still do), and each case's
            value."""
            scope[:] = [name, {(rival, b): where}, {op: floor}]
            half[0] = (parent, (rival, b), where, op)
            extra = [lambda: x_min() + floor]
            more = [[] for _ in cases]
            if name != "once":  # X + r of the other input, and of the output where the case has it
                extra += [
                    lambda kind=kind: least_term(port, ((rival, b),), kind) for kind in ("busy", "stall")
                ]
                # X + r of the other input (+ r of the output where the case has it) from the busy
                # cycles of the level that input's link fills (where its tile lands)
                filled = [p for p in others if any(p is q for q in specs[rival].levels[b - 1].ports)]
                more = [
                    [
                        lambda p=p, d=d, c=((rival, b), *out), m=add: with_first(p, c, "busy", d, m)
                        for p in strongest(tuple(filled), "busy")
                    ]
                    for d, out, add in meta
                ]
            each: list = []
            splits[0] = depth if parent is None else 0  # a part below the goal is split by r, not `branch`
            value = least_case(
                [
                    [lambda v=proven[j]: v] if j < len(proven) and proven[j] >= goal else [*c, *extra, *m]
                    for j, (c, m) in enumerate(zip(cases, more, strict=True))
                ],
                goal,
                each,
            )
            scope[:] = [None, None, {}]
            half[0] = None
            splits[0] = 1
            return value, each

        once, _ = sub_case("once", rival_terms.made_once, r_floor)
        if not repeats.any():
            return once
        # where the other's link repeats, best first by its first transfer r: a part below the goal
        # splits in two by r (each half's first transfers of op count at least its least r), until
        # the least part is proven or holds one value of r; the least part bounds them all
        r_values = np.unique(r[repeats])  # the least is the least r where the link repeats
        goal = min(goal, once)

        def part(x: int, y: int, bound: float, each: list, source) -> tuple:
            """The part of r_values[x:y] of r as a heap entry: its bound (at least `bound`, the whole's:
            it holds for each part), values, cases, and the scope name its terms are solved in."""
            where = repeats & (r >= r_values[x]) & (r <= r_values[y - 1])
            name = ("repeats", x, y)
            low, cases = sub_case(name, where, float(r_values[x]), source, each)
            return (max(low, bound), x, y, cases, name)

        parts = [part(0, len(r_values), -math.inf, [], None)]

        def close() -> bool:
            return goal * (1 - REFINE_GAP) <= parts[0][0] < goal

        if close() and len(r_values) > 1:
            # the least r first: its floor is the whole's, so if it stays below, no split can prove
            value, _, _, each, whole = parts[0]
            least_r = part(0, 1, value, each, whole)
            parts = [least_r, (value, 1, len(r_values), each, whole)]
            heapq.heapify(parts)
            if least_r[0] < goal:  # the least part bounds them all
                return min(once, parts[0][0])
        while close() and parts[0][2] - parts[0][1] > 1 and time.perf_counter() <= deadline:
            value, lo, hi, each, source = heapq.heappop(parts)
            mid = (lo + hi) // 2
            for x, y in ((lo, mid), (mid, hi)):
                heapq.heappush(parts, part(x, y, value, each, source))
        return min(once, parts[0][0])

    inner = _inner_offload(nest)
    best = cycles
    values = {}
    for op in ("W", "I"):
        if op in links and best < target:
            values[op] = op_bound(op, goal)
            best = max(best, values[op] + inner)
    if prove and best < target and values:  # split the input whose cases came closest
        op = max(values, key=values.get)
        best = max(best, op_bound(op, goal, split=True) + inner)
    if minima is not None and best < target:  # not proven: minima of the closest pairs' blends too
        for _, f, g in sorted(skipped, key=lambda x: -x[0])[:MINIMA_PAIRS]:
            for w in MINIMA_WEIGHTS:
                blended((f, g), (1 - w, w))
    # they call each other: a cycle that would keep every lattice they saw until the next collection
    case = branch = None  # noqa: F811
    # a mapping below `target` keeps to the allowed points; the others are at least `target`
    return float(min(best, target)), n_dp


def _designates(key: tuple, op: str) -> bool:
    """Whether a `_loading_bound` term's key names `op`'s link: as the operand whose first transfer
    it adds, or among the links it designates ((operand, event) pairs)."""
    return any(
        x == op or (isinstance(x, tuple) and any(isinstance(e, tuple) and e[:1] == (op,) for e in x))
        for x in key
    )


def _alone(nest, u, grid, cycles: float, memo: dict | None) -> dict[tuple[str, int], np.ndarray]:
    """Per (operand, event): a lower bound of X = cycles + stall from that event alone, per point:
    the busy cycles it adds to a port, or cycles plus its overrun there (`operand_terms`)."""
    out: dict = {}
    for spec in nest.operands:
        used = {level_port(lv, spec.name, d)[0] for lv in spec.levels for d in Direction} - {None}
        for port in used:
            for kind in ("busy", "stall"):
                t = _port_charge(nest, u, grid, spec, port, kind, cycles, memo)
                for a in range(t.first, t.n):
                    low = t.cost[a] + _x_offset(kind, cycles)
                    out[spec.name, a] = np.maximum(out.get((spec.name, a), 0.0), low)
    return out


def _undominated(
    nest, u, grid, ports: tuple, kind: str, cycles: float, memo: dict | None, windows: bool
) -> tuple:
    """The `ports` whose `kind` charge (with window stalls, if `windows`) no other of them matches or
    exceeds at every point of u's lattice (of equal ones, the first). A term that adds the same
    first transfers to a dominated port's charge is at most the other port's term at every mapping:
    its least and its blends never raise a bound beyond that term's."""
    charges = {}
    for p in ports:
        charges[p] = []
        for spec in nest.operands:
            t = _port_charge(nest, u, grid, spec, p, kind, cycles, memo)
            events = [(t.cost[a], t.window(a) if windows else None) for a in range(t.first, t.n)]
            charges[p].append((t.fixed, events))

    def covers(q, p) -> bool:  # q's charge >= p's at every point
        for (fq, eq), (fp, ep) in zip(charges[q], charges[p], strict=True):
            if fq < fp:
                return False
            for (cq, wq), (cp, wp) in zip(eq, ep, strict=True):
                if not np.all(cq >= cp) or (wp is not None and (wq is None or not np.all(wq >= wp))):
                    return False
        return True

    return tuple(
        p
        for j, p in enumerate(ports)
        if not any(covers(q, p) and (k < j or not covers(p, q)) for k, q in enumerate(ports) if k != j)
    )


def _port_charge(nest, u, grid, spec, port, kind: str, cycles: float, memo: dict | None):
    """`spec`'s `kind` charge on `port` alone (busy cycles, or overrun), no link designated."""
    return operand_terms(nest, u, grid, spec, port, memo, None, _need(kind, cycles), kind)


def _need(kind: str, cycles: float) -> float | None:
    """`operand_terms`' `need` argument for a charge `kind`: busy cycles take none, the rest the
    unrolling's temporal cycles."""
    return None if kind == "busy" else cycles


def _x_offset(kind: str, cycles: float) -> float:
    """What a `kind` charge adds up with to bound X = cycles + stall: busy cycles bound it alone, an
    overrun with the unrolling's temporal cycles."""
    return cycles if kind == "stall" else 0.0


def _ports(hw: Hardware, nest) -> list:
    """Ports carrying this layer's traffic, outermost level first (the likeliest bottlenecks)."""
    names = set(nest.operand_names)
    out = []
    for lv in reversed(hw.memories):
        for port in lv.ports:
            if any(op in names for op, _ in port.serves):
                out.append(port)
    return out


def map_latency(
    layer: Layer, hw: Hardware, objective: str, options: SolveOptions, start: float, latency_bound
):
    """Latency, EDP, or (objective "energy" with `latency_bound`) energy within a latency bound."""
    from stems.search.intra import (
        SPACE,
        LayerMapping,
        SearchStats,
        _constant_pj,
        _solve_shared,
        explain_infeasible,
    )

    nest = nest_of(layer, hw)
    space = unrollings(nest)
    ports = _ports(hw, nest)
    deadline = start + options.time_limit_s
    name = objective if latency_bound is None else f"energy@latency<={latency_bound:g}"
    cycles = {u: float(math.prod(u.trips)) for u in space}
    constant = _constant_pj(layer, hw)
    drain = {u: drain_cycles(hw, u) for u in space}
    best_key: tuple = _Key(math.inf, math.inf, None)
    best_map: Mapping | None = None
    bounds: list[float] = []  # a lower bound of the objective for every unrolling of the space
    n_dp = solved = searched = 0
    any_fits = False
    pool: list[tuple[tuple, Mapping, float]] = []
    recheck: list[tuple[int, object, object]] = []  # latency: (index in bounds, unrolling, its grid)

    def better(key, m):
        nonlocal best_key, best_map
        if key < best_key:
            best_key, best_map = key, m

    def energy_cutoff(low_latency: float) -> float:
        """The most memory energy an unrolling whose latency is at least `low_latency` may charge and
        still beat the incumbent (the lattice charges memory energy only)."""
        if objective == "edp":
            cutoff = best_key[0] / low_latency if math.isfinite(best_key[0]) else math.inf
        else:
            cutoff = best_key[0] if objective == "energy" else math.inf
        return cutoff - constant

    def energy_optimum(u, grid, low_latency: float) -> tuple[Lattice, list]:
        """u's energy lattice and its optima within `energy_cutoff` (none: E*(u) is above it)."""
        nonlocal n_dp
        lat = Lattice(nest, u, grid=grid)
        found, k, _ = _solve_shared(lat, energy_cutoff(low_latency), deadline, ties=4)
        n_dp += k
        return lat, found

    def latency_target(found) -> float:
        """A latency (drain included) at which an unrolling can no longer win: the incumbent's
        (latency); the incumbent over the unrolling's E* (EDP); just above the latency bound."""
        if objective == "latency":
            return best_key[0]
        if objective == "edp":
            return best_key[0] / (min(x[0] for x in found) + constant)
        return latency_bound * (1 + REL) + 0.5  # a bound that reaches it exceeds the latency bound

    def objective_bound(low_latency: float, e_opt: float) -> float:
        if objective == "latency":
            return low_latency
        if objective == "edp":
            return e_opt * low_latency
        return e_opt if low_latency <= latency_bound * (1 + REL) else math.inf

    links = _outer_links(nest)
    terms: dict = {}  # operand_terms' memo, shared by the bound's lattices
    reuse: dict = {}  # per unrolling, the loading bound's lattice minima (`_loading_bound`'s `solved`)

    def loading_bound(u, grid, target: float, **options) -> tuple[float, int]:
        """`_loading_bound` of u below `target` (latency less drain), with this layer's memos."""
        solved = reuse.setdefault(u, {})
        return _loading_bound(
            nest, u, grid, links, cycles[u], deadline, target, terms, solved=solved, **options
        )

    scouted: dict = {}  # the scout's busy lattices and optima, which the main loop reuses
    scout_done = False
    ordered = sorted(space, key=lambda u: (cycles[u] + drain[u], u.trips))
    for idx, u in enumerate(ordered):
        low = cycles[u] + drain[u]
        if time.perf_counter() > deadline:
            bounds += [0.0] * (len(ordered) - idx)
            break
        if solved >= EXPLORE and objective != "energy":
            # the rest keep the bound they have without a lattice (latency: cycles + drain; EDP: 0)
            bounds += [cycles[v] + drain[v] if objective == "latency" else 0.0 for v in ordered[idx:]]
            break
        if latency_bound is not None and low > latency_bound * (1 + REL):
            continue  # no mapping of u meets the latency bound
        if objective == "latency" and low >= best_key[0] * (1 - REL):
            bounds += [cycles[v] + drain[v] for v in ordered[idx:]]
            break  # sorted: no later unrolling can be faster
        # unrollings still to bound that are faster than the incumbent by their cycles alone (a prefix:
        # the others cannot beat it, so scouting them would only spend solves)
        faster = [v for v in ordered[idx:] if cycles[v] + drain[v] < best_key[0] * (1 - REL)]
        if idx and not scout_done and ports and objective == "latency" and len(faster) > SCOUT:
            scout_done = True
            found, k = scout(layer, hw, faster, ports[0], deadline, terms, scouted)
            n_dp += k
            for m, key in found:
                better(key, m)
        # latency >= max(cycles, busy cycles of any port) + drain: the lattice minimises the busy cycles
        grid = None
        seeds: list[Mapping] = []
        busy = None
        for port in ports[:1]:
            if u in scouted:
                lat, found = scouted.pop(u)
            else:
                # under a latency bound, `any_fits` must be exact: it tells infeasible from not found
                lat, found, k, _ = least_busy(nest, u, port, terms, deadline, latency_bound is not None)
                n_dp += k
            grid = lat.grid
            if not found:
                break
            r_min, chain = min(found, key=lambda x: x[0])
            busy = (lat, r_min, chain)
            low = max(low, cycles[u] + max(r_min - cycles[u], 0.0) + drain[u])
            seeds.append(lat.mapping(chain))
        else:
            found = True
        if not found:
            continue  # nothing fits in u
        any_fits = True
        # EDP, energy under a latency bound: E*(u) first, it turns the incumbent into a latency target
        lat, found = energy_optimum(u, grid, low) if objective != "latency" else (None, None)
        if objective == "latency" and not math.isfinite(best_key[0]):
            # no incumbent yet: the least-busy mapping gives the loading bound a target to stop at
            for key, m in zip(
                _keys(price_batch(layer, hw, seeds), objective, None, seeds), seeds, strict=True
            ):
                better(key, m)
        if found != [] and not (objective == "latency" and low >= best_key[0] * (1 - REL)):
            bound, k = loading_bound(u, grid, latency_target(found) - drain[u], busy=busy)
            n_dp += k
            low = max(low, bound + drain[u])
        if objective == "latency" and low >= best_key[0] * (1 - REL):
            bounds.append(low)
            continue
        if latency_bound is not None and low > latency_bound * (1 + REL):
            continue
        if found is None:
            lat, found = energy_optimum(u, grid, low)
        if not found:
            bounds.append(best_key[0])  # E*(u) is above the incumbent
            continue
        e_opt, chain = min(found, key=lambda x: x[0])
        e_opt += constant  # operations and neuron updates
        if objective == "edp" and e_opt * low >= best_key[0] * (1 - REL):
            bounds.append(e_opt * low)
            continue
        solved += 1
        tied = list(dict.fromkeys(lat.mapping(c) for c in chain.tied(lat)))
        seeds = tied + seeds
        u_bound = objective_bound(low, e_opt)
        table = price_batch(layer, hw, seeds)
        keys = _keys(table, objective, latency_bound, seeds)
        for key, m in zip(keys, seeds, strict=True):
            better(key, m)
        exact = objective == "energy" and min(keys[: len(tied)])[0] <= u_bound * (1 + REL)
        if not exact:
            pool += [(key, m, u_bound) for key, m in zip(keys, seeds, strict=True)]
        if objective == "latency":
            recheck.append((len(bounds), u, grid))
        bounds.append(u_bound)
    # refine: local search from the best seeds that can still win; within CLOSE of the bound, from
    # more of them (a few more descents often find the mapping that meets it)
    pool.sort(key=lambda x: x[0])
    for lo, hi in ((0, REFINE), (REFINE, REFINE_CLOSE)):
        low_bound = min(bounds, default=0.0)
        if lo and not low_bound < best_key[0] * (1 - REL) <= low_bound * (1 + CLOSE):
            break
        starts = [m for _, m, u_bound in pool[lo:hi] if u_bound < best_key[0] * (1 - REL)]
        if starts and time.perf_counter() <= deadline:
            for m, key in local_search(
                layer, hw, starts, objective, latency_bound, deadline, floor=low_bound
            ):
                better(key, m)
            searched += len(starts)
    # prove: bound again with the final incumbent as target (`_loading_bound` then rules out every
    # point that alone would reach it, so its lattices see fewer mappings), lowest bound first; once
    # one stays below the incumbent the layer is not proven, and the rest would not change that. The
    # failed proof's lattice minima are priced: if one beats the incumbent, the search descends from
    # it and proves again with the new target
    for _ in range(PROVE_PASSES):
        improved = False
        for idx, u, grid in sorted(recheck, key=lambda x: bounds[x[0]]):
            if bounds[idx] >= best_key[0] * (1 - REL) or time.perf_counter() > deadline:
                continue
            minima: list = []
            bound, k = loading_bound(u, grid, best_key[0] - drain[u], prove=True, minima=minima)
            n_dp += k
            bounds[idx] = max(bounds[idx], bound + drain[u])
            if bounds[idx] < best_key[0] * (1 - REL):
                maps = list(dict.fromkeys(lat.mapping(chain) for lat, chain in minima))
                top = _cheapest(layer, hw, maps, objective, latency_bound)
                if top is not None and top < best_key:
                    floor = min(bounds)
                    descent = local_search(
                        layer, hw, [top[2]], objective, latency_bound, deadline, floor=floor
                    )
                    for m, key in descent:
                        better(key, m)
                    improved = True
                break
        if not improved:
            break
    if options.proof_depth > 1:  # a deeper proof of the unrollings the quick one left open
        for idx, u, grid in sorted(recheck, key=lambda x: bounds[x[0]]):
            if bounds[idx] >= best_key[0] * (1 - REL) or time.perf_counter() > deadline:
                continue
            bound, k = loading_bound(u, grid, best_key[0] - drain[u], prove=True, depth=options.proof_depth)
            n_dp += k
            bounds[idx] = max(bounds[idx], bound + drain[u])
            if bounds[idx] < best_key[0] * (1 - REL):
                break
    wall = time.perf_counter() - start
    stats = SearchStats(len(space), solved, len(space) - solved, n_dp, searched)
    if best_map is None or not math.isfinite(best_key[0]):
        timed_out = time.perf_counter() > deadline
        if latency_bound is not None and any_fits:
            reason = f"no mapping found within latency {latency_bound:g} cycles"
        elif latency_bound is not None:
            reason = (
                f"no unrolling reaches latency <= {latency_bound:g} cycles (the fastest needs at least "
                f"{min(cycles[u] + drain[u] for u in space):.0f}) or nothing fits"
            )
        else:
            reason = explain_infeasible(layer, hw, space)
        proven = latency_bound is None or not any_fits
        status = Status.TIMED_OUT if timed_out or not proven else Status.INFEASIBLE
        return LayerMapping(
            layer.name,
            name,
            None,
            None,
            SolveResult(status, None, None, wall, options.workers, options.seed),
            space=SPACE,
            reason=reason,
            stats=stats,
        )
    best_map = merge_loops(best_map)
    cost = price_batch(layer, hw, [best_map]).cost(0)
    value = best_key[0]
    bound = min(bounds) if bounds else value
    status = Status.OPTIMAL if value <= bound * (1 + REL) + 1e-9 else Status.FEASIBLE
    wall = time.perf_counter() - start
    return LayerMapping(
        layer.name,
        name,
        best_map,
        cost,
        SolveResult(status, value, min(bound, value), wall, options.workers, options.seed),
        space=SPACE,
        stats=stats,
    )


def drain_cycles(hw: Hardware, u: Unrolling) -> float:
    """The systolic drain of unrolling u: a cycle per PE beyond the first along each systolic array
    dimension (stems.cost.latency's drain, which depends on the unrolling only)."""
    return float(sum(max(n - 1, 0) for n, a in zip(u.used, hw.array.dims, strict=True) if a.systolic))


def _highest_point(lines: list[tuple[float, float]]) -> tuple[float, float]:
    """The w in [0, 1] where the lowest of the lines w -> (1 - w) a + w b is highest, and that value."""

    def at(w: float, a: float, b: float) -> float:
        return (0.0 if w == 1 else (1 - w) * a) + (0.0 if w == 0 else w * b)

    cands = {0.0, 1.0}
    for (a1, b1), (a2, b2) in itertools.combinations(lines, 2):
        den = (b1 - a1) - (b2 - a2)
        if math.isfinite(den) and den != 0:
            w = (a2 - a1) / den
            if 0.0 < w < 1.0:
                cands.add(w)
    return max(((w, min(at(w, a, b) for a, b in lines)) for w in sorted(cands)), key=lambda x: x[1])


def _simplex_top(rows: list[list[float]], goal: float) -> tuple[list[float], float]:
    """The weights w (w >= 0, sum 1) where the lowest of the planes w -> sum_i w_i rows[c][i] is
    highest, and that value: a linear program (OR-Tools' GLOP). A charge of inf (a lattice rules the
    mapping out) counts as `CAP` x `goal`: finite for the program, and far above any plane that
    can keep the weights below the goal. (Imported here: only deeper proofs need it, and the
    import takes 40 ms.)"""
    from ortools.linear_solver import pywraplp

    lp = pywraplp.Solver.CreateSolver("GLOP")
    weights = [lp.NumVar(0.0, 1.0, "") for _ in rows[0]]
    top = lp.NumVar(-lp.infinity(), lp.infinity(), "")
    lp.Add(sum(weights) == 1)
    cap = CAP * goal
    for row in rows:
        lp.Add(top <= sum(min(v, cap) * w for v, w in zip(row, weights, strict=True)))
    lp.Maximize(top)
    if lp.Solve() != pywraplp.Solver.OPTIMAL:
        return [1.0 / len(weights)] * len(weights), -math.inf
    return [max(w.solution_value(), 0.0) for w in weights], top.solution_value()


def _both(a: dict | None, b: dict | None) -> dict | None:
    """Two `Lattice(allowed=...)` masks at once: an event is allowed where both allow it."""
    if not a or not b:
        return a or b
    out = dict(a)
    for e, mask in b.items():
        out[e] = out[e] & mask if e in out else mask
    return out
