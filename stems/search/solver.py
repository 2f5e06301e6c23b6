"""The one CP-SAT entry point of stems: fixed limits, seed and workers in; status, bound and gap out.

Every search (intra-layer mapping, schedules, precision allocation) calls `solve`, so every
result records the same facts about how it was found, and runs are reproducible: CP-SAT runs on
one thread with the fixed seed, which is deterministic. Its multi-thread portfolio is not (tied
optima and timed-out incumbents change from run to run), and its deterministic variant
(`interleave_search`) runs fixed deterministic-time chunks in synchronised batches: 4x slower on
the intra-layer models (2.0 s vs 0.54 s on ResNet-18's layer2.0.downsample), and reported to run
far longer than a model needs (or-tools #4783, #5199). So `workers` is spent by the callers on
independent solves (layers, unrollings, schedule segments in parallel), and a result records
the one CP-SAT worker it used and its seed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

from ortools.sat.python import cp_model


class Status(StrEnum):
    OPTIMAL = "optimal"
    FEASIBLE = "feasible"  # a solution, not proven optimal (time limit)
    INFEASIBLE = "infeasible"
    TIMED_OUT = "timed_out"  # no solution found within the limit
    INVALID = "invalid"  # the model itself is malformed: a bug in stems

    @property
    def has_solution(self) -> bool:
        return self in (Status.OPTIMAL, Status.FEASIBLE)


@dataclass(frozen=True)
class SolveOptions:
    """Limits of a search; `workers` are processes or threads over independent solves;
    `proof_depth`: how far a latency proof may split its cases (`stems.search.intra_latency`: 1 is
    the quick proof; deeper ones close more gaps and take longer)."""

    time_limit_s: float = 60.0
    workers: int = 1
    seed: int = 0
    proof_depth: int = 1

    def __post_init__(self) -> None:
        if self.time_limit_s <= 0 or self.workers < 1 or self.proof_depth < 1:
            raise ValueError("time_limit_s must be > 0, workers >= 1 and proof_depth >= 1")


@dataclass(frozen=True)
class SolveResult:
    """What every stems result records about the solve that produced it."""

    status: Status
    objective: float | None
    best_bound: float | None
    wall_s: float
    workers: int
    seed: int

    @property
    def gap(self) -> float | None:
        """Relative optimality gap |objective - bound| / max(|objective|, 1); 0 when proven optimal."""
        if self.objective is None or self.best_bound is None:
            return None
        if self.status is Status.OPTIMAL:
            return 0.0
        return abs(self.objective - self.best_bound) / max(abs(self.objective), 1.0)


_STATUS = {
    cp_model.OPTIMAL: Status.OPTIMAL,
    cp_model.FEASIBLE: Status.FEASIBLE,
    cp_model.INFEASIBLE: Status.INFEASIBLE,
    cp_model.UNKNOWN: Status.TIMED_OUT,
    cp_model.MODEL_INVALID: Status.INVALID,
}


def solve(
    model: cp_model.CpModel, options: SolveOptions = SolveOptions()
) -> tuple[SolveResult, cp_model.CpSolver]:
    """Solve `model`; the returned solver reads variable values when the status has a solution."""
    solver = cp_model.CpSolver()
    params = solver.parameters
    params.max_time_in_seconds = options.time_limit_s
    params.num_workers = 1  # deterministic (see the module docstring)
    params.random_seed = options.seed
    start = time.perf_counter()
    code = solver.solve(model)
    wall = time.perf_counter() - start
    status = _STATUS[code]
    has_objective = model.has_objective() and status.has_solution
    result = SolveResult(
        status=status,
        objective=solver.objective_value if has_objective else None,
        best_bound=solver.best_objective_bound if has_objective else None,
        wall_s=wall,
        workers=1,
        seed=options.seed,
    )
    return result, solver
