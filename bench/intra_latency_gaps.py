"""Where the latency search leaves a layer unproven, is the gap the bound's or the search's?

For each distinct ResNet-18 layer on tpu_like whose least latency is not proven: every unrolling
whose proof bound (`stems.search.intra_latency._loading_bound`, the same call the search proves
with) stays below the incumbent gets `--restarts` local searches (the search's own descent) from
seeded random loop orders and cuts. It prints, per such unrolling, the least latency they reach
against the incumbent and that unrolling's bound. If no restart goes below the incumbent, the
search's answer is likely the optimum and the bound is what falls short. No target; deterministic
(seed 0); a few minutes.
"""

from __future__ import annotations

import argparse
import math
import random
import time

from common import resnet18_layers


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--restarts", type=int, default=100, help="random starts per unrolling")
    args = ap.parse_args()
    layers = resnet18_layers()
    if layers is None:
        return 0
    from stems.cost.mapping import Mapping
    from stems.cost.model import nest_of, price_batch
    from stems.cost.sample import random_cuts, random_order
    from stems.hardware import load_hardware
    from stems.search.intra import layer_key, map_layer
    from stems.search.intra_latency import _loading_bound, _outer_links, drain_cycles, local_search
    from stems.search.lattice import Grid
    from stems.search.solver import SolveOptions, Status
    from stems.search.spatial import unrollings

    hw = load_hardware("tpu_like")
    print(f"{'layer':32s} {'unrolling':>10s} {'bound':>9s} {'incumbent':>9s} {'restarts':>8s} {'least':>9s}")
    start = time.perf_counter()
    below = 0
    for x in {layer_key(x): x for x in layers}.values():
        result = map_layer(x, hw, "latency", SolveOptions(time_limit_s=60))
        if result.solve.status is Status.OPTIMAL:
            continue
        best = result.solve.objective
        nest = nest_of(x, hw)
        links = _outer_links(nest)
        rng = random.Random(0)
        for u in unrollings(nest):
            cycles = float(math.prod(u.trips))
            drain = drain_cycles(hw, u)
            if cycles + drain >= best:
                continue
            bound, _ = _loading_bound(
                nest, u, Grid(u.trips), links, cycles, math.inf, best - drain, {}, prove=True
            )
            if bound + drain >= best:
                continue
            starts = []
            for _ in range(50 * args.restarts):  # random cuts often overflow a level
                if len(starts) == args.restarts:
                    break
                order = random_order(nest, u.as_dict(), rng)
                m = Mapping.of(u.as_dict(), order, random_cuts(nest, len(order), rng))
                if price_batch(x, hw, [m]).valid[0]:
                    starts.append(m)
            found = local_search(x, hw, starts, "latency", None, math.inf, rounds=200)
            least = min(key[0] for _, key in found)
            below += least < best
            used = "x".join(map(str, u.used))
            print(
                f"{x.name[-32:]:32s} {used:>10s} {bound + drain:9.0f} {best:9.0f} {len(starts):8d} {least:9.0f}"
            )
    verdict = "some restart beat the incumbent" if below else "no restart beat an incumbent"
    print(f"{verdict} ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
