"""The Python API behind `stems explore`: import, search every sweep value, price the baselines and the
compulsory bound beside the results, and gather it all into tables.

    from stems.explore import explore

    ex = explore("sew.onnx", "stems-edge", sweep={"global_buffer.size": ["256KiB", "1MiB"]})
    ex.pareto[["id", "global_buffer.size", "energy_pj", "latency_cycles", "offchip_bytes"]]
    ex.best("energy_pj")                       # one row of ex.points
    ex.write("stems-out/sew", force=True)      # points.csv, pareto.csv, mappings/, summary.json, plots

Each sweep value is one hardware (and T): its baselines (`stems.schedule.baselines`) and lower bound are
priced first, then the schedule search runs in a worker thread so Ctrl-C (KeyboardInterrupt) or a caller's
`stop` event ends it cleanly: the points found so far are kept and the summary says `interrupted`.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from stems.errors import StemsInputError, did_you_mean
from stems.hardware import DEFAULT_HARDWARE, Hardware, load_hardware
from stems.results.accuracy import join_accuracy, read_accuracy
from stems.results.inputs import HardwareRef, ModelRef, versions
from stems.results.mapping_file import mapping_document, plain
from stems.results.metrics import (
    METRICS,
    OBJECTIVES,
    metrics_of,
    network_columns,
    point_details,
    schedule_summary,
)
from stems.results.points import (
    PAPER_BASELINE,
    best_row,
    check_objectives,
    mark_pareto,
    metrics_dict,
    point_id,
    points_frame,
    sweep_label,
)
from stems.results.store import SUMMARY_VERSION, Exploration
from stems.schedule.baselines import BASELINES, Baseline, all_baselines
from stems.schedule.bounds import lower_bound
from stems.schedule.cost import ScheduleCost
from stems.schedule.model import Schedule
from stems.schedule.result import OPERANDS
from stems.schedule.unitcost import UnitCostFn, default_unit_cost
from stems.search.precision import BUDGET_KEY, budget_knob, layer_sensitivities
from stems.search.precision import OPERANDS as PRECISION_OPERANDS
from stems.search.solver import SolveOptions, SolveResult, Status
from stems.workload import Workload, load_workload
from stems.workload.activity import activity_rates
from stems.workload.knobs import (
    NETWORK_SECTIONS,
    apply_knobs,
    is_network_key,
    merge_docs,
    network_path,
    overlay_doc,
)

__all__ = [
    "BASELINES",
    "METRICS",
    "OBJECTIVES",
    "Exploration",
    "LayerMapper",
    "Progress",
    "SweepValue",
    "explore",
    "intra_mapper",
    "parse_sweeps",
    "sweep_values",
]

SearchFn = Callable[..., Any]
"""`stems.schedule.search.search_schedules` or anything with its signature (tests pass a fake)."""


def _sweep_error(err: StemsInputError) -> StemsInputError:
    """A sweep's hardware key error, named as the sweep, with the network keys among the suggestions."""
    where = (err.where or "").replace("--set", "--sweep")
    message = err.message
    if message.startswith("unknown key") and "did you mean" not in message:
        first = where.removeprefix("--sweep ").split(".")[0]
        message += did_you_mean(first, ["timesteps", *NETWORK_SECTIONS]) or (
            "; sweep a hardware key, timesteps, or an annotations path "
            "(defaults.KEY, blocks.NAME.KEY, layers.NAME.KEY)"
        )
    return StemsInputError(message, path=err.path, where=where or None)


def default_search() -> SearchFn:
    """The schedule search (`stems.schedule.search.search_schedules`)."""
    from stems.schedule.search import search_schedules

    return search_schedules


# ---------------------------------------------------------------------------------------------------
# Sweeps


