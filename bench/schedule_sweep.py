"""Issue 5 acceptance: off-chip traffic and energy of the baseline, the single-mode schedules and the
searched optimum for SEW-ResNet-18 (DVS128) and RED-LIF on stems-edge, global buffers of 128 KiB to
64 MiB; and the state-removal study (SEW-ResNet-18 with blocks 0-1 stateless).

Rows per network and buffer:
* baseline / single modes, greedy residency (`stems.schedule.baselines`): layer-by-layer-sequential
  (the paper's baseline), all-time-batched, all-fused-st, all-fused-tb, stems-paper-tb-f;
* the same four single modes with their *optimal* residency (the search restricted to one mode, one
  segment): `opt-ST-LBL`, `opt-TB-LBL`, `opt-ST-F(1c)`, `opt-TB-F(1c)`;
* the searched optimum of the whole space, for energy (`optimum:energy`) and for off-chip bytes
  (`optimum:offchip`), proven optimal.

Writes bench/out/schedule_sweep.csv, schedule_state_removal.csv and schedule_sweep.png; prints the
tables. Exit 0 (a report; the targets live in schedule_search_time.py).
"""

from __future__ import annotations

import csv
import sys
import tempfile
import time
from pathlib import Path

from stems.hardware import load_hardware
from stems.schedule import Schedule
from stems.schedule.baselines import baseline
from stems.schedule.model import blocks_of
from stems.schedule.search import search_schedules
from stems.schedule.search_space import SearchSpace
from stems.search.solver import SolveOptions
from stems.workload import load_workload
from stems.workload.zoo import export_model

OUT = Path(__file__).resolve().parent / "out"
NETWORKS = ("sew-resnet18-dvs128", "red-lif")
BUFFERS = ("128KiB", "256KiB", "512KiB", "1MiB", "2MiB", "64MiB")
GREEDY = ("layer-by-layer-sequential", "all-time-batched", "all-fused-st", "all-fused-tb", "stems-paper-tb-f")
OPTIONS = SolveOptions(time_limit_s=120, workers=2, seed=0)


def modes(t: int) -> dict[str, SearchSpace]:
    return {
        "opt-ST-LBL": SearchSpace(time_batches=(1,), tiles=(None,), cuts=False),
        "opt-TB-LBL": SearchSpace(time_batches=(t,), tiles=(None,), cuts=False),
        "opt-ST-F(1c)": SearchSpace(time_batches=(1,), tiles=(1,), cuts=False),
        "opt-TB-F(1c)": SearchSpace(time_batches=(t,), tiles=(1,), cuts=False),
    }


def load(name: str, tmp: Path):
    path = tmp / f"{name}.onnx"
    export_model(name, path)
    return load_workload(path)


def row(net, buf, kind, cost, status="", wall=None, segments=""):
    if cost is None:
        return {"network": net, "buffer": buf, "schedule": kind, "feasible": False, "status": status}
    return {
        "network": net,
        "buffer": buf,
        "schedule": kind,
        "feasible": cost.feasible,
        "status": status,
        "offchip_MB": cost.traffic.total_bytes / 1e6,
        "energy_uJ": cost.total_pj / 1e6,
        "latency_Mcycles": cost.latency_cycles / 1e6,
        "peak_KiB": sum(cost.peak_bits.values()) / 8192,
        "compulsory_MB": cost.compulsory.total_bytes / 1e6,
        "search_s": wall,
        "segments": segments,
    }


def describe(schedule: Schedule, t: int) -> str:
    return " | ".join(f"{s.label(t)}x{len(s.layers)}" for s in schedule.segments)


