"""Mappings as plain data, and the reasons a bad mapping is rejected."""

from __future__ import annotations

import math
import pickle
from dataclasses import replace

import pytest
import yaml

from stems.cost import Mapping, price, price_batch
from stems.errors import StemsInputError
from stems.hardware import load_hardware
from stems.hardware.spec import Direction
from stems.workload.model import Dims, Layer, Neuron, Op, Precision, Window

TPU = load_hardware("tpu_like")
CONV = Layer(
    "conv",
    Op.CONV,
    Dims(K=128, C=64, OY=28, OX=28, FY=3, FX=3),
    precision=Precision(I=8, W=8, O=16, O_final=8),
    window=Window(stride=(2, 2), padding=(1, 1, 1, 1), input_yx=(56, 56)),
)
LOOPS = [("C", 2), ("FY", 3), ("FX", 3), ("OY", 28), ("OX", 28), ("K", 4)]
GOOD = Mapping.of(  # LOMA's mapping of ResNet-18 layer2.0.conv1 on tpu_like
    {"D1": {"K": 32}, "D2": {"C": 32}},
    LOOPS,
    {
        "W": {"rf_128B": 6, "dram": 6},
        "I": {"sram_2MB": 6, "dram": 6},
        "O": {"rf_2B": 3, "sram_2MB": 6, "dram": 6},
    },
)


def with_(base: Mapping = GOOD, **changes) -> Mapping:
    d = base.to_dict() | changes
    return Mapping.of(d["spatial"], d["temporal"], d["cuts"])


def test_equal_mappings_are_equal_whatever_the_dict_order() -> None:
    d = GOOD.to_dict()
    shuffled = Mapping.of(
        dict(reversed(d["spatial"].items())), d["temporal"], dict(reversed(d["cuts"].items()))
    )
    assert shuffled == GOOD and hash(shuffled) == hash(GOOD)


def test_plain_data_round_trip_through_yaml() -> None:
    text = yaml.safe_dump(GOOD.to_dict(), sort_keys=False)
    back = Mapping.from_dict(yaml.safe_load(text))
    assert back == GOOD and hash(back) == hash(GOOD)
    assert back.spatial_factor("K") == 32 and back.cuts_of("O") == (
        ("rf_2B", 3),
        ("sram_2MB", 6),
        ("dram", 6),
    )


def test_str_draws_the_nest_outermost_first_with_level_boundaries() -> None:
    text = str(GOOD)
    lines = text.splitlines()
    assert lines[0] == "spatial: D1{K:32}  D2{C:32}"
    assert lines[1] == "  == I@dram, W@dram, O@dram"
    assert lines.index("  -- O@rf_2B") == lines.index("  for OY in 28") + 1
    assert lines[-1] == "  for C in 2"


@pytest.mark.parametrize(
    "bad",
    [
        {"temporal": "C2"},
        {"spatial": {"D1": {"K": "32"}}, "temporal": [], "cuts": {}},
        {"cuts": {}, "temporal": [["C", 2.5]], "spatial": {}},
    ],
)
def test_from_dict_refuses_malformed_data_in_one_line(bad) -> None:
    with pytest.raises(StemsInputError) as err:
        Mapping.from_dict(bad, where="mappings.yaml: conv")
    assert "\n" not in str(err.value) and str(err.value).startswith("mappings.yaml: conv")


def test_good_mapping_is_valid() -> None:
    cost = price(CONV, TPU, GOOD)
    assert cost.valid and cost.reason == ""


def test_a_cost_pickles_whole_and_stays_read_only() -> None:
    """map_workload's workers send their Costs back pickled."""
    cost = price(CONV, TPU, GOOD)
    back = pickle.loads(pickle.dumps(cost))
    assert back == cost and back.traffic["W"]["rf_128B"].bits == cost.traffic["W"]["rf_128B"].bits
    with pytest.raises(TypeError):
        back.traffic["W"]["rf_128B"].bits[Direction.TO_LOW] = 0.0


