"""The T sweep on SEW-ResNet-18 (issue 7): the least-energy mapping re-optimised at each T in {1, 2, 4, 8,
16} on stems-edge (1 MiB buffer), with its energy, latency, state bits and off-chip bytes. Target: no state
bits and no state traffic at T = 1; energy and state traffic grow with T."""

from __future__ import annotations

import sys

from stems.explore import explore
from stems.report.plots import knob_table

COLUMNS = ["timesteps", "energy_pj", "latency_cycles", "state_bits", "offchip_bytes", "offchip_bytes_V"]


def t_sweep(time_limit_s: float = 10.0, **kw: object) -> object:
    """The exploration of T in {1, 2, 4, 8, 16} (least energy first), shared with the acceptance test."""
    return explore(
        "zoo:sew-resnet18-dvs128",
        "stems-edge",
        sweep={"timesteps": ["1", "2", "4", "8", "16"]},
        objectives=["energy_pj", "offchip_bytes"],
        time_limit_s=time_limit_s,
        pareto_steps=0,
        **kw,
    )


def main() -> int:
    table = knob_table(t_sweep().points, "timesteps")[COLUMNS]
    print(table.to_string(index=False))
    t1 = table.iloc[0]
    ok = t1["state_bits"] == 0 and t1["offchip_bytes_V"] == 0 and table["energy_pj"].is_monotonic_increasing
    print("target met" if ok else "target missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
