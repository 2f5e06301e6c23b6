"""Sensitivity-guided per-layer precision: the cheapest bits whose weighted quantisation noise fits a budget.

Perturbation model (HAWQ-V2, Dong et al. 2020; used for SNNs by Lui & Neftci, arXiv 2104.14117):
quantising layer i's operand to b bits perturbs the loss by about

    s_i x n_i x Delta_b^2 / 12,    Delta_b = 2^(1 - b)

where n_i is the number of elements of the operand, Delta_b the step of a uniform b-bit quantiser
of values normalised to [-1, 1] (so n_i Delta_b^2 / 12 is the expected squared error
||Q(W_i) - W_i||^2) and s_i the user's sensitivity score: the mean Hessian trace per element,
Tr(H_i) / n_i, as HAWQ-V2 weights it (divide a layer's total trace by n_i to get it). The network's
perturbation is the sum over the allocated layers. The default budget is the perturbation of
uniform `uniform_bits` bits ("equal budget"), so the allocation is never noisier than uniform
precision and costs at most as much, whenever `uniform_bits` is among the choices. The default
choices reach above it (2..16 bits): at equal budget, fewer bits on one layer must be paid for with
more bits on another, so with no choice above `uniform_bits` (and every score positive) uniform
precision would be the only allocation within the budget.

CP-SAT picks one width per layer (one-hot) minimising the cost subject to the budget. Costs are
integers already; each layer's perturbation is scaled by 2^40 / budget and rounded down, and the
budget becomes 2^40. Rounding down only relaxes the constraint, so no allocation within the exact
budget is ever cut off and the optimum is never missed; the chosen allocation can exceed the exact
budget by at most n_layers x 2^-40 of it. Perturbations are computed in exact rationals (a float is
one), so `within_budget` is the exact check of the chosen allocation, ties with the budget included.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from ortools.sat.python import cp_model

from stems.errors import StemsInputError, did_you_mean
from stems.search.solver import SolveOptions, SolveResult, solve
from stems.workload.annotate import settings_per_layer
from stems.workload.annotations import SCHEMA_VERSION, Annotations, load_annotations
from stems.workload.knobs import apply_knobs
from stems.workload.model import Layer, Workload

OPERANDS = ("W", "V", "O_final")
"""Weights; one neuron state variable; the layer's output activity (what its consumers read as I)."""
COSTS = ("footprint", "bitops")
DEFAULT_CHOICES = tuple(range(2, 17))
SCALE = 2**40
DEFAULT_OPTIONS = SolveOptions(time_limit_s=60.0)


@dataclass(frozen=True)
class PrecisionAllocation:
    """Bits per layer for one operand, with its cost and perturbation beside uniform precision's."""

    operand: str
    bits: Mapping[str, int]  # layer name -> bits, allocated layers only, topological order
    cost_kind: str
    cost: int | None  # None when no allocation fits the budget
    perturbation: float | None
    budget: float
    uniform_bits: int
    uniform_cost: int
    uniform_perturbation: float
    solve: SolveResult
    within_budget: bool  # the exact check of the allocation, in rationals

    @property
    def reduction(self) -> float | None:
        """Fraction of the uniform cost saved (0.58: 58% smaller)."""
        if self.cost is None or self.uniform_cost == 0:
            return None
        return 1.0 - self.cost / self.uniform_cost


def elements(layer: Layer, operand: str) -> int:
    """Elements of the operand: weights; neurons x state variables; outputs of one timestep."""
    if operand == "W":
        return layer.weights
    if operand == "V":
        return layer.neurons * (layer.neuron.n_state if layer.neuron else 0)
    return layer.outputs_per_step


def cost_per_bit(layer: Layer, operand: str, cost: str) -> int:
    """What one more bit of the operand costs in this layer.

    footprint: bits stored (elements). bitops: work per inference, HAWQ-V3's bit operations for
    weights (synaptic ops x input bits), one access per element per timestep for state and activity.
    """
    if cost == "footprint":
        return elements(layer, operand)
    if operand == "W":
        return layer.synaptic_ops * layer.precision.I
    return layer.dims.T * elements(layer, operand)


