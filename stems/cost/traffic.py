"""What each operand moves at each memory level, for a batch of mappings: ZigZag's data-movement model.

Per operand, per level (arrays over the batch):

* the tile one instance holds: the relevant loops below the cut times the spatial loops of the array
  dimensions the level serves (I through the sliding window);
* stationarity: irrelevant loops directly above a cut do not refill the tile, so the cut is raised
  past them (ZigZag's merge-down) before refill periods are taken;
* a move is (elements per period per instance, bits per element, period, periods, instances).
  Inputs flow down: to_low (the tile below times its unique fan-out) and from_high (a refill).
  Outputs also flow up: from_low every period of the level below, to_high every refill; while a
  reduction loop (O: C, FY, FX; V: also T) remains above, the tile is a partial sum, read back down
  (to_low) and up (from_high) at partial-sum bits, else it is final.

The arithmetic follows zigzag-dse 3.9.1's `Mapping` and `TemporalMapping` (including its rounding),
so ANN layers price number for number; the outermost level's traffic beyond itself is not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stems.cost.encode import N_DIMS, Encoded
from stems.cost.nest import DIM_INDEX, PAD, Nest, OperandSpec
from stems.hardware.spec import Direction

TO_LOW, FROM_HIGH, FROM_LOW, TO_HIGH = tuple(Direction)
_Y = (DIM_INDEX["OY"], DIM_INDEX["FY"])
_X = (DIM_INDEX["OX"], DIM_INDEX["FX"])


@dataclass(frozen=True)
class Move:
    """One (operand, level, direction) movement over the batch; `count` is 0 where it does not happen."""

    amount: np.ndarray  # elements per period, per instance
    bits: np.ndarray  # bits per element
    period: np.ndarray  # cycles between transfers (real time)
    count: np.ndarray  # transfers over the layer
    instances: np.ndarray  # copies of the level that move it


@dataclass(frozen=True)
class OperandTraffic:
    """One operand's tiles and movements; lists indexed by architecture level a = 0 (the PEs) .. n.

    Memory level m of the operand is architecture level m + 1.
    """

    spec: OperandSpec
    tile: list[np.ndarray]  # elements per instance (a = 0: one element per PE)
    tile_bits: list[np.ndarray]  # tile x bits as ZigZag sizes it (final unless reduction remains above)
    held_bits: list[np.ndarray]  # tile x the widest bits it holds (partial sums where it accumulates)
    whole: list[np.ndarray]  # the tile is the operand's whole remaining share (no relevant loop above)
    top_irrelevant: list[np.ndarray]  # product of the irrelevant loops on top of the level's own loops
    top_relevant: list[np.ndarray]  # same for relevant loops
    moves: dict[tuple[int, Direction], Move]  # (memory level m, direction)


def _extent(nest: Nest, axis: int, out: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Input rows (axis 0) or columns (1) that `out` outputs x `kernel` taps read, clipped to the input:
    ZigZag's count of distinct `stride * o + dilation * f`, on sizes truncated to integers as it does."""
    a, b = np.floor(out + 1e-9), np.floor(kernel + 1e-9)
    s, d = nest.stride[axis], nest.dilation[axis]
    g = np.gcd(s, d)
    raw = a * b - np.maximum(0, b - s // g) * (a - d // g)
    return np.minimum(nest.input_yx[axis], raw)


def _elements(nest: Nest, spec: OperandSpec, size: np.ndarray) -> np.ndarray:
    """Elements an operand tile holds, from per-dimension loop sizes (..., D)."""
    # A fixed order: float products must not depend on the hash seed.
    rel = sorted(DIM_INDEX[d] for d in spec.relevant)
    out = size[..., rel].prod(axis=-1)
    if spec.window:
        out = out * _extent(nest, 0, size[..., _Y[0]], size[..., _Y[1]])
        out = out * _extent(nest, 1, size[..., _X[0]], size[..., _X[1]])
    return out


def _prefix(x: np.ndarray) -> np.ndarray:
    """(B, N) -> (B, N + 1) running product, 1 first."""
    return np.concatenate([np.ones((x.shape[0], 1), dtype=x.dtype), np.cumprod(x, axis=1)], axis=1)


def _next_true(mask: np.ndarray) -> np.ndarray:
    """(B, N) -> (B, N + 1): the first position >= p where `mask` holds, N if none."""
    rows, width = mask.shape
    idx = np.where(mask, np.arange(width), width)
    out = np.minimum.accumulate(idx[:, ::-1], axis=1)[:, ::-1] if width else idx
    return np.concatenate([out, np.full((rows, 1), width)], axis=1)


def _last_true_before(mask: np.ndarray) -> np.ndarray:
    """(B, N) -> (B, N + 1): the last position < p where `mask` holds, -1 if none."""
    rows, width = mask.shape
    idx = np.where(mask, np.arange(width), -1)
    run = np.maximum.accumulate(idx, axis=1) if width else idx
    return np.concatenate([np.full((rows, 1), -1), run], axis=1)


def operand_traffic(nest: Nest, enc: Encoded, spec: OperandSpec) -> OperandTraffic:
    """Tiles and moves of one operand for every mapping of the batch."""
    rows = np.arange(enc.rows)
    n = len(spec.levels)
    cuts = enc.cuts[spec.name]
    absent = [DIM_INDEX[d] for d in spec.absent]
    fac = np.where(enc.mask(spec.absent), 1, enc.fac) if absent else enc.fac
    sp = enc.sp.copy()
    sp[:, :, absent] = 1.0
    reuse = enc.mask(spec.reuse)
    relevant = enc.mask(spec.relevant)
    cum = _prefix(fac)
    total = cum[rows, enc.n]
    # (B, levels) arrays, every level at once (a batch's fixed cost is its number of numpy calls)
    col = rows[:, None]
    stop = _next_true(~reuse)  # stationarity: a cut rises past the reuse loops right above it
    raised = stop[col, cuts]
    start = np.concatenate([np.zeros((enc.rows, 1), dtype=np.int64), raised[:, :-1]], axis=1)
    raised_cum = cum[col, raised]  # product of the loops below each raised cut

    def run_on_top(last: np.ndarray) -> list[np.ndarray]:
        """Per level, the product of the loops above the last one `last` marks below its raised cut."""
        one = np.ones(enc.rows, dtype=np.int64)
        return [one, *(raised_cum // cum[col, np.maximum(last[col, raised] + 1, start)]).T]

    top_irrelevant = run_on_top(_last_true_before(~reuse))
    top_relevant = run_on_top(_last_true_before(~relevant))

    # Spatial loops sit at the lowest level serving their array dimension ("entry").
    entry = np.array(spec.entry)
    below = [sp[:, entry <= m, :].prod(axis=1) for m in range(n)]
    copies = [sp[:, entry >= a, :].prod(axis=(1, 2)) for a in range(n + 1)]
    instances = list(np.rint(np.round(np.array(copies), 3)))
    fanout = []
    prev = np.ones((enc.rows, N_DIMS))
    for e in range(n):
        if e not in spec.entry:  # no array dimension enters here: one copy each
            fanout.append(np.ones(enc.rows))
            continue
        through = prev * sp[:, entry == e, :].prod(axis=1)
        fanout.append(np.rint(_elements(nest, spec, through) / _elements(nest, spec, prev)))
        prev = through
    fanout.append(np.ones(enc.rows))

    sizes = enc.cum_dim[col, cuts, :] * np.stack(below, axis=1)  # (B, levels, D) loops below each cut
    tile = [np.ones(enc.rows), *np.rint(_elements(nest, spec, sizes)).T]
    rel_cum = _prefix(np.where(~reuse & (enc.dim != PAD), fac, 1))
    whole = [np.zeros(enc.rows, dtype=bool), *(rel_cum[col, cuts] == rel_cum[rows, enc.n][:, None]).T]

    if spec.output:
        open_ = ((fac > 1) & reuse)[:, ::-1].cumsum(axis=1)[:, ::-1]  # reuse loops at positions >= p
        busy = np.concatenate([open_, np.zeros((enc.rows, 1), dtype=np.int64)], axis=1)
        sp_reuse = np.zeros(N_DIMS, dtype=bool)
        sp_reuse[[DIM_INDEX[d] for d in spec.reuse]] = True
        sp_open = (sp > 1) & sp_reuse
        reduced_above = busy[col, start] > 0
        psum = [reduced_above[:, m] | sp_open[:, entry >= m + 1, :].any(axis=(1, 2)) for m in range(n)] + [
            np.zeros(enc.rows, dtype=bool)
        ]
        bits = [np.where(p, spec.psum_bits, spec.bits) for p in psum]
        period = [np.ones(enc.rows, dtype=np.int64), *raised_cum.T]
    else:
        bits = [np.full(enc.rows, spec.bits)] * (n + 1)
        period = [cum[rows, stop[:, 0]], *raised_cum.T]
    tile_bits = [t * b for t, b in zip(tile, bits, strict=True)]
    held = [np.where(p, spec.psum_bits, spec.bits) for p in psum[:-1]] if spec.output else bits[1:]
    held_bits = [tile[0] * bits[0]] + [t * b for t, b in zip(tile[1:], held, strict=True)]

    stretch = enc.cycles // total  # loops absent for this operand still take cycles
    zero = np.zeros(enc.rows, dtype=np.int64)
    moves: dict[tuple[int, Direction], Move] = {}
    for m in range(n):

        def move(amount: np.ndarray, a: int, when: np.ndarray | None = None, m: int = m) -> Move:
            """`amount` elements at architecture level a's bits, once per period of level a."""
            count = total // period[a]
            if when is not None:
                count = np.where(when, count, 0)
            if a == n:  # beyond the outermost level: not counted
                count = zero
            return Move(amount, bits[a], period[a] * stretch, count, instances[m + 1])

        down = tile[m] * fanout[m]
        if spec.output:
            moves[m, FROM_LOW] = move(down, m)
            moves[m, TO_LOW] = move(down, m, psum[m])
            moves[m, TO_HIGH] = move(tile[m + 1], m + 1)
            moves[m, FROM_HIGH] = move(tile[m + 1], m + 1, psum[m + 1])
        else:
            moves[m, TO_LOW] = move(down, m)
            moves[m, FROM_HIGH] = move(tile[m + 1], m + 1)
    return OperandTraffic(spec, tile, tile_bits, held_bits, whole, top_irrelevant, top_relevant, moves)