def sweep(tmp: Path) -> list[dict]:
    rows: list[dict] = []
    for net in NETWORKS:
        w = load(net, tmp)
        t = w.timesteps
        for buf in BUFFERS:
            hw = load_hardware("stems-edge", overrides=[f"global_buffer.size={buf}"])
            for name in GREEDY:
                b = baseline(name, w, hw)
                if b.cost is None:
                    continue
                status = "" if b.cost.feasible else "infeasible"
                rows.append(row(net, buf, name, b.cost if b.cost.feasible else None, status))
            for label, space in modes(t).items():
                out = search_schedules(
                    w, hw, objectives=("energy_pj",), pareto_steps=0, space=space, options=OPTIONS
                )
                p = out.points[0] if out.points else None
                rows.append(
                    row(
                        net, buf, label, p and p.cost, p.solve.status.value if p else "infeasible", out.wall_s
                    )
                )
            start = time.perf_counter()
            out = search_schedules(
                w, hw, objectives=("energy_pj", "offchip_bytes"), pareto_steps=0, options=OPTIONS
            )
            wall = time.perf_counter() - start
            if not out.points:
                rows.append(row(net, buf, "optimum:energy", None, "infeasible"))
                rows.append(row(net, buf, "optimum:offchip", None, "infeasible"))
                print(f"  {net} {buf}: {out.infeasible_reason}", flush=True)
            for p in out.points:
                kind = "optimum:energy" if p.label == "optimum:energy_pj" else "optimum:offchip"
                rows.append(row(net, buf, kind, p.cost, p.solve.status.value, wall, describe(p.schedule, t)))
            print(f"  {net} {buf} done ({wall:.1f} s search)", flush=True)
    return rows


def state_removal(tmp: Path) -> list[dict]:
    """SEW-ResNet-18 with the state of blocks 0-1 removed (5PLIF) against all-stateful (7PLIF)."""
    w = load("sew-resnet18-dvs128", tmp)
    first_two = set(blocks_of(w)[:2])
    removed = Schedule((), state={x.name: "remove" for x in w if x.stateful and x.block in first_two})
    w5 = removed.effective_workload(w)
    bits7 = sum(x.state_bits for x in w)
    bits5 = sum(x.state_bits for x in w5)
    rows = []
    for buf in BUFFERS:
        hw = load_hardware("stems-edge", overrides=[f"global_buffer.size={buf}"])
        o7 = search_schedules(w, hw, objectives=("energy_pj",), pareto_steps=0, options=OPTIONS)
        o5 = search_schedules(w5, hw, objectives=("energy_pj",), pareto_steps=0, options=OPTIONS)
        free = search_schedules(
            w, hw, objectives=("energy_pj",), pareto_steps=0, allow_state_removal=True, options=OPTIONS
        )
        preset = baseline("stems-paper-5plif", w, hw)
        e7 = o7.points[0].cost.total_pj if o7.points else None
        e5 = o5.points[0].cost.total_pj if o5.points else None
        ef = free.points[0].cost.total_pj if free.points else None
        rows.append(
            {
                "buffer": buf,
                "state_bits_7plif": bits7,
                "state_bits_5plif": bits5,
                "state_ratio": bits7 / bits5,
                "energy_uJ_7plif_opt": e7 and e7 / 1e6,
                "energy_uJ_5plif_opt": e5 and e5 / 1e6,
                "energy_ratio": (e7 / e5) if e7 and e5 else None,
                "offchip_MB_7plif_opt": o7.points[0].cost.traffic.total_bytes / 1e6 if o7.points else None,
                "offchip_MB_5plif_opt": o5.points[0].cost.traffic.total_bytes / 1e6 if o5.points else None,
                "energy_uJ_free_removal_opt": ef and ef / 1e6,
                "layers_removed_by_search": ",".join(free.points[0].schedule.removed())
                if free.points
                else "",
                "energy_uJ_5plif_preset": preset.cost.total_pj / 1e6
                if preset.cost and preset.cost.feasible
                else None,
            }
        )
        print(f"  state removal {buf} done", flush=True)
    return rows


def fmt(v, width=9, digits=2):
    if v is None or v == "":
        return "-".rjust(width)
    if isinstance(v, float):
        return f"{v:{width}.{digits}f}"
    return str(v).rjust(width)