@pytest.mark.parametrize(
    ("mapping", "reason"),
    [
        # capacity: O's 16-bit register cannot hold 28 partial sums (OY below its cut)
        (
            with_(cuts=GOOD.to_dict()["cuts"] | {"O": {"rf_2B": 4, "sram_2MB": 6, "dram": 6}}),
            "rf_2B overflows",
        ),
        (
            with_(
                temporal=[("OY", 28), ("OX", 28), ("C", 2), ("FY", 3), ("FX", 3), ("K", 4)],
                cuts={
                    "W": {"rf_128B": 6, "dram": 6},
                    "I": {"sram_2MB": 6, "dram": 6},
                    "O": {"rf_2B": 0, "sram_2MB": 6, "dram": 6},
                },
                spatial={"D1": {"K": 32}, "D2": {"C": 32}},
            ),
            "",
        ),
        (with_(temporal=[*LOOPS[:-1], ("K", 2)]), "temporal loops do not tile the layer: K 2 != 4"),
        (with_(temporal=[*LOOPS, ("K", 1)]), "temporal factors must be > 1"),
        (with_(temporal=[*LOOPS[:-1], ("Q", 4)]), "unknown loop(s) Q"),
        (with_(spatial={"D1": {"K": 32}, "D3": {"C": 32}}), "unknown array dimension D3"),
        (with_(spatial={"D1": {"C": 32}, "D2": {"K": 32}}), "loop C may not unroll on D1"),
        (with_(spatial={"D1": {"K": 64}, "D2": {"C": 32}}), "array dimension over-full: D1 64 > 32"),
        (
            with_(cuts=GOOD.to_dict()["cuts"] | {"W": {"sram_2MB": 6, "dram": 6}}),
            "cuts of W must name its levels rf_128B, dram innermost first, not sram_2MB, dram",
        ),
        (with_(cuts={k: v for k, v in GOOD.to_dict()["cuts"].items() if k != "I"}), "no cuts for operand I"),
        (
            with_(cuts=GOOD.to_dict()["cuts"] | {"O": {"rf_2B": 4, "sram_2MB": 3, "dram": 6}}),
            "must be non-decreasing",
        ),
        (with_(cuts=GOOD.to_dict()["cuts"] | {"I": {"sram_2MB": 6, "dram": 5}}), "must be non-decreasing"),
        (
            with_(cuts=GOOD.to_dict()["cuts"] | {"V": {"rf_2B": 0, "sram_2MB": 6, "dram": 6}}),
            "cuts for V, which this layer",
        ),
    ],
)
def test_bad_mappings_are_rejected_with_the_reason(mapping: Mapping, reason: str) -> None:
    cost = price(CONV, TPU, mapping)
    if not reason:  # a control: a valid reordering
        assert cost.valid, cost.reason
        return
    assert not cost.valid
    assert reason in cost.reason, cost.reason


def test_w_register_overflow_names_the_bits() -> None:
    mapping = with_(
        temporal=[("C", 2), ("FY", 3), ("FX", 3), ("K", 4), ("OY", 28), ("OX", 28)],
        cuts={
            "W": {"rf_128B": 4, "dram": 6},
            "I": {"sram_2MB": 6, "dram": 6},
            "O": {"rf_2B": 3, "sram_2MB": 6, "dram": 6},
        },
    )
    assert price(CONV, TPU, mapping).valid  # K4 x C2 x FY3 x FX3 = 72 weights = 576 of 1024 bits
    small = Layer(
        "c", Op.CONV, CONV.dims, precision=Precision(I=8, W=16, O=16, O_final=8), window=CONV.window
    )
    cost = price(small, TPU, mapping)  # 72 x 16 = 1152 > 1024
    assert not cost.valid
    assert cost.reason == "rf_128B overflows: tiles need 1152 bits (W 1152) of 1024"


def test_a_malformed_row_is_nan_and_does_not_spoil_the_batch() -> None:
    table = price_batch(CONV, TPU, [GOOD, with_(temporal=[("Q", 2)]), GOOD])
    assert table.valid.tolist() == [True, False, True]
    assert table.reasons[0] == "" and "unknown loop" in table.reasons[1]
    assert math.isnan(table.energy_pj[1]) and math.isnan(table.latency_cycles[1])
    assert table.energy_pj[0] == table.energy_pj[2] > 0


