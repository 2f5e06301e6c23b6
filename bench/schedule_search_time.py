"""Schedule search time on 2 cores: the whole space (every segment cut, per-segment time batch and tile,
per-layer weight/state/edge residency) for one buffer size, proven optimal (energy).

Targets: SEW-ResNet-18 (DVS128) < 10 s, RED-LIF < 20 s, each from cold (the search's tables are
built in the call; nothing cached). Also reports the time at every buffer size once the tables are
built (they do not depend on the capacity). Exit 1 if a target is missed or an answer is not optimal.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from stems.hardware import load_hardware
from stems.schedule.search import clear_cache, search_schedules
from stems.search.solver import SolveOptions, Status
from stems.workload import load_workload
from stems.workload.zoo import export_model

TARGETS = {"sew-resnet18-dvs128": ("256KiB", 10.0), "red-lif": ("1MiB", 20.0)}
BUFFERS = ("128KiB", "256KiB", "512KiB", "1MiB", "2MiB", "64MiB")
OPTIONS = SolveOptions(time_limit_s=60, workers=2, seed=0)


def main() -> int:
    missed = []
    with tempfile.TemporaryDirectory() as d:
        for net, (buf, target) in TARGETS.items():
            path = Path(d) / f"{net}.onnx"
            export_model(net, path)
            w = load_workload(path)
            clear_cache()
            hw = load_hardware("stems-edge", overrides=[f"global_buffer.size={buf}"])
            start = time.perf_counter()
            out = search_schedules(w, hw, objectives=("energy_pj",), pareto_steps=0, options=OPTIONS)
            cold = time.perf_counter() - start
            ok = bool(out.points) and out.points[0].solve.status is Status.OPTIMAL and cold < target
            p = out.points[0] if out.points else None
            print(
                f"{net} @ {buf}, cold: {cold:.2f} s (target < {target:.0f} s) "
                f"{p.solve.status.value if p else 'no answer'}, "
                f"energy {p.cost.total_pj / 1e6:.1f} uJ" + ("" if ok else "  <-- MISSED")
            )
            print(f"  space: {out.space[:160]}...")
            if not ok:
                missed.append(net)
            for b in BUFFERS:  # tables now cached
                hw = load_hardware("stems-edge", overrides=[f"global_buffer.size={b}"])
                start = time.perf_counter()
                out = search_schedules(w, hw, objectives=("energy_pj",), pareto_steps=0, options=OPTIONS)
                warm = time.perf_counter() - start
                st = out.points[0].solve.status.value if out.points else "infeasible"
                print(f"  warm @ {b:>6s}: {warm:5.2f} s, {st}")
                if out.points and out.points[0].solve.status is not Status.OPTIMAL:
                    missed.append(f"{net}@{b}")
    print("all targets met" if not missed else f"missed: {', '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
