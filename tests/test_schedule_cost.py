"""Hand-worked schedules: every off-chip bit, the peak occupancy and the compute, counted in comments.

Hardware: stems-edge (0.07 pJ per 1b x 4b accumulate, 1,024 PEs, DRAM 700/750 pJ per 64-bit word
read/written, one shared 64-bit DRAM port). Precisions: spikes 1 bit, weights 4 bit, state 12 bit.
"""

from __future__ import annotations

import pytest
from helpers import conv

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
    evaluate,
    replay,
)
from stems.workload.model import Dims, Layer, Op, Window, Workload

HW = load_hardware("stems-edge")
READ_PJ, WRITE_PJ = 700 / 64, 750 / 64


def check(w: Workload, s: Schedule):
    """Analytic cost, checked against the replay on the way."""
    a = evaluate(w, s, HW)
    r = replay(w, s, HW)
    assert a.traffic == r.traffic and a.peak_bits == r.peak_bits and a.latency_cycles == r.latency_cycles
    assert a.total_pj == pytest.approx(r.total_pj, rel=1e-9)
    return a


# ---- one stateful 1x1 conv: ST versus TB state traffic -------------------------------------------
# a: 1 -> 2 channels, 4 x 4, kernel 1, LIF, T = 4.
#   weights 2 x 4 bit = 8 bits; state 2 x 16 neurons x 12 bit = 384 bits;
#   input 1 x 16 x 1 bit = 16 bits per timestep (64 in all); output 2 x 16 x 1 bit = 32 bits per
#   timestep (128 in all; a is the network output).
SINGLE = Workload("single", [conv("a", 1, 2, 4, t=4, kernel=1)], [])


def single(tb: int, state: StatePolicy, **kw) -> Schedule:
    return Schedule((Segment(("a",), tb),), state={"a": state}, **kw)


@pytest.mark.parametrize(
    ("tb", "state", "v_bits"),
    [
        (1, StatePolicy.KEEP, 2 * 384),  # kept: read once before t=0, written once after t=3
        (1, StatePolicy.SPILL, 4 * 2 * 384),  # ST spill: one round trip per timestep
        (2, StatePolicy.SPILL, 2 * 2 * 384),  # batches of 2: one round trip per batch
        (4, StatePolicy.SPILL, 1 * 2 * 384),  # TB: one round trip in all, same as keeping it
        (1, StatePolicy.REMOVE, 0),  # stateless: nothing to move (and a model change)
    ],
)
def test_state_traffic_st_versus_tb(tb: int, state: StatePolicy, v_bits: int) -> None:
    c = check(SINGLE, single(tb, state))
    assert c.traffic.per_operand_bits == {"W": 8, "I": 64, "O": 128, "V": v_bits}
    assert c.retraining_required == (state is StatePolicy.REMOVE)


def test_state_io_none_drops_the_first_load_and_last_store() -> None:
    # spilled, ST: 4 timesteps, but timestep 0 reads no state and timestep 3 writes none: 3 x 2 x 384
    assert check(SINGLE, single(1, StatePolicy.SPILL, state_io=StateIO.NONE)).traffic.bits("V") == 2304
    assert check(SINGLE, single(1, StatePolicy.KEEP, state_io=StateIO.NONE)).traffic.bits("V") == 0
    assert check(SINGLE, single(1, StatePolicy.KEEP, state_io=StateIO.NONE)).compulsory.bits("V") == 0


def test_weights_refetched_per_timestep() -> None:
    s = single(1, StatePolicy.KEEP, weights={"a": WeightPolicy.REFETCH})
    assert check(SINGLE, s).traffic.bits("W") == 4 * 8  # one fetch per ST unit


# ---- weights larger than the buffer: re-fetched in output-channel slices --------------------------
# w: 8 -> 16 channels, 4 x 4, kernel 3, padding 1, LIF, T = 2: weights 16 x 8 x 9 x 4 bit = 4,608 bits
# (576 B); one output channel's slice 8 x 9 x 4 = 288 bits. ST, one-column tiles: 4 columns x 2
# timesteps = 8 units, state spilled, the input from DRAM, the output (a network output) to DRAM.
WIDE = Workload("wide", [conv("w", 8, 16, 4, t=2)], [])
SMALL = load_hardware("stems-edge", overrides=["global_buffer.size=512B"])  # 4,096 bits