def print_tables(rows: list[dict]) -> None:
    for net in NETWORKS:
        print(f"\n{net}: off-chip MB / energy uJ (x = baseline / this); '-' = infeasible")
        kinds = list(dict.fromkeys(r["schedule"] for r in rows if r["network"] == net))
        print(f"{'schedule':26s}" + "".join(f"{b:>26s}" for b in BUFFERS))
        base = {
            r["buffer"]: r
            for r in rows
            if r["network"] == net and r["schedule"] == "layer-by-layer-sequential" and r["feasible"]
        }
        for kind in kinds:
            line = f"{kind:26s}"
            for buf in BUFFERS:
                r = next(
                    (r for r in rows if r["network"] == net and r["buffer"] == buf and r["schedule"] == kind),
                    None,
                )
                if r is None or not r["feasible"]:
                    line += f"{'-':>26s}"
                    continue
                cell = f"{r['offchip_MB']:.1f}/{r['energy_uJ']:.0f}"
                if buf in base and kind != "layer-by-layer-sequential":
                    cell += f" ({base[buf]['offchip_MB'] / r['offchip_MB']:.1f}x/{base[buf]['energy_uJ'] / r['energy_uJ']:.1f}x)"
                line += f"{cell:>26s}"
            print(line)
        print("optimum (energy) per buffer:")
        for buf in BUFFERS:
            r = next(
                (
                    r
                    for r in rows
                    if r["network"] == net and r["buffer"] == buf and r["schedule"] == "optimum:energy"
                ),
                None,
            )
            if r and r["feasible"]:
                print(
                    f"  {buf:>7s}: {r['status']}, {r['search_s']:.1f} s, peak {r['peak_KiB']:.0f} KiB, {r['segments']}"
                )


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    xs = range(len(BUFFERS))
    for col, net in enumerate(NETWORKS):
        kinds = list(dict.fromkeys(r["schedule"] for r in rows if r["network"] == net))
        for k, (metric, label) in enumerate(
            (("offchip_MB", "off-chip traffic (MB)"), ("energy_uJ", "energy (uJ)"))
        ):
            ax = axes[k][col]
            for kind in kinds:
                ys = []
                for buf in BUFFERS:
                    r = next(
                        (
                            r
                            for r in rows
                            if r["network"] == net and r["buffer"] == buf and r["schedule"] == kind
                        ),
                        None,
                    )
                    ys.append(r[metric] if r and r["feasible"] else float("nan"))
                style = "-o" if kind.startswith("optimum") else ("--." if kind.startswith("opt-") else ":x")
                ax.plot(list(xs), ys, style, label=kind, linewidth=2.5 if kind.startswith("optimum") else 1)
            ax.set_yscale("log")
            ax.set_xticks(list(xs), BUFFERS)
            ax.set_title(f"{net}: {label}")
            ax.set_xlabel("global buffer")
            ax.grid(True, which="both", alpha=0.3)
    axes[0][1].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    OUT.mkdir(exist_ok=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rows = sweep(tmp)
        removal = state_removal(tmp)
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(OUT / "schedule_sweep.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, fields)
        wr.writeheader()
        wr.writerows(rows)
    with open(OUT / "schedule_state_removal.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, list(removal[0]))
        wr.writeheader()
        wr.writerows(removal)
    print_tables(rows)
    print("\nSEW-ResNet-18, state of blocks 0-1 removed (5PLIF) vs all-stateful (7PLIF), optimum energy:")
    r0 = removal[0]
    print(
        f"  state bits {r0['state_bits_7plif']:,} -> {r0['state_bits_5plif']:,} ({r0['state_ratio']:.2f}x fewer)"
    )
    print(
        f"  {'buffer':>7s} {'7PLIF uJ':>10s} {'5PLIF uJ':>10s} {'ratio':>7s} {'free removal uJ':>16s} {'5plif preset uJ':>16s}  removed by search"
    )
    for r in removal:
        print(
            f"  {r['buffer']:>7s} {fmt(r['energy_uJ_7plif_opt'], 10, 1)} {fmt(r['energy_uJ_5plif_opt'], 10, 1)} "
            f"{fmt(r['energy_ratio'], 7, 2)} {fmt(r['energy_uJ_free_removal_opt'], 16, 1)} "
            f"{fmt(r['energy_uJ_5plif_preset'], 16, 1)}  {len(r['layers_removed_by_search'].split(',')) if r['layers_removed_by_search'] else 0} layers"
        )
    plot(rows, OUT / "schedule_sweep.png")
    print(
        f"\nwrote {OUT / 'schedule_sweep.csv'}, schedule_state_removal.csv, schedule_sweep.png ({time.perf_counter() - start:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
