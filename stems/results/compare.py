"""Side-by-side comparison of results: output folders, mapping files, or explorations run on the spot
(hardware specs explored on one model). One row per entry with each objective's best value, and its
ratio to the first entry's."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from stems.errors import StemsInputError
from stems.hardware.load import ZIGZAG_PREFIX, list_shipped, read_yaml
from stems.results.metrics import METRICS, OBJECTIVES
from stems.results.points import best_row
from stems.results.store import Exploration


@dataclass
class Entry:
    """One thing compared: its feasible points (metric columns) and its Pareto subset."""

    name: str
    kind: str  # results | mapping | hardware
    source: str
    model: str
    model_sha256: str
    hardware: str
    points: pd.DataFrame
    pareto: pd.DataFrame
    folder: str | None = None
    notes: list[str] = field(default_factory=list)


def classify(arg: str) -> str:
    """`results` (a folder with summary.json), `mapping` (a stems mapping file) or `hardware`."""
    path = Path(arg)
    if path.is_dir():
        if not (path / "summary.json").is_file():
            raise StemsInputError("a folder but not a stems output folder (no summary.json)", path=arg)
        return "results"
    if arg.startswith(ZIGZAG_PREFIX) or arg in list_shipped():
        return "hardware"
    if path.is_file():
        doc = read_yaml(path, strict=False)
        if "stems_mapping" in doc:
            return "mapping"
        if "stems_hardware" in doc:
            return "hardware"
        raise StemsInputError(
            "neither a stems mapping file (stems_mapping: 1) nor a hardware spec (stems_hardware: 1)",
            path=arg,
        )
    raise StemsInputError(
        f"no such file or folder, and not a shipped hardware name ({', '.join(list_shipped())})", path=arg
    )


def entry_from_exploration(ex: Exploration, name: str, kind: str, source: str) -> Entry:
    inputs = ex.summary.get("inputs", {})
    ok = ex.points[ex.points["feasible"].astype(bool)] if len(ex.points) else ex.points
    return Entry(
        name=name,
        kind=kind,
        source=source,
        model=inputs.get("model", {}).get("name", ""),
        model_sha256=inputs.get("model", {}).get("sha256") or "",
        hardware=inputs.get("hardware", {}).get("name", ""),
        points=ok.reset_index(drop=True),
        pareto=ok[ok["pareto"].astype(bool)].reset_index(drop=True) if len(ok) else ok,
        folder=str(ex.path) if ex.path else None,
    )


def entry_from_mapping(path: str) -> Entry:
    """A mapping file as a one-point entry (its stored metrics; re-priced if it stores none)."""
    from stems.results.mapping_file import evaluate_mapping, read_mapping

    mf = read_mapping(path)
    metrics = mf.stored_metrics
    if not all(m in metrics for m in OBJECTIVES):
        metrics = evaluate_mapping(mf).metrics
    row = {"id": mf.id, "label": mf.doc.get("label", ""), **{m: metrics.get(m) for m in METRICS}}
    df = pd.DataFrame([row])
    return Entry(
        name=Path(path).stem,
        kind="mapping",
        source=path,
        model=mf.model.name,
        model_sha256=mf.model.sha256,
        hardware=mf.hardware.name,
        points=df,
        pareto=df,
    )


def compare_table(entries: list[Entry], objectives: tuple[str, ...] = OBJECTIVES) -> pd.DataFrame:
    """One row per entry: each objective's best value over its feasible points, and the ratio to the
    first entry's best (`<objective>_ratio`; below 1: better than the first)."""
    rows = []
    for e in entries:
        row: dict[str, Any] = {
            "entry": e.name,
            "kind": e.kind,
            "model": e.model,
            "hardware": e.hardware,
            "points": len(e.points),
            "pareto_points": len(e.pareto),
        }
        for m in objectives:
            best = best_row(e.points, m) if len(e.points) else None
            row[m] = float(best[m]) if best is not None else float("nan")
        best_e = best_row(e.points, "energy_pj") if len(e.points) else None
        row["best_energy_id"] = best_e["id"] if best_e is not None else ""
        rows.append(row)
    df = pd.DataFrame(rows)
    for m in objectives:
        first = df[m].iloc[0] if len(df) else float("nan")
        df[f"{m}_ratio"] = df[m] / first if first else float("nan")
    order = ["entry", "kind", "model", "hardware", "points", "pareto_points"]
    for m in objectives:
        order += [m, f"{m}_ratio"]
    return df[[*order, "best_energy_id"]]


def model_warnings(entries: list[Entry]) -> list[str]:
    shas = {e.model_sha256 for e in entries if e.model_sha256}
    if len(shas) > 1:
        names = ", ".join(f"{e.name}: {e.model}" for e in entries)
        return [f"the entries were explored on different models ({names}); ratios compare different networks"]
    return []


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(text.removeprefix(ZIGZAG_PREFIX)).stem or text).strip("-")


def entry_name(arg: str, kind: str, taken: set[str]) -> str:
    base = slug(arg) if kind != "results" else Path(arg).resolve().name
    name, i = base, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    taken.add(name)
    return name
