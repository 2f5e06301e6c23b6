"""The workload model: counts, validation and read-only graph."""

from __future__ import annotations

import pytest
from helpers import conv, sew_block

from stems.errors import StemsInputError
from stems.workload import Dims, Layer, Neuron, Op, Precision, Workload, totals
from stems.workload.model import Window


def test_conv_counts_by_hand() -> None:
    layer = conv("c", c=4, k=8, size=6, t=3)  # 3x3 kernel
    assert layer.weights == 8 * 4 * 3 * 3
    assert layer.neurons == 8 * 6 * 6
    assert layer.state_bits == 8 * 6 * 6 * 1 * 12  # one state variable, 12 bits
    assert layer.synaptic_ops == 3 * 8 * 6 * 6 * 4 * 3 * 3
    assert layer.input_elements_per_step == 4 * 6 * 6


def test_two_state_variables_double_the_state() -> None:
    one = conv("c", 4, 8, 6, neuron="LIF")
    two = conv("c", 4, 8, 6, neuron="CubaLIF")
    assert two.state_bits == 2 * one.state_bits


def test_stateless_neuron_keeps_spiking_but_no_state() -> None:
    layer = conv("c", 4, 8, 6)
    off = Layer(**{**layer.__dict__, "neuron": Neuron.of("LIF", stateful=False)})
    assert off.neurons == layer.neurons and off.state_bits == 0 and not off.stateful


def test_recurrent_weights_are_counted() -> None:
    dense = Layer("r", Op.DENSE, Dims(T=4, K=64, C=512), neuron=Neuron.of("CubaLIF"), recurrent_c=64)
    assert dense.weights == 64 * 512 + 64 * 64
    assert dense.synaptic_ops == 4 * 64 * (512 + 64)


def test_depthwise_conv_uses_groups() -> None:
    dw = Layer(
        "dw", Op.CONV, Dims(G=16, K=1, C=1, OY=4, OX=4, FY=3, FX=3), window=Window(padding=(1, 1, 1, 1))
    )
    assert dw.weights == 16 * 9 and dw.input_elements_per_step == 16 * 4 * 4


def test_strided_conv_with_unread_rows_needs_input_size() -> None:
    # 12 rows, 3x3 stride 2 pad 1 -> 6 outputs that read only 11 rows.
    no_size = Layer("s", Op.CONV, Dims(OY=6, OX=6, FY=3, FX=3), window=Window((2, 2), (1, 1, 1, 1)))
    assert no_size.input_elements_per_step == 11 * 11
    sized = Layer(
        "s", Op.CONV, Dims(OY=6, OX=6, FY=3, FX=3), window=Window((2, 2), (1, 1, 1, 1), input_yx=(12, 12))
    )
    assert sized.input_elements_per_step == 144


def test_sew_block_totals() -> None:
    w = sew_block(t=2)
    t = totals(w)
    assert t["conv_layers"] == 3 and t["linear_layers"] == 1 and t["neuron_layers"] == 3
    assert t["weights"] == 2 * 4 + 4 * 4 * 9 * 2 + 64 * 10
    assert t["neurons"] == 3 * 4 * 64
    assert t["timesteps"] == 2
    assert [x.name for x in w] == ["c0", "c1", "c2", "add", "pool", "flat", "fc"]


@pytest.mark.parametrize(
    ("layers", "edges", "message"),
    [
        ([conv("a", 2, 4, 8), conv("a", 2, 4, 8)], [], "duplicate layer name"),
        ([conv("a", 2, 4, 8)], [("a", "b")], "names no layer"),
        ([conv("a", 4, 4, 8), conv("b", 4, 4, 8)], [("a", "b"), ("b", "a")], "cycle"),
        ([conv("a", 2, 4, 8, t=2), conv("b", 4, 4, 8, t=3)], [("a", "b")], "timesteps"),
        ([conv("a", 2, 4, 8), conv("b", 5, 4, 8)], [("a", "b")], "element counts"),
        ([], [], "no layers"),
    ],
)
def test_invalid_graphs_are_rejected(layers: list[Layer], edges: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(StemsInputError, match=message):
        Workload("bad", layers, edges)


def test_invalid_values_are_rejected() -> None:
    with pytest.raises(ValueError, match="positive"):
        Layer("x", Op.CONV, Dims(K=0))
    with pytest.raises(ValueError, match="1 to 32"):
        Precision(W=33)
    with pytest.raises(ValueError, match="dense"):
        Layer("d", Op.DENSE, Dims(OY=2))


def test_graph_is_read_only_and_replace_revalidates() -> None:
    w = sew_block()
    with pytest.raises(Exception, match=r"[Ff]rozen"):
        w.graph.add_node("x")
    w4 = w.with_timesteps(4)
    assert w4.timesteps == 4 and w.timesteps == 2
    assert totals(w4)["accumulates"] == 2 * totals(w)["accumulates"]
