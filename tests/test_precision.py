"""Sensitivity-guided precision: CP-SAT equals the exhaustive optimum, budgets hold, bad input is one line."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from helpers import conv, sew_block
from hypothesis import given, settings
from hypothesis import strategies as st

from stems.errors import StemsInputError
from stems.search.precision import allocate_precision, apply_precision, layer_sensitivities
from stems.search.solver import Status
from stems.workload.annotate import annotate
from stems.workload.annotations import parse_annotations
from stems.workload.model import Workload

# Seven widths, some above the uniform 8 bits: at equal budget, sensitive layers buy what others spend.
CHOICES = (2, 3, 4, 6, 8, 12, 16)

# Six convs whose weight counts span 72 .. 18,432 (C x K x 3 x 3), so bits on big layers pay more.
SIX = Workload(
    "six",
    [
        conv("l0", 2, 4, 8),
        conv("l1", 4, 16, 8),
        conv("l2", 16, 32, 8),
        conv("l3", 32, 64, 8),
        conv("l4", 64, 32, 8),
        conv("l5", 32, 8, 8),
    ],
    [(f"l{i}", f"l{i + 1}") for i in range(5)],
)
# Synthetic mean Hessian traces, not measured: falling with depth over three decades as HAWQ's
# measured traces do for early vs late layers, with one out-of-order value (l4) so the optimum is not
# a simple function of the layer index.
TRACES = {"l0": 50.0, "l1": 8.0, "l2": 2.5, "l3": 0.2, "l4": 0.9, "l5": 0.05}
# Perturbation of uniform 8-bit weights: trace x n x Delta^2 / 12 with Delta = 2^(1 - 8).
UNIFORM_8 = sum(TRACES[x] * SIX.layer(x).weights * 4.0**-7 / 12 for x in TRACES)


def exhaustive(workload: Workload, traces: dict[str, float], budget: float) -> int | None:
    """The cheapest footprint over all 7^6 allocations whose perturbation is within `budget`."""
    names = list(traces)
    n = np.array([workload.layer(x).weights for x in names], dtype=float)
    s = np.array([traces[x] for x in names])
    bits = np.array(list(itertools.product(CHOICES, repeat=len(names))), dtype=float)
    pert = (s * n * 4.0 ** (1 - bits) / 12).sum(axis=1)
    cost = bits @ n
    ok = pert <= budget
    return int(cost[ok].min()) if ok.any() else None


@pytest.mark.parametrize("scale", [0.3, 1.0, 5.0, 100.0])
def test_cp_sat_equals_exhaustive_optimum(scale: float) -> None:
    a = allocate_precision(SIX, TRACES, choices=CHOICES, budget=scale * UNIFORM_8)
    assert a.solve.status is Status.OPTIMAL
    assert a.cost == exhaustive(SIX, TRACES, scale * UNIFORM_8)
    assert a.within_budget and a.perturbation <= a.budget
    assert a.uniform_bits == 8 and a.uniform_perturbation == pytest.approx(UNIFORM_8)
    assert a.uniform_cost == 8 * sum(x.weights for x in SIX)


def test_equal_budget_default_beats_uniform() -> None:
    a = allocate_precision(SIX, TRACES, choices=CHOICES)
    assert a.budget == a.uniform_perturbation and a.within_budget
    assert a.cost == exhaustive(SIX, TRACES, a.budget) < a.uniform_cost
    assert 0 < a.reduction < 1
    assert a.bits["l0"] > a.bits["l3"]  # the most sensitive layer keeps more bits


def test_allocation_tied_with_the_budget_is_within_it() -> None:
    # Traces 1/n give every layer the same perturbation, so allocations tie with the budget exactly,
    # where float sums can land one ulp above it; the check is done in rationals.
    a = allocate_precision(SIX, {x.name: 1 / x.weights for x in SIX})
    assert a.solve.status is Status.OPTIMAL and a.within_budget and a.cost < a.uniform_cost


@settings(max_examples=25, deadline=None)
@given(st.floats(0.05, 50.0), st.floats(0.05, 50.0))
def test_bigger_budget_never_costs_more(x: float, y: float) -> None:
    small, big = sorted((x, y))
    a = allocate_precision(SIX, TRACES, choices=CHOICES, budget=small * UNIFORM_8)
    b = allocate_precision(SIX, TRACES, choices=CHOICES, budget=big * UNIFORM_8)
    assert a.within_budget and b.within_budget and b.cost <= a.cost


def test_infeasible_budget_reports_no_allocation() -> None:
    a = allocate_precision(SIX, TRACES, budget=0.0)
    assert a.solve.status is Status.INFEASIBLE and a.cost is None and not a.within_budget
    with pytest.raises(ValueError, match="infeasible"):
        apply_precision(SIX, a)


def test_apply_sets_weight_and_state_bits() -> None:
    a = allocate_precision(SIX, TRACES)
    w = apply_precision(SIX, a)
    assert {x.name: x.precision.W for x in w} == dict(a.bits)
    v = allocate_precision(SIX, {"l1": 1.0, "l2": 1.0}, operand="V", choices=(4, 12), budget=1e9)
    w = apply_precision(SIX, v)
    assert v.bits == {"l1": 4, "l2": 4} and w.layer("l1").state_bits == 16 * 64 * 4
    assert w.layer("l0").precision.V == 12  # unscored layers keep their bits


def test_bitops_cost_weighs_bits_by_synaptic_work() -> None:
    a = allocate_precision(SIX, TRACES, cost="bitops")
    assert a.uniform_cost == 8 * sum(x.synaptic_ops * x.precision.I for x in SIX)
    assert a.solve.status is Status.OPTIMAL and a.within_budget and a.cost <= a.uniform_cost


def test_activity_bits_reach_consumers() -> None:
    w = annotate(sew_block(), parse_annotations({"stems_annotations": 1}))
    a = allocate_precision(w, {"c1": 1.0, "c2": 1.0}, operand="O_final", choices=(3, 5), budget=1e9)
    w2 = apply_precision(w, a)
    assert a.bits == {"c1": 3, "c2": 3}
    assert w2.layer("c2").precision.I == 3 and w2.layer("add").precision.O_final == 3
    assert w2.layer("fc").precision.I == 3 and w2.layer("fc").precision.O_final == 4


def test_sensitivities_from_annotations_blocks_then_layers() -> None:
    ann = parse_annotations(
        {"stems_annotations": 1, "blocks": {"0": {"sensitivity": 2}}, "layers": {"c1": {"sensitivity": 7.5}}},
        "a.yaml",
    )
    w = annotate(sew_block(), ann)
    s = layer_sensitivities(w, ann)
    assert s["c0"] == 2.0 and s["c1"] == 7.5 and "fc" not in s
    assert allocate_precision(w, s).bits.keys() == {"c0", "c1", "c2"}  # add and pool have no weights


def one_line(exc: pytest.ExceptionInfo[StemsInputError], *parts: str) -> None:
    text = str(exc.value)
    assert "\n" not in text
    for part in parts:
        assert part in text


@pytest.mark.parametrize(
    ("entry", "parts"),
    [
        ({"layers": {"c1": {"sensitivity": -1}}}, ("a.yaml", "layers.c1.sensitivity", "-1")),
        ({"layers": {"c1": {"sensitivity": "high"}}}, ("a.yaml", "layers.c1.sensitivity", "'high'")),
        ({"blocks": {"0": {"sensitivity": True}}}, ("a.yaml", "blocks.0.sensitivity")),
        ({"layers": {"c1": {"sensitivty": 1}}}, ("a.yaml", "did you mean 'sensitivity'")),
        ({"layers": {"c1": {"weight_bits": 33}}}, ("a.yaml", "layers.c1.weight_bits", "1 to 32")),
    ],
)
def test_bad_annotation_is_one_line(entry: dict, parts: tuple[str, ...]) -> None:
    with pytest.raises(StemsInputError) as exc:
        parse_annotations({"stems_annotations": 1, **entry}, "a.yaml")
    one_line(exc, *parts)


def test_annotation_for_a_missing_layer_names_it() -> None:
    ann = parse_annotations({"stems_annotations": 1, "layers": {"c9": {"sensitivity": 1.0}}}, "a.yaml")
    with pytest.raises(StemsInputError) as exc:
        layer_sensitivities(sew_block(), ann)
    one_line(exc, "a.yaml", "layers.c9", "matches no layer")


def test_bad_api_input_is_one_line() -> None:
    with pytest.raises(StemsInputError) as exc:
        allocate_precision(SIX, {**TRACES, "l5x": 1.0})
    one_line(exc, "sensitivity.l5x", "no layer 'l5x'", "did you mean 'l5'")
    with pytest.raises(StemsInputError) as exc:
        allocate_precision(SIX, {"l0": float("nan")})
    one_line(exc, "sensitivity.l0", "finite number >= 0")
    for bad in (0, 33):
        with pytest.raises(StemsInputError) as exc:
            allocate_precision(SIX, TRACES, choices=(bad, 4))
        one_line(exc, "choices", "1 to 32", str(bad))
        with pytest.raises(StemsInputError) as exc:
            allocate_precision(SIX, TRACES, uniform_bits=bad)
        one_line(exc, "uniform_bits", str(bad))
    with pytest.raises(StemsInputError, match="unknown operand"):
        allocate_precision(SIX, TRACES, operand="X")


def test_explore_sweeps_precision_budgets_beside_uniform(tmp_path) -> None:
    """`--sweep precision_budget.W=uniform,1,4`: each value is a network; the allocation's bits reach the
    layers, the summary records it, and its mapping file re-prices the allocated network."""
    from explore_helpers import fake_search

    from stems.explore import explore
    from stems.results.mapping_file import evaluate_mapping

    ann = {"stems_annotations": 1, "layers": {n: {"sensitivity": s} for n, s in TRACES.items()}}
    ex = explore(SIX, annotations=ann, sweep=["precision_budget.W=uniform,1,4"], search=fake_search)
    runs = {r["sweep"]["precision_budget.W"]: r["precision"] for r in ex.summary["search"]["runs"]}
    assert set(runs) == {"uniform", "1", "4"}
    equal = allocate_precision(SIX, TRACES, choices=range(2, 17))
    assert runs["1"]["bits"] == dict(equal.bits) and runs["1"]["cost"] == equal.cost
    assert runs["1"]["cost"] < runs["1"]["uniform_cost"]  # cheaper than uniform 8-bit at equal budget
    assert runs["4"]["cost"] <= runs["1"]["cost"]  # a looser budget never costs more
    chosen = ex.points[(ex.points["precision_budget.W"] == "1") & (ex.points["source"] == "search")].iloc[0]
    assert chosen["footprint_weights_bytes"] * 8 == equal.cost
    assert chosen["retraining"] == "required"
    uniform = ex.points[ex.points["precision_budget.W"] == "uniform"].iloc[0]
    assert uniform["footprint_weights_bytes"] * 8 == equal.uniform_cost
    ex.write(tmp_path / "out")
    mapping = ex.points.loc[ex.points["mapping"].astype(bool) & (ex.points["precision_budget.W"] == "1")]
    assert evaluate_mapping(
        tmp_path / "out" / mapping.iloc[0]["mapping"], workload=apply_precision(SIX, equal)
    ).matches


def test_precision_budget_needs_scores_and_a_known_operand() -> None:
    from explore_helpers import fake_search

    from stems.explore import explore

    with pytest.raises(StemsInputError, match="sensitivity"):
        explore(SIX, sweep=["precision_budget.W=1"], search=fake_search)
    with pytest.raises(StemsInputError, match="OPERAND"):
        explore(SIX, sweep=["precision_budget.X=1"], search=fake_search)
    ann = {"stems_annotations": 1, "layers": {"l0": {"sensitivity": 1.0}}}
    with pytest.raises(StemsInputError, match="positive factor"):
        explore(SIX, annotations=ann, sweep=["precision_budget.W=-2"], search=fake_search)
