"""Exhaustive search of small layers, the test oracle of the intra-layer search: every unrolling of
`stems.search.spatial.unrollings`, every distinct order of the trips' prime factors, every cut of
every operand, priced by `stems.cost.price_batch`.

Energy is a sum over operands of terms that read only that operand's cuts (`stems.cost.traffic`
prices each operand from its own cuts), and capacity is a per-level sum of per-operand tiles. So for
each order each operand's cut sequences are priced once (the others held fixed), and the operands
are combined exhaustively with the capacity check summed per level (`combine="separable"`);
`combine="full"` prices every combination as one mapping (slow; for cross-checks and latency).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from stems.cost.mapping import Mapping
from stems.cost.model import Cost, nest_of, price, price_batch
from stems.cost.sample import prime_factors
from stems.hardware.spec import Hardware
from stems.search.spatial import unrollings
from stems.workload.model import LOOP_DIMS, REDUCTION_DIMS, Layer


@dataclass(frozen=True)
class Exhaustive:
    """The best mapping found by enumeration, its price and how many (order, cuts) pairs were seen."""

    mapping: Mapping | None
    cost: Cost | None
    orders: int
    mappings: int


def multiset_permutations(items: list) -> Iterator[tuple]:
    """Distinct permutations of a list with repeats, in lexicographic order of first appearance."""
    counts: dict = {}
    for x in items:
        counts[x] = counts.get(x, 0) + 1
    keys = list(counts)
    n = len(items)
    out: list = []

    def rec() -> Iterator[tuple]:
        if len(out) == n:
            yield tuple(out)
            return
        for k in keys:
            if counts[k]:
                counts[k] -= 1
                out.append(k)
                yield from rec()
                out.pop()
                counts[k] += 1

    yield from rec()


def cut_sequences(levels: int, n: int) -> list[tuple[int, ...]]:
    """Non-decreasing cuts for `levels` memory levels over n loops, the outermost at n."""
    return [(*c, n) for c in itertools.combinations_with_replacement(range(n + 1), levels - 1)]


def orders(layer: Layer, trips: tuple[int, ...]) -> Iterator[tuple[tuple[str, int], ...]]:
    """Every distinct order (innermost first) of the prime factors of the trips, the stateful T rule kept."""
    factors = [(d, p) for d, t in zip(LOOP_DIMS, trips, strict=True) for p in prime_factors(t)]
    for order in multiset_permutations(factors):
        if layer.stateful:
            red = [i for i, (d, _) in enumerate(order) if d in REDUCTION_DIMS]
            ts = [i for i, (d, _) in enumerate(order) if d == "T"]
            if red and ts and min(ts) < max(red):
                continue
        yield order


def exhaustive(
    layer: Layer, hw: Hardware, objective: str = "energy", combine: str = "separable", limit: int = 5_000_000
) -> Exhaustive:
    """The minimum over the whole space (energy; `combine="full"` also for "latency" and "edp")."""
    nest = nest_of(layer, hw)
    best_key, best_map, n_orders, n_maps = math.inf, None, 0, 0
    for u in unrollings(nest):
        spatial = u.as_dict()
        all_orders = list(orders(layer, u.trips))
        n_orders += len(all_orders)
        if combine == "full":
            for order in all_orders:
                key, m, count = _full(layer, hw, nest, spatial, order, objective)
                n_maps += count
                if n_maps > limit:
                    raise ValueError(f"more than {limit} mappings: too large to enumerate")
                if m is not None and key < best_key:
                    best_key, best_map = key, m
            continue
        if objective != "energy":
            raise ValueError("the separable enumeration prices energy only")
        key, m, count = _separable(layer, hw, nest, spatial, all_orders, limit - n_maps)
        n_maps += count
        if m is not None and key < best_key:
            best_key, best_map = key, m
    return Exhaustive(best_map, price(layer, hw, best_map) if best_map else None, n_orders, n_maps)


def _objective(table, objective: str) -> np.ndarray:
    if objective == "energy":
        return table.energy_pj
    if objective == "latency":
        return table.latency_cycles
    if objective == "edp":
        return table.energy_pj * table.latency_cycles
    raise ValueError(objective)


def _full(layer, hw, nest, spatial, order, objective):
    n = len(order)
    per_op = [(o.name, [lv.name for lv in o.levels], cut_sequences(len(o.levels), n)) for o in nest.operands]
    maps = []
    for combo in itertools.product(*(c for _, _, c in per_op)):
        cuts = {
            name: dict(zip(levels, seq, strict=True))
            for (name, levels, _), seq in zip(per_op, combo, strict=True)
        }
        maps.append(Mapping.of(spatial, list(order), cuts))
    table = price_batch(layer, hw, maps)
    value = np.where(table.valid, _objective(table, objective), np.inf)
    i = int(np.argmin(value))
    return (float(value[i]), maps[i] if np.isfinite(value[i]) else None, len(maps))


def _separable(layer, hw, nest, spatial, all_orders, budget, chunk: int = 20_000):
    if not all_orders:
        return math.inf, None, 0
    n = len(all_orders[0])
    base = {o.name: {lv.name: n for lv in o.levels} for o in nest.operands}
    sizes = {lv.name: lv.size_bits for lv in hw.memories}
    per_op = []  # per operand: cut sequences, energy (orders, seqs), held {level: (orders, seqs)}
    count = 0
    for o, spec in enumerate(nest.operands):
        levels = [lv.name for lv in spec.levels]
        seqs = cut_sequences(len(levels), n)
        count += len(seqs) * len(all_orders)
        if count > budget:
            raise ValueError("too many mappings to enumerate")
        maps = [
            Mapping.of(spatial, list(order), {**base, spec.name: dict(zip(levels, c, strict=True))})
            for order in all_orders
            for c in seqs
        ]
        energy = np.empty(len(maps))
        held: dict[str, np.ndarray] = {}
        for lo in range(0, len(maps), chunk):
            table = price_batch(layer, hw, maps[lo : lo + chunk])
            if table.malformed:
                raise AssertionError(
                    f"enumerated a malformed mapping: {next(iter(table.malformed.values()))}"
                )
            energy[lo : lo + chunk] = table.access_pj[:, o].sum(axis=(1, 2))
            for ov in table.overflows:
                for op, bits in ov.parts:
                    if op == spec.name:
                        held.setdefault(ov.level, np.empty(len(maps)))[lo : lo + chunk] = bits
        shape = (len(all_orders), len(seqs))
        per_op.append((seqs, energy.reshape(shape), {lv: b.reshape(shape) for lv, b in held.items()}))
    best, best_map = math.inf, None
    for i, order in enumerate(all_orders):
        value, choice = _combine([(e[i], {lv: b[i] for lv, b in h.items()}) for _, e, h in per_op], sizes)
        if choice is not None and value < best:
            cuts = {}
            for spec, (seqs, _, _), k in zip(nest.operands, per_op, choice, strict=True):
                cuts[spec.name] = dict(zip([lv.name for lv in spec.levels], seqs[k], strict=True))
            best, best_map = value, Mapping.of(spatial, list(order), cuts)
    return best, best_map, count


def _combine(options, sizes):
    """Least total over one choice per operand, every level within capacity (shared ones summed)."""
    kept = []
    for energy, held in options:
        ok = np.ones(len(energy), dtype=bool)
        for lv, b in held.items():
            ok &= b <= sizes[lv]
        idx = np.flatnonzero(ok)
        if not len(idx):
            return math.inf, None
        kept.append((idx, energy[idx], {lv: b[idx] for lv, b in held.items()}))
    shape = [len(k[0]) for k in kept]
    axes = len(shape)

    def along(x, o):
        return x.reshape([-1 if k == o else 1 for k in range(axes)])

    total = np.zeros(shape)
    for o, (_, e, _) in enumerate(kept):
        total = total + along(e, o)
    for lv, size in sizes.items():
        users = [o for o, (_, _, h) in enumerate(kept) if lv in h]
        if len(users) > 1:
            need = sum(along(kept[o][2][lv], o) for o in users)
            total = np.where(need <= size, total, np.inf)
    flat = int(np.argmin(total))
    if not np.isfinite(total.flat[flat]):
        return math.inf, None
    idx = np.unravel_index(flat, shape)
    return float(total.flat[flat]), tuple(int(kept[o][0][k]) for o, k in enumerate(idx))


def space_size(layer: Layer, hw: Hardware) -> int:
    """Mappings `exhaustive` prices (separable): per unrolling, orders x the operands' cut sequences."""
    nest = nest_of(layer, hw)
    total = 0
    for u in unrollings(nest):
        factors = [p for t in u.trips for p in prime_factors(t)]
        n = len(factors)
        n_orders = math.factorial(n)
        for t in u.trips:
            for p in set(prime_factors(t)):
                n_orders //= math.factorial(prime_factors(t).count(p))
        cuts = sum(math.comb(n + len(o.levels) - 1, len(o.levels) - 1) for o in nest.operands)
        total += n_orders * cuts
    return total
