"""`report.html`: one self-contained page (inline CSS, plots embedded as base64 PNG) with the inputs, how
the search went, the best points against the baselines, the compulsory bound, the plots and the tables."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from stems import __version__
from stems.files import atomic_write_text
from stems.report.figures import caption, heading
from stems.report.tables import best_vs_baseline, readable
from stems.results.store import FILES, Exploration

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; padding: 0 1em; line-height: 1.4; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
.meta { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.6em 0; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td.t, th.t { text-align: left; white-space: normal; }
tr.front td { background: #f3f9ff; }
figure { margin: 1em 0 2em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.88em; max-width: 1000px; }
code { background: #f5f5f5; padding: 0 3px; }
.warn { color: #a33; font-weight: bold; }
"""


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _num(v: Any) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1e6 else f"{v:.4g}"
    return _e(v)


def table(df: pd.DataFrame, *, text_cols: Sequence[str] = (), highlight: str | None = None) -> str:
    if df is None or df.empty:
        return "<p class=meta>(none)</p>"
    head = "".join(f"<th class={'t' if c in text_cols else 'n'}>{_e(c)}</th>" for c in df.columns)
    rows = []
    for _, r in df.iterrows():
        cls = " class=front" if highlight and bool(r.get(highlight, False)) else ""
        cells = "".join(
            f"<td class=t>{_e(r[c])}</td>"
            if c in text_cols
            else f"<td>{_ratio(r[c]) if c.endswith('_x') else _num(r[c])}</td>"
            for c in df.columns
        )
        rows.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _ratio(v: Any) -> str:
    return "-" if v is None or pd.isna(v) else f"{float(v):.3g}x"


def kv(pairs: Sequence[tuple[str, Any]]) -> str:
    return (
        "<table>"
        + "".join(f"<tr><th class=t>{_e(k)}</th><td class=t>{_e(v)}</td></tr>" for k, v in pairs)
        + "</table>"
    )


