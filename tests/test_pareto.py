"""Pareto filtering: the front is exactly the set of non-dominated points."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from stems.results.pareto import pareto_front, pareto_mask


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all(a <= b) and np.any(a < b))


def test_hand_example() -> None:
    costs = np.array([[1, 5], [2, 2], [5, 1], [3, 3], [2, 2], [6, 6]])
    assert pareto_mask(costs).tolist() == [True, True, True, False, True, False]


@settings(max_examples=200, deadline=None)
@given(arrays(np.int64, st.tuples(st.integers(1, 30), st.integers(1, 4)), elements=st.integers(0, 6)))
def test_front_is_exactly_the_non_dominated_points(costs: np.ndarray) -> None:
    mask = pareto_mask(costs)
    for i, row in enumerate(costs):
        dominated = any(dominates(other, row) for other in costs)
        assert mask[i] == (not dominated)


def test_dataframe_front_drops_missing() -> None:
    df = pd.DataFrame({"energy": [1.0, 2.0, None, 0.5], "latency": [3.0, 1.0, 0.1, 4.0], "id": list("abcd")})
    assert pareto_front(df, ["energy", "latency"])["id"].tolist() == ["a", "b", "d"]