def layer_sensitivities(
    workload: Workload, annotations: Annotations | str | Path | Mapping[str, Any]
) -> dict[str, float]:
    """Each scored layer's `sensitivity` from an annotations file, resolved as `annotate` resolves every
    key (its block's entry, then matching layer entries), so an entry matching no layer is an error."""
    ann = annotations if isinstance(annotations, Annotations) else load_annotations(annotations)
    per = settings_per_layer(workload, ann)
    return {name: s.sensitivity for name, s in per.items() if s.sensitivity is not None}


def _check_bits(values: Iterable[int], where: str) -> None:
    for b in values:
        if isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= 32:
            raise StemsInputError(f"bit width must be an integer from 1 to 32, not {b!r}", where=where)


def _check_sensitivities(workload: Workload, sensitivities: Mapping[str, float]) -> None:
    names = [x.name for x in workload]
    for name, s in sensitivities.items():
        if name not in names:
            raise StemsInputError(
                f"no layer '{name}' in the model{did_you_mean(str(name), names)}", where=f"sensitivity.{name}"
            )
        if isinstance(s, bool) or not isinstance(s, int | float) or not math.isfinite(s) or s < 0:
            raise StemsInputError(
                f"sensitivity must be a finite number >= 0, not {s!r}", where=f"sensitivity.{name}"
            )


def allocate_precision(
    workload: Workload,
    sensitivities: Mapping[str, float],
    *,
    operand: str = "W",
    choices: Iterable[int] = DEFAULT_CHOICES,
    budget: float | None = None,
    uniform_bits: int = 8,
    cost: str = "footprint",
    options: SolveOptions = DEFAULT_OPTIONS,
) -> PrecisionAllocation:
    """Per-layer bits of `operand` for the layers in `sensitivities`, minimising `cost` within `budget`.

    Layers without a score, or with no element of the operand (a pool's weights), keep their bits.
    `budget` is an absolute perturbation; None means that of uniform `uniform_bits`.
    """
    if operand not in OPERANDS:
        raise StemsInputError(f"unknown operand {operand!r}; known: {', '.join(OPERANDS)}", where="operand")
    if cost not in COSTS:
        raise StemsInputError(f"unknown cost {cost!r}; known: {', '.join(COSTS)}", where="cost")
    options_bits = list(choices)
    if not options_bits:
        raise StemsInputError("no precision to choose from", where="choices")
    _check_bits(options_bits, "choices")
    options_bits = sorted(set(options_bits))
    _check_bits([uniform_bits], "uniform_bits")
    _check_sensitivities(workload, sensitivities)
    layers = [x for x in workload if x.name in sensitivities and elements(x, operand) > 0]
    unit = {x.name: cost_per_bit(x, operand, cost) for x in layers}

    def exact(name: str, bits: int) -> Fraction:
        return Fraction(sensitivities[name]) * elements(workload.layer(name), operand) / 12 / 4 ** (bits - 1)

    uniform = sum((exact(x.name, uniform_bits) for x in layers), Fraction(0))
    if budget is not None and not (isinstance(budget, int | float) and 0 <= budget < math.inf):
        raise StemsInputError(f"budget must be a finite number >= 0, not {budget!r}", where="budget")
    limit = uniform if budget is None else Fraction(budget)

    model = cp_model.CpModel()
    pick = {(x.name, b): model.new_bool_var(f"{x.name}@{b}") for x in layers for b in options_bits}
    for x in layers:
        model.add_exactly_one(pick[x.name, b] for b in options_bits)
    keys = list(pick)
    variables = [pick[k] for k in keys]
    scaled = [_scaled(exact(n, b), limit) for n, b in keys]
    model.add(cp_model.LinearExpr.weighted_sum(variables, scaled) <= SCALE)
    model.minimize(cp_model.LinearExpr.weighted_sum(variables, [unit[n] * b for n, b in keys]))
    result, solver = solve(model, options)

    found = result.status.has_solution
    bits = {n: b for (n, b), v in pick.items() if solver.boolean_value(v)} if found else {}
    used = sum((exact(n, b) for n, b in bits.items()), Fraction(0))
    return PrecisionAllocation(
        operand=operand,
        bits=bits,
        cost_kind=cost,
        cost=sum(unit[n] * b for n, b in bits.items()) if found else None,
        perturbation=float(used) if found else None,
        budget=float(limit),
        uniform_bits=uniform_bits,
        uniform_cost=sum(unit[n] * uniform_bits for n in unit),
        uniform_perturbation=float(uniform),
        solve=result,
        within_budget=found and used <= limit,
    )


