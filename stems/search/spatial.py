"""The spatial unrollings the intra-layer search considers: divisor unrollings plus ZigZag's fullest fill.

An unrolling puts, on each array dimension, some of the loops it allows with integer factors whose
product fits the dimension. The search space (`unrollings`) is:

* every unrolling whose factors per loop multiply to a divisor of the loop (CoSA's space: a loop's
  prime factors go either to the array or to the temporal nest), and
* for a loop that only one array dimension allows, the fullest fill ``min(loop, dimension)`` when
  that does not divide the loop (ZigZag's default, spread over the trips as `stems.cost` prices it:
  K = 1000 on 32 PEs is 31.25 PEs x 32 trips), alone or with divisor factors on other dimensions.

Two unrollings with the same trips and the same effective (fractional) factors price identically
except for the systolic drain and the array fit, both better with smaller integer factors, so only
the smallest is kept. Stateful layers never unroll T (each timestep needs the previous state).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from stems.cost.nest import DIM_INDEX, Nest
from stems.workload.model import LOOP_DIMS

N_DIMS = len(LOOP_DIMS)


@dataclass(frozen=True, eq=False)
class Unrolling:
    """One spatial unrolling: integer factors per array dimension, the temporal trips it leaves per loop
    (LOOP_DIMS order) and the effective factors the cost model uses (a non-dividing one spread)."""

    spatial: tuple[tuple[str, tuple[tuple[str, int], ...]], ...]
    trips: tuple[int, ...]
    sp_int: np.ndarray  # (array dims, loops)
    sp: np.ndarray  # (array dims, loops), fractional where a factor does not divide its loop

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {a: dict(loops) for a, loops in self.spatial if loops}

    @property
    def used(self) -> tuple[int, ...]:
        """PEs used along each array dimension."""
        return tuple(int(x) for x in self.sp_int.prod(axis=1))


def divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def _per_dim_choices(nest: Nest, a_index: int, movable: dict[str, int]) -> list[dict[str, int]]:
    """Assignments {loop: factor} for one array dimension whose product fits it."""
    dim = nest.hw.array.dims[a_index]
    loops = [d for d in dim.loops if d in movable]
    options = []
    for d in loops:
        size = movable[d]
        cands = [f for f in divisors(size) if f <= dim.size]
        fill = min(size, dim.size)
        if size % fill:
            cands.append(fill)
        options.append([(d, f) for f in cands])
    out = []
    for combo in itertools.product(*options):
        if math.prod(f for _, f in combo) <= dim.size:
            out.append({d: f for d, f in combo if f > 1})
    return out


@lru_cache(maxsize=64)
def unrollings(nest: Nest) -> tuple[Unrolling, ...]:
    """The unrollings of the search space (see the module docstring), in a canonical order. Cached:
    a layer's search asks once, and before it the parallel scheduler's estimate of its work (forked
    workers inherit the cache); the arrays are read-only."""
    hw = nest.hw
    sizes = dict(zip(LOOP_DIMS, nest.sizes, strict=True))
    movable = {d: s for d, s in sizes.items() if s > 1 and not (d == "T" and nest.layer.stateful)}
    carriers = {d: [a.name for a in hw.array.dims if d in a.loops] for d in movable}
    per_dim = [_per_dim_choices(nest, i, movable) for i in range(len(hw.array.dims))]
    fitting = []
    for combo in itertools.product(*per_dim):
        total = dict.fromkeys(movable, 1)
        for assign in combo:
            for d, f in assign.items():
                total[d] *= f
        ok = True
        for d, f in total.items():
            if f > sizes[d]:
                ok = False
            elif sizes[d] % f:
                # a non-divisor only as the fullest fill of a loop's single carrying dimension
                a_names = [hw.array.dims[i].name for i, assign in enumerate(combo) if d in assign]
                fill = min(sizes[d], hw.array.dim(a_names[0]).size) if len(a_names) == 1 else None
                if len(carriers[d]) != 1 or f != fill:
                    ok = False
        if ok:
            fitting.append(combo)
    best: dict[tuple, Unrolling] = {}
    for u in _make(nest, fitting):
        key = (u.trips, u.sp.round(9).tobytes())
        old = best.get(key)
        if old is None or _smaller(u, old):
            best[key] = u
    return tuple(sorted(best.values(), key=_order))


def _smaller(u: Unrolling, v: Unrolling) -> bool:
    return (sum(u.used), u.used, u.spatial) < (sum(v.used), v.used, v.spatial)


def _order(u: Unrolling) -> tuple:
    return (u.trips, u.spatial)


def _make(nest: Nest, combos: list[tuple[dict[str, int], ...]]) -> list[Unrolling]:
    """The unrollings of `combos` (per array dimension {loop: factor > 1}), their arrays built at once."""
    hw = nest.hw
    sp_int = np.ones((len(combos), len(hw.array.dims), N_DIMS), dtype=np.int64)
    cells, factors = [], []  # (combination, array dimension, loop) and its factor
    for c, combo in enumerate(combos):
        for i, assign in enumerate(combo):
            for d, f in assign.items():
                cells.append((c, i, DIM_INDEX[d]))
                factors.append(f)
    if cells:
        sp_int[tuple(np.array(cells).T)] = factors
    total = sp_int.prod(axis=1)
    sizes = np.array(nest.sizes, dtype=np.int64)
    trips = -(-sizes // total)
    # as stems.cost.encode._fractional: a non-dividing factor spread over its trips
    sp = sp_int.astype(np.float64)
    scale = sizes / trips / total
    rows, dims = np.nonzero((np.abs(scale - 1) > 1e-12) & (total > 1))
    sp[rows, sp_int[rows, :, dims].argmax(axis=1), dims] *= scale[rows, dims]
    sp_int.flags.writeable = sp.flags.writeable = False
    return [
        Unrolling(
            tuple(
                (a.name, tuple((d, assign[d]) for d in LOOP_DIMS if d in assign))
                for a, assign in zip(hw.array.dims, combo, strict=True)
            ),
            tuple(t),
            sp_int[c],
            sp[c],
        )
        for c, (combo, t) in enumerate(zip(combos, trips.tolist(), strict=True))
    ]
