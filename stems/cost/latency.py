"""Latency of a batch of mappings as ZigZag's `latency_total2`: temporal cycles + bandwidth stalls +
on-loading + off-loading + systolic drain.

* Each move must fit its transfers into an allowed window per period: the whole period if the level
  it fills can double-buffer (its tile, beside what shares the memory, fits in half of it), else the
  period divided by the irrelevant loops on top of that level. Per physical port, the moves it serves
  stall (transfer cycles beyond their window) or leave slack; slack is shared only as far as the
  windows of the port's moves do not overlap. The layer stalls by the worst port.
* On-loading: what must arrive before the first operation (moves made once), less what the port can
  prefetch during computation with its spare bandwidth; moves made every period cost one transfer.
  Off-loading: the last outputs leaving, level by level.

The arithmetic follows zigzag-dse 3.9.1's `CostModelEvaluation.calc_latency` and `PortActivity`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stems.cost.nest import OPERAND_ORDER, Nest
from stems.cost.traffic import FROM_HIGH, FROM_LOW, TO_HIGH, TO_LOW, OperandTraffic
from stems.hardware.spec import Direction

Key = tuple[str, int, Direction]  # (operand, its memory level index, direction)


@dataclass(frozen=True)
class Latency:
    """Per mapping: total cycles and the stall, on-loading, off-loading and drain cycles in it."""

    cycles: np.ndarray
    stall: np.ndarray
    onload: np.ndarray
    offload: np.ndarray
    drain: np.ndarray
    level_stall: np.ndarray  # (B, levels): the worst port of each memory level; `stall` is the worst level


def _double_buffered(traffic: dict[str, OperandTraffic]) -> dict[str, list[np.ndarray]]:
    """Per operand and architecture level: can the level hold a second tile while the first is used?"""
    ind, shared = {}, {}
    for name, t in traffic.items():
        ind[name] = [
            (t.tile_bits[m + 1] // t.top_relevant[m + 1]) / lv.size_bits for m, lv in enumerate(t.spec.levels)
        ]
    where = {(name, lv.name): m for name, t in traffic.items() for m, lv in enumerate(t.spec.levels)}
    for name, t in traffic.items():
        shared[name] = [
            sum(ind[o][where[o, lv.name]] for o in traffic if (o, lv.name) in where) for lv in t.spec.levels
        ]
    flags = {}
    for name in (o for o in OPERAND_ORDER if o in traffic):
        t = traffic[name]
        flags[name] = [np.zeros_like(ind[name][0], dtype=bool)]
        for m, lv in enumerate(t.spec.levels):
            half = shared[name][m] <= 0.5
            room = ~half & (ind[name][m] <= 1 - shared[name][m])
            flags[name].append(half | room)
            for o in traffic:
                if (o, lv.name) in where:
                    k = where[o, lv.name]
                    shared[o][k] = np.where(room, shared[o][k] + ind[name][m], shared[o][k])
    return flags


def _window_union(period: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Measure of the union of windows [0, allowed) repeating every period, within the longest period.

    (k, B) arrays with nested periods (each divides the next larger one), as prefix products are.
    """
    order = np.argsort(period, axis=0, kind="stable")
    p = np.take_along_axis(period, order, axis=0)
    a = np.take_along_axis(allowed, order, axis=0)
    union: list[np.ndarray] = []

    def covered(j: int, y: np.ndarray) -> np.ndarray:
        """Measure of windows 0..j within [0, y); y is (S, B)."""
        if j < 0:
            return np.zeros_like(y)
        q, r = np.divmod(y, p[j])
        return q * union[j] + within(j, r)

    def within(j: int, x: np.ndarray) -> np.ndarray:
        """Same for x <= p[j]: window j itself plus what the shorter ones add beyond it."""
        head = np.minimum(x, a[j])
        both = covered(j - 1, np.concatenate([x, head]))
        return head + np.maximum(0, both[: len(x)] - both[len(x) :])

    for j in range(len(p)):
        union.append(within(j, p[j][None])[0])
    return union[-1]