def _split_values(text: str) -> list[str]:
    """Comma-separated values; commas inside [] or {} (a YAML list value) do not split."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    out.append(cur.strip())
    return out


def parse_sweeps(items: Sequence[str] | Mapping[str, Sequence[Any]]) -> dict[str, list[str]]:
    """`["global_buffer.size=128KiB,1MiB", "timesteps=4,8"]` (or the same as a dict) as {key: [values]}."""
    if isinstance(items, Mapping):
        pairs = [(str(k), [str(v) for v in vs]) for k, vs in items.items()]
    else:
        pairs = []
        for item in items:
            key, eq, raw = str(item).partition("=")
            if not eq or not key.strip() or not raw.strip():
                raise StemsInputError(
                    f"expected KEY=V1,V2,..., e.g. global_buffer.size=128KiB,256KiB,1MiB, not {item!r}",
                    where="--sweep",
                )
            pairs.append((key.strip(), _split_values(raw)))
    out: dict[str, list[str]] = {}
    for key, values in pairs:
        where = f"--sweep {key}"
        if key == "T":
            key = "timesteps"
        if key in out:
            raise StemsInputError("key swept twice: give all its values in one --sweep", where=where)
        if not values or any(v == "" for v in values):
            raise StemsInputError("empty value in the list", where=where)
        if len(set(values)) != len(values):
            raise StemsInputError(f"a value is listed twice: {', '.join(values)}", where=where)
        if is_network_key(key):
            network_path(key)  # the key's shape; its values are checked as annotations
        if key.startswith(f"{BUDGET_KEY}.") and key.partition(".")[2] not in PRECISION_OPERANDS:
            raise StemsInputError(
                f"expected {BUDGET_KEY}.OPERAND with OPERAND one of {', '.join(PRECISION_OPERANDS)}",
                where=where,
            )
        if key == "timesteps":
            for v in values:
                if not re.fullmatch(r"[1-9][0-9]*", v):
                    raise StemsInputError(f"timesteps must be positive integers, not {v!r}", where=where)
        out[key] = list(values)
    return out


@dataclass(frozen=True)
class SweepValue:
    """One combination of sweep values: hardware overrides, if swept T, and the network knobs (an
    annotations overlay, `stems.workload.knobs`)."""

    index: int
    values: dict[str, str]
    hw_overrides: tuple[str, ...]
    timesteps: int | None
    knobs: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return sweep_label(self.values)


def _is_hardware_key(key: str) -> bool:
    return key != "timesteps" and not is_network_key(key) and not key.startswith(f"{BUDGET_KEY}.")


def sweep_values(sweep: Mapping[str, Sequence[str]]) -> list[SweepValue]:
    """The cartesian product of the sweeps (the first key outermost); one empty value without sweeps."""
    keys = list(sweep)
    out = []
    for i, combo in enumerate(itertools.product(*(sweep[k] for k in keys))):
        values = dict(zip(keys, combo, strict=True))
        t = values.get("timesteps")
        hw = tuple(f"{k}={v}" for k, v in values.items() if _is_hardware_key(k))
        out.append(SweepValue(i, values, hw, int(t) if t is not None else None, overlay_doc(values)))
    return out


# ---------------------------------------------------------------------------------------------------
# Progress


@dataclass(frozen=True)
class Progress:
    """What `explore` reports while it runs: `kind` is `status` (a phase or what the solver works on)
    or `point` (a point was evaluated: `point` holds its row)."""

    kind: str
    step: int  # sweep value, from 1
    total: int  # sweep values
    sweep: str  # the sweep value's label ('' without sweeps)
    message: str
    point: dict[str, Any] | None = None


# ---------------------------------------------------------------------------------------------------
# The run of one sweep value


@dataclass
class _Candidate:
    """One evaluated point before ids are assigned."""

    source: str
    label: str
    schedule: Schedule
    cost: ScheduleCost
    solve: SolveResult | None


@dataclass
class _Run:
    sv: SweepValue
    workload: Workload
    hw: Hardware
    baselines: list[Baseline] = field(default_factory=list)
    bound: Any = None
    outcome: Any = None
    wall_s: float = 0.0
    stopped: str = "not run"
    candidates: list[_Candidate] = field(default_factory=list)
    precision: dict[str, Any] | None = None  # the precision allocation of a precision_budget sweep value


def _status(solve: SolveResult | None, cost: ScheduleCost) -> str:
    if not cost.feasible:
        return "infeasible"
    if solve is None:
        return "evaluated"
    return str(solve.status)


def _schedule_key(schedule: Schedule) -> str:
    d = schedule.to_dict()
    d.pop("name", None)
    return json.dumps(d, sort_keys=True)


def merge_labels(labels: Sequence[str]) -> str:
    """One label for a schedule found several times: every objective optimum, then the first Pareto step
    and how many more found it (`optimum:energy_pj; pareto:offchip_bytes<=1.2e6 (+3 steps)`)."""
    distinct = list(dict.fromkeys(labels))
    optima = [x for x in distinct if not x.startswith("pareto:")]
    steps = [x for x in distinct if x.startswith("pareto:")]
    out = list(optima)
    if steps:
        more = len(steps) - 1
        out.append(steps[0] + (f" (+{more} step{'s' if more > 1 else ''})" if more else ""))
    return "; ".join(out)


def _run_search(
    search: SearchFn, workload: Workload, hw: Hardware, kwargs: dict[str, Any], stop: threading.Event
):
    """Run the search in a worker thread; Ctrl-C sets `stop` and waits for the points found so far."""
    box: dict[str, Any] = {}
    finished = threading.Event()  # not Thread.join: an interrupted join can leave the thread marked done

    def target() -> None:
        try:
            box["out"] = search(workload, hw, stop=stop, **kwargs)
        except BaseException as err:  # re-raised in the caller's thread
            box["err"] = err
        finally:
            finished.set()

    thread = threading.Thread(target=target, name="stems-search", daemon=True)
    interrupted = False
    try:
        thread.start()  # inside the try: Ctrl-C can land while start() waits for the thread
        while not finished.wait(0.1):
            pass
    except KeyboardInterrupt:
        if thread.ident is None:  # it never started
            raise
        interrupted = True
        stop.set()
        finished.wait()  # a second Ctrl-C here aborts
    if "err" in box:
        raise box["err"]
    return box.get("out"), interrupted


# ---------------------------------------------------------------------------------------------------
# explore


def explore(
    model: str | Path | Workload,
    hw: str = DEFAULT_HARDWARE,
    *,
    overrides: Sequence[str] = (),
    sweep: Sequence[str] | Mapping[str, Sequence[Any]] = (),
    timesteps: int | None = None,
    annotations: str | Path | Mapping[str, Any] | None = None,
    allow_unknown_ops: bool = False,
    objectives: Sequence[str] = OBJECTIVES,
    time_limit_s: float = 60.0,
    workers: int = 1,
    seed: int = 0,
    pareto_steps: int = 6,
    allow_state_removal: bool = False,
    buffer: str | None = None,
    unit_cost: UnitCostFn = default_unit_cost,
    activity: str | Path | None = None,
    accuracy: str | Path | pd.DataFrame | None = None,
    progress: Callable[[Progress], None] | None = None,
    stop: threading.Event | None = None,
    search: SearchFn | None = None,
    layer_mapper: LayerMapper | None = None,
) -> Exploration:
    """Map `model` onto hardware `hw` (a shipped name, a YAML path or `zigzag:PATH`) for every sweep value.

    `overrides` are `--set KEY=VALUE`s applied to every sweep value; `sweep` maps keys (any hardware key,
    `timesteps`, or a network knob as an annotations path: `defaults.weight_bits`, `blocks.3.neuron`,
    `layers.NAME.state_bits`) to values, e.g. `{"global_buffer.size": ["256KiB", "1MiB"]}` or
    `["global_buffer.size=256KiB,1MiB"]`. `objectives` are minimised by the search and span the Pareto
    front (`accuracy`, with an `accuracy` table, is maximised on it). `activity` is a `.npz` of recorded
    spike tensors per layer whose rates replace the annotated ones; `accuracy` a CSV of measured accuracy
    per knob setting (`stems.results.accuracy`). `time_limit_s`, `workers` and `seed` go to every CP-SAT
    solve. Bad input raises StemsInputError before anything is searched.

    `layer_mapper(layer, hw)` (e.g. `intra_mapper(options)`, the intra-layer search) maps each conv and
    dense layer of every Pareto point; the result goes into the mapping files' `intra` section.
    """
    objectives = check_objectives(objectives, accuracy is not None)
    table = read_accuracy(accuracy) if accuracy is not None else None
    sweeps = parse_sweeps(sweep)
    values = sweep_values(sweeps)
    try:
        options = SolveOptions(time_limit_s=time_limit_s, workers=workers, seed=seed)
    except ValueError as err:
        raise StemsInputError(str(err)) from None
    if isinstance(model, Workload):
        base = model if timesteps is None else model.with_timesteps(timesteps)
    else:
        base = load_workload(
            model, timesteps=timesteps, annotations=annotations, allow_unknown_ops=allow_unknown_ops
        )
    model_ref = ModelRef.of(base, annotations=annotations, allow_unknown_ops=allow_unknown_ops)
    base_hw = load_hardware(hw, tuple(overrides))
    rates = activity_rates(base, activity) if activity is not None else {}
    base = apply_knobs(base, rates, str(activity))
    model_ref = model_ref.with_knobs(rates)
    runs = []
    for sv in values:  # every hardware and network is built (and checked) before anything is searched
        try:
            hw_i = load_hardware(hw, (*overrides, *sv.hw_overrides)) if sv.hw_overrides else base_hw
        except StemsInputError as err:
            raise _sweep_error(err) from None
        w_i = apply_knobs(base, sv.knobs)
        w_i = w_i.with_timesteps(sv.timesteps) if sv.timesteps else w_i
        precision = None
        for key, value in sv.values.items():
            if key.startswith(f"{BUDGET_KEY}."):
                scores = layer_sensitivities(w_i, annotations) if annotations is not None else {}
                overlay, precision = budget_knob(w_i, scores, key.partition(".")[2], value, options)
                w_i = apply_knobs(w_i, overlay, key)
                sv = replace(sv, knobs=merge_docs(sv.knobs, overlay))
        runs.append(_Run(sv, w_i, hw_i, precision=precision))
    if buffer is not None:
        from stems.schedule.unitcost import OnChip

        OnChip.of(base_hw, buffer)  # an unknown level is bad input
    search_fn = search or default_search()
    stop = stop or threading.Event()
    started = time.perf_counter()
    total = len(runs)

    def say(run: _Run, message: str, kind: str = "status", point: dict[str, Any] | None = None) -> None:
        if progress is not None:
            progress(Progress(kind, run.sv.index + 1, total, run.sv.label, message, point))

    interrupted = False
    kwargs = {
        "objectives": tuple(o for o in objectives if o in OBJECTIVES),
        "pareto_steps": pareto_steps,
        "allow_state_removal": allow_state_removal,
        "unit_cost": unit_cost,
        "buffer": buffer,
        "options": options,
    }
    for run in runs:
        if stop.is_set():
            interrupted = True
            break
        try:
            say(run, "pricing the baselines and the compulsory bound")
            run.baselines = all_baselines(run.workload, run.hw, buffer=buffer, unit_cost=unit_cost)
            run.bound = lower_bound(run.workload, run.hw, buffer=buffer)
            say(run, "searching schedules")
            t0 = time.perf_counter()
            outcome, hit = _run_search(
                search_fn,
                run.workload,
                run.hw,
                {**kwargs, "progress": lambda msg, run=run: say(run, str(msg))},
                stop,
            )
            run.wall_s = time.perf_counter() - t0
        except KeyboardInterrupt:
            stop.set()
            interrupted = True
            run.baselines, run.bound = [], None  # a partly priced sweep value is dropped
            break
        run.outcome = outcome
        run.stopped = "interrupted" if hit else str(getattr(outcome, "stopped", "complete"))
        interrupted = interrupted or hit or run.stopped == "interrupted"
        seen: dict[str, _Candidate] = {}
        labels: dict[str, list[str]] = {}
        for p in getattr(outcome, "points", ()) or ():
            key = _schedule_key(p.schedule)
            labels.setdefault(key, []).append(str(p.label))
            if key not in seen:
                seen[key] = _Candidate("search", str(p.label), p.schedule, p.cost, p.solve)
        for key, c in seen.items():
            c.label = merge_labels(labels[key])
        run.candidates = list(seen.values())
        run.candidates += [
            _Candidate("baseline", b.name, b.schedule, b.cost, None)
            for b in run.baselines
            if b.cost is not None
        ]
        for c in run.candidates:
            say(
                run,
                f"{c.source} {c.label}",
                "point",
                {"label": c.label, **metrics_of(run.workload, c.schedule, c.cost)},
            )
        if interrupted:
            break
    wall = time.perf_counter() - started
    ex = _gather(
        runs=[r for r in runs if r.bound is not None],
        base=base,
        accuracy=table,
        planned=runs,
        sweeps=sweeps,
        settings=_Settings(
            objectives=objectives,
            model_ref=model_ref,
            hw_ref=hw,
            base_hw=base_hw,
            overrides=tuple(overrides),
            options=options,
            pareto_steps=pareto_steps,
            allow_state_removal=allow_state_removal,
            buffer=buffer,
            unit_cost=unit_cost,
        ),
        interrupted=interrupted,
        wall=wall,
        say=say,
        layer_mapper=layer_mapper,
    )
    ex.summary["warnings"] = list(base.warnings)  # what the importer could not read from the model
    return ex


LayerMapper = Callable[[Any, Hardware], Any]
"""(layer, hardware) -> an object with `.mapping` (a `stems.cost.Mapping`, or None when nothing fits) and
`.cost` (its `stems.cost.Cost`), as `stems.search.intra.map_layer` returns."""


def intra_mapper(options: SolveOptions | None = None, objective: str = "energy") -> LayerMapper:
    """The intra-layer search (`stems.search.intra.map_layer`) as a `layer_mapper`."""
    from stems.search.intra import map_layer

    opts = options or SolveOptions()
    return lambda layer, hw: map_layer(layer, hw, objective, opts)


def _intra(run: _Run, schedule: Schedule, mapper: LayerMapper, say: Callable[..., None]) -> dict[str, Any]:
    """The `intra` section of one point: each conv and dense layer of the network as the schedule runs it."""
    from stems.results.mapping_file import intra_entry
    from stems.workload.model import Op

    say(run, "intra-layer mappings of the conv and dense layers")
    out: dict[str, Any] = {}
    for layer in schedule.effective_workload(run.workload):
        if layer.op not in (Op.CONV, Op.DENSE):
            continue
        found = mapper(layer, run.hw)
        if getattr(found, "mapping", None) is not None and getattr(found, "cost", None) is not None:
            out[layer.name] = intra_entry(found.mapping, found.cost)
    return out


def _unit_cost_name(fn: UnitCostFn) -> str:
    from stems.results.mapping_file import UNIT_COSTS

    return next((k for k, v in UNIT_COSTS.items() if v is fn), getattr(fn, "__name__", "custom"))


@dataclass(frozen=True)
class _Settings:
    """What the caller chose for the whole exploration (recorded in the summary and every mapping file)."""

    objectives: tuple[str, ...]
    model_ref: ModelRef
    hw_ref: str
    base_hw: Hardware
    overrides: tuple[str, ...]
    options: SolveOptions
    pareto_steps: int
    allow_state_removal: bool
    buffer: str | None
    unit_cost: UnitCostFn


def _gather(
    *,
    runs: list[_Run],
    base: Workload,
    accuracy: pd.DataFrame | None,
    planned: list[_Run],
    sweeps: dict[str, list[str]],
    settings: _Settings,
    interrupted: bool,
    wall: float,
    say: Callable[..., None],
    layer_mapper: LayerMapper | None = None,
) -> Exploration:
    keys = list(sweeps)
    rows: list[dict[str, Any]] = []
    owners: list[tuple[_Run, _Candidate]] = []
    for run in runs:
        for c in run.candidates:
            solve = c.solve
            gap = solve.gap if solve is not None else None
            rows.append(
                {
                    "id": point_id(len(rows) + 1),
                    **run.sv.values,
                    "source": c.source,
                    "label": c.label,
                    "schedule": schedule_summary(c.schedule, run.workload),
                    **network_columns(base, run.workload, c.cost),
                    **metrics_of(run.workload, c.schedule, c.cost),
                    "status": _status(solve, c.cost),
                    "gap": float("nan") if gap is None else gap,
                    "mapping": "",
                }
            )
            owners.append((run, c))
    points = points_frame(rows, keys)
    if accuracy is not None:
        points = join_accuracy(points, accuracy, [run.workload.timesteps for run, _ in owners])
    front_keys = (
        [k for k in keys if not is_network_key(k) and k != "timesteps"]
        if "accuracy" in settings.objectives
        else keys
    )
    points = mark_pareto(
        points, settings.objectives, front_keys, allow_state_removal=settings.allow_state_removal
    )
    unit_cost_name = _unit_cost_name(settings.unit_cost)
    mappings: dict[str, dict[str, Any]] = {}
    layer_rows: list[pd.DataFrame] = []
    breakdown_rows: list[pd.DataFrame] = []
    for i, ((run, c), on_front) in enumerate(zip(owners, points["pareto"].tolist(), strict=True)):
        pid = points.at[i, "id"]
        if on_front:
            points.at[i, "mapping"] = f"mappings/{pid}.yaml"
            mappings[pid] = mapping_document(
                point_id=pid,
                label=c.label,
                source=c.source,
                sweep=run.sv.values,
                model=settings.model_ref.with_timesteps(run.workload.timesteps).with_knobs(run.sv.knobs),
                hardware=HardwareRef.of(settings.hw_ref, run.hw, settings.buffer),
                workload=run.workload,
                schedule=c.schedule,
                cost=c.cost,
                solve=c.solve,
                unit_cost=unit_cost_name,
                intra=_intra(run, c.schedule, layer_mapper, say) if layer_mapper else None,
            )
    details_done = True
    told: set[int] = set()
    try:
        for i, (run, c) in enumerate(owners):
            if run.sv.index not in told:
                told.add(run.sv.index)
                say(run, "energy per layer and per level of the Pareto points and the baselines")
            if not (points.at[i, "pareto"] or c.source == "baseline"):
                continue
            d = point_details(
                run.workload, c.schedule, c.cost, run.hw, unit_cost=settings.unit_cost, buffer=settings.buffer
            )
            ident = {"id": points.at[i, "id"], **run.sv.values}
            layer_rows.append(d.layers.assign(**ident)[[*ident, *d.layers.columns]])
            breakdown_rows.append(d.breakdown.assign(**ident)[[*ident, *d.breakdown.columns]])
    except KeyboardInterrupt:
        interrupted = True
        details_done = False
    layers = (
        pd.concat(layer_rows, ignore_index=True)
        if layer_rows
        else pd.DataFrame(columns=["id", *keys, "layer"])
    )
    breakdown = (
        pd.concat(breakdown_rows, ignore_index=True)
        if breakdown_rows
        else pd.DataFrame(columns=["id", *keys, "level", "operand", "energy_pj"])
    )
    summary = _summary(
        points=points,
        runs=runs,
        planned=planned,
        sweeps=sweeps,
        settings=settings,
        interrupted=interrupted,
        wall=wall,
        details_done=details_done,
    )
    pareto = points[points["pareto"]].reset_index(drop=True)
    return Exploration(points, pareto, summary, mappings, layers, breakdown)


def _run_status(run: _Run) -> tuple[str, float | None]:
    """A run's status (optimal, feasible, infeasible, timed_out, interrupted) and its largest gap."""
    found = [c for c in run.candidates if c.source == "search"]
    gaps = [c.solve.gap for c in found if c.solve is not None and c.solve.gap is not None]
    gap = max(gaps) if gaps else None
    if not found:
        if run.stopped == "interrupted":
            return "interrupted", None
        if getattr(run.outcome, "infeasible_reason", None):
            return "infeasible", None
        return str(Status.TIMED_OUT), None
    if all(c.solve is not None and c.solve.status is Status.OPTIMAL for c in found):
        return "optimal", gap
    return "feasible", gap


