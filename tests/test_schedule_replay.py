"""The replay oracle against the analytic cost on many random schedules, the compulsory bound, and
infeasible inputs reported rather than crashing."""

from __future__ import annotations

import itertools
import random

import pytest
from helpers import concat_block, conv, sew_block

from stems.hardware import load_hardware
from stems.schedule import (
    EdgeHome,
    Halo,
    Schedule,
    Segment,
    StateIO,
    StatePolicy,
    Tile,
    WeightPolicy,
    build_plan,
    evaluate,
    lower_bound,
    replay,
)
from stems.schedule.baselines import baseline
from stems.workload.model import Dims, Layer, Op, Workload

NETWORKS = {"residual": sew_block(t=4), "concat": concat_block(t=4)}
BUFFERS = {
    size: load_hardware("stems-edge", overrides=[f"global_buffer.size={size}"])
    for size in ("512B", "1KiB", "64KiB")
}
TILES = [None, None, Tile(1), Tile(2), Tile(1, 2), Tile(3, 3), Tile(2, 1)]


def random_schedule(w: Workload, rng: random.Random) -> Schedule:
    names = [x.name for x in w]
    cuts = sorted(rng.sample(range(1, len(names)), k=rng.randint(0, 3)))
    bounds = [0, *cuts, len(names)]
    t = w.timesteps
    batches = [d for d in range(1, t + 1) if t % d == 0]
    segments = tuple(
        Segment(tuple(names[a:b]), rng.choice(batches), rng.choice(TILES), rng.choice(list(Halo)))
        for a, b in itertools.pairwise(bounds)
    )
    return Schedule(
        segments,
        state={x.name: rng.choice(list(StatePolicy)) for x in w if x.stateful},
        weights={x.name: rng.choice(list(WeightPolicy)) for x in w if x.weights},
        edges={e: rng.choice(list(EdgeHome)) for e in w.edges},
        state_io=rng.choice(list(StateIO)),
    )


CASES = [(net, seed) for net in NETWORKS for seed in range(40)]


@pytest.mark.parametrize(("net", "seed"), CASES)
def test_replay_matches_analytic(net: str, seed: int) -> None:
    rng = random.Random(seed)
    w = NETWORKS[net]
    s = random_schedule(w, rng)
    hw = BUFFERS[rng.choice(sorted(BUFFERS))]
    plan = build_plan(w, s)
    a = evaluate(w, s, hw, plan=plan)
    r = replay(w, s, hw, plan=plan)
    assert a.traffic == r.traffic  # every operand, reads and writes, bit for bit
    assert a.peak_bits == r.peak_bits
    assert (a.violation is None) == (r.violation is None)
    if a.violation is not None:
        assert r.violation is not None
        assert (a.violation.unit, a.violation.occupancy_bits) == (
            r.violation.unit,
            r.violation.occupancy_bits,
        )
    assert a.total_pj == pytest.approx(r.total_pj, rel=0.01)
    assert a.offchip_pj == pytest.approx(r.offchip_pj, rel=1e-9)
    assert a.latency_cycles == r.latency_cycles
    # the compulsory traffic bounds every schedule, operand by operand
    for op, bits in a.traffic.per_operand_bits.items():
        assert bits >= a.compulsory.bits(op), op


def test_cases_cover_fusion_recompute_and_overflow() -> None:
    """The random cases above exercise what they must: fused tiles over the add and the concat,
    recomputed halos, row bands, spills, removals, and both feasible and infeasible schedules."""
    seen: set[str] = set()
    for net, seed in CASES:
        rng = random.Random(seed)
        w = NETWORKS[net]
        s = random_schedule(w, rng)
        hw = BUFFERS[rng.choice(sorted(BUFFERS))]
        plan = build_plan(w, s)
        for seg in s.segments:
            if seg.fused and ({"add", "cat"} & set(seg.layers)):
                seen.add(f"fused {net}")
            if seg.tile is not None and seg.tile.rows:
                seen.add("row bands")
        if plan.recompute:
            seen.add("recompute")
        if StatePolicy.SPILL in s.state.values():
            seen.add("spill")
        if StatePolicy.REMOVE in s.state.values():
            seen.add("remove")
        seen.add("feasible" if evaluate(w, s, hw, plan=plan).feasible else "infeasible")
    assert seen >= {
        "fused residual",
        "fused concat",
        "row bands",
        "recompute",
        "spill",
        "remove",
        "feasible",
        "infeasible",
    }


def big_dense() -> Workload:
    """A 4x4 conv feeding a 256 -> 256 dense layer: 65,536 weights (32 KiB) that a 16 KiB buffer cannot hold."""
    layers = [
        conv("c", 2, 16, 4, t=2),
        Layer("flat", Op.VIEW, Dims(T=2, K=256)),
        Layer("fc", Op.DENSE, Dims(T=2, K=256, C=256)),
    ]
    return Workload("big-dense", layers, [("c", "flat"), ("flat", "fc")])


def test_a_layer_that_cannot_fit_is_reported() -> None:
    w = big_dense()
    hw = load_hardware("stems-edge", overrides=["global_buffer.size=16KiB"])
    bound = lower_bound(w, hw)
    assert not bound.fits
    assert "layer fc needs at least 32.1 KiB in global_buffer" in bound.report()  # weights + windows
    assert "global_buffer holds 16.0 KiB" in bound.report()
    s = Schedule((Segment(("c", "flat", "fc"), 1),), weights={"fc": WeightPolicy.REFETCH})
    cost = evaluate(w, s, hw)
    assert not cost.feasible
    assert cost.violation is not None
    assert cost.violation.items[0] == ("weights of fc", 256 * 256 * 4)
    msg = cost.violation.message()
    assert msg.startswith("unit 2 (fc, segment 0, t 0..0") and "weights of fc 32.0 KiB" in msg
    assert replay(w, s, hw).violation.unit == cost.violation.unit  # type: ignore[union-attr]
    b = baseline("layer-by-layer-sequential", w, hw)
    assert b.cost is not None and not b.cost.feasible and b.note.startswith("infeasible: unit")


def test_smallest_footprint_is_what_a_one_by_one_tile_needs() -> None:
    """The bound's smallest footprint equals the peak of the least schedule: each layer alone, a 1x1
    tile, one timestep, weights re-fetched, state spilled, every edge through DRAM."""
    from stems.schedule import smallest_footprints

    w = sew_block(t=2)
    hw = BUFFERS["64KiB"]
    for fp in smallest_footprints(w, hw):
        others = [x.name for x in w if x.name != fp.layer]
        order = [x.name for x in w]
        i = order.index(fp.layer)
        segments = [Segment(tuple(order[:i]))] if i else []
        segments += [Segment((fp.layer,), 1, Tile(1, 1))]
        segments += [Segment(tuple(order[i + 1 :]))] if i + 1 < len(order) else []
        s = Schedule(
            tuple(segments),
            state={x.name: StatePolicy.SPILL for x in w if x.stateful},
            weights={x.name: WeightPolicy.REFETCH for x in w if x.weights},
            edges=dict.fromkeys(w.edges, EdgeHome.DRAM),
        )
        plan = build_plan(w, s)
        from stems.schedule.cost import occupancy
        from stems.schedule.unitcost import OnChip

        occ = occupancy(plan, s, OnChip.of(hw))["global_buffer"]
        mine = [u.index for u in plan.units if u.layer == fp.layer]
        assert int(occ[mine].max()) == sum(fp.bits.values()), (fp.layer, others)