def _port_stall(real: np.ndarray, allowed: np.ndarray, count: np.ndarray, period: np.ndarray) -> np.ndarray:
    """Stall (+) of one port over the layer, from its moves' (k, B) transfer cycles, allowed cycles,
    transfers and periods (two or more moves that happen; a lone one stalls by its own excess)."""
    active = count > 0
    ss = np.where(active, (real - allowed) * (count - 1), 0)
    window = np.where(active, allowed * (count - 1), 0)
    full = active & (period == allowed)
    cols = np.arange(active.shape[1])
    # The union of windows matters only where two or more moves share the port and none has it whole;
    # a lone move stalls by its own excess (an infinite union leaves only the positive part).
    union = np.where(full.any(axis=0), (period * count)[np.argmax(full, axis=0), cols], np.inf)
    need = ~full.any(axis=0) & (active.sum(axis=0) > 1)
    if need.any():
        p = np.where(active, period, 1)[:, need]
        longest = np.argmax(p, axis=0)
        covered = _window_union(p, np.where(active, allowed, 0)[:, need])
        union[need] = covered * count[:, need][longest, np.arange(need.sum())]
    return np.maximum(ss, 0).sum(axis=0) + np.maximum(
        0, np.minimum(ss, 0).sum(axis=0) + window.sum(axis=0) - union
    )


@dataclass(frozen=True)
class _Moves:
    """Every move of the batch, stacked: row j of each (moves, B) array is move `keys[j]`."""

    keys: list[Key]
    row: dict[Key, int]
    count: np.ndarray
    period: np.ndarray
    real: np.ndarray  # transfer cycles per period on its port
    allowed: np.ndarray  # cycles a transfer may take per period
    reserve: np.ndarray  # bandwidth (bits per cycle) a move made every period reserves on its port
    keep: np.ndarray  # cycles of a move made once that prefetching cannot remove: one innermost tile


