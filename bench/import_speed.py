"""Import time of the largest corpus file (spikingjelly VGG-11, 38 MB); target: under 5 s."""

from __future__ import annotations

import sys

from common import median_seconds, shared_dir

from stems.workload import load_workload, totals

TARGET_S = 5.0


def main() -> int:
    path = shared_dir() / "corpus" / "sj_vgg11_T4_dynamo.onnx"
    if not path.is_file():
        print(f"SKIPPED: {path} not found (set STEMS_SHARED to the shared/ folder)")
        return 0
    median, times = median_seconds(lambda: load_workload(path))
    t = totals(load_workload(path))
    print(
        f"import {path.name} ({path.stat().st_size / 2**20:.1f} MiB): median {median:.3f} s over "
        f"{len(times)} runs (min {min(times):.3f}, max {max(times):.3f})"
    )
    print(f"  layers {t['layers']}, weights {t['weights']:,}, T {t['timesteps']}")
    print(
        f"  target {TARGET_S:.1f} s: ratio median/target = {median / TARGET_S:.3f} -> "
        f"{'MET' if median < TARGET_S else 'NOT MET'}"
    )
    return 0 if median < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
