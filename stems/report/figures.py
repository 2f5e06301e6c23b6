"""Which plots an exploration gets, with their titles and captions (shared by the files and the HTML)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from matplotlib.figure import Figure

from stems.report.plots import (
    BASELINE_STYLE,
    breakdown_figure,
    knobs_figure,
    layer_figure,
    pareto_figure,
    slug,
    sweep_figure,
)
from stems.results.points import PAPER_BASELINE, sweep_label
from stems.results.store import Exploration
from stems.workload.knobs import is_network_key

CAPTIONS = {
    "pareto": (
        "Energy vs latency of every feasible design point, one panel per sweep value. Coloured: the Pareto "
        "points (non-dominated in the explored objectives), by off-chip traffic; grey: other searched points; "
        "hollow markers: the named baselines (red square: the paper's layer-by-layer sequential baseline); "
        "red ring: the least-energy point."
    ),
    "energy_breakdown": (
        "Where the energy of the least-energy point goes, per memory level and operand (solid), beside the "
        "paper's baseline at the same sweep value (hatched). Off-chip: DRAM reads and writes; fills and "
        "drains: the on-chip buffer side of those transfers; on-chip accesses: the units' own buffer reads "
        "and writes; compute: the PE array, neurons, pooling and element-wise units."
    ),
    "layer_energy": (
        "Energy per layer of the least-energy point (solid) and of the paper's baseline (hatched), split into "
        "compute, on-chip memory and off-chip traffic. Alternate blocks are shaded."
    ),
    "knobs": (
        "The least-energy searched point at each value of the swept network knob: energy, latency, the "
        "neuron state bits kept across timesteps, and off-chip traffic. Every value but the model's own "
        "needs retraining (points.csv: retraining, network_changes)."
    ),
    "offchip_vs": (
        "Off-chip traffic (left) and energy (right) against the swept value: the best searched point, each "
        "named baseline that fits, and the compulsory traffic no schedule can go below."
    ),
}


def caption(name: str) -> str:
    return CAPTIONS.get(name, CAPTIONS["offchip_vs"] if name.startswith("offchip_vs") else "")


def heading(ex: Exploration) -> str:
    inputs = ex.summary.get("inputs", {})
    model = inputs.get("model", {}).get("name", "model")
    hw = inputs.get("hardware", {}).get("name", "hardware")
    return f"{model} on {hw}"


def short(label: str) -> str:
    return BASELINE_STYLE.get(label, (label,))[0]


def best_and_baseline(ex: Exploration) -> list[tuple[str, str]]:
    """(id, caption) of the least-energy point and, if priced, the paper baseline at its sweep value."""
    best = ex.best("energy_pj")
    if best is None:
        return []
    values = {k: str(best[k]) for k in ex.sweep_keys}
    where = f", {sweep_label(values)}" if values else ""
    bars = [(str(best["id"]), f"{best['id']} least energy ({best['label']}{where})")]
    base = ex.baseline(values)
    if base is not None and base["id"] != best["id"]:
        bars.append((str(base["id"]), f"{base['id']} {PAPER_BASELINE}"))
    return bars


def exploration_figures(ex: Exploration) -> Iterator[tuple[str, str, Figure]]:
    title = heading(ex)
    n, k = len(ex.points), int(ex.points["pareto"].sum()) if len(ex.points) else 0
    yield (
        "pareto",
        "Pareto front",
        pareto_figure(ex.points, ex.sweep_keys, f"{title}: {n} design points, {k} on the Pareto front"),
    )
    bars = best_and_baseline(ex)
    if bars and len(ex.breakdown):
        yield (
            "energy_breakdown",
            "Energy breakdown",
            breakdown_figure(ex.breakdown, bars, f"{title}: energy by memory level and operand"),
        )
    if bars and len(ex.layers):
        yield "layer_energy", "Energy per layer", layer_figure(ex.layers, bars, f"{title}: energy per layer")
    if len(ex.sweep_keys) == 1:
        key = ex.sweep_keys[0]
        lb: list[dict[str, Any]] = ex.summary.get("lower_bound", [])
        fig = sweep_figure(ex.points, lb, key, f"{title}: off-chip traffic and energy vs {key}")
        if fig is not None:
            yield f"offchip_vs_{slug(key)}", f"Off-chip traffic vs {key}", fig
    knobs = [k for k in ex.sweep_keys if k == "timesteps" or is_network_key(k)]
    if len(knobs) == 1:
        fig = knobs_figure(ex.points, knobs[0], f"{title}: the least-energy point vs {knobs[0]}")
        if fig is not None:
            yield "knobs", f"Network knob: {knobs[0]}", fig
