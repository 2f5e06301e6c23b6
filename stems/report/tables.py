"""Tables for the terminal and the HTML report: design points in readable units, and the best points
against the paper's baseline."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from stems.results.metrics import OBJECTIVES
from stems.results.points import PAPER_BASELINE, best_row, groups
from stems.results.store import Exploration

UNITS = {
    # column: (header, divisor)
    "energy_pj": ("energy_uJ", 1e6),
    "latency_cycles": ("latency_Mcycles", 1e6),
    "offchip_bytes": ("offchip_MiB", 2**20),
    "onchip_peak_bytes": ("onchip_peak_KiB", 2**10),
}
SHORT_OBJECTIVE = {
    "energy_pj": "least energy",
    "latency_cycles": "least latency",
    "offchip_bytes": "least off-chip",
    "onchip_peak_bytes": "least on-chip",
}


def readable(df: pd.DataFrame, sweep_keys: Sequence[str], *, extra: Sequence[str] = ()) -> pd.DataFrame:
    """Key columns of a points table in readable units (µJ, M cycles, MiB, KiB); the unit is in the name."""
    cols = ["id", *sweep_keys, "source", "label"]
    out = df[[c for c in cols if c in df]].copy()
    for col, (name, div) in UNITS.items():
        if col in df:
            out[name] = df[col].astype(float) / div
    for col in ("vs_bound", *extra, "status", "gap"):
        if col in df:
            out[col] = df[col]
    if "label" in out:
        out["label"] = out["label"].astype(str).str.slice(0, 34)
    return out


def best_vs_baseline(ex: Exploration, objectives: Sequence[str] = OBJECTIVES) -> pd.DataFrame:
    """Per sweep value: the paper's baseline, then the best point of each objective (each point once),
    with the ratios of energy, latency and off-chip traffic to the baseline (below 1: better)."""
    rows = []
    keys = ex.sweep_keys
    for values, group in groups(ex.points, keys) if len(ex.points) else []:
        base = group[(group["source"] == "baseline") & (group["label"] == PAPER_BASELINE)]
        b = base.iloc[0] if len(base) else None
        picked: dict[str, list[str]] = {}
        for objective in objectives:
            row = best_row(group, objective)
            if row is not None:
                picked.setdefault(row["id"], []).append(SHORT_OBJECTIVE[objective])
        entries = []
        if b is not None:
            entries.append((b, "paper baseline (LBL-ST)"))
        for pid, what in picked.items():
            r = group[group["id"] == pid].iloc[0]
            note = " (removes state: retrain)" if bool(r.get("retraining_required", False)) else ""
            entries.append((r, ", ".join(what) + note))
        for r, what in entries:
            row = {**values, "point": r["id"], "what": what}
            for col, (name, div) in UNITS.items():
                row[name] = float(r[col]) / div
            for col, label in (
                ("energy_pj", "energy_x"),
                ("latency_cycles", "latency_x"),
                ("offchip_bytes", "offchip_x"),
            ):
                row[label] = float(r[col]) / float(b[col]) if b is not None and float(b[col]) else np.nan
            row["feasible"] = bool(r["feasible"])
            rows.append(row)
    return pd.DataFrame(rows)


def to_text(df: pd.DataFrame) -> str:
    """A table for the terminal: 4 significant digits, ratios as 0.123x, no index."""
    if df.empty:
        return "(no rows)"
    formatters = {}
    for col in df.columns:
        if col.endswith(("_x", "_ratio")):
            formatters[col] = lambda v: "-" if pd.isna(v) else f"{v:.3g}x"
        elif df[col].dtype.kind == "f":
            formatters[col] = lambda v: "-" if pd.isna(v) else (f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}")
    with pd.option_context("display.width", 250, "display.max_columns", 100, "display.max_rows", 10_000):
        return df.to_string(index=False, formatters=formatters, na_rep="-")