def _summary(
    *,
    points: pd.DataFrame,
    runs: list[_Run],
    planned: list[_Run],
    sweeps: dict[str, list[str]],
    settings: _Settings,
    interrupted: bool,
    wall: float,
    details_done: bool,
) -> dict[str, Any]:
    keys = list(sweeps)
    run_entries = []
    statuses = []
    stopped = set()
    for run in planned:
        ran = run in runs
        status, gap = _run_status(run) if ran else ("not run", None)
        statuses.append(status)
        stopped.add(run.stopped if ran else "not run")
        run_entries.append(
            {
                "sweep": run.sv.values,
                "label": run.sv.label,
                "timesteps": run.workload.timesteps,
                "hardware_sha256": run.hw.sha256,
                "space": getattr(run.outcome, "space", None),
                "wall_s": run.wall_s,
                "stopped": run.stopped if ran else "not run",
                "status": status,
                "gap": gap,
                "points": sum(c.source == "search" for c in run.candidates),
                **({"precision": run.precision} if run.precision else {}),
                "infeasible_reason": getattr(run.outcome, "infeasible_reason", None),
            }
        )
    found = [s in ("optimal", "feasible") for s in statuses]
    if not any(found):
        overall = "not run" if all(s == "not run" for s in statuses) else "infeasible"
    elif all(s == "optimal" for s in statuses):
        overall = "optimal"
    elif all(found):
        overall = "feasible"
    else:
        overall = "partial"
    gaps = [e["gap"] for e in run_entries if e["gap"] is not None]
    why = "interrupted" if interrupted else "time limit" if "time limit" in stopped else "complete"
    spaces = [e["space"] for e in run_entries if e["space"]]
    return plain(
        {
            "stems_summary": SUMMARY_VERSION,
            "inputs": {
                "model": settings.model_ref.to_dict(),
                "hardware": {
                    "ref": HardwareRef.of(settings.hw_ref, settings.base_hw).ref,
                    "name": settings.base_hw.name,
                    "sha256": settings.base_hw.sha256,
                    "overrides": list(settings.overrides),
                    "description": settings.base_hw.description,
                },
                "options": {
                    "objectives": list(settings.objectives),
                    "sweep": sweeps,
                    "time_limit_s": settings.options.time_limit_s,
                    "workers": settings.options.workers,
                    "seed": settings.options.seed,
                    "pareto_steps": settings.pareto_steps,
                    "allow_state_removal": settings.allow_state_removal,
                    "buffer": settings.buffer,
                    "unit_cost": _unit_cost_name(settings.unit_cost),
                },
            },
            "versions": versions(),
            "search": {
                "what": (
                    "inter-layer schedules (segments, time batching, fused tiles, state, weight and "
                    "activation residency) per sweep value, each objective's optimum and "
                    f"{settings.pareto_steps} steps along the front; the named baselines and the compulsory bound beside"
                ),
                "space": spaces[0] if len(set(spaces)) == 1 else spaces,
                "objectives": list(settings.objectives),
                "wall_s": wall,
                "stopped": why,
                "interrupted": interrupted,
                "status": overall,
                "gap": max(gaps) if gaps else None,
                "points": len(points),
                "pareto_points": int(points["pareto"].sum()) if len(points) else 0,
                "details_complete": details_done,
                "runs": run_entries,
            },
            "best": _best(points, keys),
            "baselines": _baselines(runs, points, keys),
            "lower_bound": _bounds(runs, points, keys),
        }
    )


