"""The shared CP-SAT interface: statuses, bounds, gaps and reproducibility."""

from __future__ import annotations

import pytest
from ortools.sat.python import cp_model

from stems.search.solver import SolveOptions, Status, solve


def knapsack(n: int = 12) -> tuple[cp_model.CpModel, list[cp_model.IntVar]]:
    model = cp_model.CpModel()
    xs = [model.new_bool_var(f"x{i}") for i in range(n)]
    weights = [(7 * i) % 11 + 1 for i in range(n)]
    values = [(5 * i) % 13 + 1 for i in range(n)]
    model.add(sum(w * x for w, x in zip(weights, xs, strict=True)) <= 20)
    model.maximize(sum(v * x for v, x in zip(values, xs, strict=True)))
    return model, xs


def test_optimal_with_zero_gap_and_values() -> None:
    model, xs = knapsack()
    result, solver = solve(model, SolveOptions(time_limit_s=10))
    assert result.status is Status.OPTIMAL and result.gap == 0.0
    assert result.objective == result.best_bound
    chosen = sum(solver.value(x) * ((5 * i) % 13 + 1) for i, x in enumerate(xs))
    assert chosen == result.objective


def test_infeasible_has_no_objective() -> None:
    model = cp_model.CpModel()
    x = model.new_int_var(0, 3, "x")
    model.add(x > 5)
    model.minimize(x)
    result, _ = solve(model)
    assert result.status is Status.INFEASIBLE and result.objective is None and result.gap is None
    assert not result.status.has_solution


def tied(n: int = 24) -> tuple[cp_model.CpModel, list[cp_model.IntVar]]:
    """Many optima of one value: which one comes back is up to the solver."""
    model = cp_model.CpModel()
    xs = [model.new_bool_var(f"x{i}") for i in range(n)]
    model.add(sum(xs) == n // 3)
    model.minimize(sum((i % 3) * x for i, x in enumerate(xs)))
    return model, xs


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("build", [knapsack, tied])
def test_same_inputs_same_answer(workers: int, build) -> None:
    runs = []
    for _ in range(3):
        model, xs = build()
        result, solver = solve(model, SolveOptions(time_limit_s=10, workers=workers, seed=7))
        runs.append((result.status, result.objective, [solver.value(x) for x in xs]))
        # one deterministic CP-SAT thread, whatever the callers' workers; the seed as given
        assert (result.workers, result.seed) == (1, 7)
    assert runs[0][0] is Status.OPTIMAL and runs[0] == runs[1] == runs[2]


def test_gap_of_a_feasible_answer() -> None:
    from stems.search.solver import SolveResult

    r = SolveResult(Status.FEASIBLE, objective=110.0, best_bound=100.0, wall_s=1.0, workers=1, seed=0)
    assert r.gap == pytest.approx(10 / 110)


def test_bad_options() -> None:
    with pytest.raises(ValueError):
        SolveOptions(workers=0)
