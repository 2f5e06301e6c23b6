"""The plots of an exploration, drawn with matplotlib's object API on the Agg canvas (no pyplot, no global
backend switch, so importing stems never changes a notebook's backend).

* `pareto`: energy vs latency per sweep value; Pareto points coloured by off-chip traffic, other searched
  points in grey, the named baselines as labelled hollow markers, the least-energy point ringed.
* `energy_breakdown`: energy of the best point by memory level and operand, beside the paper's baseline
  (layer-by-layer, sequential) at the same sweep value.
* `layer_energy`: energy per layer (compute, on-chip, off-chip) of the best point and of that baseline.
* `offchip_vs_<key>`: when one key is swept: off-chip traffic and energy vs the swept value (buffer size),
  for the best searched point, each baseline and the compulsory bound.
* `knobs`: when one network knob (T, a bit width, a neuron model...) is swept: energy, latency, state bits
  and off-chip traffic of the least-energy searched point at each of its values.
* `compare`: several explorations' Pareto points overlaid.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from stems.files import atomic_write_bytes
from stems.results.points import PAPER_BASELINE, best_row, groups

BASELINE_STYLE = {
    # name: (short label, marker)
    "layer-by-layer-sequential": ("LBL-ST (paper baseline)", "s"),
    "all-time-batched": ("TB-LBL", "D"),
    "all-fused-st": ("ST-F(1)", "^"),
    "all-fused-tb": ("TB-F(1)", "v"),
    "stems-paper-tb-f": ("paper TB-F", "P"),
    "stems-paper-5plif": ("paper 5PLIF", "X"),
}
OPERAND_COLOURS = {
    "W": "#4C72B0",
    "I": "#DD8452",
    "O": "#55A868",
    "V": "#C44E52",
    "all": "#8C8C8C",
    "compute": "#8172B3",
}
OPERAND_NAMES = {
    "W": "W (weights)",
    "I": "I (inputs)",
    "O": "O (outputs)",
    "V": "V (neuron state)",
    "all": "all operands",
    "compute": "compute",
}
PART_COLOURS = {"energy_compute_pj": "#8172B3", "energy_onchip_pj": "#64B5CD", "energy_offchip_pj": "#C44E52"}
PART_NAMES = {
    "energy_compute_pj": "compute",
    "energy_onchip_pj": "on-chip memory",
    "energy_offchip_pj": "off-chip (DRAM)",
}


# ---------------------------------------------------------------------------------------------------
# Units


@dataclass(frozen=True)
class Scale:
    factor: float
    unit: str


def _scale(values: Sequence[float] | np.ndarray, steps: Sequence[tuple[float, str]], base: str) -> Scale:
    """The largest unit in `steps` that the largest |value| reaches, else `base`."""
    top = float(np.nanmax(np.abs(values))) if len(values) else 1.0
    return next((Scale(f, u) for f, u in steps if top >= f), Scale(1.0, base))


def energy_scale(values: Sequence[float] | np.ndarray) -> Scale:
    return _scale(values, ((1e9, "mJ"), (1e6, "µJ"), (1e3, "nJ")), "pJ")


def cycles_scale(values: Sequence[float] | np.ndarray) -> Scale:
    return _scale(values, ((1e9, "G cycles"), (1e6, "M cycles"), (1e3, "k cycles")), "cycles")


def bytes_scale(values: Sequence[float] | np.ndarray) -> Scale:
    return _scale(values, ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")), "B")


def _wide(values: Any, ratio: float = 30.0) -> bool:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return len(v) > 1 and v.max() / v.min() > ratio


def fmt(value: float, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:,.0f}"


# ---------------------------------------------------------------------------------------------------
# Saving


@dataclass
class Saved:
    """A plot written as PNG and SVG; `png` keeps the bytes for the HTML report."""

    name: str
    title: str
    paths: list[Path] = field(default_factory=list)
    png: bytes = b""


def save(fig: Figure, folder: Path, name: str, title: str) -> Saved:
    FigureCanvasAgg(fig)
    out = Saved(name, title)
    for ext in ("png", "svg"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=130 if ext == "png" else None)
        data = buf.getvalue()
        out.paths.append(atomic_write_bytes(folder / f"{name}.{ext}", data))
        if ext == "png":
            out.png = data
    return out


def _figure(w: float, h: float) -> Figure:
    fig = Figure(figsize=(w, h), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _plain_ticks(axis: Any) -> None:
    """Log-axis ticks as 2, 5, 20 rather than 2x10^0."""

    def minor(v: float, _pos: int) -> str:
        if v <= 0:
            return ""
        lead = round(v / 10 ** math.floor(math.log10(v)), 6)
        return f"{v:g}" if lead in (2.0, 5.0) else ""

    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(minor))


def _note(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="#666666", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


# ---------------------------------------------------------------------------------------------------
# Pareto front


def pareto_figure(points: pd.DataFrame, sweep_keys: Sequence[str], title: str = "") -> Figure:
    """Energy vs latency, one panel per sweep value."""
    parts = groups(points, list(sweep_keys)) if len(points) else [({}, points)]
    n = len(parts)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = _figure(5.2 * cols + 1.2, 4.3 * rows + 0.8)
    axes = np.atleast_1d(fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)).ravel()
    ok = points[points["feasible"].astype(bool)] if len(points) else points
    if ok.empty:
        for ax in axes:
            _note(ax, "no feasible design point")
        fig.suptitle(title or "Pareto front")
        return fig
    e = energy_scale(ok["energy_pj"].to_numpy(float))
    c = cycles_scale(ok["latency_cycles"].to_numpy(float))
    b = bytes_scale(ok["offchip_bytes"].to_numpy(float))
    front = ok[ok["pareto"].astype(bool)]
    off = front["offchip_bytes"].to_numpy(float) / b.factor
    lo, hi = (off.min(), off.max()) if len(off) else (0.0, 1.0)
    norm = (
        LogNorm(max(lo, 1e-12), max(hi, lo * 1.0001))
        if _wide(off, 10)
        else Normalize(lo, hi if hi > lo else lo + 1)
    )
    log_x = _wide(ok["latency_cycles"])
    log_y = _wide(ok["energy_pj"], 8.0)
    mappable = None
    shown_baselines: dict[str, None] = {}
    retraining: set[str] = set()
    for ax, (values, group) in zip(axes, parts, strict=False):
        g_ok = group[group["feasible"].astype(bool)]
        search = g_ok[g_ok["source"] == "search"]
        other = search[~search["pareto"].astype(bool)]
        if len(other):
            ax.scatter(
                other["latency_cycles"] / c.factor,
                other["energy_pj"] / e.factor,
                s=14,
                color="#B0B0B0",
                alpha=0.7,
                zorder=2,
                label="other searched points",
            )
        on = g_ok[g_ok["pareto"].astype(bool)]
        if len(on):
            mappable = ax.scatter(
                on["latency_cycles"] / c.factor,
                on["energy_pj"] / e.factor,
                c=on["offchip_bytes"] / b.factor,
                cmap="viridis",
                norm=norm,
                s=60,
                edgecolors="black",
                linewidths=0.6,
                zorder=4,
                label="Pareto points",
            )
        bases = g_ok[g_ok["source"] == "baseline"]
        for _, r in bases.iterrows():
            _short, marker = BASELINE_STYLE.get(r["label"], (r["label"], "o"))
            paper = r["label"] == PAPER_BASELINE
            if bool(r.get("retraining_required", False)):
                retraining.add(r["label"])
            shown_baselines.setdefault(r["label"], None)
            ax.scatter(
                [r["latency_cycles"] / c.factor],
                [r["energy_pj"] / e.factor],
                marker=marker,
                s=110 if paper else 70,
                facecolors="none",
                edgecolors="#D62728" if paper else "black",
                linewidths=1.8 if paper else 1.1,
                zorder=5,
            )
        infeasible = group[(group["source"] == "baseline") & ~group["feasible"].astype(bool)]
        if len(infeasible):
            names = ", ".join(BASELINE_STYLE.get(x, (x,))[0] for x in infeasible["label"])
            ax.text(
                0.98,
                0.02,
                f"over capacity, not shown:\n{names}",
                ha="right",
                va="bottom",
                transform=ax.transAxes,
                fontsize=7,
                color="#666666",
            )
        best = best_row(g_ok, "energy_pj")
        if best is not None:
            x, y = best["latency_cycles"] / c.factor, best["energy_pj"] / e.factor
            ax.scatter([x], [y], s=260, facecolors="none", edgecolors="#D62728", linewidths=2.0, zorder=6)
            ax.annotate(
                f"least energy ({best['id']})",
                (x, y),
                xytext=(12, 8),
                textcoords="offset points",
                fontsize=8,
                color="#D62728",
                fontweight="bold",
            )
        label = ", ".join(f"{k} = {v}" for k, v in values.items())
        ax.set_title(label or "design points", fontsize=10)
        ax.grid(True, which="both", color="#EEEEEE", lw=0.6, zorder=0)
        if log_x:
            ax.set_xscale("log")
            _plain_ticks(ax.xaxis)
        if log_y:
            ax.set_yscale("log")
            _plain_ticks(ax.yaxis)
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax in axes[:n]:
        if ax.get_subplotspec().is_last_row():
            ax.set_xlabel(f"latency per inference ({c.unit})")
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel(f"energy per inference ({e.unit})")
    if mappable is not None:
        cb = fig.colorbar(mappable, ax=list(axes[:n]), shrink=0.9, pad=0.01)
        cb.set_label(f"off-chip traffic ({b.unit})")
    handles = [
        Line2D(
            [],
            [],
            ls="",
            marker="o",
            mfc="#3B8BA3",
            mec="black",
            ms=7,
            label="Pareto point (colour: off-chip)",
        ),
        Line2D([], [], ls="", marker="o", color="#B0B0B0", ms=5, label="other searched point"),
        Line2D([], [], ls="", marker="o", mfc="none", mec="#D62728", mew=2, ms=13, label="least energy"),
    ]
    for name in BASELINE_STYLE:
        if name in shown_baselines:
            short, marker = BASELINE_STYLE[name]
            paper = name == PAPER_BASELINE
            handles.append(
                Line2D(
                    [],
                    [],
                    ls="",
                    marker=marker,
                    mfc="none",
                    mec="#D62728" if paper else "black",
                    mew=1.8 if paper else 1.1,
                    ms=9 if paper else 7,
                    label=f"baseline {short}" + (" (removes state)" if name in retraining else ""),
                )
            )
    fig.legend(
        handles=handles, loc="outside lower center", ncols=min(len(handles), 5), fontsize=8, frameon=False
    )
    fig.suptitle(title or "Pareto front", fontsize=11)
    return fig


# ---------------------------------------------------------------------------------------------------
# Energy breakdown


def breakdown_figure(breakdown: pd.DataFrame, bars: Sequence[tuple[str, str]], title: str = "") -> Figure:
    """Horizontal bars per memory level, one per point in `bars` ((id, caption)), stacked by operand."""
    fig = _figure(9.5, 5.0)
    ax = fig.subplots()
    data = breakdown[breakdown["id"].isin([pid for pid, _ in bars])]
    if data.empty:
        _note(ax, "no energy breakdown stored")
        return fig
    levels = list(dict.fromkeys(zip(data["level"], data["kind"], strict=True)))
    s = energy_scale(data.groupby(["id", "level"])["energy_pj"].sum().to_numpy())
    height = 0.8 / len(bars)
    used: set[str] = set()
    for j, (pid, _caption) in enumerate(bars):
        d = data[data["id"] == pid]
        for i, (level, kind) in enumerate(levels):
            y = i + (j - (len(bars) - 1) / 2) * height
            left = 0.0
            rows = d[(d["level"] == level) & (d["kind"] == kind)]
            for _, r in rows.iterrows():
                w = r["energy_pj"] / s.factor
                if w <= 0:
                    continue
                ax.barh(
                    y,
                    w,
                    height=height * 0.92,
                    left=left,
                    color=OPERAND_COLOURS.get(r["operand"], "#999999"),
                    alpha=1.0 if j == 0 else 0.45,
                    hatch=None if j == 0 else "///",
                    edgecolor="white" if j == 0 else "#555555",
                    linewidth=0.5,
                )
                used.add(r["operand"])
                left += w
            ax.text(left, y, f" {fmt(left)} {s.unit}", va="center", fontsize=7.5, color="#333333")
    ax.set_yticks(range(len(levels)), [_level_label(lv, kind) for lv, kind in levels], fontsize=8.5)
    ax.invert_yaxis()
    ax.set_xlabel(f"energy per inference ({s.unit})")
    ax.grid(True, axis="x", color="#EEEEEE", lw=0.6)
    ax.set_axisbelow(True)
    handles = [Patch(color=OPERAND_COLOURS[o], label=OPERAND_NAMES[o]) for o in OPERAND_COLOURS if o in used]
    handles += [
        Patch(facecolor="#BBBBBB", edgecolor="white", label=f"solid: {bars[0][1]}"),
    ]
    if len(bars) > 1:
        handles.append(
            Patch(facecolor="#DDDDDD", hatch="///", edgecolor="#555555", label=f"hatched: {bars[1][1]}")
        )
    fig.legend(handles=handles, fontsize=8, loc="outside lower center", ncols=3, frameon=False)
    ax.set_title(title or "Energy by memory level and operand", fontsize=10.5)
    return fig


def _level_label(level: str, kind: str) -> str:
    from stems.results.metrics import UNIT_ACCESSES

    if level == UNIT_ACCESSES:
        return "on-chip buffers\n(units' own accesses)"
    return f"{level}\n({kind})"


# ---------------------------------------------------------------------------------------------------
# Per-layer energy


def layer_figure(layers: pd.DataFrame, bars: Sequence[tuple[str, str]], title: str = "") -> Figure:
    """Per layer, stacked compute / on-chip / off-chip energy of each point in `bars` (side by side)."""
    first = layers[layers["id"] == bars[0][0]] if len(layers) else layers
    n = max(len(first), 1)
    fig = _figure(min(16.0, max(8.0, 0.3 * n * len(bars) + 2.5)), 5.4)
    ax = fig.subplots()
    if first.empty:
        _note(ax, "no per-layer energy stored")
        return fig
    names = first["layer"].tolist()
    blocks = first["block"].astype(str).tolist() if "block" in first else [""] * n
    parts = list(PART_COLOURS)
    s = energy_scale(layers[layers["id"].isin([b for b, _ in bars])]["energy_pj"].to_numpy(float))
    width = 0.8 / len(bars)
    x = np.arange(n)
    for j, (pid, _caption) in enumerate(bars):
        d = layers[layers["id"] == pid].set_index("layer").reindex(names)
        bottom = np.zeros(n)
        for part in parts:
            v = d[part].fillna(0).to_numpy(float) / s.factor
            ax.bar(
                x + (j - (len(bars) - 1) / 2) * width,
                v,
                width=width * 0.95,
                bottom=bottom,
                color=PART_COLOURS[part],
                alpha=1.0 if j == 0 else 0.45,
                hatch=None if j == 0 else "///",
                edgecolor="white" if j == 0 else "#555555",
                linewidth=0.4,
            )
            bottom += v
    # shade alternate blocks so the network's structure is visible
    start = 0
    shade = False
    for i in range(1, n + 1):
        if i == n or blocks[i] != blocks[start]:
            if shade:
                ax.axvspan(start - 0.5, i - 0.5, color="#F4F4F4", zorder=0)
            shade = not shade
            start = i
    ax.set_xticks(x, names, rotation=90, fontsize=7)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylabel(f"energy per inference ({s.unit})")
    ax.grid(True, axis="y", color="#E6E6E6", lw=0.6)
    ax.set_axisbelow(True)
    handles = [Patch(color=PART_COLOURS[p], label=PART_NAMES[p]) for p in parts]
    handles.append(Patch(facecolor="#BBBBBB", label=f"solid: {bars[0][1]}"))
    if len(bars) > 1:
        handles.append(
            Patch(facecolor="#DDDDDD", hatch="///", edgecolor="#555555", label=f"hatched: {bars[1][1]}")
        )
    fig.legend(handles=handles, fontsize=8, loc="outside lower center", ncols=3, frameon=False)
    ax.set_title(title or "Energy per layer", fontsize=10.5)
    return fig


# ---------------------------------------------------------------------------------------------------
# Sweep


def sweep_number(key: str, value: str) -> float | None:
    """A swept value as a number: sizes in bytes, else the number itself (None if neither)."""
    from stems.hardware.units import parse_size

    if key.endswith("size"):
        try:
            return parse_size(value) / 8
        except Exception:
            return None
    try:
        return float(value)
    except ValueError:
        return None


def sweep_figure(
    points: pd.DataFrame, lower_bound: Sequence[dict[str, Any]], key: str, title: str = ""
) -> Figure | None:
    """Off-chip traffic and energy vs the one swept key (None when its values are not numbers)."""
    values = list(dict.fromkeys(points[key].astype(str))) if len(points) else []
    xs = {v: sweep_number(key, v) for v in values}
    if len(values) < 2 or any(x is None for x in xs.values()):
        return None
    fig = _figure(11, 5.2)
    ax_off, ax_e = fig.subplots(1, 2)
    ok = points[points["feasible"].astype(bool)]
    b = bytes_scale(points["offchip_bytes"].to_numpy(float))
    e = energy_scale(points["energy_pj"].to_numpy(float))
    order = sorted(values, key=lambda v: xs[v])
    x = [xs[v] for v in order]

    def best(metric: str, source: str = "search", label: str | None = None) -> list[float]:
        out = []
        for v in order:
            g = ok[(ok[key].astype(str) == v) & (ok["source"] == source)]
            if label is not None:
                g = g[g["label"] == label]
            out.append(float(g[metric].min()) if len(g) else np.nan)
        return out

    ax_off.plot(
        x,
        np.array(best("offchip_bytes")) / b.factor,
        "o-",
        color="#1F77B4",
        lw=2.2,
        label="best searched point",
        zorder=5,
    )
    ax_e.plot(
        x,
        np.array(best("energy_pj")) / e.factor,
        "o-",
        color="#1F77B4",
        lw=2.2,
        label="best searched point",
        zorder=5,
    )
    retrain = []  # sweep values whose best searched point removes state: it may go below the bound
    for v, xv in zip(order, x, strict=True):
        g = ok[(ok[key].astype(str) == v) & (ok["source"] == "search")]
        if (
            len(g)
            and "retraining_required" in g
            and bool(g.loc[g["offchip_bytes"].idxmin(), "retraining_required"])
        ):
            retrain.append((xv, float(g["offchip_bytes"].min())))
    if retrain:
        ax_off.scatter(
            [r[0] for r in retrain],
            [r[1] / b.factor for r in retrain],
            marker="*",
            s=180,
            color="#FF7F0E",
            edgecolors="black",
            zorder=7,
            label="removes state (retraining; bound of the changed network)",
        )
    for name, (short, marker) in BASELINE_STYLE.items():
        off = np.array(best("offchip_bytes", "baseline", name))
        if np.all(np.isnan(off)):
            continue
        paper = name == PAPER_BASELINE
        style = {
            "color": "#D62728" if paper else "#555555",
            "lw": 1.6 if paper else 0.9,
            "ls": "-" if paper else "--",
        }
        ax_off.plot(x, off / b.factor, marker=marker, mfc="none", label=short, **style)
        ax_e.plot(
            x,
            np.array(best("energy_pj", "baseline", name)) / e.factor,
            marker=marker,
            mfc="none",
            label=short,
            **style,
        )
    bound = {str(lb.get("sweep", {}).get(key)): lb.get("offchip_bytes") for lb in lower_bound}
    lb_y = [bound.get(v, np.nan) for v in order]
    ax_off.plot(
        x,
        np.array(lb_y, dtype=float) / b.factor,
        color="black",
        ls=":",
        lw=1.8,
        label="compulsory traffic (bound)",
        zorder=6,
    )
    size = key.endswith("size")
    for ax in (ax_off, ax_e):
        if size:
            ax.set_xscale("log", base=2)
        ax.set_xticks(x, order)
        ax.minorticks_off()
        ax.set_xlabel(f"{key}" + (" (buffer size)" if size else ""))
        ax.grid(True, which="both", color="#EEEEEE", lw=0.6)
    if _wide(np.concatenate([np.array(best("offchip_bytes"), float), np.array(lb_y, float)]), 5):
        ax_off.set_yscale("log")
        _plain_ticks(ax_off.yaxis)
    ax_off.set_ylabel(f"off-chip traffic per inference ({b.unit})")
    ax_e.set_ylabel(f"energy per inference ({e.unit})")
    ax_off.set_title("Off-chip traffic", fontsize=10)
    ax_e.set_title("Energy", fontsize=10)
    handles, labels = ax_off.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=4, fontsize=8, frameon=False)
    fig.suptitle(title or f"Off-chip traffic vs {key}", fontsize=11)
    return fig


KNOB_PANELS = (
    ("energy_pj", "energy per inference", energy_scale),
    ("latency_cycles", "latency per inference", cycles_scale),
    ("state_bits", "neuron state", None),
    ("offchip_bytes", "off-chip traffic per inference", bytes_scale),
)


def knob_table(points: pd.DataFrame, key: str) -> pd.DataFrame:
    """The least-energy feasible searched point at each value of the knob `key` (in sweep order), per
    value of the other sweep keys: the numbers behind the `knobs` plot."""
    ok = points[points["feasible"].astype(bool) & (points["source"] == "search")]
    best = ok.sort_values(["energy_pj", "id"], kind="stable").drop_duplicates(
        [key, *_other_keys(points, key)]
    )
    order = {v: i for i, v in enumerate(dict.fromkeys(points[key].astype(str)))}
    return best.sort_values(key, key=lambda col: col.astype(str).map(order), kind="stable")


def _other_keys(points: pd.DataFrame, key: str) -> list[str]:
    lead = list(points.columns[1 : list(points.columns).index("source")])
    return [k for k in lead if k != key]


def knobs_figure(points: pd.DataFrame, key: str, title: str = "") -> Figure | None:
    """Energy, latency, state bits and off-chip traffic vs one swept network knob (None without points)."""
    table = knob_table(points, key)
    if table.empty:
        return None
    others = _other_keys(points, key)
    fig = _figure(12, 3.6)
    axes = fig.subplots(1, len(KNOB_PANELS))
    for ax, (metric, name, scale_of) in zip(axes, KNOB_PANELS, strict=True):
        values = table[metric].to_numpy(float)
        scale = scale_of(values) if scale_of else Scale(1e6, "Mbit")
        for label, g in table.groupby(others, sort=False) if others else [("", table)]:
            ax.plot(g[key].astype(str), g[metric].to_numpy(float) / scale.factor, "o-", label=str(label))
        ax.set_title(name, fontsize=10)
        ax.set_ylabel(scale.unit)
        ax.set_xlabel(key)
        ax.grid(True, color="#EEEEEE", lw=0.6)
    if others:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=4, fontsize=8, frameon=False)
    fig.suptitle(title or f"Least-energy point vs {key}", fontsize=11)
    return fig


def slug(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", key).strip("_")


# ---------------------------------------------------------------------------------------------------
# Compare


def compare_figure(entries: Sequence[tuple[str, pd.DataFrame]], title: str = "") -> Figure:
    """Energy vs latency of several results' Pareto points (a mapping file is one point)."""
    fig = _figure(8.5, 5.2)
    ax = fig.subplots()
    frames = [df for _, df in entries if len(df)]
    if not frames:
        _note(ax, "nothing to compare: no feasible points")
        return fig
    allp = pd.concat(frames)
    e = energy_scale(allp["energy_pj"].to_numpy(float))
    c = cycles_scale(allp["latency_cycles"].to_numpy(float))
    markers = "osD^vPX*<>"
    colours = ["#1F77B4", "#D62728", "#2CA02C", "#9467BD", "#FF7F0E", "#8C564B", "#E377C2", "#17BECF"]
    for i, (name, df) in enumerate(entries):
        if df.empty:
            continue
        d = df.sort_values("latency_cycles")
        col = colours[i % len(colours)]
        ax.plot(
            d["latency_cycles"] / c.factor, d["energy_pj"] / e.factor, color=col, lw=0.8, ls=":", alpha=0.8
        )
        ax.scatter(
            d["latency_cycles"] / c.factor,
            d["energy_pj"] / e.factor,
            marker=markers[i % len(markers)],
            s=55,
            color=col,
            edgecolors="black",
            linewidths=0.5,
            label=f"{name} ({len(d)} point{'s' if len(d) != 1 else ''})",
            zorder=3,
        )
    if _wide(allp["latency_cycles"]):
        ax.set_xscale("log")
        _plain_ticks(ax.xaxis)
    if _wide(allp["energy_pj"]):
        ax.set_yscale("log")
        _plain_ticks(ax.yaxis)
    ax.set_xlabel(f"latency per inference ({c.unit})")
    ax.set_ylabel(f"energy per inference ({e.unit})")
    ax.grid(True, which="both", color="#EEEEEE", lw=0.6)
    ax.legend(fontsize=8)
    ax.set_title(title or "Pareto fronts compared", fontsize=11)
    return fig
