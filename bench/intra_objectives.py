"""The intra-layer search's work per objective on ResNet-18's distinct layers (tpu_like), one process.

Per objective (energy, latency, EDP, energy within 1.1x each layer's least latency): wall time,
lattice solves (`SearchStats.dp_solves`, a count that does not depend on the machine's speed),
mappings priced by the local search and the refinement, how many layers are proven optimal, and a
digest of every layer's status, objective and bound (equal digests: the same answers, up to ties
between mappings of equal value). No target: it is for comparing two commits on a busy machine, e.g.
`git worktree add /tmp/old REV && PYTHONPATH=/tmp/old python bench/intra_objectives.py`; where the
host's speed varies too much for wall times, count instructions instead:
`valgrind --tool=cachegrind --cache-sim=no python bench/intra_objectives.py --objective latency`.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time

from common import resnet18_layers

OBJECTIVES = ("energy", "latency", "edp", "energy@1.1x latency")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objective", choices=(*OBJECTIVES[:3], "all"), default="all")
    ap.add_argument("--proof-depth", type=int, default=1, help="SolveOptions.proof_depth")
    args = ap.parse_args()
    objectives = OBJECTIVES if args.objective == "all" else (args.objective,)
    layers = resnet18_layers()
    if layers is None:
        return 0
    import stems.search.intra_latency as latency_search
    from stems.hardware import load_hardware
    from stems.search.intra import clear_cache, layer_key, map_layer
    from stems.search.solver import SolveOptions

    distinct = list({layer_key(x): x for x in layers}.values())
    hw = load_hardware("tpu_like")
    priced = [0]
    price_batch, price_encoded = latency_search.price_batch, latency_search.price_encoded

    def counted(layer, hw, maps):  # the latency module's pricing, counted
        priced[0] += len(maps)
        return price_batch(layer, hw, maps)

    def counted_encoded(layer, hw, enc):  # the local search's batches
        priced[0] += enc.rows
        return price_encoded(layer, hw, enc)

    latency_search.price_batch, latency_search.price_encoded = counted, counted_encoded
    fastest: dict[str, float] = {}
    print(f"ResNet-18 on tpu_like: {len(distinct)} distinct conv/dense layers, one process")
    print(f"{'objective':22s} {'wall s':>8s} {'solves':>8s} {'priced':>8s} {'proven':>7s}  answers")
    for objective in objectives:
        start = time.perf_counter()
        solves = proven = 0
        priced[0] = 0
        answers = hashlib.sha256()
        for x in distinct:
            clear_cache()
            options = SolveOptions(proof_depth=args.proof_depth)
            if objective == "energy@1.1x latency":
                r = map_layer(x, hw, "energy", options, latency_bound=1.1 * fastest[x.name])
            else:
                r = map_layer(x, hw, objective, options)
            if objective == "latency":
                fastest[x.name] = r.cost.latency_cycles
            solves += r.stats.dp_solves
            proven += r.optimal
            answers.update(
                repr((x.name, r.solve.status.value, r.solve.objective, r.solve.best_bound)).encode()
            )
        wall = time.perf_counter() - start
        print(
            f"{objective:22s} {wall:8.2f} {solves:8d} {priced[0]:8d} {proven:4d}/{len(distinct)}  "
            f"{answers.hexdigest()[:12]}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
