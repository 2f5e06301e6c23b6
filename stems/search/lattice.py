"""Exact energy of every loop nest of one spatial unrolling, as costs on the divisor lattice of the trips.

The temporal nest is an order of the trips' prime factors; an operand's memory level holds the
innermost `cut` of them. What `stems.cost` charges depends on the order only through *prefixes*: the
product of the factors below a position, per loop (a point P of the lattice of divisors of the trips).

* Stationarity raises a cut past the operand's reuse loops directly above it, and the raised cut has
  the same tile (reuse loops do not index the operand). So every mapping prices exactly like the one
  whose cuts sit at their raised positions, and each operand's cost is a sum of *event* terms, one per
  architecture level a = 0 .. n-1 of its chain, each a function of one lattice point P_a:
  ``cost(o, a, P) = sum over the moves at levels a-1 and a of rounded bits x transfers x copies x pJ``,
  with transfers = (trips of o) / (product of P), the tile of level a-1 from P's relevant part, and
  partial-sum bits while a reduction remains above P. Event 0 of an input is its bottom reuse run
  (P holds reuse loops only); event 0 of an output is fixed (period 1).
* The points of all operands' events form one chain P_0 <= P_1 <= ... (prefixes of one order), each
  point a valid prefix (stateful layers: no T factor before every C, FY, FX factor is in).
* Conversely any chain of event points is realised by an order that walks it (`Lattice.mapping`);
  there each cut may rise further (a reuse loop placed right above it), which only lowers transfers,
  and partial sums finish no later (they are at least as wide as finished outputs), so the realised
  mapping costs at most the chain's charge.

Hence min over chains = min over mappings, and the argmin chain's realisation prices exactly at that
minimum (`stems.search.intra._check` asserts it with `stems.cost.price` on every answer).

`Lattice.solve` computes that minimum by dynamic programming over states (P, progress of every
operand): growing P by a factor is free (a running minimum along every lattice axis), an operand's
next event at P adds its term. Each state only keeps the box of points from which its pending
events are still reachable. Capacity is a mask on an event's P: the level's tile at P times its
bits (partial sums if the previous event's point left a reduction open, which the state remembers),
doubled if double-buffered and not the whole remaining operand. Levels shared by several operands
get per-operand budgets; `stems.search.intra` splits budgets (branch and bound) when the unsplit
optimum overflows a shared level.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise

import numpy as np

from stems.cost.mapping import Mapping
from stems.cost.nest import DIM_INDEX, Nest, OperandSpec
from stems.cost.sample import prime_factors
from stems.hardware.spec import Direction
from stems.search.spatial import Unrolling
from stems.workload.model import LOOP_DIMS, REDUCTION_DIMS

TO_LOW, FROM_HIGH, FROM_LOW, TO_HIGH = tuple(Direction)
_Y = (DIM_INDEX["OY"], DIM_INDEX["FY"])
_X = (DIM_INDEX["OX"], DIM_INDEX["FX"])
INF = math.inf
TIE_STEPS = 256  # steps of `Lattice._backtrack`'s search for a tied chain that fits shared levels


def _axes(trips: tuple[int, ...]) -> tuple[tuple[int, int, int], ...]:
    """The grid's axes: (loop, prime, exponent) for each prime of each loop's trips."""
    axes = []
    for d, t in enumerate(trips):
        primes = prime_factors(t)
        axes += [(d, p, primes.count(p)) for p in sorted(set(primes))]
    return tuple(axes)


class Grid:
    """The lattice of divisors of the trips: one axis per (loop, prime), index = exponent."""

    def __init__(self, trips: tuple[int, ...]) -> None:
        self.trips = trips
        self.axes = axes = _axes(trips)
        self.shape = tuple(e + 1 for _, _, e in axes) or (1,)
        self.size = math.prod(self.shape)
        nd = len(self.shape)
        self.value = []  # per loop: prefix product, broadcastable to the grid
        one = np.ones((1,) * nd, dtype=np.int64)
        one.flags.writeable = False  # shared by the loops without primes
        for d in range(len(trips)):
            v = one
            for k, (dd, p, e) in enumerate(axes):
                if dd == d:  # p's powers: a short list, quicker built in Python than by numpy
                    shape = [1] * nd
                    shape[k] = e + 1
                    powers = np.array([p**i for i in range(e + 1)], dtype=np.int64).reshape(shape)
                    v = powers if v is one else v * powers
            self.value.append(v)
        self.full = tuple(e for _, _, e in axes) if axes else (0,)

        self._counts: dict[frozenset[int], np.ndarray] = {}
        self._masks: dict[tuple, np.ndarray] = {}

    def full_of(self, dims: set[int]) -> np.ndarray:
        """Boolean (broadcastable to the grid): the loops `dims` are complete (prefix = trips)."""
        return self._corner(dims, full=True)

    def zero_of(self, dims: set[int]) -> np.ndarray:
        """Boolean (broadcastable to the grid): none of the loops `dims` has started."""
        return self._corner(dims, full=False)

    def _corner(self, dims: set[int], full: bool) -> np.ndarray:
        """True at one point of the axes of the loops `dims` (each at its largest exponent if `full`,
        else at 0), spread along the others (broadcastable); built once per grid."""
        key = (full, frozenset(dims))
        if key not in self._masks:
            shape = [e + 1 if d in dims else 1 for d, _, e in self.axes] or [1]
            out = np.zeros(shape, dtype=bool)
            out[tuple(e if full and d in dims else 0 for d, _, e in self.axes)] = True
            self._masks[key] = out
        return self._masks[key]

    def count(self, absent: frozenset[int]) -> np.ndarray:
        """Iterations above each point of the loops not in `absent` (trips / prefix), full grid."""
        if absent not in self._counts:
            out = np.ones(self.shape, dtype=np.int64)
            for d, t in enumerate(self.trips):
                if d not in absent and t > 1:
                    out = out * (t // self.value[d])
            self._counts[absent] = out
        return self._counts[absent]

    def above(self, dims: frozenset[int]) -> np.ndarray:
        """Iterations above each point of the loops `dims` (trips / prefix, as floats), broadcastable."""
        key = ("above", dims)
        if key not in self._masks:
            out = np.float64(1.0)
            for d in sorted(dims):
                out = out * (self.trips[d] / self.value[d])
            self._masks[key] = out
        return self._masks[key]

    def factors_between(self, lo: tuple[int, ...], hi: tuple[int, ...]) -> list[tuple[int, int]]:
        """(loop, prime) factors from point lo up to point hi (one entry per prime factor)."""
        out = []
        for k, (d, p, _) in enumerate(self.axes):
            out += [(d, p)] * (hi[k] - lo[k])
        return out


def _extent(nest: Nest, axis: int, out: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    a, b = np.floor(out + 1e-9), np.floor(kernel + 1e-9)
    s, d = nest.stride[axis], nest.dilation[axis]
    g = math.gcd(s, d)
    raw = a * b - np.maximum(0, b - s // g) * (a - d // g)
    return np.minimum(nest.input_yx[axis], raw)


def _elements_scalar(nest: Nest, spec: OperandSpec, size: list[float]) -> float:
    """`_elements` for plain numbers (the unrolling's per-loop factors)."""
    out = 1.0
    for d in LOOP_DIMS:
        if d in spec.relevant:
            out *= size[DIM_INDEX[d]]
    if spec.window:
        for axis, (o, k) in enumerate((_Y, _X)):
            a, b = math.floor(size[o] + 1e-9), math.floor(size[k] + 1e-9)
            st, dl = nest.stride[axis], nest.dilation[axis]
            g = math.gcd(st, dl)
            raw = a * b - max(0, b - st // g) * (a - dl // g)
            out *= min(nest.input_yx[axis], raw)
    return out


def _elements(nest: Nest, spec: OperandSpec, size: list) -> np.ndarray:
    """Elements of an operand tile from per-loop sizes (a list of arrays or scalars, LOOP_DIMS order)."""
    out = np.float64(1.0)
    for d in LOOP_DIMS:
        if d in spec.relevant:
            out = out * size[DIM_INDEX[d]]
    if spec.window:
        out = out * _extent(nest, 0, size[_Y[0]], size[_Y[1]])
        out = out * _extent(nest, 1, size[_X[0]], size[_X[1]])
    return out


@lru_cache(maxsize=4096)
def level_port(lv, operand: str, direction):
    """The port carrying `operand` in `direction` at lv and its pJ per bit, (None, 0) if none."""
    pt = next((p for p in lv.ports if (operand, direction) in p.serves), None)
    return pt, (lv.pj_per_bit(operand, direction) if pt is not None else 0.0)


def _rounded(lv, port, spec: OperandSpec, amount, bits, rates: dict[str, float]):
    """Bits one transfer moves, as stems.cost.model._accesses rounds them."""
    rounded = port.min_bits * np.ceil(amount * bits / port.min_bits)
    if lv.skips_zeros and spec.name in rates:
        expected = amount * rates[spec.name]
        packed = port.min_bits * np.ceil(expected * bits / port.min_bits)
        single = expected * port.min_bits * np.ceil(bits / port.min_bits)
        rounded = np.where(bits == spec.bits, np.where(expected >= 1, packed, single), rounded)
    return rounded


class _LazyCost:
    """Event a's full-grid charge, built on first use from the per-tile rates (see OperandTerms)."""

    def __init__(self, terms: OperandTerms) -> None:
        self.terms = terms
        self.cache: dict[int, np.ndarray] = {}

    def __getitem__(self, a: int) -> np.ndarray:
        if a not in self.cache:
            self.cache[a] = self.terms._full(a)
        return self.cache[a]

    def values(self):
        t = self.terms
        return [self[a] for a in range(t.first, t.n)]


class _PerEvent(dict):
    """A per-event dict whose missing events are built on first read (`OperandTerms.build`)."""

    def __init__(self, build: Callable[[int], None], items: dict) -> None:
        super().__init__(items)
        self.build = build

    def __missing__(self, a: int):
        self.build(a)
        return dict.__getitem__(self, a)


@dataclass
class OperandTerms:
    """One operand's event costs on the grid for one unrolling.

    Events a = first .. n-1 (inputs start at 0, outputs at 1: their level-0 term is fixed). For event
    a: `cost[a]` (full grid, inf where the point is not allowed; built when first used), `psum[a]`
    (grid bool: a reduction remains, outputs only), `held[a][f]` (bits the tile of memory level a-1
    takes at the point, f = the previous event left partial sums; broadcastable), and `top_held[f]`
    for the outermost level.

    A charge is rate x transfers: `rate[a]` (per transfer, a function of the tile, so on the
    relevant axes only; for outputs a pair, without and with partial sums) times `count` (the
    iterations above the point, full grid).
    """

    spec: OperandSpec
    first: int
    n: int
    fixed: float
    psum0: bool
    grid: Grid | None = None
    count: np.ndarray | None = None
    busy: bool = False
    onload: int | None = None  # busy charge only: this event also pays its first transfer (see operand_terms)
    once: bool = False  # the `onload` event pays it where its move is made once instead
    at_least: float = 0.0  # that first transfer counts at least this (on-loading waits for another link too)
    need: tuple[float, float, str] | None = None  # (cycles, port width, "need" or "stall"): see operand_terms
    zero: np.ndarray | None = None  # inputs: where the bottom reuse run may end (reuse loops only)
    rate: dict[int, object] = field(default_factory=dict)
    used: frozenset[int] = frozenset()  # loops a tile depends on
    fanout: tuple[float, ...] = ()  # per level: copies of a tile the level sends down at once
    psum: dict[int, np.ndarray] = field(default_factory=dict)
    ps_small: dict[int, object] = field(default_factory=dict)
    held: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    build: Callable[[int], None] | None = None  # fills event a's entries of the dicts above
    top_held: tuple[float, float] = (0.0, 0.0)
    reuse_dims: frozenset[int] = frozenset()
    absent_dims: frozenset[int] = frozenset()
    always_psum: dict[int, bool] = field(default_factory=dict)
    # with a port: cycles of one transfer at the lower end of event a's link (the level filled or
    # emptied), which on- or off-loading also waits for (stems.cost.latency takes the slower end)
    near: dict[int, object] = field(default_factory=dict)
    # inputs: where the level event a fills (a-1) cannot double-buffer, its tile taking over half of it
    single: dict[int, object] = field(default_factory=dict)
    _least: dict[int, float] = field(default_factory=dict)
    _reach: dict[int, tuple[int | None, ...] | None] = field(default_factory=dict)
    _least_held: dict[int, float] = field(default_factory=dict)
    _window: dict[int, np.ndarray | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cost = _LazyCost(self)
        if self.build is not None:  # events are built when first read: a bound may need only some
            for name in ("rate", "psum", "ps_small", "held", "always_psum", "near", "single"):
                if not isinstance(getattr(self, name), _PerEvent):  # else shared (operand_terms' memo)
                    setattr(self, name, _PerEvent(self.build, getattr(self, name)))

    @property
    def counts(self) -> np.ndarray:
        """Transfers per point: iterations of the operand's loops above it (beyond the first, for busy
        cycles)."""
        if self.count is None:
            c = self.grid.count(self.absent_dims)
            self.count = np.maximum(c - 1, 0) if self.busy else c
        return self.count

    def _full(self, a: int) -> np.ndarray:
        if self.need is not None:
            charge, first = self._need(a)
        else:
            charge = self._charge(a)
            first = self.rate[a][0] if self.spec.output else self.rate[a]
        if a != self.onload:
            return charge
        # the first transfer too (finished outputs only), where the move repeats: the slower end of
        # the link; or where it is made once: the upper end, or the lower end at a = 1 (prefetching
        # cannot shorten that one, see `operand_terms`)
        if not self.once or a == 1:
            first = np.maximum(first, self.near[a])
        first = np.maximum(first, self.at_least)
        if self.spec.output:
            first = np.where(self.ps_small[a], 0.0, first)
        return np.where(self.made_once if self.once else self.repeats, charge + first, INF)

    @property
    def made_once(self) -> np.ndarray:
        """Where the operand's move at an event point is made once: no loop left above it."""
        return self.grid.count(self.absent_dims) == 1

    @property
    def repeats(self) -> np.ndarray:
        """Where a mapping's move at an event point repeats: a loop that indexes the operand is left
        above it. An event point is a raised cut (`stems.search.lattice`): a loop that does not
        index the operand is never right above one, so where only such loops are left, the move is
        made once."""
        return self.grid.count(self.absent_dims | self.reuse_dims) >= 2

    def _charge(self, a: int) -> np.ndarray:
        shape = self.grid.shape
        if a == 0 and not self.spec.output:
            return np.where(self.zero, self.rate[0] * self.counts, INF)
        if self.spec.output:
            lo, hi = self.rate[a]
            return np.broadcast_to(np.where(self.ps_small[a], hi, lo) * self.counts, shape)
        return np.broadcast_to(self.rate[a] * self.counts, shape)

    def _need(self, a: int) -> tuple[np.ndarray, np.ndarray]:
        """Bandwidth need or stall charge (see `operand_terms`) per repeating move, and the cycles
        of one transfer."""
        cycles, width, kind = self.need
        every = self.grid.count(self.absent_dims)
        bits = self.rate[a]
        if self.spec.output:
            bits = np.where(self.ps_small[a], bits[1], bits[0])
        if kind == "need":
            per = np.floor(bits * every / cycles) * (cycles / width)
        elif kind == "first":
            per = 0.0
        else:
            per = np.maximum(0.0, np.ceil(bits / width) - cycles / every) * (every - 1)
        charge = np.where(every >= 2, per, 0.0)
        if a == 0 and not self.spec.output:
            charge = np.where(self.zero, charge, INF)
        return np.broadcast_to(charge, self.grid.shape), np.ceil(bits / width)

    @property
    def segment(self) -> tuple[bool, ...]:
        """Per grid axis: whether its loop is one of the operand's reuse loops (and not absent)."""
        return tuple(d in self.reuse_dims and d not in self.absent_dims for d, _, _ in self.grid.axes)

    def window(self, a: int) -> np.ndarray | None:
        """Stall charge only: what event a's move overruns beyond its `_need` charge when only reuse
        loops (`segment`) lie between the chain's previous event and this one (`Lattice.solve`).
        They are then the top of the loops of the level the move fills, and where that level cannot
        double-buffer (inputs, `single`), stems.cost.latency allows a transfer the period over their
        product (at least the least prime of those loops), not the whole period. None: nowhere."""
        if self.need is None or self.need[2] != "stall" or self.spec.output or a < 1:
            return None
        if a not in self._window:
            primes = [p for (_, p, _), seg in zip(self.grid.axes, self.segment, strict=True) if seg]
            out = None
            if primes:
                cycles, width, _ = self.need
                every = self.grid.count(self.absent_dims)
                real = np.ceil(self.rate[a] / width)
                period = cycles / every
                more = np.maximum(0.0, real - period / min(primes)) - np.maximum(0.0, real - period)
                out = np.where(self.single[a] & (every >= 2), more * (every - 1), 0.0)
            self._window[a] = np.broadcast_to(out, self.grid.shape) if out is not None and out.any() else None
        return self._window[a]

    def least(self, k: int) -> float:
        """Smallest charge of event k anywhere (capacity ignored): a lower bound. The rate depends on
        the tile only, and completing every other loop below the point minimises the transfers (and
        leaves no partial sum unless a spatial reuse loop keeps one open)."""
        if k not in self._least and (k == self.onload or self.need is not None):
            self._least[k] = float(np.min(self.cost[k]))
        if k not in self._least:
            grid = self.grid
            live = [d for d, t in enumerate(grid.trips) if t > 1 and d not in self.absent_dims]
            if k == 0 and not self.spec.output:  # the bottom run: no non-reuse loop below the point
                left = math.prod(grid.trips[d] for d in live if d not in self.reuse_dims)
                low = self.rate[0] * (max(left - 1, 0) if self.busy else left)
            else:
                left = grid.above(frozenset(d for d in live if d in self.used))
                if self.busy:
                    left = np.maximum(left - 1, 0)
                rate = self.rate[k]
                if self.spec.output:
                    rate = rate[1] if self.always_psum[k] else np.minimum(rate[0], rate[1])
                low = np.min(rate * left)
            self._least[k] = float(low)
        return self._least[k]

    def least_held(self, a: int) -> float:
        """The smallest bits the tile of memory level a-1 takes anywhere (any flag)."""
        if a not in self._least_held:
            lo, hi = self.held[a]
            self._least_held[a] = float(np.min(lo) if lo is hi else min(np.min(lo), np.min(hi)))
        return self._least_held[a]

    def reach(self, k: int) -> tuple[int | None, ...] | None:
        """Per grid axis, the largest index where event k may happen within its level's whole size
        (None: anywhere along that axis); None if nowhere."""
        if k not in self._reach:
            if k == 0:
                alive = np.asarray(self.zero)
            else:
                lo, hi = self.held[k]
                held = lo if lo is hi else np.minimum(lo, hi)  # inputs hold one size
                alive = np.asarray(held <= self.spec.levels[k - 1].size_bits)
            nz = np.nonzero(alive)
            self._reach[k] = (
                tuple(None if n == 1 else int(i.max()) for n, i in zip(alive.shape, nz, strict=True))
                if len(nz[0])
                else None
            )
        return self._reach[k]

    def at_origin(self, k: int) -> float:
        """The charge of event k at the origin (no temporal loop below it; capacity ignored)."""
        grid = self.grid
        origin = (0,) * len(grid.shape)
        total = math.prod(t for d, t in enumerate(grid.trips) if d not in self.absent_dims)
        count = max(total - 1, 0) if self.busy else total
        if k == self.onload or self.need is not None:
            return float(self.cost[k][origin])
        if k == 0 and not self.spec.output:
            return float(self.rate[0] * count)
        rate = self.rate[k]
        if self.spec.output:
            rate = rate[1] if _at(self.ps_small[k], origin) else rate[0]
        return float(_at(rate, origin) * count)

    @property
    def flagged(self) -> bool:
        """Whether partial-sum bits differ from final bits (the DP state must remember the flag)."""
        return self.spec.output and self.spec.psum_bits != self.spec.bits


@dataclass(frozen=True)
class _SpecInfo:
    """What operand_terms needs of an operand spec, derived once per spec (hashing a spec, with its
    levels, costs more than an event's arithmetic): loop indices and the ports of its levels; and
    per spatial unrolling seen, what the spec makes of it (`_spatial`: the search and its bounds ask
    for the same spec and unrolling many times, and layers of one network share unrollings)."""

    absent: frozenset[int]
    reuse: frozenset[int]
    nonreuse: frozenset[int]
    used: frozenset[int]  # loops its tiles depend on (relevant or window)
    used_order: tuple[int, ...]  # the same, in order
    ports: dict[tuple[int, Direction], tuple]  # (level index, direction) -> (port or None, pJ per bit)
    spatial: dict = field(default_factory=dict, compare=False, repr=False)


def _spatial(spec: OperandSpec, info: _SpecInfo, sp_rows: np.ndarray) -> tuple:
    """The spatial factors as `spec` sees them (its absent loops at 1), per array dimension: the rows
    that are not all ones (with the level each enters at), per level the product of the rows entering
    at or below it (in row order, as stems.cost multiplies them), the copies of each level, per
    level whether a spatial reuse loop is open at or above it, and the products on the loops the
    tiles use (`used_order`)."""
    key = sp_rows.tobytes()
    if key in info.spatial:
        return info.spatial[key]
    nd, n, entry = len(LOOP_DIMS), len(spec.levels), spec.entry
    sp = [[1.0 if d in info.absent else float(x) for d, x in enumerate(row)] for row in sp_rows.tolist()]
    rows = [(e, r) for e, r in zip(entry, sp, strict=True) if any(x != 1.0 for x in r)]
    below = []
    for m in range(n):
        out = [1.0] * nd
        for e, r in rows:
            if e <= m:
                out = list(map(operator.mul, out, r))
        below.append(out)
    row_prod = [math.prod(r) for r in sp]
    instances = [
        float(round(round(math.prod(p for p, e in zip(row_prod, entry, strict=True) if e >= a), 3)))
        for a in range(n + 1)
    ]
    row_open = [any(r[d] > 1 for d in info.reuse) for r in sp]
    sp_open = [any(o for o, e in zip(row_open, entry, strict=True) if e >= a) for a in range(n + 2)]
    seen = tuple(tuple(b[d] for d in info.used_order) for b in below)  # what the tiles see of it
    if len(info.spatial) > 4096:  # a long session: keep memory bounded
        info.spatial.clear()
    info.spatial[key] = out = (rows, below, instances, sp_open, seen)
    return out


_INFO_OF: dict[int, tuple[OperandSpec, _SpecInfo]] = {}  # id(spec) -> (spec, its info)


def _info(spec: OperandSpec) -> _SpecInfo:
    """`_spec_info(spec)`, looked up by the spec's identity first: operand_terms asks for the same
    spec object thousands of times, and hashing a spec (with its levels) costs more than the rest
    of the lookup. The entry keeps its spec alive, so an id is not reused while it is there."""
    hit = _INFO_OF.get(id(spec))
    if hit is not None and hit[0] is spec:
        return hit[1]
    if len(_INFO_OF) > 256:
        _INFO_OF.clear()
    info = _spec_info(spec)
    _INFO_OF[id(spec)] = (spec, info)
    return info


@lru_cache(maxsize=256)
def _spec_info(spec: OperandSpec) -> _SpecInfo:
    reuse = frozenset(DIM_INDEX[d] for d in spec.reuse)
    used = frozenset(DIM_INDEX[d] for d in spec.relevant) | (
        frozenset(_Y + _X) if spec.window else frozenset()
    )
    ports = {(i, dr): level_port(lv, spec.name, dr) for i, lv in enumerate(spec.levels) for dr in Direction}
    absent = frozenset(DIM_INDEX[d] for d in spec.absent)
    return _SpecInfo(
        absent, reuse, frozenset(range(len(LOOP_DIMS))) - reuse, used, tuple(sorted(used)), ports
    )


def operand_terms(
    nest: Nest,
    u: Unrolling,
    grid: Grid,
    spec: OperandSpec,
    port=None,
    memo: dict | None = None,
    onload: int | None = None,
    need: float | None = None,
    kind: str = "need",
    once: bool = False,
    at_least: float = 0.0,
) -> OperandTerms:
    """Event charges of `spec` under unrolling `u`, following stems.cost.traffic move by move.

    A move's price is (bits per transfer, rounded) x copies x pJ per bit x transfers; everything but
    the transfers depends only on the tile (the point's relevant axes) and the partial-sum state (its
    reuse axes), so it is computed on those broadcast shapes; the transfers multiply in when a full
    grid is needed (`OperandTerms.cost`).

    With `port` (a `Port` of the hardware) the charge is instead that port's busy cycles beyond each
    move's first transfer, sum of ceil(elements x bits / port width) x (transfers - 1) over the moves
    it carries, as stems.cost.latency times them (a lower bound of the latency, see intra_latency).
    With `onload` (an event index, with `port`) that event's move also pays its first transfer (the
    transfer on- or off-loading waits for when the move repeats; an output's only when it is final)
    and is allowed only where it repeats; with `once` too, only where it is made once (and pays the
    transfer there, before prefetching shortens it: a lower end at a = 1 moves the innermost tile,
    which stems.cost.latency never shortens). `at_least`: that first transfer counts at least this.

    With `need` (the unrolling's temporal cycles, with `port`) the charge is instead, per repeating
    load on the port (inputs going down, outputs going up), `kind` "need": the bandwidth it reserves
    over the layer, floor(bits per transfer / period) x cycles / port width, as stems.cost.latency
    counts it against prefetching; "stall": the cycles its transfers overrun their periods,
    (cycles per transfer - period)+ x (transfers - 1), a part of the port's stall (windows are at
    most a period); "first": nothing but the `onload` event's first transfer (that one link's share
    of on-loading, to add to another port's charges).

    `memo` (one per nest): unrollings that agree on what the operand's tiles see (the grid's axes of
    its relevant and window loops, the spatial factors on those loops per level, the copies, the
    fan-outs and where a spatial reuse loop is open) share its rates, tiles and least charges; and
    the lattices of one unrolling that ask for the same terms share them whole (charges included).
    """
    same_terms = (spec.name, port, onload, once, at_least, need, kind, grid.trips, u.sp.tobytes())
    if memo is not None and same_terms in memo:
        return memo[same_terms]
    n = len(spec.levels)
    rates = {"I": nest.layer.rates.I, "O": nest.layer.rates.O}
    info = _info(spec)
    absent, reuse, nonreuse, used = info.absent, info.reuse, info.nonreuse, info.used
    nd = len(LOOP_DIMS)
    # the unrolling's per-array-dimension factors as plain lists (tiny: Python beats numpy here)
    rows, below, instances, sp_open, seen = _spatial(spec, info, u.sp)
    trips = [1 if d in absent else t for d, t in enumerate(grid.trips)]
    total = math.prod(trips)
    fanout = _fanout(nest, spec, rows)
    reuse_left = any(trips[d] > 1 for d in reuse)
    busy = port is not None
    count = None  # transfers per point: built with the first full-grid charge (OperandTerms.counts)
    rate = _rate_of(spec, info, rates, port, need)

    remaining = ~grid.full_of(reuse - absent) if spec.output else None  # a reuse loop remains above
    whole = grid.full_of(nonreuse - absent) if any(lv.double_buffered for lv in spec.levels) else None
    sizes = grid.value

    def event(a: int) -> None:
        """Event a's partial-sum state, and its rates and tiles unless shared (`OperandTerms.build`)."""
        if not max(1, out.first) <= a < n:
            return
        if spec.output and a not in out.psum:
            ps = remaining | sp_open[a + 1]
            out.ps_small[a] = ps
            out.psum[a] = np.broadcast_to(ps, grid.shape)
        if a in out.held:
            return
        scale = below[a - 1]
        tile = np.rint(
            _elements(nest, spec, [sizes[d] * scale[d] if scale[d] != 1.0 else sizes[d] for d in range(nd)])
        )
        lo = a - 1
        out.rate[a] = _event_rate(rate, spec, a, tile, fanout, instances)
        if spec.output:
            out.always_psum[a] = sp_open[a + 1]
        if port is not None:
            pt = info.ports[lo, TO_HIGH if spec.output else FROM_HIGH][0]
            out.near[a] = np.ceil(tile * spec.bits / pt.bw_bits) if pt is not None else 0.0
        dbl = np.where(whole, 1.0, 2.0) if spec.levels[lo].double_buffered else 1.0
        if spec.output:
            out.held[a] = (tile * spec.bits * dbl, tile * spec.psum_bits * dbl)
        else:
            h = tile * spec.bits * dbl
            out.held[a] = (h, h)
            out.single[a] = tile * spec.bits > spec.levels[lo].size_bits / 2

    key = (
        spec.name,
        port,
        onload,
        once,
        at_least,
        need,
        kind,
        tuple((d, p, e if d in used else -1) for d, p, e in grid.axes),
        seen,
        tuple(instances[1:]),  # instances[0] and sp_open[0] (below the lowest level) are not used
        tuple(fanout),
        tuple(sp_open[1:]),
    )
    shared = memo.get(key) if memo is not None else None
    same = {}
    if shared is not None:
        same = {
            k: getattr(shared, k)
            for k in ("rate", "held", "always_psum", "near", "single", "_least", "_reach", "_least_held")
        }
    if spec.output:
        psum0 = reuse_left or sp_open[1]
        fixed = _level0_charge(rate, spec, psum0, fanout, instances, max(total - 1, 0) if busy else total)
        if need is not None:
            raw = rate(0, FROM_LOW, fanout[0], spec.psum_bits if psum0 else spec.bits, instances[1])
            if total < 2 or kind == "first":
                fixed = 0.0
            elif kind == "need":
                fixed = math.floor(raw * total / need) * need / port.bw_bits
            else:
                fixed = max(0.0, math.ceil(raw / port.bw_bits) - need / total) * (total - 1)
        out = OperandTerms(spec, 1, n, float(fixed), psum0, grid, count, busy, build=event, **same)
    else:
        out = OperandTerms(
            spec, 0, n, 0.0, False, grid, count, busy, zero=grid.zero_of(nonreuse), build=event, **same
        )
        out.rate[0] = float(rate(0, TO_LOW, fanout[0], spec.bits, instances[1]))
    out.used = used
    out.fanout = tuple(fanout)
    out.onload = onload
    out.once = once
    out.at_least = at_least
    out.need = (need, port.bw_bits, kind) if need is not None else None
    out.reuse_dims = reuse
    out.absent_dims = absent

    top = [float(trips[d]) * below[n - 1][d] for d in range(len(trips))]
    top_tile = float(round(_elements_scalar(nest, spec, top)))
    out.top_held = (top_tile * spec.bits, top_tile * (spec.psum_bits if spec.output else spec.bits))
    if memo is not None:
        memo[same_terms] = out
        if shared is None:
            memo[key] = out
    return out


def _fanout(nest: Nest, spec: OperandSpec, rows: list) -> list[float]:
    """Per level: copies of a tile the level sends down at once (the unique elements of the array
    dimensions entering there, `_spatial`'s rows)."""
    nd = len(LOOP_DIMS)
    out = []
    prev = [1.0] * nd
    prev_elements = _elements_scalar(nest, spec, prev)
    for e in range(len(spec.levels)):
        level_rows = [r for x, r in rows if x == e]
        if level_rows:
            here = [1.0] * nd
            for r in level_rows:
                here = list(map(operator.mul, here, r))
            prev = list(map(operator.mul, prev, here))
            elements = _elements_scalar(nest, spec, prev)
            out.append(float(round(elements / prev_elements)))
            prev_elements = elements
        else:
            out.append(1.0)
    return out


def _rate_of(spec: OperandSpec, info: _SpecInfo, rates: dict[str, float], port, need: float | None):
    """rate(level, direction, amount, bits, instances): pJ per transfer of `amount` elements at `bits`
    through the port of level index `level` (0 without a port); with `port`: cycles per transfer if
    it goes through that port; with `need` too: the raw bits of the loads on it (see operand_terms)."""

    def rate(level, direction, amount, bits, inst):
        lv = spec.levels[level]
        pt, pj = info.ports[level, direction]
        if pt is None:
            return 0.0
        if need is not None:  # raw bits of the loads only (an output's partial sums going down are not)
            down = spec.output and direction in (TO_LOW, FROM_HIGH)
            return amount * bits if pt == port and not down else 0.0
        if port is not None:
            return np.ceil(amount * bits / pt.bw_bits) if pt == port else 0.0
        if pj == 0.0:
            return 0.0
        return _rounded(lv, pt, spec, amount, bits, rates) * (inst * pj)

    return rate


def _level0_charge(
    rate, spec: OperandSpec, psum0: bool, fanout: list[float], instances: list[float], transfers: int
) -> float:
    """An output's level-0 moves over `transfers` (the same at every point: `OperandTerms.fixed`),
    read back down too while partial sums stay open there (`psum0`)."""
    bits = spec.psum_bits if psum0 else spec.bits
    charge = rate(0, FROM_LOW, fanout[0], bits, instances[1]) * transfers
    if psum0:
        charge += rate(0, TO_LOW, fanout[0], bits, instances[1]) * transfers
    return charge


def _event_rate(rate, spec: OperandSpec, a: int, tile, fanout: list[float], instances: list[float]):
    """The charge per transfer of event a's move for a tile of level a-1 (`tile` elements, an array
    or a number): an output's as a pair, without and with partial sums."""
    lo, hi = a - 1, a
    down = tile * fanout[a]
    if not spec.output:
        return rate(hi, TO_LOW, down, spec.bits, instances[a + 1]) + rate(
            lo, FROM_HIGH, tile, spec.bits, instances[a]
        )
    coef = []
    for ps in (False, True):
        bits = spec.psum_bits if ps else spec.bits
        c = rate(hi, FROM_LOW, down, bits, instances[a + 1]) + rate(lo, TO_HIGH, tile, bits, instances[a])
        if ps:
            c = c + rate(hi, TO_LOW, down, bits, instances[a + 1])
            c = c + rate(lo, FROM_HIGH, tile, bits, instances[a])
        coef.append(c)
    return coef[0], coef[1]


def _cheapest_family(confined: list[tuple[float, float, frozenset[int]]]) -> float:
    """The root bound's correction (`Lattice.root_bound`): events confined to sub-lattices of disjoint
    axes cannot both leave the origin, so over the families of events with pairwise overlapping axes
    (each event as (least charge, charge at the origin, axes)), the least of the members' least
    charges plus the others' origin charges."""
    n = len(confined)
    # apart[j]: the events whose axes share none with event j's (bit masks)
    apart = [
        sum(1 << i for i, c in enumerate(confined) if i != j and not c[2] & a)
        for j, (_, _, a) in enumerate(confined)
    ]
    best = INF
    for mask in range(1 << n):
        if any(mask >> j & 1 and mask & apart[j] for j in range(n)):
            continue  # two events of the family do not overlap
        best = min(best, sum(c[0] if mask >> j & 1 else c[1] for j, c in enumerate(confined)))
    return best


def origin_bound(nest: Nest, u: Unrolling) -> float:
    """A lower bound of the energy lattice's `root_bound(upto=1)` from numbers alone (no grid, no
    terms): each event's least charge taken as 0, so only the confined events' charges at the origin
    count, and whether an event is confined is read off the origin and the points one prime step
    from it (a tile only grows with the loops below it). Most unrollings the search prunes are
    pruned here, at a fraction of the cost of building their lattices."""
    axes = _axes(u.trips)
    n_axes = max(1, len(axes))
    rates = {"I": nest.layer.rates.I, "O": nest.layer.rates.O}
    fixed = 0.0
    confined = []
    for spec in nest.operands:
        info = _info(spec)
        rows, below, instances, sp_open, _ = _spatial(spec, info, u.sp)
        fanout = _fanout(nest, spec, rows)
        rate = _rate_of(spec, info, rates, None, None)
        total = math.prod(t for d, t in enumerate(u.trips) if d not in info.absent)
        live_nonreuse = info.nonreuse - info.absent
        nonreuse = [ax for ax, (d, _, _) in enumerate(axes) if d in live_nonreuse]
        reuse_left = any(u.trips[d] > 1 for d in info.reuse - info.absent)  # above the origin
        first = 0
        if spec.output:  # the level-0 term every point pays (operand_terms' `fixed`)
            first = 1
            psum0 = reuse_left or sp_open[1]
            fixed += _level0_charge(rate, spec, psum0, fanout, instances, total)
        for a in range(first, min(len(spec.levels), 2)):
            if a == 0:  # the input's bottom reuse run: along its reuse loops only
                near = frozenset(ax for ax, (d, _, _) in enumerate(axes) if d not in info.nonreuse)
                at_origin = rate(0, TO_LOW, fanout[0], spec.bits, instances[1]) * total
            else:
                scale, lv = below[a - 1], spec.levels[a - 1]
                bits = min(spec.bits, spec.psum_bits) if spec.output else spec.bits  # either flag
                tile = float(round(_elements_scalar(nest, spec, scale)))
                dbl = 2.0 if lv.double_buffered else 1.0
                if tile * bits * (dbl if nonreuse else 1.0) > lv.size_bits:
                    return INF  # the smallest tile overflows: nothing fits
                near = []
                for ax, (d, p, e) in enumerate(axes):
                    step = tile
                    if d in info.used:
                        size = list(scale)
                        size[d] *= p
                        step = float(round(_elements_scalar(nest, spec, size)))
                    whole = not nonreuse or (nonreuse == [ax] and e == 1)  # no refill to hide
                    if step * bits * (1.0 if whole else dbl) <= lv.size_bits:
                        near.append(ax)
                near = frozenset(near)
                charge = _event_rate(rate, spec, a, tile, fanout, instances)
                if spec.output:  # at the origin a partial sum is open if a reuse loop remains above
                    charge = charge[1] if reuse_left or sp_open[a + 1] else charge[0]
                at_origin = float(charge) * total
            if len(near) < n_axes:
                confined.append((0.0, at_origin, near))
    return fixed + _cheapest_family(confined)


class TermsSum:
    """Several charges of one operand under one unrolling (same tiles and partial sums), summed per
    event with non-negative weights: say, a port's busy cycles and the first transfer of a link on
    another port, or lower bounds blended (a Lagrangian relaxation of their maximum)."""

    def __init__(self, parts: tuple[OperandTerms, ...], weights: tuple[float, ...] | None = None) -> None:
        self.parts = parts
        self.weights = weights = weights or (1.0,) * len(parts)
        self.fixed = sum(w * p.fixed for w, p in zip(weights, parts, strict=True))
        self.cost = _SumCost(parts, weights)

    def __getattr__(self, name: str):
        return getattr(self.parts[0], name)

    def least(self, k: int) -> float:
        return sum(w * p.least(k) for w, p in zip(self.weights, self.parts, strict=True))

    def at_origin(self, k: int) -> float:
        return sum(w * p.at_origin(k) for w, p in zip(self.weights, self.parts, strict=True))

    def window(self, a: int) -> np.ndarray | None:
        parts = [
            w * x
            for w, p in zip(self.weights, self.parts, strict=True)
            if w and (x := p.window(a)) is not None
        ]
        return sum(parts[1:], parts[0]) if parts else None


class _SumCost(dict):
    """TermsSum's per-event charges, summed when first read (inf where any is). It keeps the parts and
    weights, not the TermsSum: a reference back would be a cycle, left to the garbage collector."""

    def __init__(self, parts: tuple[OperandTerms, ...], weights: tuple[float, ...]) -> None:
        super().__init__()
        self.parts, self.weights = parts, weights

    def __missing__(self, a: int) -> np.ndarray:
        self[a] = sum(w * p.cost[a] for w, p in zip(self.weights, self.parts, strict=True))
        return self[a]


@dataclass(frozen=True)
class Event:
    """Operand `operand` charges its architecture level `a` at lattice point `point`."""

    operand: str
    a: int
    point: tuple[int, ...]


@dataclass
class Chain:
    """An optimal chain of events for one unrolling: its charge (memory energy, pJ, the outputs' fixed
    level-0 terms included) and the events."""

    value: float
    events: tuple[Event, ...]
    held: dict[tuple[str, str], float]  # (operand, level) -> bits its tile takes there
    others: tuple[tuple[Event, ...], ...] = ()  # further chains of the same charge

    def tied(self, lat: Lattice) -> list[Chain]:
        """This chain and the tied ones as chains (same charge; each with its own tiles)."""
        return [self] + [Chain(self.value, ev, lat._held(list(ev))) for ev in self.others]


def _closure(v: np.ndarray) -> None:
    """In place: v[s, P] = min over P' <= P of v[s, P'] (a running minimum along every lattice axis).

    One np.minimum per step along an axis, over every row and every point of the other axes at
    once (np.minimum.accumulate is several times slower on such strided slabs)."""
    outer = v.shape[0]
    for n in v.shape[1:]:
        if n > 1:  # an axis of one point has nothing to carry (boxes often have several)
            w = v.reshape(outer, n, -1)
            for j in range(1, n):
                np.minimum(w[:, j], w[:, j - 1], out=w[:, j])
        outer *= n


def _from_elsewhere(v: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """w[s, P] = min over the grid `axes` r of v[s, P - e_r] (inf where P_r = 0): with v a running
    minimum (`_closure`), the least value over the points below P that lie below it on one of those
    axes."""
    out = np.full_like(v, INF)
    for ax in axes:
        if v.shape[ax + 1] > 1:
            dst = (slice(None),) * (ax + 1) + (slice(1, None),)
            src = (slice(None),) * (ax + 1) + (slice(0, -1),)
            np.minimum(out[dst], v[src], out=out[dst])
    return out


def _hits(mask: np.ndarray) -> Iterator[tuple[int, ...]]:
    """The points where `mask` holds, in C order; the first found without listing the others (ties
    can cover most of the grid, and a backtrack mostly takes the first)."""
    flat = mask.ravel()
    first = int(flat.argmax())
    if not flat[first]:
        return
    yield tuple(map(int, np.unravel_index(first, mask.shape)))
    for j in np.flatnonzero(flat[first + 1 :]):
        yield tuple(map(int, np.unravel_index(first + 1 + int(j), mask.shape)))


def _box(alive: np.ndarray, full: tuple[int, ...]) -> tuple[int, ...] | None:
    """Largest index per axis where a (broadcastable) boolean grid holds; None if nowhere."""
    nz = np.nonzero(alive)
    if not len(nz[0]):
        return None
    tops = np.array(nz).max(axis=1).tolist()  # one call for every axis
    return tuple(top if alive.shape[ax] == 1 else tops[ax] for ax, top in enumerate(full))


class _Transitions(dict):
    """Lazy map (operand, progress, flag) -> ({new flag: masked charge}, box of the points where that
    event may happen), built when first read (`Lattice._transition`)."""

    def __init__(self, lat: Lattice, budgets) -> None:
        super().__init__()
        self.lat, self.budgets = lat, budgets

    def __missing__(self, key):
        self[key] = out = self.lat._transition(self.budgets, *key)
        return out


def _at(a, point: tuple[int, ...]):
    """Value of a (broadcastable) grid at a point."""
    if type(a) is not np.ndarray:
        a = np.asarray(a)
    if not a.ndim:
        return a[()]
    return a[tuple([i if i < s else s - 1 for i, s in zip(point, a.shape, strict=True)])]


@lru_cache(maxsize=65536)
def _slices(box: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(0, x + 1) for x in box)


@lru_cache(maxsize=65536)
def _below(point: tuple[int, ...], shape: tuple[int, ...]) -> tuple[slice, ...]:
    """The points of a grid of `shape` at or below `point` (clipped to the grid)."""
    return _slices(tuple(map(min, point, (n - 1 for n in shape))))


def _move_kind(
    trans: _Transitions, i: int, k: int, f: int, f2: int, b1: tuple[int, ...], b2: tuple[int, ...]
) -> tuple[tuple[slice, ...], np.ndarray, bool, bool]:
    """A move of operand i's event k (flag f to f2) from states of box b1 to states of box b2: the
    slices of the points both keep, the event's charge there, and whether those are all of b1's
    and of b2's points."""
    both = tuple(map(min, b1, b2))
    inter = _slices(both)
    cost = trans[i, k, f][0][f2][inter]
    return inter, cost, both == b1, both == b2


class Lattice:
    """The dynamic program of one unrolling; `solve(budgets)` may be called for several budget sets."""

    def __init__(
        self,
        nest: Nest,
        u: Unrolling,
        port=None,
        grid: Grid | None = None,
        operands: tuple[str, ...] | None = None,
        known: dict[str, OperandTerms] | None = None,
        memo: dict | None = None,
        onload: dict[str, int] | None = None,
        once: dict[str, int] | None = None,
        at_least: dict[str, float] | None = None,
        need: float | None = None,
        kind: str = "need",
        allowed: dict[tuple[str, int], np.ndarray] | None = None,
        windows: bool = False,
    ) -> None:
        """`port`: minimise that port's busy cycles instead of energy (see `operand_terms`);
        `onload` {operand: event}: that event's move also pays its first transfer, where it repeats;
        `once` likewise where it is made once; `at_least` {operand: cycles}: that first transfer counts
        at least this.
        `need` (temporal cycles): charge the port's bandwidth needs or stalls (`kind`) instead.
        `operands`: only these operands (a relaxation: the others' charges, all >= 0, and their
        capacity are dropped, so `solve` gives a lower bound). `known`: terms already computed.
        `memo`: `operand_terms`' memo, shared by the lattices of one nest. `allowed` {(operand,
        event): boolean grid}: that event happens only where it holds (a relaxation may rule out
        points by a bound of its own). `windows`: stall charges include the refill windows of
        levels that cannot double-buffer (`OperandTerms.window`: a pair of events, so each move
        solves a little more)."""
        self.nest, self.u = nest, u
        self.grid = grid = grid or Grid(u.trips)
        known, onload, once, at_least = known or {}, onload or {}, once or {}, at_least or {}

        def terms_of(spec: OperandSpec) -> OperandTerms:
            if spec.name in known:
                return known[spec.name]
            floor = at_least.get(spec.name, 0.0) if spec.name in onload or spec.name in once else 0.0
            if spec.name in once:
                return operand_terms(
                    nest, u, grid, spec, port, memo, once[spec.name], need, kind, once=True, at_least=floor
                )
            return operand_terms(
                nest, u, grid, spec, port, memo, onload.get(spec.name), need, kind, at_least=floor
            )

        self.terms = [terms_of(s) for s in nest.operands if operands is None or s.name in operands]
        self.fixed = sum(t.fixed for t in self.terms)
        if nest.layer.stateful:
            t = DIM_INDEX["T"]
            valid = grid.zero_of({t}) | grid.full_of({DIM_INDEX[d] for d in REDUCTION_DIMS})
            self.valid = valid  # where an event may happen: a valid prefix (broadcastable)
        else:
            self.valid = None
        self.allowed = allowed or {}
        self.origin = (0,) * len(grid.shape)
        self.full = tuple(s - 1 for s in grid.shape)
        self._windows: dict = {} if windows else None
        self._charged: dict = {}
        self._break_axes: dict[int, tuple[int, ...]] = {}

    # -- states -------------------------------------------------------------------------------------
    def root_bound(self, upto: int | None = None) -> float:
        """A lower bound of `solve()` (charges of every event at its cheapest allowed point, with one
        correction): events confined to sub-lattices of disjoint axes (an input's bottom reuse run, a
        one-element register's cut) cannot both leave the origin, since the points of all events form
        a chain. So among such confined events only a family with pairwise overlapping axes is
        charged at its minimum, the others at the origin; the cheapest family counts.

        `upto`: only events k <= upto of each operand (a weaker bound, but the other events' terms
        need not be built; the bound only grows with the events it counts)."""
        free = 0.0
        confined = []  # (cheapest charge, charge at the origin, axes it may use)
        for t in self.terms:
            for k in range(t.first, t.n if upto is None else min(t.n, upto + 1)):
                reach = t.reach(k)
                if reach is None:
                    return INF
                axes = frozenset(
                    ax
                    for ax, (r, top) in enumerate(zip(reach, self.full, strict=True))
                    if (top if r is None else r)
                )
                low = t.least(k)
                if len(axes) < len(self.full):
                    confined.append((low, t.at_origin(k), axes))
                else:
                    free += low
        return free + _cheapest_family(confined) + self.fixed

    @property
    def relaxed(self) -> bool:
        return len(self.terms) < len(self.nest.operands)

    def _window(self, i: int, k: int) -> np.ndarray | None:
        """Operand i's event k: its `OperandTerms.window` charge (None: none, or not asked for)."""
        if self._windows is None:
            return None
        if (i, k) not in self._windows:
            x = self.terms[i].window(k)
            self._windows[i, k] = x
        return self._windows[i, k]

    @property
    def windowed(self) -> bool:
        """Whether an event charges a window stall (`OperandTerms.window`): `solve` then keeps the
        values of each state before the running minimum too."""
        return any(
            self._window(i, k) is not None
            for i, t in enumerate(self.terms)
            for k in range(max(1, t.first), t.n)
        )

    def _breaks(self, i: int) -> tuple[int, ...]:
        """The grid axes of loops that are not operand i's reuse loops (`OperandTerms.segment`);
        kept per operand: every windowed move and backtrack step asks."""
        if i not in self._break_axes:
            self._break_axes[i] = tuple(ax for ax, seg in enumerate(self.terms[i].segment) if not seg)
        return self._break_axes[i]

    def _start(self) -> tuple[tuple[int, int], ...]:
        return tuple((t.first, int(t.psum0) if t.flagged else 0) for t in self.terms)

    def _transition(self, budgets, i: int, k: int, f: int):
        """Operand i's event k after flag f: {new flag: masked cost grid}, and the box (largest
        exponent per axis) of the points where it may happen (None: nowhere)."""
        t = self.terms[i]
        levels = t.spec.levels
        cost = t.cost[k]
        if k == 0:
            alive = np.asarray(t.zero)  # the input's bottom reuse run ends where no other loop began
        else:
            cap = min(levels[k - 1].size_bits, budgets.get((t.spec.name, levels[k - 1].name), INF))
            alive = t.held[k][f] <= cap
            if not alive.all():
                cost = np.where(alive, cost, INF)
        for where in (self.allowed.get((t.spec.name, k)), self.valid):
            if where is not None:
                alive = alive & where
                cost = np.where(where, cost, INF)
        top = min(levels[-1].size_bits, budgets.get((t.spec.name, levels[-1].name), INF))
        if t.flagged:
            outs = {}
            for f2 in (0, 1):
                if k == t.n - 1 and t.top_held[f2] > top:
                    continue
                mask = t.psum[k] if f2 else ~t.psum[k]
                outs[f2] = np.where(mask, cost, INF)
        else:
            outs = {0: cost}
        return outs, (_box(alive, self.full) if outs else None)

    def top_fits(self, budgets: dict[tuple[str, str], float]) -> bool:
        """Outermost levels that no event checks (an operand with one level, or no partial-sum flag)."""
        for t in self.terms:
            lv = t.spec.levels[-1]
            top = min(lv.size_bits, budgets.get((t.spec.name, lv.name), INF))
            if not (t.flagged and t.n >= 2):
                f = int(t.psum0) if t.flagged else 0
                if t.top_held[f] > top:
                    return False
        return True

    def solve(
        self,
        budgets: dict[tuple[str, str], float] | None = None,
        cutoff: float = INF,
        ties: int = 1,
        room: dict[str, float] | None = None,
    ) -> Chain | None:
        """The cheapest chain within `budgets` (bits per (operand, level)); None if none fits or none
        costs at most `cutoff` (charges are non-negative, so a partial chain already above the cutoff,
        plus what its operands must still pay at least, is dropped). Up to `ties` optimal chains are
        kept (`Chain.others`), for a tie-break by the caller. `room` {level: bits}: an optimal chain
        whose tiles fit there together comes first if the tie search finds one (`_backtrack`).

        Each state (progress and flag of every operand) keeps its values only on the box of points
        from which every pending operand can still reach its next event (the box spanned by that
        event's allowed points): earlier points are dead. The states reached after the same number
        of events that share a box are solved as one stacked array, and each kind of event moves all
        its rows at once (the grids are small: numpy's cost per call, not per element, dominates).
        """
        budgets = budgets or {}
        if not self.top_fits(budgets):
            return None
        trans = _Transitions(self, budgets)
        full = self.full
        terms = self.terms
        # least each operand must still pay from progress k on: sum of its events' unmasked minima
        rest = {}
        for i, t in enumerate(terms):
            low = 0.0
            for k in range(t.n, t.first - 1, -1):
                if k < t.n:
                    low += t.least(k)
                for f in (0, 1):
                    rest[i, k, f] = low
        limit = cutoff - self.fixed
        if np.isfinite(limit):
            limit = limit * (1 + 1e-9) + 1e-9

        ends = [t.n for t in terms]

        def box_of(state) -> tuple[int, ...] | None:
            """Points from which every pending operand can still reach its next event (None: none)."""
            b = None
            for i, (k, f) in enumerate(state):
                if k < ends[i]:
                    x = trans[i, k, f][1]  # within `full` (`_box`)
                    if x is None:
                        return None
                    b = x if b is None else tuple(map(min, b, x))
            return full if b is None else b

        start = self._start()
        box = box_of(start)
        if box is None:
            return None
        v = np.full((1, *(x + 1 for x in box)), INF)
        v[(0, *self.origin)] = 0.0
        level = {box: ([start], v)}  # box -> the states with that box, and their stacked values
        closed: dict = {}
        windowed = self.windowed
        raws: dict = {}  # box -> values before the running minimum (windowed lattices only)
        raw_of: dict = {}  # state -> the same, for `_backtrack`
        finals: list[tuple[tuple, float]] = []
        kinds: dict = {}  # a kind of move seen at several levels: its slices and charges (`_move_kind`)
        while level:
            boxes: dict = {}  # next state -> its box
            moves: dict = {}  # (operand, progress, flag, new flag, box, next box) -> (rows, next states)
            for box, (states, v) in level.items():
                if windowed:
                    raws[box] = v.copy()
                _closure(v)
                if limit < INF:
                    owed = np.array([sum(rest[i, k, f] for i, (k, f) in enumerate(st)) for st in states])
                    v[v > (limit - owed).reshape(-1, *(1,) * len(box))] = INF
                live = (v.reshape(len(states), -1).min(axis=1) < INF).tolist()
                for j, state in enumerate(states):
                    if not live[j]:
                        continue
                    closed[state] = v[j]
                    if windowed:
                        raw_of[state] = raws[box][j]
                    done = True
                    for i, (k, f) in enumerate(state):
                        if k >= ends[i]:
                            continue
                        done = False
                        for f2 in trans[i, k, f][0]:
                            s2 = (*state[:i], (k + 1, f2), *state[i + 1 :])
                            if s2 in boxes:
                                b2 = boxes[s2]
                            else:
                                b2 = boxes[s2] = box_of(s2)
                            if b2 is not None:
                                rows = moves.setdefault((i, k, f, f2, box, b2), ([], []))
                                rows[0].append(j)
                                rows[1].append(s2)
                    if done:
                        finals.append((state, float(v[j][full])))
            nxt: dict = {}
            for s2, b in boxes.items():
                if b is not None:
                    nxt.setdefault(b, ([], None))[0].append(s2)
            row = {}
            for b, (states, _) in nxt.items():
                row.update((s2, n) for n, s2 in enumerate(states))
                nxt[b] = (states, np.full((len(states), *(x + 1 for x in b)), INF))
            for key, (src, targets) in moves.items():
                v, nv = level[key[4]][1], nxt[key[5]][1]
                if key not in kinds:
                    kinds[key] = _move_kind(trans, *key)
                inter, cost, whole_src, whole_dst = kinds[key]
                dst = [row[s2] for s2 in targets]
                x = self._window(key[0], key[1]) if windowed else None
                if x is not None:  # a window stall unless the previous event was elsewhere or here
                    rows_of = (src, *inter)
                    here = v[rows_of]
                    came = (
                        np.minimum(
                            np.minimum(_from_elsewhere(here, self._breaks(key[0])), raws[key[4]][rows_of]),
                            here + x[inter],
                        )
                        + cost
                    )
                    if whole_dst:
                        nv[dst] = np.minimum(nv[dst], came)
                    else:
                        nv[(dst, *inter)] = np.minimum(nv[(dst, *inter)], came)
                    continue
                if len(src) == 1:  # most moves have one source row: views, no gather
                    out = nv[dst[0]][inter]
                    np.minimum(out, v[src[0]][inter] + cost, out=out)
                    continue
                # boxes mostly stay or grow: whole rows then need no slicing (numpy's mixed indexing
                # of rows and slices costs more than the arithmetic)
                came = (v[src] if whole_src else v[(src, *inter)]) + cost
                if whole_dst:
                    nv[dst] = np.minimum(nv[dst], came)
                else:
                    nv[(dst, *inter)] = np.minimum(nv[(dst, *inter)], came)
            level = nxt
        best, best_s = INF, None
        for st, val in sorted(finals):
            if val < best:
                best, best_s = val, st
        if best_s is None or not np.isfinite(best):
            return None
        if self.relaxed:
            return Chain(float(best) + self.fixed, (), {})
        chains = []
        if room:
            s_end = min(st for st, val in finals if val == best)
            chains = self._backtrack(s_end, best, closed, trans, 1, room, raws=raw_of)
        for s_end, val in sorted(finals):
            if val == best and len(chains) < ties:
                more = self._backtrack(s_end, best, closed, trans, ties - len(chains), raws=raw_of)
                chains += [c for c in more if c not in chains]
        events = chains[0]
        return Chain(
            float(best) + self.fixed, tuple(events), self._held(events), tuple(tuple(c) for c in chains[1:])
        )

    def _backtrack(
        self,
        state,
        value,
        closed,
        trans,
        limit: int = 1,
        room: dict[str, float] | None = None,
        raws: dict | None = None,
    ) -> list[list[Event]]:
        """Walk back from the final state: a point below the current one where the value was set, and
        the event into it; every such choice, depth first in a fixed order (so the answer is
        deterministic), until `limit` tied chains are found. With `room` {level: bits}, only chains
        whose tiles at those levels fit together: a partial chain already over is dropped, and the
        walk gives up (returns none) after `TIE_STEPS` steps. `raws` (windowed lattices): each
        state's values before the running minimum; an event that charged no window stall because
        the previous one was at its own point continues from exactly that point."""
        start = self._start()
        out: list[list[Event]] = []
        steps = [0]

        def preds(state, point, value, exact):
            for i, (k, f2) in enumerate(state):
                t = self.terms[i]
                if k <= t.first:
                    continue
                x = self._window(i, k - 1) if raws else None
                for f in (0, 1) if t.flagged else (0,):
                    s0 = (*state[:i], (k - 1, f), *state[i + 1 :])
                    v0 = closed.get(s0)
                    if v0 is None:
                        continue
                    reach = _below(point, v0.shape)
                    cost = trans[i, k - 1, f][0].get(f2)
                    if cost is None:
                        continue
                    if x is None:
                        cand = v0[reach] + cost[reach]
                        for p in _hits(cand == value):
                            if not exact or p == point:
                                yield i, k - 1, s0, p, p, float(v0[p]), False
                        continue
                    elsewhere = _from_elsewhere(v0[None], self._breaks(i))[0]
                    r0 = raws[s0]
                    opts = (elsewhere[reach] + cost[reach], r0[reach] + cost[reach])
                    cand = np.minimum(np.minimum(*opts), v0[reach] + x[reach] + cost[reach])
                    for p in _hits(cand == value):
                        if exact and p != point:
                            continue
                        if opts[0][p] == value:  # the previous event below on another axis
                            for ax in self._breaks(i):
                                q = (*p[:ax], p[ax] - 1, *p[ax + 1 :])
                                if p[ax] and v0[q] == elsewhere[p]:
                                    yield i, k - 1, s0, p, q, float(v0[q]), False
                                    break
                        elif opts[1][p] == value:  # the previous event at this point
                            yield i, k - 1, s0, p, p, float(r0[p]), True
                        else:
                            yield i, k - 1, s0, p, p, float(v0[p]), False

        def walk(state, point, value, acc, used, exact=False):
            if len(out) >= limit:
                return
            if state == start:
                out.append(acc[::-1])
                return
            found = False
            for i, a, s0, p, q, prev, at_p in preds(state, point, value, exact):
                found = True
                held = used
                if room is not None:
                    steps[0] += 1
                    if steps[0] > TIE_STEPS:
                        return
                    t = self.terms[i]
                    lv = t.spec.levels[a - 1].name if a else None
                    if lv in room:
                        held = {**used, lv: used.get(lv, 0.0) + float(_at(t.held[a][s0[i][1]], p))}
                        if held[lv] > room[lv]:
                            continue
                walk(s0, q, prev, [*acc, Event(self.terms[i].spec.name, a, p)], held, at_p)
                if len(out) >= limit:
                    return
            if not found:
                raise AssertionError("lattice backtrack lost the optimal path")

        walk(state, self.full, value, [], {})
        walk = None  # it calls itself: a cycle that would keep the lattice's grids until a collection
        return out

    def _held(self, events: list[Event]) -> dict[tuple[str, str], float]:
        """Bits each (operand, level) tile takes under the chain."""
        out = {}
        by_op = {e.operand: {} for e in events}
        for e in events:
            by_op[e.operand][e.a] = e.point
        for t in self.terms:
            name, levels = t.spec.name, t.spec.levels
            pts = by_op.get(name, {})
            flag = int(t.psum0) if t.flagged else 0
            for a in range(max(1, t.first), t.n):
                p = pts[a]
                out[name, levels[a - 1].name] = float(_at(t.held[a][flag], p))
                flag = int(_at(t.psum[a], p)) if t.flagged else 0
            out[name, levels[-1].name] = t.top_held[flag]
        return out

    def charge(self, chain: Chain) -> float:
        """This lattice's charge of a chain found on another lattice of the same unrolling (inf where
        an event is not allowed here); capacity is not checked. Kept per chain: a proof's blends
        charge the same chains on the same lattices many times (`intra_latency._loading_bound`)."""
        if chain.events in self._charged:
            return self._charged[chain.events]
        self._charged[chain.events] = total = self._charge(chain.events)
        return total

    def _charge(self, events: tuple[Event, ...]) -> float:
        index = {t.spec.name: i for i, t in enumerate(self.terms)}
        total = self.fixed
        before = self.origin  # the previous event's point (`solve`: window stalls)
        for e in events:
            where = self.allowed.get((e.operand, e.a))
            if where is not None and not _at(where, e.point):
                return INF
            i = index[e.operand]
            total += float(_at(self.terms[i].cost[e.a], e.point))
            x = self._window(i, e.a)
            if (
                x is not None
                and e.point != before
                and all(before[ax] == e.point[ax] for ax in self._breaks(i))
            ):
                total += float(_at(x, e.point))
            before = e.point
        return total

    # -- the mapping a chain describes --------------------------------------------------------------
    def mapping(self, chain: Chain) -> Mapping:
        grid = self.grid
        points = sorted({e.point for e in chain.events} | {self.origin, self.full}, key=sum)
        for lo, hi in pairwise(points):
            if any(x > y for x, y in zip(lo, hi, strict=True)):
                raise AssertionError("event points do not form a chain")
        loops: list[tuple[str, int]] = []
        position = {}
        t_index = DIM_INDEX["T"]
        for lo, hi in pairwise(points):
            position[lo] = len(loops)
            gap = grid.factors_between(lo, hi)
            gap.sort(key=lambda x: (x[0] == t_index, x[0], x[1]))
            for d, p in gap:
                name = LOOP_DIMS[d]
                if loops and loops[-1][0] == name and len(loops) > position[lo]:
                    loops[-1] = (name, loops[-1][1] * p)
                else:
                    loops.append((name, p))
        position[points[-1]] = len(loops)
        cuts = {}
        at = {(e.operand, e.a): e.point for e in chain.events}
        for t in self.terms:
            levels = t.spec.levels
            cuts[t.spec.name] = {
                lv.name: (position[at[t.spec.name, m + 1]] if m < len(levels) - 1 else len(loops))
                for m, lv in enumerate(levels)
            }
        return Mapping.of(self.u.as_dict(), loops, cuts)