def build_html(ex: Exploration, folder: Path, *, pareto_only: bool = False) -> str:
    s = ex.summary
    inputs = s.get("inputs", {})
    model, hw, opts = inputs.get("model", {}), inputs.get("hardware", {}), inputs.get("options", {})
    search = s.get("search", {})
    keys = ex.sweep_keys
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>stems: {_e(heading(ex))}</title><style>{CSS}</style></head><body>",
        f"<h1>stems exploration: {_e(heading(ex))}</h1>",
        f"<p class=meta>report written {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} by stems {__version__}; "
        f"folder <code>{_e(folder.resolve())}</code></p>",
    ]
    if search.get("interrupted"):
        parts.append("<p class=warn>The search was interrupted: these are the points found until then.</p>")
    if search.get("status") in ("infeasible", "not run"):
        parts.append(
            f"<p class=warn>No feasible design point (search status: {_e(search.get('status'))}).</p>"
        )
    parts.append("<h2>Inputs</h2>")
    ann = model.get("annotations")
    parts.append(
        kv(
            [
                ("model", f"{model.get('name')} ({model.get('path')})"),
                ("model sha256", model.get("sha256")),
                ("timesteps", model.get("timesteps")),
                ("annotations", (ann or {}).get("path") or ("inline" if ann else "none")),
                ("hardware", f"{hw.get('name')} ({hw.get('ref')})"),
                ("hardware sha256", hw.get("sha256")),
                ("--set overrides", ", ".join(hw.get("overrides") or []) or "none"),
                (
                    "sweep",
                    "; ".join(f"{k} = {', '.join(v)}" for k, v in (opts.get("sweep") or {}).items())
                    or "none",
                ),
                ("objectives", ", ".join(opts.get("objectives", []))),
                (
                    "solver",
                    f"time limit {opts.get('time_limit_s')} s per solve, {opts.get('workers')} workers, seed {opts.get('seed')}",
                ),
                ("versions", ", ".join(f"{k} {v}" for k, v in s.get("versions", {}).items())),
            ]
        )
    )
    parts.append("<h2>Search</h2>")
    parts.append(
        kv(
            [
                ("what", search.get("what")),
                (
                    "space",
                    json.dumps(search.get("space"))
                    if not isinstance(search.get("space"), str)
                    else search.get("space"),
                ),
                ("status", search.get("status")),
                ("stopped", search.get("stopped")),
                ("largest gap", _num(search.get("gap"))),
                ("wall time", f"{_num(search.get('wall_s'))} s"),
                (
                    "points",
                    f"{search.get('points')} evaluated, {search.get('pareto_points')} on the Pareto front",
                ),
            ]
        )
    )
    runs = pd.DataFrame(
        [
            {
                "sweep value": r.get("label") or "-",
                "status": r.get("status"),
                "stopped": r.get("stopped"),
                "gap": r.get("gap"),
                "points": r.get("points"),
                "wall_s": r.get("wall_s"),
                "note": r.get("infeasible_reason") or "",
            }
            for r in search.get("runs", [])
        ]
    )
    parts.append(table(runs, text_cols=("sweep value", "status", "stopped", "note")))
    parts.append("<h2>Best points against the paper's baseline</h2>")
    parts.append(
        "<p class=meta>Per sweep value: the layer-by-layer sequential baseline, then the point that is best in "
        "each objective; <code>_x</code> columns are ratios to the baseline (below 1 is better).</p>"
    )
    bvb = best_vs_baseline(ex)
    parts.append(table(bvb, text_cols=(*keys, "point", "what")))
    parts.append("<h2>Named baselines</h2>")
    brows = []
    for entry in s.get("baselines", []):
        for name, b in entry.get("baselines", {}).items():
            brows.append(
                {
                    **{k: entry.get("sweep", {}).get(k) for k in keys},
                    "baseline": name,
                    "id": b.get("id") or "-",
                    "status": b.get("status"),
                    "energy_uJ": (b.get("energy_pj") or float("nan")) / 1e6,
                    "latency_Mcycles": (b.get("latency_cycles") or float("nan")) / 1e6,
                    "offchip_MiB": (b.get("offchip_bytes") or float("nan")) / 2**20,
                    "note": (b.get("note") or "")[:160],
                }
            )
    parts.append(table(pd.DataFrame(brows), text_cols=(*keys, "baseline", "id", "status", "note")))
    parts.append("<h2>Compulsory off-chip traffic</h2>")
    parts.append(
        "<p class=meta>What any schedule must move: every weight and the input read once, outputs written once, "
        "and each neuron state loaded and stored once. <code>ratio</code>: the least off-chip traffic found over it.</p>"
    )
    lrows = [
        {
            **{k: e.get("sweep", {}).get(k) for k in keys},
            "compulsory_MiB": e.get("offchip_bytes", 0) / 2**20,
            "best_id": e.get("best_id", "-"),
            "best_MiB": (e.get("best_offchip_bytes") or float("nan")) / 2**20,
            "ratio": e.get("ratio"),
            "fits": e.get("fits"),
        }
        for e in s.get("lower_bound", [])
    ]
    parts.append(table(pd.DataFrame(lrows), text_cols=(*keys, "best_id")))
    parts.append("<h2>Plots</h2>")
    for png in sorted((folder / "plots").glob("*.png"), key=_plot_order):
        data = base64.b64encode(png.read_bytes()).decode()
        parts.append(
            f"<figure><img alt='{_e(png.stem)}' src='data:image/png;base64,{data}'>"
            f"<figcaption><b>{_e(png.stem)}</b> (<code>plots/{_e(png.name)}</code>, SVG beside it). "
            f"{_e(caption(png.stem))}</figcaption></figure>"
        )
    shown = ex.pareto if pareto_only else ex.points
    parts.append(f"<h2>{'Pareto points' if pareto_only else 'All design points'} ({len(shown)})</h2>")
    view = readable(shown, keys, extra=("state_bits",))
    if "pareto" in shown:
        view["pareto"] = shown["pareto"].astype(bool).to_numpy()
    view["schedule"] = shown["schedule"].to_numpy() if "schedule" in shown else ""
    view["mapping"] = shown["mapping"].to_numpy() if "mapping" in shown else ""
    parts.append(
        table(
            view,
            text_cols=("id", *keys, "source", "label", "status", "schedule", "mapping"),
            highlight="pareto",
        )
    )
    parts.append("<h2>Files</h2><ul>")
    for key, name in FILES.items():
        parts.append(f"<li><a href='{_e(name)}'>{_e(name)}</a> ({_e(key)})</li>")
    parts.append("</ul></body></html>\n")
    return "\n".join(parts)


def _plot_order(p: Path) -> tuple[int, str]:
    order = ["pareto", "offchip_vs", "energy_breakdown", "layer_energy"]
    return next((i for i, k in enumerate(order) if p.stem.startswith(k)), len(order)), p.stem


def write_report(ex: Exploration, folder: str | Path, *, pareto_only: bool = False) -> Path:
    folder = Path(folder)
    return atomic_write_text(folder / FILES["report"], build_html(ex, folder, pareto_only=pareto_only))
