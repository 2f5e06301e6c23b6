"""The cost model on layers small enough to price by hand: every access and every pJ worked out below.

Hardware "tiny": 2 PEs along D1 (K only), 1 pJ per 8x8 MAC, 0.5 pJ per 1x4 accumulate, 3 pJ per
neuron update. Memories, innermost first:
  acc   16 bit, O and V, one per PE, 0.25 pJ/bit both ways, 16-bit ports, 1-bit minimum access
        (only in the three-level variant);
  buf   4096 bit, I W O V, shared by both PEs, read 0.5 / write 1.0 pJ/bit, 64-bit ports, 8-bit minimum;
  dram  all operands, read 10 / write 20 pJ/bit, one shared 64-bit port, 64-bit minimum.
A transfer is rounded up to the port's minimum access, then multiplied by the transfers and instances.
"""

from __future__ import annotations

import pytest

from stems.cost import Mapping, price
from stems.hardware import Direction, Hardware
from stems.hardware.load import build_hardware
from stems.workload.model import Dims, Layer, Neuron, Op, Precision, Window

TL, FH, FL, TH = Direction.TO_LOW, Direction.FROM_HIGH, Direction.FROM_LOW, Direction.TO_HIGH


def _memory(
    size: int,
    operands: list[str],
    served: list[str],
    read: float,
    write: float,
    bw: int,
    least: int,
    ports: str,
):
    return {
        "size": size,
        "operands": operands,
        "served_dims": served,
        "read_pj_per_bit": read,
        "write_pj_per_bit": write,
        "read_bw": bw,
        "write_bw": bw,
        "min_access": least,
        "ports": ports,
    }


def tiny(accumulator: bool, loops: tuple[str, ...] = ("K",), pes: int = 2) -> Hardware:
    memories = {}
    if accumulator:
        memories["acc"] = _memory(16, ["O", "V"], [], 0.25, 0.25, 16, 1, "per_direction")
    memories["buf"] = _memory(4096, ["I", "W", "O", "V"], ["D1"], 0.5, 1.0, 64, 8, "separate")
    memories["dram"] = _memory(1_000_000, ["I", "W", "O", "V"], ["D1"], 10.0, 20.0, 64, 64, "shared")
    doc = {
        "stems_hardware": 1,
        "name": "tiny",
        "clock": "1GHz",
        "array": {"D1": {"size": pes, "loops": list(loops)}},
        "compute": {"op_energy": {"8x8": 1.0, "1x4": 0.5}, "scaling": "constant", "neuron_update_pj": 3.0},
        "memories": memories,
    }
    return build_hardware(doc, path="tiny")


def bits(cost, op: str, level: str) -> dict[Direction, float]:
    return dict(cost.traffic[op][level].bits)


def elements(cost, op: str, level: str) -> dict[Direction, float]:
    return dict(cost.traffic[op][level].elements)


