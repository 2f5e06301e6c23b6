"""The design-point table: one row per evaluated point (`points.csv`), its Pareto subset (`pareto.csv`).

Columns, in order: `id`, one column per sweep key (named as the key, e.g. `global_buffer.size`), `source`
(`search` or `baseline`), `label` (how the point was found: `energy_pj optimum`, a Pareto step, or the
baseline's name), `schedule` (a one-line summary), the `METRICS`, then `pareto` (on the front of its sweep
value), `status`, `gap` and `mapping` (the mapping file's path relative to the output folder; empty off
the front).

Then `retraining`, `network_changes`, `accuracy` and `accuracy_known` (`NETWORK_COLUMNS`).

`status`: the solve's status for searched points (`optimal`, or `feasible` when a time limit stopped the
solve before proving optimality), `evaluated` for baselines, and `infeasible` for any point whose
schedule overflows a buffer (such points never enter the front). `gap` is the solve's relative optimality
gap (empty for baselines).

The front is taken per sweep value: points on different hardware are different designs, and without an
area or cost objective a larger buffer would simply dominate. With `accuracy` among the objectives (it is
maximised) the network knobs share one front per hardware value, which is what accuracy trades against;
points of unknown accuracy then stay off the front. Points that change the network (a baseline
that removes state) enter the front only when state removal is allowed (`--allow-state-removal`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from stems.results.metrics import METRICS, NETWORK_COLUMNS, OBJECTIVES
from stems.results.pareto import pareto_mask

LEAD = ("id",)
MIDDLE = ("source", "label", "schedule")
TAIL = ("pareto", "status", "gap", "mapping")
PAPER_BASELINE = "layer-by-layer-sequential"
MAXIMISED = ("accuracy",)
"""Objectives the front maximises (only in marking the front: the search minimises the others)."""
FILL = {
    "mapping": "",
    "label": "",
    "schedule": "",
    "retraining": "",
    "network_changes": "",
    "accuracy_known": False,
}


def columns(sweep_keys: Sequence[str]) -> list[str]:
    return [*LEAD, *sweep_keys, *MIDDLE, *METRICS, *NETWORK_COLUMNS, *TAIL]


def point_id(n: int) -> str:
    return f"p{n:04d}"


def empty_points(sweep_keys: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns(sweep_keys)})


def points_frame(rows: list[dict[str, Any]], sweep_keys: Sequence[str]) -> pd.DataFrame:
    if not rows:
        return empty_points(sweep_keys)
    df = pd.DataFrame(rows)
    for c in columns(sweep_keys):
        if c not in df:
            df[c] = FILL.get(c, np.nan)
    return df[columns(sweep_keys)]


def check_objectives(objectives: Sequence[str], accuracy: bool = False) -> tuple[str, ...]:
    """The objectives, checked; `accuracy` may be one when an accuracy table is given."""
    from stems.errors import StemsInputError, did_you_mean

    out = []
    for o in objectives:
        if o in MAXIMISED and not accuracy:
            raise StemsInputError(
                "accuracy is an objective only with an accuracy table (--accuracy FILE.csv)"
            )
        if o not in (*OBJECTIVES, *MAXIMISED):
            raise StemsInputError(
                f"unknown objective '{o}'{did_you_mean(o, OBJECTIVES)}; choose from {', '.join(OBJECTIVES)}"
            )
        if o not in out:
            out.append(o)
    if not any(o in OBJECTIVES for o in out):
        raise StemsInputError(f"give at least one objective ({', '.join(OBJECTIVES)})")
    return tuple(out)


def groups(points: pd.DataFrame, sweep_keys: Sequence[str]) -> list[tuple[dict[str, str], pd.DataFrame]]:
    """The points of each sweep value, in first-appearance order."""
    if not sweep_keys:
        return [({}, points)]
    out = []
    for key, group in points.groupby(list(sweep_keys), sort=False, dropna=False):
        values = key if isinstance(key, tuple) else (key,)
        out.append((dict(zip(sweep_keys, map(str, values), strict=True)), group))
    return out


def mark_pareto(
    points: pd.DataFrame,
    objectives: Sequence[str],
    sweep_keys: Sequence[str],
    *,
    allow_state_removal: bool = True,
) -> pd.DataFrame:
    """`points` with the `pareto` column set: non-dominated within its sweep value among the eligible
    points, i.e. feasible and, unless `allow_state_removal`, not changing the network (a named baseline
    such as stems-paper-5plif removes state: it stays in the table, flagged `retraining_required`)."""
    points = points.copy()
    points["pareto"] = False
    for _, group in groups(points, sweep_keys):
        ok = group["feasible"].astype(bool)
        if not allow_state_removal and "retraining_required" in group:
            ok &= ~group["retraining_required"].fillna(False).astype(bool)
        cand = group[ok].dropna(subset=list(objectives))
        if cand.empty:
            continue
        sign = np.array([-1.0 if o in MAXIMISED else 1.0 for o in objectives])
        mask = pareto_mask(cand[list(objectives)].astype(float).to_numpy() * sign)
        points.loc[cand.index[mask], "pareto"] = True
    return points


def best_row(points: pd.DataFrame, objective: str, tie_break: Sequence[str] = OBJECTIVES) -> pd.Series | None:
    """The point with the least `objective` (ties: the other objectives in order, then id) among the
    Pareto points (the best of each objective is always on its sweep value's front), or among the feasible
    points of a table without a `pareto` column."""
    if "pareto" in points:
        ok = points[points["pareto"].astype(bool)]
    else:
        ok = points[points["feasible"].astype(bool)]
    if ok.empty:
        return None
    keys = [objective, *[o for o in tie_break if o != objective], "id"]
    keys = [k for k in keys if k in ok]
    return ok.sort_values(keys, kind="stable").iloc[0]


def sweep_label(values: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def metrics_dict(row: pd.Series) -> dict[str, Any]:
    """A point's metrics and network columns (retraining, network_changes, accuracy) for summary.json."""
    return {m: _value(row[m]) for m in (*METRICS, *NETWORK_COLUMNS) if m in row}


def _value(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and np.isnan(v):
        return None
    return v
