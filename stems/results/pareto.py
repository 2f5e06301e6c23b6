"""Non-dominated filtering of design points (all objectives minimised)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def pareto_mask(costs: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows of `costs` (n points x m objectives) that no other row dominates.

    Row a dominates row b when a <= b in every objective and a < b in at least one. Duplicate
    rows are all kept (neither dominates the other). O(n^2 m) in the worst case, but each pass
    removes every point the current front point dominates, so typical fronts are fast.
    """
    costs = np.asarray(costs, dtype=float)
    if costs.ndim != 2:
        raise ValueError("costs must be a 2-D array (points x objectives)")
    n = len(costs)
    keep = np.ones(n, dtype=bool)
    for i in np.lexsort(costs.T[::-1]):  # lexicographic order: dominators come early
        if not keep[i]:
            continue
        dominated = np.all(costs[i] <= costs, axis=1) & np.any(costs[i] < costs, axis=1)
        keep &= ~dominated
    return keep


def pareto_front(points: pd.DataFrame, objectives: Sequence[str]) -> pd.DataFrame:
    """The non-dominated rows of `points` over `objectives` (rows with a missing objective are dropped)."""
    complete = points.dropna(subset=list(objectives))
    return complete[pareto_mask(complete[list(objectives)].to_numpy())]
