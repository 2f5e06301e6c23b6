"""Unit costs from the intra-layer search (`stems.schedule.intra_unitcost`): the same compute as the
default, at least the buffer accesses every mapping must make, and the analytic schedule cost still
equal to the replay oracle when units are priced this way."""

from __future__ import annotations

import random

import pytest
from helpers import conv, sew_block
from test_schedule_replay import random_schedule

from stems.hardware import load_hardware
from stems.hardware.spec import Direction
from stems.schedule.cost import evaluate
from stems.schedule.intra_unitcost import intra_unit_cost, unit_layer
from stems.schedule.replay import replay
from stems.schedule.unitcost import OnChip, TileShape, default_unit_cost
from stems.schedule.units import build_plan

HW = load_hardware("stems-edge")


def _tile(layer, rows: int, cols: int) -> TileShape:
    sub = unit_layer(layer, TileShape(rows, cols, 0), 1)
    return TileShape(rows, cols, sub.input_elements_per_step * sub.precision.I)


@pytest.mark.parametrize(("rows", "cols", "tb"), [(8, 8, 4), (8, 1, 1), (8, 2, 2), (1, 1, 4)])
def test_compute_equals_the_default_and_the_buffer_is_read_at_least_once(
    rows: int, cols: int, tb: int
) -> None:
    layer = conv("c", 8, 16, 8, t=4)
    tile = _tile(layer, rows, cols)
    intra = intra_unit_cost(layer, tile, tb, HW)
    default = default_unit_cost(layer, tile, tb, HW)
    assert intra.compute_pj == pytest.approx(default.compute_pj, rel=1e-12)  # same ops, same neurons
    buf = OnChip.of(HW)
    positions = rows * cols * layer.dims.K * tb
    must = (  # every input bit, weight bit and output bit passes the buffer's lower side at least once
        tile.input_bits_per_step * tb * buf.pj("I", Direction.TO_LOW)
        + layer.weights * layer.precision.W * buf.pj("W", Direction.TO_LOW)
        + positions * layer.precision.O_final * buf.pj("O", Direction.FROM_LOW)
    )
    assert intra.energy_pj_onchip >= must * (1 - 1e-9)
    assert intra.cycles >= -(-default.cycles // 1)  # never faster than every PE busy every cycle
    assert intra == intra_unit_cost(layer, tile, tb, HW)  # deterministic


@pytest.mark.parametrize("seed", range(8))
def test_analytic_cost_equals_the_replay_with_intra_unit_costs(seed: int) -> None:
    rng = random.Random(seed)
    w = sew_block(t=2)
    s = random_schedule(w, rng)
    hw = load_hardware("stems-edge", overrides=[f"global_buffer.size={rng.choice(['2KiB', '16KiB'])}"])
    plan = build_plan(w, s)
    a = evaluate(w, s, hw, plan=plan, unit_cost=intra_unit_cost)
    r = replay(w, s, hw, plan=plan, unit_cost=intra_unit_cost)
    assert a.traffic == r.traffic
    assert a.total_pj == pytest.approx(r.total_pj, rel=0.01)
    assert a.latency_cycles == r.latency_cycles
    d = evaluate(w, s, hw, plan=plan)
    assert a.compute_pj == pytest.approx(d.compute_pj, rel=1e-9)
    assert a.offchip_pj == pytest.approx(d.offchip_pj, rel=1e-12)  # only what happens inside changes