def test_partial_array_use_is_a_valid_spatial_factor() -> None:
    conv1 = Layer(
        "conv1",
        Op.CONV,
        Dims(K=64, C=3, OY=112, OX=112, FY=7, FX=7),
        precision=Precision(I=8, W=8, O=16, O_final=8),
        window=Window(stride=(2, 2), padding=(3, 3, 3, 3), input_yx=(224, 224)),
    )
    mapping = Mapping.of(  # C=3 on the 32-wide D2, as LOMA maps ResNet-18 conv1
        {"D1": {"K": 32}, "D2": {"C": 3}},
        [("FX", 7), ("FY", 7), ("OY", 16), ("OY", 7), ("OX", 112), ("K", 2)],
        {
            "W": {"rf_128B": 6, "dram": 6},
            "I": {"sram_2MB": 6, "dram": 6},
            "O": {"rf_2B": 2, "sram_2MB": 6, "dram": 6},
        },
    )
    cost = price(conv1, TPU, mapping)
    assert cost.valid, cost.reason
    assert cost.energy_pj == pytest.approx(128899782.592, rel=1e-12)  # zigzag-dse 3.9.1 on LOMA's run
    assert cost.latency_cycles == 1248163


def test_only_conv_and_dense_layers_are_priced() -> None:
    pool = Layer("pool", Op.MAXPOOL, Dims(G=4, OY=4, OX=4, FY=2, FX=2), window=Window(stride=(2, 2)))
    with pytest.raises(StemsInputError, match="prices conv and dense layers, not maxpool"):
        price(pool, TPU, GOOD)


def test_stateful_layers_need_cuts_for_v() -> None:
    dims = replace(CONV.dims, T=2)  # at T = 1 no state persists: the layer is priced as stateless
    snn = Layer("snn", Op.CONV, dims, precision=Precision(), window=CONV.window, neuron=Neuron.of("LIF"))
    cuts = {op: {**levels, "dram": 7} for op, levels in GOOD.to_dict()["cuts"].items()}
    mapping = Mapping.of({"D1": {"K": 32}, "D2": {"C": 32}}, [*LOOPS, ("T", 2)], cuts)
    cost = price(snn, TPU, mapping)
    assert not cost.valid and "no cuts for operand V (levels rf_2B, sram_2MB, dram)" in cost.reason


def test_shared_level_capacity_is_joint_and_double_buffering_doubles_partial_tiles() -> None:
    # I keeps C2 FY3 FX3 OY28 in the SRAM (OX and K above): a tile, not the whole input, while O's
    # SRAM tile is all of O. Shrink the SRAM to exactly what both need together.
    mapping = with_(cuts=GOOD.to_dict()["cuts"] | {"I": {"sram_2MB": 4, "dram": 6}})
    sram = next(o for o in price_batch(CONV, TPU, [mapping]).overflows if o.level == "sram_2MB")
    parts = {op: int(b[0]) for op, b in sram.parts}
    assert set(parts) == {"I", "O"}  # one joint budget for the operands sharing the level
    need = parts["I"] + parts["O"]
    exact = load_hardware("tpu_like", [f"sram_2MB.size={need}"])
    assert price(CONV, exact, mapping).valid
    assert not price(CONV, load_hardware("tpu_like", [f"sram_2MB.size={need - 1}"]), mapping).valid
    double = load_hardware("tpu_like", [f"sram_2MB.size={need}", "sram_2MB.double_buffered=true"])
    cost = price(CONV, double, mapping)
    assert not cost.valid
    # I's partial tile takes twice its size; O's tile is the whole output and is not doubled.
    assert f"(O {parts['O']}, I {2 * parts['I']}) of {need} (double-buffered)" in cost.reason


def test_recurrent_inputs_extend_the_reduction_of_a_dense_layer() -> None:
    rnn = Layer(
        "rnn",
        Op.DENSE,
        Dims(T=4, K=32, C=64),
        precision=Precision(I=1, W=8, O=16, O_final=1, V=12),
        neuron=Neuron.of("LIF"),
        recurrent_c=32,
    )
    mapping = Mapping.of(
        {"D1": {"K": 32}, "D2": {"C": 32}},
        [("C", 3), ("T", 4)],  # (64 + 32 recurrent) / 32 = 3
        {
            "W": {"rf_128B": 1, "dram": 2},
            "I": {"sram_2MB": 2, "dram": 2},
            "O": {"rf_2B": 1, "sram_2MB": 2, "dram": 2},
            "V": {"rf_2B": 1, "sram_2MB": 2, "dram": 2},
        },
    )
    cost = price(rnn, TPU, mapping)
    assert cost.valid, cost.reason
    assert cost.compute_pj == pytest.approx(0.04 * rnn.synaptic_ops)  # 4 x 32 x (64 + 32) operations
    assert cost.offchip_bytes["W"] * 8 == rnn.weights * 8
