"""Invariants of the cost model over hundreds of random valid mappings (hypothesis draws the seeds)."""

from __future__ import annotations

import math
import random

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_cost_hand import tiny

from stems.cost import price, price_batch
from stems.cost.model import nest_of
from stems.cost.sample import random_mapping, sample_mappings
from stems.hardware import Direction, load_hardware
from stems.workload.model import Dims, Layer, Neuron, Op, Precision, Rates, Window

ANN = Precision(I=8, W=4, O=16, O_final=8)  # 4-bit weights fit stems-edge's weight registers
SPIKES = Precision(I=1, W=4, O=12, O_final=1, V=12)
LAYERS = [
    Layer(
        "c3",
        Op.CONV,
        Dims(K=32, C=16, OY=14, OX=14, FY=3, FX=3),
        precision=ANN,
        window=Window(padding=(1, 1, 1, 1), input_yx=(14, 14)),
    ),
    Layer(
        "c3s2",
        Op.CONV,
        Dims(K=64, C=32, OY=7, OX=7, FY=3, FX=3),
        precision=ANN,
        window=Window(stride=(2, 2), padding=(1, 1, 1, 1), input_yx=(14, 14)),
    ),
    Layer("fc", Op.DENSE, Dims(K=10, C=96), precision=ANN),
    Layer(
        "lif",
        Op.CONV,
        Dims(T=4, K=16, C=8, OY=8, OX=8, FY=3, FX=3),
        precision=SPIKES,
        window=Window(padding=(1, 1, 1, 1), input_yx=(8, 8)),
        neuron=Neuron.of("LIF"),
        rates=Rates(I=0.2, O=0.1),
    ),
    Layer(
        "cuba", Op.DENSE, Dims(T=6, K=12, C=20), precision=SPIKES, neuron=Neuron.of("CubaLIF", stateful=False)
    ),
]
HARDWARE = [load_hardware("tpu_like"), load_hardware("stems-edge"), tiny(True)]
PAIRS = [(li, hi) for li in range(len(LAYERS)) for hi in range(len(HARDWARE))]


def _bottom_reuse(mapping, reuse: frozenset[str]) -> int:
    """Product of the operand's reuse loops at the very bottom of the nest (read once, used many times)."""
    out = 1
    for d, f in mapping.temporal:
        if d not in reuse:
            break
        out *= f
    return out


def _check(layer: Layer, hw, mapping) -> None:
    cost = price(layer, hw, mapping)
    assert cost.valid, cost.reason
    nest = nest_of(layer, hw)

    # Energy is the sum of its parts: rounded bits x pJ per bit, operations, neuron updates.
    parts = sum(
        bits * lv.pj_per_bit(op, d)
        for op, levels in cost.traffic.items()
        for lv in nest.operand(op).levels
        for d, bits in levels[lv.name].bits.items()
        if bits
    )
    op_pj = hw.compute.energy_per_op(layer.precision.I, layer.precision.W) * nest.ops
    op_pj *= layer.rates.I if hw.compute.skips_zero_inputs else 1
    neuron = hw.compute.neuron_update_pj * layer.neurons * layer.dims.T
    assert math.isclose(cost.energy_pj, parts + op_pj + neuron, rel_tol=1e-9)
    assert math.isclose(cost.memory_pj, parts, rel_tol=1e-9)

    # The innermost level feeds the array every operation, less what stays put: the spatial copies of
    # an irrelevant loop share one read (broadcast / adder tree), and a reuse loop at the very bottom
    # of the nest keeps the operand on the PE's input (ZigZag's access_same_data_considered_as_no_access).
    for spec in nest.operands:
        if spec.window:
            continue  # I's sliding-window reuse is not a plain product
        inner = spec.levels[0]
        shared = math.prod(
            f for a, loops in mapping.spatial for d, f in loops if d in spec.reuse and a in inner.served_dims
        )
        moves = cost.traffic[spec.name][inner.name].elements
        if spec.absent:  # O of a stateful layer: one spike per neuron per timestep
            assert moves[Direction.FROM_LOW] == layer.neurons * layer.dims.T
            continue
        fed = moves[Direction.FROM_LOW] if spec.output else moves[Direction.TO_LOW]
        still = 1 if spec.output else _bottom_reuse(mapping, spec.reuse)
        assert math.isclose(fed * shared * still, nest.ops, rel_tol=1e-9), spec.name

    # Every weight leaves off-chip memory at least once; every output reaches it.
    assert cost.offchip_bytes["W"] * 8 >= layer.weights * layer.precision.W
    assert cost.offchip_bytes["O"] * 8 >= layer.outputs_per_step * layer.dims.T * layer.precision.O_final * (
        layer.rates.O if hw.offchip.skips_zeros else 1
    )
    assert cost.latency_cycles >= cost.temporal_cycles >= cost.ideal_cycles


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair=st.sampled_from(PAIRS), seed=st.integers(0, 2**20))
def test_invariants_hold_for_random_valid_mappings(pair, seed) -> None:
    layer, hw = LAYERS[pair[0]], HARDWARE[pair[1]]
    found = sample_mappings(layer, hw, 1, seed=seed, exact=True, tries=20)
    assume(found)
    _check(layer, hw, found[0])


def test_price_equals_price_batch_row_for_row() -> None:
    rng = random.Random(7)
    for layer in LAYERS:
        for hw in HARDWARE[:2]:
            batch = [random_mapping(layer, hw, rng) for _ in range(40)]
            table = price_batch(layer, hw, batch)
            assert table.valid.any()
            for i in np.flatnonzero(table.valid)[:8]:
                assert price(layer, hw, batch[i]) == table.cost(i)
            assert price(layer, hw, batch[0]).reason == table.reasons[0]


def test_the_generator_covers_hundreds_of_distinct_valid_mappings() -> None:
    found = sample_mappings(LAYERS[0], HARDWARE[0], 300, seed=1)
    assert len(found) == 300 == len(set(found))
    assert price_batch(LAYERS[0], HARDWARE[0], found).valid.all()