def test_refetched_weights_stream_through_a_buffer_they_do_not_fit() -> None:
    def wide(weights: WeightPolicy) -> Schedule:
        return Schedule(
            (Segment(("w",), 1, Tile(1)),), state={"w": StatePolicy.SPILL}, weights={"w": weights}
        )

    resident = evaluate(WIDE, wide(WeightPolicy.RESIDENT), SMALL)
    assert resident.violation is not None and resident.violation.items[0] == ("weights of w", 4608)
    s = wide(WeightPolicy.REFETCH)
    a, r = evaluate(WIDE, s, SMALL), replay(WIDE, s, SMALL)
    assert a.feasible and r.feasible
    # on chip during a unit: its input tile (the stream window: 4 rows x 3 columns x 8 channels x 1 bit
    # = 96), two weight slices (2 x 288 = 576), the state window (4 rows x 16 x 12 bit = 768) and the
    # output window (4 rows x 16 x 1 bit = 64)
    assert a.peak_bits == r.peak_bits == {"global_buffer": 96 + 576 + 768 + 64}
    # every weight still read once per unit; the input (8 x 16 x 1 bit per timestep) once; the output
    # (16 x 16 x 1 bit per timestep) once; the state read and written per unit (4 x 16 x 12 bit)
    assert a.traffic.per_operand_bits == {"W": 4608 * 8, "I": 2 * 128, "O": 2 * 256, "V": 8 * 2 * 768}
    assert a.traffic == r.traffic and a.latency_cycles == r.latency_cycles
    assert a.total_pj == pytest.approx(r.total_pj, rel=1e-9)
    # layer by layer (2 units), the slices need the whole input tile, 4 x 4 x 8 = 128 bits: 32 beyond
    # the window; the windows of state and output keep their size (a slice streams through them)
    lbl = Schedule((Segment(("w",), 1),), state={"w": StatePolicy.SPILL}, weights={"w": WeightPolicy.REFETCH})
    c = check(WIDE, lbl)
    assert c.peak_bits == {"global_buffer": 128 + 576 + 768 + 64}
    assert c.traffic.bits("W") == 4608 * 2


def test_a_weight_slice_is_one_output_channel() -> None:
    from stems.schedule.units import refetch_bits

    grouped = Layer("g", Op.CONV, Dims(G=4, K=2, C=3, OY=4, OX=4, FY=3, FX=3))
    assert refetch_bits(grouped, 0) == (2 * 3 * 9 * 4, 0)  # one channel of one group: 3 x 3 x 3 weights
    recurrent = Layer("r", Op.DENSE, Dims(K=10, C=64), recurrent_c=10)
    assert refetch_bits(recurrent, 0) == (2 * (64 + 10) * 4, 0)  # one neuron's row, recurrent included
    assert refetch_bits(conv("one", 8, 1, 4), 0) == (8 * 9 * 4, 0)  # one output channel: the whole tensor
    # whole input tiles that would hold more than the weights: the whole weights, the inputs streaming
    assert refetch_bits(grouped, 100) == (2 * 3 * 9 * 4, 100)
    assert refetch_bits(grouped, 1000) == (4 * 2 * 3 * 9 * 4, 0)


def test_st_spill_energy_latency_and_peak_by_hand() -> None:
    c = check(SINGLE, single(1, StatePolicy.SPILL))
    # DRAM reads: W 8 + I 64 + V 1536 = 1608 bits; writes: O 128 + V 1536 = 1664 bits
    assert c.offchip_pj == pytest.approx(1608 * READ_PJ + 1664 * WRITE_PJ)
    # per unit: 32 outputs x 1 synapse = 32 accumulates -> 1 cycle on 1,024 PEs; DRAM: unit 0 moves
    # 8 + 16 + 384 + 384 + 32 = 824 bits, the others 816: 13 cycles each at 64 bits per cycle
    assert c.latency_cycles == 4 * 13
    assert c.compute_pj == pytest.approx(4 * 32 * 0.07)
    # on chip: weights 8 + state window (one column: 4 rows x 2 channels x 12 bit = 96) + input window
    # (4 rows x 1 column x 1 channel = 4) + output window (a is a network output: 4 rows x 2 = 8)
    assert c.peak_bits == {"global_buffer": 8 + 96 + 4 + 8}
    # time-batched: the input and output windows hold all 4 timesteps; the state window does not
    assert check(SINGLE, single(4, StatePolicy.SPILL)).peak_bits == {"global_buffer": 8 + 96 + 16 + 32}
    # kept: the whole state (384) replaces the state window
    assert check(SINGLE, single(1, StatePolicy.KEEP)).peak_bits == {"global_buffer": 8 + 384 + 4 + 8}


# ---- two layers: layer by layer versus fused activations -----------------------------------------
# a: 1 -> 2 channels, 4 x 4, kernel 1, LIF (weights 8 bits, state 384 bits)
# b: 2 -> 2 channels, 4 x 4, kernel 3, padding 1, no neuron (weights 2*2*9*4 = 144 bits)
# T = 2; a's output is 2 x 16 x 1 bit = 32 bits per timestep (64 in all), as is b's.
PAIR = Workload(
    "pair", [conv("a", 1, 2, 4, t=2, kernel=1), conv("b", 2, 2, 4, t=2, neuron=None)], [("a", "b")]
)


def pair(tile: Tile | None, home: EdgeHome) -> Schedule:
    return Schedule((Segment(("a", "b"), 1, tile),), edges={("a", "b"): home})


@pytest.mark.parametrize("tile", [None, Tile(1)])
def test_activation_traffic_lbl_and_fused(tile: Tile | None) -> None:
    # through DRAM: a writes 64 bits, b reads them back once (fused: its stream window keeps the two
    # halo columns, so no column is read twice); plus the input (1 x 16 x 2 = 32) and b's output (64)
    dram = check(PAIR, pair(tile, EdgeHome.DRAM)).traffic.per_operand_bits
    assert dram == {"W": 8 + 144, "I": 32 + 64, "O": 64 + 64, "V": 2 * 384}
    # on chip: the activation never crosses
    onchip = check(PAIR, pair(tile, EdgeHome.ONCHIP)).traffic.per_operand_bits
    assert onchip == {"W": 8 + 144, "I": 32, "O": 64, "V": 2 * 384}


