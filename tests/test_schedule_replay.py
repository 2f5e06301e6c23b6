"""The replay oracle against the analytic cost on many random schedules, the compulsory bound, and
infeasible inputs reported rather than crashing."""

from __future__ import annotations

import itertools
import random

import pytest
from helpers import concat_block, conv, sew_block

from stems.hardware import Hardware, load_hardware
from stems.schedule import (
    EdgeHome,
    Halo,
    Schedule,
    ScheduleCost,
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
from stems.workload.model import Dims, Layer, Op, Window, Workload

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
    agree(w, s, BUFFERS[rng.choice(sorted(BUFFERS))])


def agree(w: Workload, s: Schedule, hw: Hardware) -> ScheduleCost:
    """The analytic cost, checked against the replay."""
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
    return a


# c1's weights (16 x 32 x 9 x 4 bit = 2.25 KiB) and c2's (1.1 KiB) exceed a 1 KiB buffer
WIDE = Workload(
    "wide",
    [
        conv("c0", 2, 16, 4, t=2),
        conv("c1", 16, 32, 4, t=2),
        conv("c2", 32, 8, 4, t=2, neuron=None),
        Layer("pool", Op.MAXPOOL, Dims(T=2, G=8, OY=2, OX=2, FY=2, FX=2), window=Window(stride=(2, 2))),
    ],
    [("c0", "c1"), ("c1", "c2"), ("c2", "pool")],
)
WIDE_SEEDS = range(20)


def wide_schedule(seed: int) -> Schedule:
    s = random_schedule(WIDE, random.Random(seed))
    return s.with_decisions(weights=dict.fromkeys(("c1", "c2"), WeightPolicy.REFETCH))


@pytest.mark.parametrize("seed", WIDE_SEEDS)
def test_replay_matches_analytic_with_weights_larger_than_the_buffer(seed: int) -> None:
    agree(WIDE, wide_schedule(seed), BUFFERS["1KiB"])


def test_weights_larger_than_the_buffer_cases_include_feasible_ones() -> None:
    feasible = [seed for seed in WIDE_SEEDS if evaluate(WIDE, wide_schedule(seed), BUFFERS["1KiB"]).feasible]
    assert 3 <= len(feasible) < len(WIDE_SEEDS)


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


def test_weights_larger_than_the_buffer_stream_through_it() -> None:
    """fc's 32 KiB of weights cannot stay in a 16 KiB buffer, but re-fetched they pass through in
    slices of one output neuron (256 weights, 1,024 bits; two at a time)."""
    w = big_dense()
    hw = load_hardware("stems-edge", overrides=["global_buffer.size=16KiB"])
    assert lower_bound(w, hw).fits
    refetch = Schedule((Segment(("c", "flat", "fc"), 1),), weights={"fc": WeightPolicy.REFETCH})
    cost, rep = evaluate(w, refetch, hw), replay(w, refetch, hw)
    assert cost.feasible and rep.feasible and cost.peak_bits == rep.peak_bits
    assert cost.traffic == rep.traffic and cost.traffic.bits("W") - 16 * 9 * 2 * 4 == 2 * 256 * 256 * 4
    resident = evaluate(w, refetch.with_decisions(weights={"fc": WeightPolicy.RESIDENT}), hw)
    assert resident.violation is not None and "weights of fc 32.0 KiB" in resident.violation.message()
    b = baseline("layer-by-layer-sequential", w, hw)
    assert b.cost is not None and b.cost.feasible and b.schedule is not None
    assert b.schedule.weights_of("fc") is WeightPolicy.REFETCH


def test_a_layer_that_cannot_fit_is_reported() -> None:
    w = big_dense()
    hw = load_hardware("stems-edge", overrides=["global_buffer.size=256B"])
    bound = lower_bound(w, hw)
    assert not bound.fits
    # two weight slices 2 x 1,024 + input window 256 + output window 256 bits = 2,560 bits
    assert "layer fc needs at least 0.3 KiB in global_buffer" in bound.report()
    assert "global_buffer holds 0.2 KiB" in bound.report() and "layer c " not in bound.report()
    s = Schedule((Segment(("c", "flat", "fc"), 1),), weights={"fc": WeightPolicy.REFETCH})
    cost = evaluate(w, s, hw)
    assert not cost.feasible
    assert cost.violation is not None and cost.violation.message().startswith("unit 0 (c, segment 0, t 0..0")
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
