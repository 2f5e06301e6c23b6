"""Inter-layer schedules: the model, its analytic cost, a replay oracle, the compulsory-traffic bound and
the named baseline schedules. One sentence per module:

* `model` - what a schedule is: segments (time batch, fused tile, halo) and residency decisions.
* `units` - the unit sequence a schedule executes, with each unit's output region and input reads.
* `unitcost` - the per-unit on-chip cost the intra-layer search will supply, and a simple default.
* `cost` - the analytic cost: closed-form sums over units (traffic, occupancy, energy, latency).
* `replay` - an independent step-by-step simulation with an explicit buffer, to check `cost`.
* `bounds` - compulsory off-chip traffic and each layer's smallest on-chip footprint.
* `baselines` - the named schedules every result is reported beside.
* `search` - the schedule search: proven optima of energy, latency, off-chip bytes and on-chip peak, and
  epsilon-constraint sweeps between them (`search_schedules`).
* `search_space` - what the search chooses from: stages (blocks), the time batch and tile menu, candidates.
* `search_tables` - exact per-candidate cost tables and occupancy rows (the sums `cost` computes).
* `search_local` - one segment's residency problem: fast lower bounds and its exact CP-SAT solve.
* `search_dp` - the exact decomposition: a schedule is a path of segments; the best path with lazily
  solved segments.

For the schedule search (CP-SAT). Every choice is a small discrete variable: per segment a one-hot time
batch (divisors of T), a one-hot tile (LBL or a short menu of `Tile`s) and a halo bit, with cut booleans
between consecutive blocks or layers; per stateful layer keep/spill/remove; per weighted layer a resident
bit; per edge an on-chip bit. The segment structure fixes the units (`build_plan`); residency decisions
never change them (except which layers recompute), so tables are built per segment configuration and the
decisions enter linearly:

* W bits = sum_L W_L (resident_L + refetch_L x units_L(config)); units_L is a table per configuration,
  so refetch_L x [config] needs an AND indicator.
* V bits = keep_L x 2 S_L (load_store) + spill_L x 2 S_L T / tb (AND with the one-hot batch) + 0 if removed.
* O bits = map_L T O_final x OR(sink, dram edges of L); I bits = per DRAM edge map_P T bits, exact for
  LBL and column tiles; row bands and recomputing first layers re-read halos: a table per configuration.
* Energy is linear in the traffic terms (DRAM and buffer fill/drain pJ per bit are constants) plus the
  summed unit costs, a table per (layer, configuration) - recompute shows up there as extra work.
* Latency sums max(compute, DRAM) per unit: per layer a few distinct unit shapes, so AddMaxEquality over
  those classes, or bound it by max(sum compute, sum DRAM / bandwidth) below and the sum above.
* Capacity: for a fixed configuration the occupancy at each unit is linear in the decisions (weights and
  kept states over their layer's span, stream windows when an input is DRAM or a state is spilled,
  activations while on-chip readers remain); only a producer with several on-chip consumers lives as
  long as its latest one, a small max (or a table over the 2^k subsets). Constrain only the units that
  are not dominated (time batches repeat one pattern plus cross-segment data growing or shrinking by the
  same amount per batch, so the first and last batch bound the others), enforced under the
  configuration's indicator. `cost.occupancy` computes the same sums and `baselines.greedy_residency` gives a hint.
"""

from stems.schedule.bounds import LowerBound, compulsory_traffic, lower_bound, smallest_footprints
from stems.schedule.cost import ScheduleCost, evaluate
from stems.schedule.model import (
    INPUT,
    BlockChoice,
    EdgeHome,
    Halo,
    ModelChange,
    Schedule,
    Segment,
    StateIO,
    StatePolicy,
    Tile,
    WeightPolicy,
    blocks_of,
    segments_from_blocks,
)
from stems.schedule.replay import ReplayError, ReplayResult, replay
from stems.schedule.result import Traffic, Violation
from stems.schedule.unitcost import OnChip, TileShape, UnitCost, UnitCostFn, default_unit_cost
from stems.schedule.units import Plan, Unit, build_plan

__all__ = [
    "INPUT",
    "BlockChoice",
    "EdgeHome",
    "Halo",
    "LowerBound",
    "ModelChange",
    "OnChip",
    "Plan",
    "ReplayError",
    "ReplayResult",
    "Schedule",
    "ScheduleCost",
    "Segment",
    "StateIO",
    "StatePolicy",
    "Tile",
    "TileShape",
    "Traffic",
    "Unit",
    "UnitCost",
    "UnitCostFn",
    "Violation",
    "WeightPolicy",
    "blocks_of",
    "build_plan",
    "compulsory_traffic",
    "default_unit_cost",
    "evaluate",
    "lower_bound",
    "replay",
    "segments_from_blocks",
    "smallest_footprints",
]
