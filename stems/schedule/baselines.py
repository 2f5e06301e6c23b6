"""The named schedules every result is reported beside, with a fixed greedy rule for their residency.

Segment structure (per block; consecutive blocks with equal choices form one segment, as in
`stems.schedule.model.segments_from_blocks`):

* ``layer-by-layer-sequential`` - every block ST-LBL: the paper's baseline (its all-zero default).
* ``all-time-batched`` - every block TB-LBL.
* ``all-fused-st`` / ``all-fused-tb`` - every block fused with one-column tiles, sequential / batched.
* ``stems-paper-tb-f`` - the paper's "TB-F" preset: blocks 0-3 TB fused with one-column tiles, the
  rest TB layer-by-layer (7 blocks: SEW-ResNet 7PLIF; 8 blocks: RED-LIF, "the first four entries").
* ``stems-paper-5plif`` - the "ST-TB-F" preset of SEW-ResNet with blocks 0-1 stateless: blocks 0-1 ST
  fused with 8-column tiles, blocks 2-3 TB fused with 4-column tiles, blocks 4-6 TB layer-by-layer, and
  the state of blocks 0-1 removed (a model change: retraining required). 7 blocks only.

Residency (what fits stays, in a fixed priority): start from weights re-fetched, states spilled and every
edge through DRAM, then try each tensor in priority order and keep it on chip if the schedule still fits
every buffer at every unit - or, while it does not fit yet, if keeping it shrinks the overflow (an edge
inside a fused segment holds a few columns on chip but saves two stream windows). If the result still
overflows, kept tensors go back off chip, lowest priority first, while that shrinks the overflow; once
it fits, the priority pass runs again to keep whatever fits now. Priority: first the edges inside fused segments
(fusion's premise), then every other tensor by off-chip traffic saved per bit it holds on chip, highest
first, ties in network order:

* weights: (units of the layer - 1) - each re-fetch avoided;
* state: 2 x (time batches - 1) - each spill round trip avoided;
* an edge: 2 x T / (timesteps it keeps on chip: its time batch inside a segment, T across segments).

Tensors that would save nothing (e.g. a time-batched layer-by-layer layer's weights) stay off chip.
This is a static form of the STEMS code's eviction priority (the number of computation nodes still
needing a tensor). If no choice fits, the baseline is reported infeasible with the first overflowing
unit and the tensors held there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stems.errors import StemsInputError, did_you_mean
from stems.hardware.spec import Hardware
from stems.schedule.cost import ScheduleCost, evaluate, occupancy
from stems.schedule.model import (
    BlockChoice,
    EdgeHome,
    Schedule,
    Segment,
    StateIO,
    StatePolicy,
    Tile,
    WeightPolicy,
    blocks_of,
    segments_from_blocks,
)
from stems.schedule.unitcost import OnChip, UnitCostFn, default_unit_cost
from stems.schedule.units import build_plan
from stems.workload.model import Workload

BASELINES = (
    "layer-by-layer-sequential",
    "all-time-batched",
    "all-fused-st",
    "all-fused-tb",
    "stems-paper-tb-f",
    "stems-paper-5plif",
)


@dataclass(frozen=True)
class Baseline:
    """A named schedule and its cost; `note` says why a preset does not apply (then both are None)."""

    name: str
    schedule: Schedule | None
    cost: ScheduleCost | None
    note: str = ""


def baseline_structure(name: str, workload: Workload) -> tuple[tuple[Segment, ...], tuple[str, ...]]:
    """Segments of a named baseline and the layers whose state it removes."""
    t = workload.timesteps
    blocks = blocks_of(workload)
    nb = len(blocks)
    uniform = {
        "layer-by-layer-sequential": BlockChoice(1),
        "all-time-batched": BlockChoice(t),
        "all-fused-st": BlockChoice(1, Tile(1)),
        "all-fused-tb": BlockChoice(t, Tile(1)),
    }
    if name in uniform:
        return segments_from_blocks(workload, [uniform[name]] * nb), ()
    if name == "stems-paper-tb-f":
        if nb not in (7, 8):
            raise StemsInputError(
                f"preset {name} is defined for 7 blocks (SEW-ResNet) or 8 (RED-LIF); this network has {nb}"
            )
        choices = [BlockChoice(t, Tile(1))] * 4 + [BlockChoice(t)] * (nb - 4)
        return segments_from_blocks(workload, choices), ()
    if name == "stems-paper-5plif":
        if nb != 7:
            raise StemsInputError(
                f"preset {name} is defined for the 7 blocks of SEW-ResNet; this network has {nb}"
            )
        choices = [BlockChoice(1, Tile(8))] * 2 + [BlockChoice(t, Tile(4))] * 2 + [BlockChoice(t)] * 3
        removed = tuple(x.name for x in workload if x.block in blocks[:2] and x.stateful)
        return segments_from_blocks(workload, choices), removed
    raise StemsInputError(
        f"unknown baseline '{name}'{did_you_mean(name, BASELINES)}; known: {', '.join(BASELINES)}"
    )


def greedy_residency(
    workload: Workload,
    segments: Sequence[Segment],
    hw: Hardware,
    *,
    removed: Sequence[str] = (),
    buffer: str | None = None,
    state_io: StateIO = StateIO.LOAD_STORE,
    name: str = "",
) -> Schedule:
    """Residency decisions for fixed segments by the module's greedy rule."""
    stateful = [x.name for x in workload if x.stateful]
    least = Schedule(
        tuple(segments),
        state={n: StatePolicy.REMOVE if n in removed else StatePolicy.SPILL for n in stateful},
        weights={x.name: WeightPolicy.REFETCH for x in workload if x.weights},
        edges=dict.fromkeys(workload.edges, EdgeHome.DRAM),
        state_io=state_io,
        name=name,
    )
    plan = build_plan(workload, least)
    onchip = OnChip.of(hw, buffer)
    caps = onchip.capacities()

    def overflow(s: Schedule) -> int:
        """Largest excess over a buffer (<= 0: fits everywhere)."""
        occ = occupancy(plan, s, onchip)
        return max(int(a.max()) - caps.get(pool, 0) for pool, a in occ.items())

    t = workload.timesteps
    order = {n: i for i, n in enumerate(plan.order)}
    seg_of = plan.segment_of
    units_of = plan.units_by_layer
    cands: list[tuple[int, float, int, str, object]] = []
    for x in plan.workload:
        n = x.name
        seg = segments[seg_of[n]]
        if x.weights and len(units_of[n]) > 1:
            cands.append((1, -(len(units_of[n]) - 1), order[n], "W", n))
        if n in stateful and n not in removed and t // seg.time_batch > 1:
            cands.append((1, -2.0 * (t // seg.time_batch - 1), order[n], "V", n))
        for c in plan.workload.successors(n):
            inside = seg_of[c] == seg_of[n]
            if inside and seg.fused:
                cands.append((0, 0.0, order[n], "E", (n, c)))
            else:
                held = seg.time_batch if inside else t
                cands.append((1, -2.0 * t / held, order[n], "E", (n, c)))
    cands.sort(key=lambda c: (c[0], c[1], c[2], str(c[4])))

    def promote(s: Schedule, kind: str, key: object) -> Schedule:
        if kind == "W":
            return s.with_decisions(weights={key: WeightPolicy.RESIDENT})  # type: ignore[dict-item]
        if kind == "V":
            return s.with_decisions(state={key: StatePolicy.KEEP})  # type: ignore[dict-item]
        return s.with_decisions(edges={key: EdgeHome.ONCHIP})  # type: ignore[dict-item]

    def demote(s: Schedule, kind: str, key: object) -> Schedule:
        if kind == "W":
            return s.with_decisions(weights={key: WeightPolicy.REFETCH})  # type: ignore[dict-item]
        if kind == "V":
            return s.with_decisions(state={key: StatePolicy.SPILL})  # type: ignore[dict-item]
        return s.with_decisions(edges={key: EdgeHome.DRAM})  # type: ignore[dict-item]

    everything = least
    for _, _, _, kind, key in cands:
        everything = promote(everything, kind, key)
    if overflow(everything) <= 0:
        return everything
    current, over = least, overflow(least)
    for _, _, _, kind, key in cands:
        trial = promote(current, kind, key)
        o = overflow(trial)
        if o <= 0 or o < over:
            current, over = trial, o
    if over > 0:  # repair: send kept tensors back off chip, lowest priority first, while that helps
        for _, _, _, kind, key in reversed(cands):
            trial = demote(current, kind, key)
            if trial == current:
                continue
            o = overflow(trial)
            if o < over:
                current, over = trial, o
            if over <= 0:
                break
        if over <= 0:  # then keep whatever fits again, in priority order
            for _, _, _, kind, key in cands:
                trial = promote(current, kind, key)
                if trial != current and overflow(trial) <= 0:
                    current = trial
    return current


def baseline(
    name: str,
    workload: Workload,
    hw: Hardware,
    *,
    buffer: str | None = None,
    unit_cost: UnitCostFn = default_unit_cost,
    state_io: StateIO = StateIO.LOAD_STORE,
) -> Baseline:
    """Build and price one named baseline; an inapplicable preset comes back with a note."""
    try:
        segments, removed = baseline_structure(name, workload)
    except StemsInputError as e:
        if name not in BASELINES:
            raise
        return Baseline(name, None, None, e.message)
    schedule = greedy_residency(
        workload, segments, hw, removed=removed, buffer=buffer, state_io=state_io, name=name
    )
    cost = evaluate(workload, schedule, hw, unit_cost=unit_cost, buffer=buffer)
    note = "" if cost.feasible else f"infeasible: {cost.violation.message()}"  # type: ignore[union-attr]
    return Baseline(name, schedule, cost, note)


def all_baselines(
    workload: Workload,
    hw: Hardware,
    *,
    buffer: str | None = None,
    unit_cost: UnitCostFn = default_unit_cost,
    state_io: StateIO = StateIO.LOAD_STORE,
) -> list[Baseline]:
    return [
        baseline(n, workload, hw, buffer=buffer, unit_cost=unit_cost, state_io=state_io) for n in BASELINES
    ]
