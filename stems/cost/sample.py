"""Random mappings of a layer: for property tests, and the building blocks of an enumerator.

A draw picks a spatial unrolling (allowed loops per array dimension, often filling it, sometimes
partially), splits every loop's temporal trips into factors, orders them (T outside the reduction
for stateful layers) and cuts each operand's levels, biased to small inner tiles. Capacity is left to
the cost model: `sample_mappings` keeps the draws `price_batch` finds valid.
"""

from __future__ import annotations

import math
import random

from stems.cost.mapping import Mapping
from stems.cost.model import nest_of, price_batch
from stems.cost.nest import Nest
from stems.hardware.spec import Hardware
from stems.workload.model import LOOP_DIMS, REDUCTION_DIMS, Layer


def prime_factors(n: int) -> list[int]:
    """Prime factors of n, smallest first (empty for 1)."""
    out, p = [], 2
    while p * p <= n:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    return [*out, n] if n > 1 else out


def split(trips: int, rng: random.Random) -> list[int]:
    """`trips` as a random list of factors > 1 (primes shuffled, some merged)."""
    primes = prime_factors(trips)
    rng.shuffle(primes)
    out: list[int] = []
    for p in primes:
        if out and rng.random() < 0.4:
            out[-1] *= p
        else:
            out.append(p)
    return out


def random_spatial(nest: Nest, rng: random.Random, exact: bool = False) -> dict[str, dict[str, int]]:
    """Per array dimension, some allowed loops with factors that fit it (dividing the loop if `exact`)."""
    left = dict(zip(LOOP_DIMS, nest.sizes, strict=True))
    out: dict[str, dict[str, int]] = {}
    for a in nest.hw.array.dims:
        room = a.size
        loops = [d for d in a.loops if d in left]
        rng.shuffle(loops)
        for d in loops:
            top = min(room, left[d])
            if top < 2 or rng.random() < 0.25:
                continue
            divisors = [f for f in range(2, top + 1) if left[d] % f == 0]
            if exact and not divisors:
                continue
            f = rng.choice(divisors) if exact or (divisors and rng.random() < 0.5) else top
            out.setdefault(a.name, {})[d] = f
            room //= f
            left[d] = -(-left[d] // f)
    return out


def random_order(nest: Nest, spatial: dict[str, dict[str, int]], rng: random.Random) -> list[tuple[str, int]]:
    """Temporal loops innermost first; a stateful layer's T loops all sit above its reduction loops."""
    loops = []
    for d, size in zip(LOOP_DIMS, nest.sizes, strict=True):
        sp = math.prod(f for per in spatial.values() for x, f in per.items() if x == d)
        loops += [(d, f) for f in split(-(-size // sp), rng)]
    rng.shuffle(loops)
    if not nest.layer.stateful:
        return loops
    rest = [x for x in loops if x[0] != "T"]
    low = max((i + 1 for i, (d, _) in enumerate(rest) if d in REDUCTION_DIMS), default=0)
    for t in (x for x in loops if x[0] == "T"):
        rest.insert(rng.randint(low, len(rest)), t)
    return rest


def random_cuts(nest: Nest, n: int, rng: random.Random) -> dict[str, dict[str, int]]:
    """Non-decreasing cuts per operand, the outermost at n, inner ones biased low (small tiles)."""
    out = {}
    for o in nest.operands:
        cuts, prev = [], 0
        for _ in o.levels[:-1]:
            prev += math.floor((n - prev) * rng.random() ** 2)
            cuts.append(prev)
        out[o.name] = dict(zip((lv.name for lv in o.levels), [*cuts, n], strict=True))
    return out


def random_mapping(layer: Layer, hw: Hardware, rng: random.Random, exact: bool = False) -> Mapping:
    """One well-formed random mapping (it may still overflow a memory); `exact`: spatial factors
    divide their loops."""
    nest = nest_of(layer, hw)
    spatial = random_spatial(nest, rng, exact)
    order = random_order(nest, spatial, rng)
    return Mapping.of(spatial, order, random_cuts(nest, len(order), rng))


def sample_mappings(
    layer: Layer, hw: Hardware, count: int, seed: int = 0, *, exact: bool = False, tries: int = 200
) -> list[Mapping]:
    """`count` distinct valid random mappings (fewer if `tries` batches of draws do not find them)."""
    rng = random.Random(seed)
    found: dict[Mapping, None] = {}
    for _ in range(tries):
        batch = [random_mapping(layer, hw, rng, exact) for _ in range(max(4 * count, 16))]
        table = price_batch(layer, hw, batch)
        for m, ok in zip(batch, table.valid, strict=True):
            if ok:
                found.setdefault(m)
        if len(found) >= count:
            break
    return list(found)[:count]