def _in_sweep(points: pd.DataFrame, values: dict[str, str]) -> pd.DataFrame:
    mask = pd.Series(True, index=points.index)
    for k, v in values.items():
        mask &= points[k].astype(str) == v
    return points[mask]


def _best(points: pd.DataFrame, keys: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for objective in OBJECTIVES:
        row = best_row(points, objective)
        if row is None:
            continue
        values = {k: str(row[k]) for k in keys}
        entry = {
            "id": row["id"],
            "sweep": values,
            "source": row["source"],
            "label": row["label"],
            "mapping": row["mapping"] or None,
            **metrics_dict(row),
        }
        same = _in_sweep(points, values)
        base = same[(same["source"] == "baseline") & (same["label"] == PAPER_BASELINE)]
        if not base.empty:
            b = base.iloc[0]
            entry["baseline"] = {"name": PAPER_BASELINE, "id": b["id"]}
            entry["ratio_to_baseline"] = {m: _ratio(row[m], b[m]) for m in OBJECTIVES}
        out[objective] = entry
    return out


def _ratio(a: Any, b: Any) -> float | None:
    a, b = float(a), float(b)
    return a / b if b else None


def _baselines(runs: list[_Run], points: pd.DataFrame, keys: list[str]) -> list[dict[str, Any]]:
    out = []
    for run in runs:
        same = _in_sweep(points, run.sv.values)
        entries = {}
        for b in run.baselines:
            if b.cost is None:
                entries[b.name] = {"id": None, "status": "not applicable", "note": b.note}
                continue
            row = same[(same["source"] == "baseline") & (same["label"] == b.name)].iloc[0]
            entries[b.name] = {"id": row["id"], "status": row["status"], "note": b.note, **metrics_dict(row)}
        out.append(
            {
                "sweep": run.sv.values,
                "label": run.sv.label,
                "paper_baseline": PAPER_BASELINE,
                "baselines": entries,
            }
        )
    return out


def _bounds(runs: list[_Run], points: pd.DataFrame, keys: list[str]) -> list[dict[str, Any]]:
    out = []
    for run in runs:
        lb = run.bound
        t = lb.traffic
        entry: dict[str, Any] = {
            "sweep": run.sv.values,
            "label": run.sv.label,
            "offchip_bytes": t.total_bytes,
            **{f"offchip_bytes_{op}": t.bits(op) / 8 for op in OPERANDS},
            "energy_offchip_pj": lb.offchip_pj,
            "fits": lb.fits,
            "note": lb.report(),
        }
        best = best_row(_in_sweep(points, run.sv.values), "offchip_bytes")
        if best is not None:
            entry["best_id"] = best["id"]
            entry["best_offchip_bytes"] = float(best["offchip_bytes"])
            entry["ratio"] = _ratio(best["offchip_bytes"], t.total_bytes)
        out.append(entry)
    return out