def test_fused_holds_a_few_columns_where_lbl_holds_the_map() -> None:
    # ST-LBL, units: u0 a(t0), u1 b(t0), u2 a(t1), u3 b(t1). At u1: weights of a (8, resident u0..u2)
    # and b (144, u1..u3), a's kept state 384 (u0..u2), b's output window (4 rows x 2 ch = 8) and a's
    # whole map of t0 (32) = 576, the peak.
    assert check(PAIR, pair(None, EdgeHome.ONCHIP)).peak_bits == {"global_buffer": 576}
    # ST-F, one column (8 bits: 4 rows x 2 ch) per step; per timestep: a0 | a1 b0 | a2 b1 | a3 b2-3.
    # When b computes column j it reads a's columns j-1..j+1, so a keeps at most 3 columns (24 bits).
    # At b1 (t0): 152 weights + 384 state + a's input window 4 + b's output window 8 + 24 = 572.
    assert check(PAIR, pair(Tile(1), EdgeHome.ONCHIP)).peak_bits == {"global_buffer": 572}


# ---- three stateless 3-tap convs on a 1 x 6 map: halo recompute versus cache ----------------------
def tap3(name: str, c: int) -> Layer:
    return Layer(
        name,
        Op.CONV,
        Dims(T=1, K=8, C=c, OY=1, OX=6, FY=1, FX=3),
        window=Window(padding=(0, 1, 0, 1), input_yx=(1, 6)),
    )


# weights: a 8*1*3*4 = 96 bits, b and c 8*8*3*4 = 768 bits each; one column of output = 8 bits
CHAIN = Workload("chain", [tap3("a", 1), tap3("b", 8), tap3("c", 8)], [("a", "b"), ("b", "c")])


def chain(halo: Halo) -> Schedule:
    return Schedule((Segment(("a", "b", "c"), 1, Tile(1), halo),))


def test_halo_cache_by_hand() -> None:
    c = check(CHAIN, chain(Halo.CACHE))
    # every column computed once: a 6 x 8 x 3 = 144 accumulates, b and c 6 x 8 x 8 x 3 = 1152 each
    assert c.compute_pj == pytest.approx((144 + 1152 + 1152) * 0.07)
    # off chip: weights once (1632), the input once (6 bits), c's output once (48 bits)
    assert c.traffic.per_operand_bits == {"W": 1632, "I": 6, "O": 48, "V": 0}
    # units: a0 | a1 b0 | a2 b1 c0 | a3 b2 c1 | a4 b3 c2 | a5 b4-5 c3-5 (u0..u14). At u10 (b3): all
    # weights 1632 (a's stay until a5 = u12), a's input window 3 (1 row x 3 columns x 1 bit) and c's
    # output window 8, a's columns 2-4 (b3 reads 2-4; b4-5 will read 3-4: 24) and b's columns 1-3
    # (c2 reads 1-3: 24) = 1691, the peak. (At u13 a's weights and window are gone: 1600.)
    assert c.peak_bits == {"global_buffer": 1691}


def test_halo_recompute_by_hand() -> None:
    c = check(CHAIN, chain(Halo.RECOMPUTE))
    # a and b keep nothing; each step recomputes what the next layer reads at that step:
    #   step 2: a 0-2, b 0-1, c 0 | step 3: a 0-3, b 0-2, c 1 | step 4: a 0-4, b 1-3, c 2 |
    #   step 5: a 1-5, b 2-5, c 3-5   ->  a 17 columns, b 12, c 6
    assert c.compute_pj == pytest.approx((17 * 24 + 12 * 192 + 6 * 192) * 0.07)
    # a's input window holds one column's receptive field (3 columns), so a's growing boxes re-read
    # the rest: columns 0-3 (4), then 0 and 4 (2), then 0, 1, 5 (3), then 0, 1, 2 (3) = 12 bits
    assert c.traffic.per_operand_bits == {"W": 1632, "I": 12, "O": 48, "V": 0}
    # at b1-3 (step 4, u7): weights 1632, a's input window 3, c's output window 8, a's box 0-4 (40)
    # and b's box 1-3 (24) = 1707, the peak: recomputing holds whole boxes, not just the halo.
    assert c.peak_bits == {"global_buffer": 1707}


def test_recompute_never_applies_to_a_stateful_layer() -> None:
    w = Workload("chain", [conv("a", 1, 2, 4, t=2), conv("b", 2, 2, 4, t=2)], [("a", "b")])
    cache = check(w, Schedule((Segment(("a", "b"), 1, Tile(1), Halo.CACHE),)))
    recompute = check(w, Schedule((Segment(("a", "b"), 1, Tile(1), Halo.RECOMPUTE),)))
    assert recompute.compute_pj == cache.compute_pj and recompute.peak_bits == cache.peak_bits