def _scaled(p: Fraction, limit: Fraction) -> int:
    """p in units of limit / SCALE, rounded down; anything over the budget on its own becomes SCALE + 1."""
    if p == 0:
        return 0
    if limit == 0:
        return SCALE + 1
    return min(SCALE + 1, math.floor(p * SCALE / limit))


ANNOTATION_KEYS = {"W": "weight_bits", "V": "state_bits", "O_final": "output_bits"}
"""The annotations key of each operand's bit width."""


def allocation_overlay(allocation: PrecisionAllocation) -> dict[str, Any]:
    """The allocation as an annotations document (`layers: {NAME: {weight_bits: B}}`): a network knob
    like any other, so results record it and mapping files re-price it."""
    key = ANNOTATION_KEYS[allocation.operand]
    layers = {name: {key: bits} for name, bits in allocation.bits.items()}
    return {"stems_annotations": SCHEMA_VERSION, "layers": layers}


def apply_precision(workload: Workload, allocation: PrecisionAllocation) -> Workload:
    """The workload with the allocated bits, applied as annotations are (an output width reaches its
    consumers' inputs through pools, adds and views)."""
    if not allocation.solve.status.has_solution:
        raise ValueError(f"no allocation to apply: the search was {allocation.solve.status}")
    return apply_knobs(workload, allocation_overlay(allocation), "precision allocation")


BUDGET_KEY = "precision_budget"
"""Sweep key `precision_budget.OPERAND`: `uniform`, or F for a budget of F x uniform precision's."""


def budget_knob(
    workload: Workload,
    sensitivities: Mapping[str, float],
    operand: str,
    value: str,
    options: SolveOptions = DEFAULT_OPTIONS,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One `precision_budget.OPERAND` sweep value as an annotations overlay and its record (for the
    summary): `uniform` puts every scored layer at the uniform width; F allocates within F times the
    uniform width's perturbation, so 1 is the equal-budget allocation."""
    where = f"--sweep {BUDGET_KEY}.{operand}"
    if not sensitivities:
        raise StemsInputError(
            "needs sensitivity scores: give layers.NAME.sensitivity in --annotations", where=where
        )
    equal = allocate_precision(workload, sensitivities, operand=operand, options=options)
    record: dict[str, Any] = {
        "operand": operand,
        "budget": value,
        "uniform_bits": equal.uniform_bits,
        "uniform_cost": equal.uniform_cost,
        "uniform_perturbation": equal.uniform_perturbation,
    }
    if value == "uniform":
        key = ANNOTATION_KEYS[operand]
        layers = {name: {key: equal.uniform_bits} for name in equal.bits}
        return {"stems_annotations": SCHEMA_VERSION, "layers": layers}, record
    try:
        factor = float(value)
    except ValueError:
        factor = -1.0
    if not math.isfinite(factor) or factor <= 0:
        raise StemsInputError(f"a budget is 'uniform' or a positive factor, not {value!r}", where=where)
    found = (
        equal
        if factor == 1
        else allocate_precision(
            workload,
            sensitivities,
            operand=operand,
            budget=factor * equal.uniform_perturbation,
            options=options,
        )
    )
    if found.cost is None:
        raise StemsInputError(f"no allocation fits {factor} x the uniform perturbation", where=where)
    record |= {
        "budget_perturbation": found.budget,
        "perturbation": found.perturbation,
        "cost": found.cost,
        "reduction": found.reduction,
        "status": str(found.solve.status),
        "bits": dict(found.bits),
    }
    return allocation_overlay(found), record