def test_tiny_conv_on_two_levels_every_access_and_pj() -> None:
    # 1-D conv: K=2, C=2, OX=4, FX=3 (input 6 wide), 8-bit I and W, 16-bit partial sums, 8-bit outputs.
    # 48 MACs = 2 K x 2 C x 4 OX x 3 FX. K unrolls on the 2 PEs, so 24 temporal cycles: FX3, C2, OX4.
    layer = Layer(
        "tiny",
        Op.CONV,
        Dims(K=2, C=2, OY=1, OX=4, FY=1, FX=3),
        precision=Precision(I=8, W=8, O=16, O_final=8),
        window=Window(input_yx=(1, 6)),
    )
    mapping = Mapping.of(
        {"D1": {"K": 2}},
        [("FX", 3), ("C", 2), ("OX", 4)],
        {"W": {"buf": 2, "dram": 3}, "I": {"buf": 3, "dram": 3}, "O": {"buf": 3, "dram": 3}},
    )
    cost = price(layer, tiny(False), mapping)
    assert cost.valid, cost.reason
    assert cost.temporal_cycles == 24 and cost.ideal_cycles == 24  # 48 MACs / 2 PEs

    # W (K, C, FX). buf's tile: FX3 x C2 below its cut, times K2 (buf serves D1): 12 weights = 96 bits.
    # OX above the cut is irrelevant to W, so the tile stays for the whole layer: filled once.
    # To the PEs: FX is innermost and relevant, so 2 weights (one per PE) every one of the 24 cycles:
    # 24 x 16 bits = 384 bits read (0.5 pJ/bit = 192 pJ); fill 96 bits written (1 pJ/bit = 96 pJ).
    assert bits(cost, "W", "buf") == {TL: 384, FH: 96, FL: 0, TH: 0}
    # dram sends the 96-bit tile once, rounded up to its 64-bit access: 128 bits x 10 pJ = 1280 pJ.
    assert bits(cost, "W", "dram") == {TL: 128, FH: 0, FL: 0, TH: 0}
    assert cost.traffic["W"]["buf"].energy_pj == 384 * 0.5 + 96 * 1.0
    assert cost.traffic["W"]["dram"].energy_pj == 128 * 10

    # I (C, and OX/FX through the window). buf holds it all: C2 x (4 + 3 - 1 = 6) = 12 inputs = 96 bits.
    # Both PEs need the same input (K is irrelevant to I: broadcast), FX innermost: 1 input per cycle,
    # 24 x 8 = 192 bits read (96 pJ); the fill 96 bits (96 pJ); dram 96 -> 128 bits (1280 pJ).
    assert bits(cost, "I", "buf") == {TL: 192, FH: 96, FL: 0, TH: 0}
    assert bits(cost, "I", "dram") == {TL: 128, FH: 0, FL: 0, TH: 0}

    # O (K, OX). The reduction (FX, C) runs inside buf's loops, so buf holds partial sums (16 bit):
    # every cycle both PEs write a psum back (2 x 16 = 32 bits) and read it (ZigZag counts the read
    # every time too): 24 x 32 = 768 bits each way (768 x 1.0 + 768 x 0.5 = 1152 pJ).
    # The 8 finished outputs (K2 x OX4) leave once at 8 bits: 64 bits read (32 pJ), written into dram
    # (64 bits x 20 pJ = 1280 pJ). Nothing comes back down: no reduction remains above buf.
    assert bits(cost, "O", "buf") == {TL: 768, FH: 0, FL: 768, TH: 64}
    assert bits(cost, "O", "dram") == {TL: 0, FH: 0, FL: 64, TH: 0}
    assert cost.traffic["O"]["buf"].energy_pj == 768 * 1.0 + 768 * 0.5 + 64 * 0.5

    # Energy: W 192 + 96 + 1280 = 1568; I 96 + 96 + 1280 = 1472; O 1184 + 1280 = 2464; memories 5504.
    # Compute 48 MACs x 1 pJ = 48. No neuron. Total 5552 pJ.
    assert cost.memory_pj == 5504
    assert cost.compute_pj == 48 and cost.neuron_pj == 0
    assert cost.energy_pj == 5552
    assert dict(cost.offchip_bytes) == {"O": 8, "W": 16, "I": 16}  # dram to_low + from_low, / 8


SNN = Layer(
    "snn",
    Op.DENSE,
    Dims(T=3, K=2, C=4),
    precision=Precision(I=1, W=4, O=12, O_final=1, V=12),
    neuron=Neuron.of("LIF"),  # one 12-bit state variable per neuron
)


def test_stateful_layer_keeps_v_in_registers_across_timesteps() -> None:
    # 2 LIF neurons, 4 spike inputs, T=3: 24 accumulates, K on the 2 PEs, loops C4 then T3.
    # Each PE's acc register holds its neuron's V (12 bit) and last spike (1 bit): 13 of 16 bits.
    mapping = Mapping.of(
        {"D1": {"K": 2}},
        [("C", 4), ("T", 3)],
        {
            "W": {"buf": 2, "dram": 2},
            "I": {"buf": 2, "dram": 2},
            "O": {"acc": 1, "buf": 2, "dram": 2},
            "V": {"acc": 1, "buf": 2, "dram": 2},
        },
    )
    cost = price(SNN, tiny(True), mapping)
    assert cost.valid, cost.reason

    # V is the accumulator: each of the 12 cycles both PEs add into their V (read and write, 24 each).
    # T is a reuse loop for V and sits right above acc's cut, so V never leaves acc between timesteps
    # (time batching): it goes up once per neuron at the end, 2 x 12 bits, and is never read back.
    assert elements(cost, "V", "acc") == {TL: 24, FH: 0, FL: 24, TH: 2}
    assert bits(cost, "V", "acc") == {TL: 288, FH: 0, FL: 288, TH: 24}  # 0.25 pJ/bit: 150 pJ
    assert bits(cost, "V", "buf") == {TL: 0, FH: 0, FL: 24, TH: 24}  # 24 x 1.0 + 24 x 0.5 = 36 pJ
    assert bits(cost, "V", "dram") == {TL: 0, FH: 0, FL: 64, TH: 0}  # 24 bits -> 64: 1280 pJ

    # O carries only spikes: one 1-bit spike per neuron per timestep (6), no partial sums at all.
    assert elements(cost, "O", "acc") == {TL: 0, FH: 0, FL: 6, TH: 6}  # 6 + 6 bits x 0.25 = 3 pJ
    # buf receives both PEs' spikes together (2 bits -> 8) each timestep: 24 bits (24 pJ); the 6
    # spikes leave once (6 bits -> 8, 4 pJ); dram gets 6 bits -> 64 (1280 pJ).
    assert bits(cost, "O", "buf") == {TL: 0, FH: 0, FL: 24, TH: 8}
    assert bits(cost, "O", "dram") == {TL: 0, FH: 0, FL: 64, TH: 0}

    # W (4 bit): buf holds C4 x K2 = 8 weights (32 bits); T is irrelevant but C is innermost, so
    # both weights are read every cycle: 12 x (8 bits) = 96 bits (48 pJ); fill 32 bits (32 pJ);
    # dram 32 -> 64 bits (640 pJ).
    assert bits(cost, "W", "buf") == {TL: 96, FH: 32, FL: 0, TH: 0}
    # I (1-bit spikes): one spike per cycle, rounded to buf's 8-bit access: 96 bits (48 pJ); buf holds
    # C4 x T3 = 12 spikes, filled once (12 -> 16 bits, 16 pJ); dram 12 -> 64 bits (640 pJ).
    assert bits(cost, "I", "buf") == {TL: 96, FH: 16, FL: 0, TH: 0}

    # Memories: V 150 + 36 + 1280 = 1466; O 3 + 28 + 1280 = 1311; W 48 + 32 + 640 = 720;
    # I 48 + 16 + 640 = 704; total 4201. Compute 24 accumulates x 0.5 = 12. Neurons 2 x 3 steps x 3 = 18.
    assert cost.memory_pj == 4201
    assert (cost.compute_pj, cost.neuron_pj) == (12, 18)
    assert cost.energy_pj == 4231


