"""NIR import on graphs built with the nir API: shapes, neurons, recurrence cycles, nesting, sums."""

from __future__ import annotations

from pathlib import Path

import fixture_truth
import nir
import numpy as np
import pytest

from stems.errors import StemsInputError
from stems.workload import Op, load_workload, totals


def lif(shape: tuple[int, ...]) -> nir.LIF:
    one, zero = np.ones(shape), np.zeros(shape)
    return nir.LIF(tau=one, r=one, v_leak=zero, v_threshold=one, v_reset=zero)


def cuba(shape: tuple[int, ...]) -> nir.CubaLIF:
    one, zero = np.ones(shape), np.zeros(shape)
    return nir.CubaLIF(tau_syn=one, tau_mem=one, r=one, v_leak=zero, v_threshold=one, v_reset=zero, w_in=one)


def write(tmp_path: Path, nodes: dict, edges: list[tuple[str, str]], name: str = "g.nir") -> Path:
    path = tmp_path / name
    nir.write(str(path), nir.NIRGraph(nodes=nodes, edges=edges))
    return path


def sinabs_like(tmp_path: Path) -> Path:
    """Conv2d -> IF -> SumPool2d -> Flatten -> Affine -> LIF, as sinabs' to_nir writes it."""
    nodes = {
        "input": nir.Input(input_type=np.array([2, 16, 16])),
        "0": nir.Conv2d(
            input_shape=(16, 16),
            weight=np.ones((4, 2, 3, 3)),
            stride=2,
            padding=1,
            dilation=1,
            groups=1,
            bias=np.zeros(4),
        ),
        "1": nir.IF(r=np.ones((4, 8, 8)), v_threshold=np.ones((4, 8, 8)), v_reset=np.zeros((4, 8, 8))),
        "2": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "3": nir.Flatten(input_type={"input": np.array([4, 4, 4])}, start_dim=0, end_dim=-1),
        "4": nir.Affine(weight=np.ones((10, 64)), bias=np.ones(10)),
        "5": lif((10,)),
        "output": nir.Output(output_type=np.array([10])),
    }
    edges = [("input", "0"), ("0", "1"), ("1", "2"), ("2", "3"), ("3", "4"), ("4", "5"), ("5", "output")]
    return write(tmp_path, nodes, edges)


def test_sinabs_like_graph(tmp_path: Path) -> None:
    w = load_workload(sinabs_like(tmp_path), timesteps=5)
    conv, pool, fc = list(w)
    assert (conv.op, pool.op, fc.op) == (Op.CONV, Op.SUMPOOL, Op.DENSE)
    assert conv.dims.as_dict() == {"T": 5, "B": 1, "G": 1, "K": 4, "C": 2, "OY": 8, "OX": 8, "FY": 3, "FX": 3}
    assert conv.window.stride == (2, 2) and conv.neuron.model == "IF"
    assert fc.neuron.model == "LIF" and fc.has_bias
    t = totals(w)
    assert (t["conv_layers"], t["linear_layers"], t["neuron_layers"], t["timesteps"]) == (1, 1, 2, 5)
    assert t["weights"] == 4 * 2 * 9 + 640 and t["neurons"] == 4 * 8 * 8 + 10
    assert w.source.format == "nir" and len(w.source.sha256) == 64


def test_missing_timesteps_warns(tmp_path: Path) -> None:
    w = load_workload(sinabs_like(tmp_path))
    assert w.timesteps == 1 and any("--timesteps" in m for m in w.warnings)


def test_recurrent_cycle_becomes_recurrent_weights(tmp_path: Path) -> None:
    """snntorch RLeaky exported through nirtorch: ('3','4.lif'), ('4.lif','4.w_rec'), ('4.w_rec','4.lif')."""
    nodes = {
        "input": nir.Input(input_type=np.array([20])),
        "3": nir.Affine(weight=np.ones((16, 20)), bias=np.zeros(16)),
        "4.lif": lif((16,)),
        "4.w_rec": nir.Affine(weight=np.ones((16, 16)), bias=np.zeros(16)),
        "5": nir.Linear(weight=np.ones((4, 16))),
        "output": nir.Output(output_type=np.array([4])),
    }
    edges = [
        ("input", "3"),
        ("3", "4.lif"),
        ("4.lif", "4.w_rec"),
        ("4.w_rec", "4.lif"),
        ("4.lif", "5"),
        ("5", "output"),
    ]
    w = load_workload(write(tmp_path, nodes, edges), timesteps=3)
    assert [x.name for x in w] == ["3", "5"]
    rec = w.layer("3")
    assert rec.recurrent_c == 16 and rec.weights == 16 * 20 + 16 * 16 and rec.stateful
    assert "4.w_rec" in rec.sources
    assert totals(w)["recurrent_layers"] == 1


def test_cubalif_has_two_state_variables_and_sums_become_adds(tmp_path: Path) -> None:
    nodes = {
        "input": nir.Input(input_type=np.array([8])),
        "a": nir.Linear(weight=np.ones((6, 8))),
        "b": nir.Linear(weight=np.ones((6, 8))),
        "n": cuba((6,)),
        "output": nir.Output(output_type=np.array([6])),
    }
    edges = [("input", "a"), ("input", "b"), ("a", "n"), ("b", "n"), ("n", "output")]
    w = load_workload(write(tmp_path, nodes, edges), timesteps=2)
    add = w.layer("n.sum")
    assert add.op is Op.ADD and add.neuron.model == "CubaLIF" and add.neuron.n_state == 2
    assert sorted(w.predecessors("n.sum")) == ["a", "b"]
    assert add.state_bits == 6 * 2 * 12


def test_nested_graph_is_flattened(tmp_path: Path) -> None:
    inner = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([8])),
            "fc": nir.Affine(weight=np.ones((8, 8)), bias=np.zeros(8)),
            "lif": lif((8,)),
            "output": nir.Output(output_type=np.array([8])),
        },
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")],
    )
    nodes = {
        "input": nir.Input(input_type=np.array([4])),
        "pre": nir.Linear(weight=np.ones((8, 4))),
        "block": inner,
        "post": nir.Linear(weight=np.ones((2, 8))),
        "output": nir.Output(output_type=np.array([2])),
    }
    edges = [("input", "pre"), ("pre", "block"), ("block", "post"), ("post", "output")]
    w = load_workload(write(tmp_path, nodes, edges), timesteps=2)
    assert [x.name for x in w] == ["pre", "block.fc", "post"]
    assert w.layer("block.fc").block == "block" and w.layer("block.fc").neuron.model == "LIF"
    assert w.edges == [("pre", "block.fc"), ("block.fc", "post")]


def test_bad_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.nir"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(StemsInputError, match="not a readable NIR file") as err:
        load_workload(junk)
    assert err.value.path == str(junk)
    nodes = {
        "input": nir.Input(input_type=np.array([4])),
        "n": lif((4,)),
        "output": nir.Output(output_type=np.array([4])),
    }
    with pytest.raises(StemsInputError, match="no synaptic layer") as err:
        load_workload(write(tmp_path, nodes, [("input", "n"), ("n", "output")]))
    assert err.value.where == "n"


@pytest.mark.parametrize("name", fixture_truth.names(".nir"))
def test_torch_made_nir_fixtures_match_ground_truth(name: str) -> None:
    w = load_workload(fixture_truth.FIXTURES / name, timesteps=4)
    fixture_truth.assert_matches_truth(w, fixture_truth.TRUTH[name])
