"""ONNX importer against real torch-made fixtures: every count equals the ground truth in fixtures.json.

The ground truth is computed from the torch modules by `tests/fixtures/make_fixtures.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from stems.workload import totals
from stems.workload.onnx_import import import_onnx

FIXTURES = Path(__file__).parent / "fixtures"
_TRUTH = json.loads((FIXTURES / "fixtures.json").read_text())["fixtures"]
ONNX_FIXTURES = sorted(name for name, entry in _TRUTH.items() if entry["format"] == "onnx")


@pytest.mark.parametrize("fname", ONNX_FIXTURES)
def test_fixture_counts(fname: str) -> None:
    truth = _TRUTH[fname]
    w = import_onnx(FIXTURES / fname)
    tot = totals(w)
    for key in ("conv_layers", "linear_layers", "neuron_layers", "weights"):
        assert tot[key] == truth[key], key
    assert w.timesteps == truth["T"]
    assert w.source.exporter == truth["exporter"]
    spiking = [x for x in w if x.neuron is not None and x.neuron.spiking]
    assert len(spiking) == truth["spiking_neuron_layers"]
    by_module = {x.neuron.module: x for x in w if x.neuron is not None}
    assert sorted(by_module) == sorted(n["name"] for n in truth["neurons"])
    for n in truth["neurons"]:
        layer = by_module[n["name"]]
        assert list(layer.neuron.state_vars) == n["state_vars"], n["name"]
        assert layer.neuron.spiking == n["spiking"], n["name"]
        assert (layer.recurrent_c > 0) == n["recurrent"], n["name"]
        assert layer.neurons == n["neurons_per_step"], n["name"]
        if layer.neuron.source_class:  # dynamo metadata names the class; TorchScript has none
            assert layer.neuron.source_class.rsplit(".", 1)[-1] == n["class"], n["name"]
    for rec in truth["recurrent_layers"]:
        layer = by_module[rec["name"]]
        assert layer.recurrent_c * layer.dims.G * layer.dims.K == rec["recurrent_weights"]
    assert all(x.dims.B == 1 for x in w)


def test_fixture_details() -> None:
    """Shapes the counts alone do not pin down."""
    sew = import_onnx(FIXTURES / "sj_sew_T4_dynamo.onnx")
    assert sorted(sew.predecessors("block")) == ["block.conv2", "conv"]  # SEW ADD of two spike tensors
    assert sew.layer("block.conv1").block == "block" and sew.layer("conv").block == "conv"
    assert (sew.layer("block.conv2").dims.G, sew.layer("block.conv2").dims.C) == (4, 1)  # depthwise
    unet = import_onnx(FIXTURES / "sj_concat_resize_T2_dynamo.onnx")
    assert unet.predecessors("cat") == ["up", "enc"] and unet.layer("up").window.input_yx == (4, 4)
    sinabs = import_onnx(FIXTURES / "sinabs_iaf_T4_ts.onnx")
    assert [x.op.value for x in sinabs] == ["conv", "sumpool", "dense"]
    assert sinabs.layer("0").neuron.model == "IF" and not sinabs.layer("4").has_bias
    ann = import_onnx(FIXTURES / "ann_relu_dynamo.onnx")
    assert ann.layer("0").has_bias and all(x.neuron is None for x in ann)  # BN fused by the exporter
    lmu = import_onnx(FIXTURES / "lmu_T4_dynamo.onnx")
    assert lmu.layer("mem").neuron.model == "LinearMemory" and lmu.layer("mem").dims.C == 3
    norse = import_onnx(FIXTURES / "norse_lif_conv_step_dynamo.onnx", timesteps=8)
    assert norse.timesteps == 8 and norse.layer("conv").window.stride == (2, 2)


@pytest.mark.parametrize("fname", ONNX_FIXTURES)
def test_fixture_structure_alone(tmp_path: Path, fname: str) -> None:
    """Without metadata and with meaningless node names, structure alone gives the same network."""
    model = onnx.load(str(FIXTURES / fname))
    for k, node in enumerate(model.graph.node):
        del node.metadata_props[:]
        node.name = f"n{k}"
    onnx.save(model, str(tmp_path / fname))
    plain, full = import_onnx(tmp_path / fname), import_onnx(FIXTURES / fname)
    assert plain.source.exporter == ""
    for key in ("conv_layers", "linear_layers", "neuron_layers", "weights", "neurons", "state_bits"):
        assert totals(plain)[key] == totals(full)[key], key
    assert plain.timesteps == full.timesteps
    for a, b in zip(plain, full, strict=True):
        assert (a.op, a.dims, a.recurrent_c) == (b.op, b.dims, b.recurrent_c), b.name
        if b.neuron is None:
            assert a.neuron is None, b.name
        else:
            assert (a.neuron.model, a.neuron.n_state) == (b.neuron.model, b.neuron.n_state), b.name