def test_stateful_layer_spills_v_every_timestep() -> None:
    # No spatial unrolling; loops C4, K2, T3: acc holds one neuron, and K sits between acc's cut and
    # T, so each timestep the two neurons take turns: V goes up and comes back once per neuron per
    # timestep (2 x 3 = 6 each way) instead of once per neuron.
    mapping = Mapping.of(
        {},
        [("C", 4), ("K", 2), ("T", 3)],
        {
            "W": {"buf": 3, "dram": 3},
            "I": {"buf": 3, "dram": 3},
            "O": {"acc": 1, "buf": 3, "dram": 3},
            "V": {"acc": 1, "buf": 3, "dram": 3},
        },
    )
    cost = price(SNN, tiny(True), mapping)
    assert cost.valid, cost.reason
    assert elements(cost, "V", "acc") == {TL: 24, FH: 6, FL: 24, TH: 6}
    assert bits(cost, "V", "acc") == {TL: 288, FH: 72, FL: 288, TH: 72}
    # buf sees the same 6 round trips, each 12 bits rounded to 16; the final state leaves once (24 bits).
    assert bits(cost, "V", "buf") == {TL: 96, FH: 0, FL: 96, TH: 24}
    assert cost.traffic["V"]["buf"].energy_pj == 96 * 0.5 + 96 * 1.0 + 24 * 0.5
    # Spikes are still one per neuron per timestep.
    assert elements(cost, "O", "acc") == {TL: 0, FH: 0, FL: 6, TH: 6}


@pytest.mark.parametrize(
    ("order", "ok"),
    [([("C", 4), ("T", 3)], True), ([("T", 3), ("C", 4)], False), ([("C", 2), ("T", 3), ("C", 2)], False)],
)
def test_stateful_rule_puts_every_t_loop_above_the_reduction(order, ok) -> None:
    n = len(order)
    mapping = Mapping.of(
        {"D1": {"K": 2}},
        order,
        {op: dict.fromkeys(levels, n) for op, levels in {"W": ("buf", "dram"), "I": ("buf", "dram")}.items()}
        | {op: {"acc": 0, "buf": n, "dram": n} for op in ("O", "V")},
    )
    cost = price(SNN, tiny(True), mapping)
    assert cost.valid is ok
    assert ok or "every T loop must be outside every C, FY and FX loop" in cost.reason


def test_stateful_layer_cannot_unroll_timesteps_spatially() -> None:
    mapping = Mapping.of(
        {"D1": {"T": 3}},
        [("C", 4), ("K", 2)],
        {op: {"buf": 2, "dram": 2} for op in ("W", "I")}
        | {op: {"acc": 0, "buf": 2, "dram": 2} for op in ("O", "V")},
    )
    cost = price(SNN, tiny(True, loops=("K", "T"), pes=4), mapping)
    assert not cost.valid and "T cannot unroll spatially" in cost.reason
