"""Mappings of one layer as arrays (one row per mapping), checked for everything but capacity.

Names are resolved row by row; every numeric rule (factors, loop products, cut order, the stateful T
rule, array sizes) is checked on the whole batch at once. A row that fails is replaced by an empty
mapping so the arrays stay well-formed, and its reasons are kept.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from operator import itemgetter

import numpy as np

from stems.cost.mapping import Mapping
from stems.cost.nest import DIM_INDEX, PAD, Nest
from stems.workload.model import LOOP_DIMS, REDUCTION_DIMS

N_DIMS = len(LOOP_DIMS)


@dataclass(frozen=True)
class Encoded:
    """A batch of B mappings of one nest.

    `dim`/`fac`: (B, N) temporal loops innermost first, padded with (PAD, 1); `n`: loops per row;
    `cum_dim`: (B, N + 1, D) per loop dimension, the product of the temporal loops below each position;
    `sp_int`: (B, A, D) spatial factors as given; `sp`: the same with a factor that does not divide its
    loop spread evenly over its temporal trips (ZigZag's fractional unrolling); `cuts`: per operand
    (B, levels); `reasons`: for each invalid row, why.
    """

    dim: np.ndarray
    fac: np.ndarray
    n: np.ndarray
    cum_dim: np.ndarray
    sp_int: np.ndarray
    sp: np.ndarray
    cuts: dict[str, np.ndarray]
    reasons: dict[int, list[str]]

    @property
    def rows(self) -> int:
        return len(self.n)

    @property
    def cycles(self) -> np.ndarray:
        """Temporal iterations of each mapping."""
        return self.fac.prod(axis=1)

    def mask(self, dims: Iterable[str]) -> np.ndarray:
        """(B, N): which temporal loops are of one of `dims` (padding never is)."""
        table = np.zeros(PAD + 1, dtype=bool)
        table[[DIM_INDEX[d] for d in dims]] = True
        return table[self.dim]


def encode(nest: Nest, mappings: Sequence[Mapping]) -> Encoded:
    """Arrays for `mappings`, with the reasons each invalid one fails."""
    reasons: dict[int, list[str]] = defaultdict(list)
    dim, fac, t_len = _temporal(mappings, reasons)
    sp_int, sp_low = _spatial(nest, mappings, reasons)
    given = [dict(m.cuts) for m in mappings]
    named = {o.name: _cuts(o.name, tuple(lv.name for lv in o.levels), given, reasons) for o in nest.operands}
    cuts = {op: c for op, (c, _) in named.items()}
    for i in (i for i, g in enumerate(given) if not g.keys() <= cuts.keys()):
        for op in sorted(given[i].keys() - cuts.keys()):
            reasons[i].append(f"cuts for {op}, which this layer does not have (operands: {', '.join(cuts)})")
    return _checked(nest, dim, fac, t_len, sp_int, sp_low, named, reasons)


def reorder(
    nest: Nest, base: Encoded, rows: np.ndarray, orders: np.ndarray, cuts: dict[str, np.ndarray]
) -> Encoded:
    """Mappings made from well-formed rows of `base`: row `rows[r]` with its temporal loops in the
    order `orders[r]` (positions in that row, over its whole width) and the cuts `cuts[op][r]`. A
    local search's neighbours are encoded so, without resolving names row by row; the numeric rules
    (the stateful T rule among them) are checked again."""
    dim = np.take_along_axis(base.dim[rows], orders, axis=1)
    fac = np.take_along_axis(base.fac[rows], orders, axis=1)
    named = {op: (c, np.ones(len(rows), dtype=bool)) for op, c in cuts.items()}
    low = np.zeros(len(rows), dtype=bool)
    return _checked(nest, dim, fac, base.n[rows], base.sp_int[rows], low, named, defaultdict(list))


def _temporal(mappings: Sequence[Mapping], reasons: dict[int, list[str]]) -> tuple[np.ndarray, ...]:
    """(B, N) loop dimensions and factors, padded, and the loop count per row."""
    rows = len(mappings)
    t_len = np.fromiter(map(len, (m.temporal for m in mappings)), dtype=np.int64, count=rows)
    width = int(t_len.max(initial=0))
    dim = np.full((rows, width), PAD, dtype=np.int64)
    fac = np.ones((rows, width), dtype=np.int64)
    total = int(t_len.sum())
    if total:
        flat = list(chain.from_iterable(m.temporal for m in mappings))
        idx = np.fromiter(
            map(DIM_INDEX.get, map(itemgetter(0), flat), repeat(-1)), dtype=np.int64, count=total
        )
        factors = np.fromiter(map(itemgetter(1), flat), dtype=np.int64, count=total)
        filled = np.arange(width) < t_len[:, None]
        dim[filled] = np.where(idx < 0, PAD, idx)
        fac[filled] = factors
        for i in np.flatnonzero(((dim == PAD) & filled).any(axis=1)):
            unknown = sorted({d for d, _ in mappings[i].temporal if d not in DIM_INDEX})
            reasons[i].append(f"unknown loop(s) {', '.join(unknown)} (loops are {', '.join(LOOP_DIMS)})")
    return dim, fac, t_len


def _spatial(
    nest: Nest, mappings: Sequence[Mapping], reasons: dict[int, list[str]]
) -> tuple[np.ndarray, np.ndarray]:
    """(B, A, D) spatial factors as given, and which rows give a factor below 2."""
    hw = nest.hw
    rows = len(mappings)
    arrays = {a.name: i for i, a in enumerate(hw.array.dims)}
    cell = {
        (a.name, d): i * N_DIMS + DIM_INDEX[d]
        for i, a in enumerate(hw.array.dims)
        for d in a.loops
        if d in DIM_INDEX
    }
    sp_int = np.ones((rows, len(arrays) * N_DIMS), dtype=np.int64)
    low = np.zeros(rows, dtype=bool)
    flat = [(i, (a, d), f) for i, m in enumerate(mappings) for a, loops in m.spatial for d, f in loops]
    if flat:
        where = np.fromiter(
            map(cell.get, map(itemgetter(1), flat), repeat(-1)), dtype=np.int64, count=len(flat)
        )
        row = np.fromiter(map(itemgetter(0), flat), dtype=np.int64, count=len(flat))
        f = np.fromiter(map(itemgetter(2), flat), dtype=np.int64, count=len(flat))
        for i, (a, d), _ in (flat[k] for k in np.flatnonzero(where < 0)):
            if a not in arrays:
                reasons[i].append(f"unknown array dimension {a} (the array has {', '.join(arrays)})")
            else:
                loops = ", ".join(hw.array.dims[arrays[a]].loops)
                reasons[i].append(f"loop {d} may not unroll on {a} (allowed: {loops})")
        ok = where >= 0
        np.multiply.at(sp_int, (row[ok], where[ok]), f[ok])
        low[row[ok & (f < 2)]] = True
    return sp_int.reshape(rows, len(arrays), N_DIMS), low


def _cuts(
    op: str, names: tuple[str, ...], given_all: list[dict[str, tuple]], reasons: dict[int, list[str]]
) -> tuple[np.ndarray, np.ndarray]:
    """(B, levels) cuts of operand `op`, and which rows name exactly its levels (the others get zeros)."""
    rows, n = len(given_all), len(names)
    given = [g.get(op, ()) for g in given_all]
    out = np.zeros((rows, n), dtype=np.int64)
    right = np.fromiter(map(len, given), dtype=np.int64, count=rows) == n
    ok = [p for p, r in zip(given, right.tolist(), strict=True) if r]
    if ok:
        flat = list(chain.from_iterable(ok))
        level = list(map(itemgetter(0), flat))
        cut = np.fromiter(map(itemgetter(1), flat), dtype=np.int64, count=len(flat)).reshape(-1, n)
        if level == list(names) * len(ok):
            out[right] = cut
        else:
            same = (np.array(level, dtype=object).reshape(-1, n) == np.array(names, dtype=object)).all(axis=1)
            right[right] = same
            out[right] = cut[same]
    for i in np.flatnonzero(~right):
        if not given[i]:
            reasons[i].append(f"no cuts for operand {op} (levels {', '.join(names)})")
        else:
            got = ", ".join(lv for lv, _ in given[i])
            reasons[i].append(
                f"cuts of {op} must name its levels {', '.join(names)} innermost first, not {got}"
            )
    return out, right


def _checked(
    nest: Nest,
    dim: np.ndarray,
    fac: np.ndarray,
    n: np.ndarray,
    sp_int: np.ndarray,
    sp_low: np.ndarray,
    cuts: dict[str, tuple[np.ndarray, np.ndarray]],
    reasons: dict[int, list[str]],
) -> Encoded:
    """The batch with its loop products, after appending to `reasons` every numeric rule a row
    breaks (vectorised; messages only for failing rows). A failing row becomes an empty mapping:
    the arrays stay well-formed, and the row is reported invalid."""
    rows, width = dim.shape
    per_dim = np.ones((rows, width + 1, PAD + 1), dtype=np.int64)
    per_dim[np.arange(rows)[:, None], np.arange(1, width + 1), dim] = fac
    cum_dim = np.cumprod(per_dim[:, :, :PAD], axis=1)
    trips = cum_dim[:, -1, :]
    sizes = np.array(nest.sizes, dtype=np.int64)
    real = dim != PAD

    def report(mask: np.ndarray, message) -> None:
        for i in np.flatnonzero(mask):
            reasons[i].append(message(i))

    report(((fac < 2) & real).any(axis=1), lambda i: "temporal factors must be > 1")
    report(sp_low, lambda i: "spatial factors must be > 1")
    sp_total = sp_int.prod(axis=1)
    over = sp_total > sizes
    report(
        over.any(axis=1),
        lambda i: (
            "spatial unrolling exceeds the loop: "
            + ", ".join(f"{LOOP_DIMS[d]} {sp_total[i, d]} > {sizes[d]}" for d in np.flatnonzero(over[i]))
        ),
    )
    array_size = np.array([a.size for a in nest.hw.array.dims])
    used = sp_int.prod(axis=2)
    full = used > array_size
    report(
        full.any(axis=1),
        lambda i: (
            "array dimension over-full: "
            + ", ".join(
                f"{nest.hw.array.dims[a].name} {used[i, a]} > {array_size[a]}"
                for a in np.flatnonzero(full[i])
            )
        ),
    )
    need = -(-sizes // np.maximum(sp_total, 1))
    wrong = trips != need
    report(
        wrong.any(axis=1),
        lambda i: (
            "temporal loops do not tile the layer: "
            + ", ".join(
                f"{LOOP_DIMS[d]} {trips[i, d]} != {need[i, d]}"
                + (f" (= ceil({sizes[d]} / {sp_total[i, d]}))" if sp_total[i, d] > 1 else "")
                for d in np.flatnonzero(wrong[i])
            )
        ),
    )
    for op, (c, named) in cuts.items():
        bad = named & ((c < 0).any(axis=1) | (np.diff(c, axis=1) < 0).any(axis=1) | (c[:, -1] != n))
        report(
            bad,
            lambda i, op=op, c=c: (
                f"cuts of {op} {c[i].tolist()} must be non-decreasing, from 0 up to the "
                f"{n[i]} temporal loops (the outermost level holds all)"
            ),
        )
    if nest.layer.stateful:
        pos = np.arange(dim.shape[1])
        red = np.isin(dim, [DIM_INDEX[d] for d in REDUCTION_DIMS])
        last_red = np.where(red, pos, -1).max(axis=1, initial=-1)
        first_t = np.where(dim == DIM_INDEX["T"], pos, dim.shape[1]).min(axis=1, initial=dim.shape[1])
        report(
            first_t < last_red,
            lambda i: (
                "stateful layer: every T loop must be outside every C, FY and FX loop "
                "(a timestep's sum must be complete before the neuron updates)"
            ),
        )
        report(
            sp_total[:, DIM_INDEX["T"]] > 1,
            lambda i: "stateful layer: T cannot unroll spatially (each timestep needs the previous state)",
        )
    bad = np.zeros(rows, dtype=bool)
    bad[list(reasons)] = True
    arrays = {op: c for op, (c, _) in cuts.items()}
    if bad.any():
        dim[bad], fac[bad], n[bad], sp_int[bad], cum_dim[bad] = PAD, 1, 0, 1, 1
        for v in arrays.values():
            v[bad] = 0
    return Encoded(dim, fac, n, cum_dim, sp_int, _fractional(nest, sp_int, trips), arrays, dict(reasons))


def _fractional(nest: Nest, sp_int: np.ndarray, trips: np.ndarray) -> np.ndarray:
    """Spatial factors with a non-dividing one spread over its temporal trips: size / trips / the rest.

    As in ZigZag, the adjusted factor is the first array dimension's with the largest factor of that loop.
    """
    sizes = np.array(nest.sizes, dtype=np.float64)
    sp = sp_int.astype(np.float64)
    total = sp.prod(axis=1)
    scale = sizes / np.maximum(trips, 1) / total
    uneven = (np.abs(scale - 1) > 1e-12) & (total > 1)
    if uneven.any():
        rows, dims = np.nonzero(uneven)
        first_max = sp_int[rows, :, dims].argmax(axis=1)
        sp[rows, first_max, dims] *= scale[rows, dims]
    return sp