def _timing(nest: Nest, traffic: dict[str, OperandTraffic], rows: int) -> _Moves:
    """Every move with its transfer cycles and allowed cycles per period, stacked (a batch's fixed
    cost is its number of numpy calls)."""
    db = _double_buffered(traffic)
    keys, moves, filled, bw = [], [], [], []
    for port, served in nest.port_moves:
        for op, m, d in served:
            move = traffic[op].moves.get((m, d))
            if move is not None:
                keys.append((op, m, d))
                moves.append(move)
                filled.append((op, m + 1 if d in (TO_HIGH, FROM_HIGH) else m))  # the level filled or emptied
                bw.append(port.bw_bits)
    shape = (len(keys), rows)

    def stacked(values: list) -> np.ndarray:
        return np.array(values).reshape(shape)

    count, period, amount, bits = (
        stacked([getattr(x, f) for x in moves]) for f in ("count", "period", "amount", "bits")
    )
    on_top = stacked([traffic[op].top_irrelevant[a] for op, a in filled])
    can_db = stacked([db[op][a] for op, a in filled])
    innermost = stacked([traffic[op].tile_bits[1] for op, _ in filled])
    width = np.array(bw).reshape(-1, 1)
    return _Moves(
        keys,
        {k: j for j, k in enumerate(keys)},
        count,
        period,
        np.ceil(amount * bits / width),
        np.where(can_db, period, period // np.maximum(on_top, 1)),
        np.floor(amount * bits / np.maximum(period, 1)),
        np.ceil(innermost / width),
    )


def _loading(
    ports: tuple, mv: _Moves, traffic: dict[str, OperandTraffic], compute: np.ndarray
) -> tuple[dict[Key, np.ndarray], set[Key]]:
    """Cycles each load (inputs going down, outputs going up) adds before or after the computation:
    a move made once is prefetched with its port's spare bandwidth (longest first, down to one
    innermost tile), a move made every period costs one transfer; and the loads on ports that both
    inputs share."""
    loading: dict[Key, np.ndarray] = {}
    shared: set[Key] = set()
    once, often = mv.count == 1, mv.count > 1
    reserved = np.where(often, mv.reserve, 0)
    # what prefetching can remove from a move made once: all but one innermost tile
    gain = np.where(once, np.maximum(0, mv.real - mv.keep), 0)
    for port, served in ports:
        js = [
            mv.row[k]
            for k in served
            if k in mv.row and not (traffic[k[0]].spec.output and k[2] in (TO_LOW, FROM_HIGH))
        ]
        if not js:
            continue
        spare = np.maximum(0, (port.bw_bits - reserved[js].sum(axis=0)) / port.bw_bits * compute)
        if len(js) == 1:
            reduced = np.minimum(gain[js], spare)
        else:  # the longest move made once first
            order = np.argsort(np.where(once[js], -mv.real[js], np.inf), axis=0, kind="stable")
            cols = np.arange(len(compute))
            stacked = gain[js]
            reduced = np.zeros_like(stacked)
            for idx in order:
                cut = np.minimum(stacked[idx, cols], spare)
                reduced[idx, cols] = cut
                spare = spare - cut
        left = np.where(once[js] | often[js], mv.real[js] - reduced, 0)
        part = {mv.keys[j]: left[i] for i, j in enumerate(js)}
        loading |= part
        if {k[0] for k in served} >= {"I", "W"}:
            shared |= part.keys()
    return loading, shared


def _onload(
    traffic: dict[str, OperandTraffic], loading: dict[Key, np.ndarray], shared: set[Key], rows: int
) -> np.ndarray:
    """Initial loading of W and I: per link the slower end; links on ports both inputs share add up,
    the rest overlap with the other input's (ZigZag's combination)."""
    parts = {}
    zero = np.zeros(rows)
    for op in ("W", "I"):
        alone, both, half = zero, zero, zero
        for m in range(len(traffic[op].spec.levels) - 1):
            k1, k2 = (op, m, FROM_HIGH), (op, m + 1, TO_LOW)
            longest = np.maximum(loading.get(k1, zero), loading.get(k2, zero))
            if k1 in shared and k2 in shared:
                both = both + longest
            elif k1 not in shared and k2 not in shared:
                alone = alone + longest
            else:
                half = longest  # ZigZag keeps only the last half-shared link
        parts[op] = (alone, both, half)
    (aw, sw, hw), (ai, si, hi) = parts["W"], parts["I"]
    return np.minimum(sw + np.maximum(si + hi + ai, hw + aw), si + np.maximum(sw + hw + aw, hi + ai))


def latency(
    nest: Nest, traffic: dict[str, OperandTraffic], cycles: np.ndarray, sp_int: np.ndarray
) -> Latency:
    """ZigZag's latency_total2 and its parts, per mapping."""
    ports = nest.port_moves
    mv = _timing(nest, traffic, len(cycles))
    happens = (mv.count > 0).any(axis=1)
    # a lone move's stall: its own excess
    excess = np.maximum(np.where(mv.count > 0, (mv.real - mv.allowed) * (mv.count - 1), 0), 0)
    names = [lv.name for lv in nest.hw.memories]
    level_stall = np.zeros((len(cycles), len(names)))
    for _, served in ports:
        js = [mv.row[k] for k in served if k in mv.row and happens[mv.row[k]]]
        if not js:
            continue
        if len(js) == 1:
            port_stall = excess[js[0]]
        else:
            port_stall = _port_stall(mv.real[js], mv.allowed[js], mv.count[js], mv.period[js])
        col = names.index(traffic[served[0][0]].spec.levels[served[0][1]].name)
        level_stall[:, col] = np.maximum(level_stall[:, col], port_stall)
    stall = level_stall.max(axis=1, initial=0)
    loading, shared = _loading(ports, mv, traffic, cycles + stall)
    onload = _onload(traffic, loading, shared, len(cycles))
    offload = np.zeros(len(cycles))
    for op in ("O", "V"):
        for m in range(len(traffic[op].spec.levels) - 1 if op in traffic else 0):
            offload = offload + np.maximum(loading[op, m, TO_HIGH], loading[op, m + 1, FROM_LOW])
    used = sp_int.prod(axis=2)
    systolic = np.array([a.systolic for a in nest.hw.array.dims])
    drain = np.where(systolic, np.maximum(used - 1, 0), 0).sum(axis=1)
    return Latency(cycles + stall + onload + offload + drain, stall, onload, offload, drain, level_stall)
