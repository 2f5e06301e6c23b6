"""ONNX importer: the shared corpus of real exports, then small hand-built graphs of every exporter shape.

The corpus tests compare with `shared/corpus/corpus_stats.json` (counts computed from the torch
modules) and with neuron counts derived from the module definitions in `make_corpus.py`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper
from onnx_builders import (
    CONV2D,
    IF_NODE,
    LIF_NODE,
    SEQUENTIAL,
    GraphBuilder,
    State,
    if_hard_reset,
    leaky,
    stack,
    step_input,
    synaptic,
)

from stems.cli import main
from stems.errors import StemsInputError
from stems.workload import Op, Workload, totals
from stems.workload.onnx_import import import_onnx


def _shared() -> Path:
    env = os.environ.get("STEMS_SHARED")
    return Path(env) if env else Path(__file__).parents[2] / "shared"


CORPUS = _shared() / "corpus"
VGG = "sj_vgg11_T4_dynamo.onnx"
SNNTORCH = "snntorch_convnet_T8_ts.onnx"
NORSE = "norse_lif_step_dynamo.onnx"
# Neurons per timestep of each neuron module, from the module definitions in make_corpus.py.
NEURONS_PER_STEP = {
    VGG: {
        "features.2": 64 * 32 * 32, "features.6": 128 * 16 * 16, "features.10": 256 * 8 * 8,
        "features.13": 256 * 8 * 8, "features.17": 512 * 4 * 4, "features.20": 512 * 4 * 4,
        "features.24": 512 * 2 * 2, "features.27": 512 * 2 * 2, "classifier.2": 512,
    },
    SNNTORCH: {"lif1": 12 * 12 * 12, "lif2": 64 * 4 * 4, "lif3": 10},  # after each max-pool
    NORSE: {"lif1": 8 * 8 * 8, "rlif": 64, "lif2": 10},
}  # fmt: skip

needs_corpus = pytest.mark.skipif(
    not (CORPUS / "corpus_stats.json").is_file(),
    reason=f"SKIPPED LOUDLY: the shared corpus is missing at {CORPUS} (set STEMS_SHARED to the shared/ folder)",
)


def neurons_by_module(w: Workload) -> dict[str, object]:
    return {x.neuron.module: x for x in w if x.neuron is not None}


# =========================================================================== the corpus
@needs_corpus
@pytest.mark.parametrize("fname", [VGG, SNNTORCH, NORSE])
def test_corpus_counts(fname: str) -> None:
    stats = json.loads((CORPUS / "corpus_stats.json").read_text())[fname]
    w = import_onnx(CORPUS / fname)
    tot = totals(w)
    assert tot["conv_layers"] == stats["conv_layers"]
    assert tot["linear_layers"] == stats["linear_layers"]
    assert tot["neuron_layers"] == stats["neuron_layers"]
    assert tot["weights"] == stats["weights"]
    assert w.timesteps == stats["T"]
    by_module = neurons_by_module(w)
    assert sorted(by_module) == sorted(n["name"] for n in stats["neurons"])
    for n in stats["neurons"]:
        layer = by_module[n["name"]]
        assert list(layer.neuron.state_vars) == n["state_vars"], n["name"]
        assert (layer.recurrent_c > 0) == n["recurrent"], n["name"]
        assert layer.neurons == NEURONS_PER_STEP[fname][n["name"]], n["name"]
        if w.source.exporter == "dynamo":
            assert layer.neuron.source_class.endswith("." + n["class"])
    for rec in stats["recurrent_layers"]:
        layer = by_module[rec["name"]]
        assert layer.recurrent_c * layer.dims.G * layer.dims.K == rec["recurrent_weights"]
    assert {x.dims.B for x in w} == {1}
    assert {x.dims.T for x in w} == {stats["T"]}


@needs_corpus
def test_corpus_structure_details() -> None:
    vgg = import_onnx(CORPUS / VGG)
    first = vgg.layer("features.0")
    assert first.has_bias  # BatchNorm folded in (the conv itself has no bias)
    assert "node__native_batch_norm_legit_no_training__0" in first.sources
    assert [x.name for x in vgg if x.op is Op.MAXPOOL] == [f"features.{i}" for i in (3, 7, 14, 21, 28)]
    assert vgg.predecessors("classifier.1") == ["features.28"]  # the Flatten is elided
    snn = import_onnx(CORPUS / SNNTORCH)
    assert snn.source.exporter == "torchscript" and snn.source.library == "snntorch"
    conv1 = snn.layer("conv1")
    assert conv1.neuron is None and len([s for s in conv1.sources if s.endswith("/Conv")]) == 8
    assert snn.successors("conv1") == ["MaxPool"] and snn.layer("MaxPool").neuron.module == "lif1"
    norse = import_onnx(CORPUS / NORSE, timesteps=10)
    assert norse.timesteps == 10 and not norse.warnings
    rlif = norse.layer("rlif")
    assert (rlif.op, rlif.dims.C, rlif.dims.K, rlif.recurrent_c) == (Op.DENSE, 512, 64, 64)
    assert norse.layer("conv").window.input_yx == (16, 16)  # stride 2 leaves the last row unread


@needs_corpus
@pytest.mark.parametrize("fname", [VGG, SNNTORCH, NORSE])
def test_inspect_json_reports_corpus_counts(fname: str) -> None:
    stats = json.loads((CORPUS / "corpus_stats.json").read_text())[fname]
    result = CliRunner().invoke(main, ["inspect", str(CORPUS / fname), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)["totals"]
    for key in ("conv_layers", "linear_layers", "neuron_layers", "weights"):
        assert got[key] == stats[key], key
    assert got["timesteps"] == stats["T"]


# =========================================================================== exporter shapes
def ts(module: str, t: int) -> str:
    """TorchScript scope of a module's t-th call: `/lif1`, `/lif1_1`, ..."""
    return f"/{module}" if t == 0 else f"/{module}_{t}"


def unrolled_convnet(tmp_path: Path, steps: int = 3, torchscript: bool = False) -> Path:
    """snntorch style, time loop unrolled in forward: x[t] -> conv1 -> max-pool -> lif1 -> flatten
    -> fc1 -> lif2, every module called once per step, weights shared; outputs stacked over T."""
    b = GraphBuilder()
    x = b.input("x", [steps, 1, 1, 6, 6])
    w1, b1 = b.weight("conv1.weight", [4, 1, 3, 3]), b.weight("conv1.bias", [4])
    w2, b2 = b.weight("fc1.weight", [5, 16]), b.weight("fc1.bias", [5])
    beta1, thr1 = b.const(0.9, "lif1.beta"), b.const(1.0, "lif1.threshold")
    beta2, thr2 = b.const(0.8, "lif2.beta"), b.const(0.5, "lif2.threshold")
    s1, s2, outs = State(), State(), []
    for t in range(steps):
        with b.scope(ts="/" if torchscript else ""):
            xt = step_input(b, x, t)
        with b.scope(ts=ts("conv1", t) if torchscript else ""):
            c = b.op("Conv", [xt, w1, b1], kernel_shape=[3, 3])
        with b.scope(ts="/" if torchscript else ""):
            p = b.op("MaxPool", [c], kernel_shape=[2, 2], strides=[2, 2])
        with b.scope(ts=ts("lif1", t) if torchscript else ""):
            spk1 = leaky(b, p, s1, beta1, thr1)
        with b.scope(ts="/" if torchscript else ""):
            flat = b.op("Flatten", [spk1], axis=1)
        with b.scope(ts=ts("fc1", t) if torchscript else ""):
            f = b.op("Gemm", [flat, w2, b2], transB=1)
        with b.scope(ts=ts("lif2", t) if torchscript else ""):
            outs.append(leaky(b, f, s2, beta2, thr2))
    b.output(stack(b, outs), "spk_rec")
    return b.save(tmp_path / ("ts.onnx" if torchscript else "unrolled.onnx"))


def test_unrolled_per_step(tmp_path: Path) -> None:
    w = import_onnx(unrolled_convnet(tmp_path))
    conv, pool, fc = list(w)
    assert (conv.op, pool.op, fc.op) == (Op.CONV, Op.MAXPOOL, Op.DENSE)
    assert w.timesteps == 3 and all(x.dims.T == 3 and x.dims.B == 1 for x in w)
    assert conv.name == "conv1" and fc.name == "fc1"  # from the state_dict weight names
    assert conv.neuron is None and pool.neuron is not None and fc.neuron is not None  # lif1 reads the pool
    assert pool.neurons == 4 * 2 * 2 and fc.neurons == 5
    assert pool.neuron.model == "LIF" and pool.neuron.n_state == 1  # structure: one state, a leak
    assert sum(s.startswith("node_conv") for s in conv.sources) == 3  # the three copies
    assert totals(w)["weights"] == 4 * 9 + 5 * 16
    assert w.edges == [(conv.name, pool.name), (pool.name, fc.name)]


def test_torchscript_names_without_metadata(tmp_path: Path) -> None:
    w = import_onnx(unrolled_convnet(tmp_path, steps=4, torchscript=True))
    assert w.source.exporter == "torchscript" and w.source.library == "snntorch"
    assert w.timesteps == 4
    by_module = neurons_by_module(w)
    assert sorted(by_module) == ["lif1", "lif2"]  # `/lif1_3/...` is lif1's fourth step
    assert by_module["lif1"].neuron.state_vars == ("mem",)  # lif1.beta + lif1.threshold: snntorch Leaky
    assert by_module["lif2"].name == "fc1" and by_module["lif2"].neuron.source_class == ""


def test_time_folded_batch(tmp_path: Path) -> None:
    """spikingjelly multi-step: Conv/BN/pool/Linear run once on T*B; the neuron loop unbinds T."""
    steps, batch = 3, 2
    b = GraphBuilder()
    x = b.input("x_seq", [steps, batch, 2, 6, 6])
    w = b.weight("conv.weight", [4, 2, 3, 3])
    bn = [b.weight(f"bn.{p}", [4]) for p in ("weight", "bias", "running_mean")]
    var = b.const(np.ones(4), "bn.running_var")
    thr = b.const(1.0)

    def neuron(y: str, scope: str, cls: str) -> str:
        with b.scope(dyn=((scope, cls),)):
            st = State()
            spikes = [
                if_hard_reset(b, b.op("Gather", [y, b.const(np.array(t))], axis=0), st, thr)
                for t in range(steps)
            ]
            return stack(b, spikes)

    with b.scope(dyn=(("conv", CONV2D),)):
        c = b.op(
            "Conv",
            [b.op("Reshape", [x, b.const([steps * batch, 2, 6, 6])]), w],
            kernel_shape=[3, 3],
            pads=[1] * 4,
        )
    with b.scope(dyn=(("bn", "torch.nn.modules.batchnorm.BatchNorm2d"),)):
        y = b.op("Reshape", [b.op("BatchNormalization", [c, *bn, var]), b.const([steps, batch, 4, 6, 6])])
    s = neuron(y, "sn", IF_NODE)
    with b.scope(dyn=(("pool", "torch.nn.modules.pooling.MaxPool2d"),)):
        p = b.op(
            "MaxPool",
            [b.op("Reshape", [s, b.const([steps * batch, 4, 6, 6])])],
            kernel_shape=[2, 2],
            strides=[2, 2],
        )
    with b.scope(dyn=(("fc", "torch.nn.modules.linear.Linear"),)):
        flat = b.op("Reshape", [p, b.const([steps, batch, 36])])
        f = b.op("Add", [b.op("MatMul", [flat, b.weight("val_12", [36, 5])]), b.weight("fc.bias", [5])])
    b.output(neuron(f, "sn_out", LIF_NODE), "out")
    w = import_onnx(b.save(tmp_path / "sj.onnx"))
    conv, pool, fc = list(w)
    assert w.timesteps == steps and {x.dims.B for x in w} == {batch}  # T*B divided back out
    assert conv.has_bias and conv.neuron.module == "sn" and conv.neuron.model == "IF"
    assert conv.neuron.source_class == IF_NODE and conv.neurons == batch * 4 * 6 * 6
    assert (fc.name, fc.dims.C, fc.dims.K, fc.has_bias) == ("fc", 36, 5, True)  # renamed MatMul weight
    assert fc.neuron.model == "LIF" and fc.neuron.state_vars == ("v",)
    assert (pool.op, pool.dims.G, pool.dims.OY) == (Op.MAXPOOL, 4, 3)


def fc_chain(tmp_path: Path, neuron: str, steps: int = 3) -> Path:
    """x[t] -> fc1 -> neuron -> fc2 -> neuron, plain node names, no metadata."""
    b = GraphBuilder()
    x = b.input("x", [steps, 1, 10])
    w1, w2 = b.weight("fc1.weight", [8, 10]), b.weight("fc2.weight", [3, 8])
    a, beta, thr = b.const(0.8), b.const(0.9), b.const(1.0)
    states, outs = [State(), State()], []
    for t in range(steps):
        h = step_input(b, x, t)
        for wt, st in ((w1, states[0]), (w2, states[1])):
            cur = b.op("Gemm", [h, wt], transB=1)
            h = synaptic(b, cur, st, a, beta, thr) if neuron == "synaptic" else leaky(b, cur, st, beta, thr)
        outs.append(h)
    b.output(stack(b, outs), "spk")
    return b.save(tmp_path / f"{neuron}.onnx")


def test_two_state_variables(tmp_path: Path) -> None:
    w = import_onnx(fc_chain(tmp_path, "synaptic"))
    for layer in w:
        assert layer.neuron.model == "CubaLIF" and layer.neuron.n_state == 2  # syn and mem carried over
    assert totals(w)["state_bits"] == (8 + 3) * 2 * 12


def norse_step(tmp_path: Path) -> Path:
    """norse style, one step, every state an input and an output: conv -> LIF (v, i) -> recurrent LIF."""
    b = GraphBuilder()
    x = b.input("x", [1, 2, 6, 6])
    states = {n: b.input(n, s) for n, s in (("lif_v", [1, 4, 3, 3]), ("lif_i", [1, 4, 3, 3]))}
    states |= {n: b.input(n, [1, 8]) for n in ("rlif_z", "rlif_v", "rlif_i")}
    c1, c2, thr, one, zero = b.const(0.1), b.const(-0.2), b.const(1.0), b.const(1.0), b.const(0.0)

    def cell(cur: str, v: str, i: str) -> tuple[str, str, str]:
        i_j = b.op("Add", [i, cur])
        v_dec = b.op("Add", [v, b.op("Mul", [c1, b.op("Add", [b.op("Sub", [zero, v]), i_j])])])
        i_out = b.op("Add", [i_j, b.op("Mul", [c2, i_j])])
        z = b.op("Cast", [b.op("Greater", [b.op("Sub", [v_dec, thr]), zero])], to=TensorProto.FLOAT)
        v_out = b.op("Add", [b.op("Mul", [b.op("Sub", [one, z]), v_dec]), b.op("Mul", [z, zero])])
        return z, v_out, i_out

    conv = b.op(
        "Conv", [x, b.weight("conv.weight", [4, 2, 3, 3])], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4
    )
    z1, v1, i1 = cell(conv, states["lif_v"], states["lif_i"])
    flat = b.op("Reshape", [z1, b.const([1, 36])])
    cur = b.op("Add", [
        b.op("Gemm", [flat, b.weight("rlif.input_weights", [8, 36])], transB=1),
        b.op("Gemm", [states["rlif_z"], b.weight("rlif.recurrent_weights", [8, 8])], transB=1),
    ])  # fmt: skip
    z2, v2, i2 = cell(cur, states["rlif_v"], states["rlif_i"])
    for tensor, name in ((z2, "spikes"), (v1, "lif_v_out"), (i1, "lif_i_out"), (z2, "rlif_z_out")):
        b.output(tensor, name)
    b.output(v2, "rlif_v_out")
    b.output(i2, "rlif_i_out")
    return b.save(tmp_path / "norse.onnx")


def test_explicit_state_inputs(tmp_path: Path) -> None:
    path = norse_step(tmp_path)
    w = import_onnx(path)
    assert w.timesteps == 1 and any("--timesteps" in m for m in w.warnings)
    w = import_onnx(path, timesteps=6)
    assert w.timesteps == 6 and not w.warnings
    conv, rlif = list(w)
    assert conv.neuron.model == "CubaLIF" and conv.neuron.state_vars == ("lif_v", "lif_i")
    assert (rlif.dims.C, rlif.dims.K, rlif.recurrent_c) == (36, 8, 8)  # the Gemm on rlif_z is recurrent
    assert rlif.neuron.state_vars == ("rlif_v", "rlif_i") and rlif.weights == 8 * (36 + 8)
    assert w.inputs == {"x": (1, 2, 6, 6)}
    assert conv.window.input_yx == (6, 6) and conv.window.stride == (2, 2)


def test_rleaky_recurrence(tmp_path: Path) -> None:
    """snntorch RLeaky: the previous step's spikes go through a recurrent Gemm into this step's current."""
    steps = 4
    b = GraphBuilder()
    x = b.input("x", [steps, 1, 4])
    w1, wr, br, w2 = (b.weight(n, s) for n, s in (("fc1.weight", [6, 4]), ("rlif1.recurrent.weight", [6, 6]),
                                                  ("rlif1.recurrent.bias", [6]), ("fc2.weight", [3, 6])))  # fmt: skip
    beta, thr = b.const(0.9), b.const(1.0)
    s1, s2, outs = State(), State(), []
    for t in range(steps):
        cur = b.op("Gemm", [step_input(b, x, t), w1], transB=1)
        if t:  # at step 0 the previous spikes are the zero initial state (folded away)
            cur = b.op("Add", [cur, b.op("Gemm", [s1.values["spk"], wr, br], transB=1)])
        spk = leaky(b, cur, s1, beta, thr)
        outs.append(leaky(b, b.op("Gemm", [spk, w2], transB=1), s2, beta, thr))
    b.output(stack(b, outs), "spk")
    w = import_onnx(b.save(tmp_path / "rleaky.onnx"))
    fc1, fc2 = list(w)
    assert (fc1.name, fc1.recurrent_c, fc1.dims.C, fc1.dims.K) == ("fc1", 6, 4, 6)
    assert fc1.neuron.model == "LIF" and fc2.recurrent_c == 0
    assert totals(w)["linear_layers"] == 2 and totals(w)["weights"] == 6 * (4 + 6) + 3 * 6
    assert sum("gemm" in s for s in fc1.sources) == steps + steps - 1  # feed-forward + recurrent copies
    assert w.edges == [("fc1", "fc2")]


def test_lmu_linear_memory_feeds_spiking_layer(tmp_path: Path) -> None:
    """m_t = A m_(t-1) + B u_t, non-spiking and recurrent, then fc -> Leaky."""
    steps = 4
    b = GraphBuilder()
    u = b.input("u", [steps, 1, 3])
    wa, wb, wf = b.weight("mem.A", [6, 6]), b.weight("mem.B", [6, 3]), b.weight("fc.weight", [4, 6])
    beta, thr = b.const(0.9), b.const(0.5)
    st, m, outs = State(), "", []
    for t in range(steps):
        bu = b.op("Gemm", [step_input(b, u, t), wb], transB=1)
        m = b.op("Add", [b.op("Gemm", [m, wa], transB=1), bu]) if m else bu
        outs.append(leaky(b, b.op("Gemm", [m, wf], transB=1), st, beta, thr))
    b.output(stack(b, outs), "spk")
    w = import_onnx(b.save(tmp_path / "lmu.onnx"))
    mem, fc = list(w)
    assert mem.name == "mem" and (mem.dims.C, mem.dims.K, mem.recurrent_c) == (3, 6, 6)
    assert mem.neuron.model == "LinearMemory" and not mem.neuron.spiking and mem.stateful
    assert fc.neuron.model == "LIF" and fc.neuron.spiking
    assert totals(w)["neuron_layers"] == 2 and totals(w)["weights"] == 6 * (3 + 6) + 4 * 6
    assert w.edges == [("mem", "fc")]


# =========================================================================== structure
def test_relu_ann_is_stateless_single_step(tmp_path: Path) -> None:
    b = GraphBuilder()
    x = b.input("x", [1, 3, 8, 8])
    bn = [b.weight(f"bn.{p}", [4]) for p in ("weight", "bias", "running_mean")]
    c = b.op("Conv", [x, b.weight("0.weight", [4, 3, 3, 3])], kernel_shape=[3, 3], pads=[1] * 4)
    bn_out = b.op("BatchNormalization", [c, *bn, b.const(np.ones(4))])
    y = b.op("MaxPool", [b.op("Relu", [bn_out])], kernel_shape=[2, 2], strides=[2, 2])
    y = b.op(
        "Conv",
        [y, b.weight("4.weight", [8, 4, 3, 3]), b.weight("4.bias", [8])],
        kernel_shape=[3, 3],
        pads=[1] * 4,
    )
    y = b.op("Flatten", [b.op("GlobalAveragePool", [b.op("Relu", [y])])], axis=1)
    b.output(b.op("Gemm", [y, b.weight("8.weight", [5, 8]), b.weight("8.bias", [5])], transB=1), "logits")
    w = import_onnx(b.save(tmp_path / "ann.onnx"))
    assert w.timesteps == 1 and totals(w)["neuron_layers"] == 0 and totals(w)["stateful_layers"] == 0
    c0, _, _, gap, fc = list(w)
    assert c0.name == "0" and c0.has_bias and any("batchnormalization" in s for s in c0.sources)
    assert (gap.op, gap.dims.G, gap.dims.FY, gap.dims.FX, gap.dims.OY) == (Op.AVGPOOL, 8, 4, 4, 1)
    assert w.predecessors("8") == [gap.name] and fc.dims.C == 8


def two_branches(tmp_path: Path, merge: str, neuron_after: bool) -> Workload:
    """Two convs reading the same step input, merged by Add (residual) or Concat, maybe then a neuron."""
    steps = 2
    b = GraphBuilder()
    x = b.input("x", [steps, 1, 2, 4, 4])
    wa, wb = b.weight("a.weight", [3, 2, 3, 3]), b.weight("b.weight", [3, 2, 1, 1])
    beta, thr = b.const(0.9), b.const(1.0)
    st, outs = State(), []
    for t in range(steps):
        xt = step_input(b, x, t)
        ya = b.op("Conv", [xt, wa], kernel_shape=[3, 3], pads=[1] * 4)
        yb = b.op("Conv", [xt, wb], kernel_shape=[1, 1])
        y = b.op("Add", [ya, yb]) if merge == "add" else b.op("Concat", [ya, yb], axis=1)
        outs.append(leaky(b, y, st, beta, thr) if neuron_after else y)
    b.output(stack(b, outs), "out")
    return import_onnx(b.save(tmp_path / f"{merge}.onnx"))


@pytest.mark.parametrize("neuron_after", [True, False])
def test_residual_add(tmp_path: Path, neuron_after: bool) -> None:
    w = two_branches(tmp_path, "add", neuron_after)
    *_, add = list(w)
    assert add.op is Op.ADD and (add.dims.G, add.dims.K, add.dims.OY, add.dims.OX) == (3, 1, 4, 4)
    assert sorted(w.predecessors(add.name)) == ["a", "b"]
    assert (add.neuron is not None) == neuron_after  # a neuron fed by an add attaches to the add
    assert sum(s.startswith("node_add") for s in add.sources) == 2  # one add per step


def test_concat(tmp_path: Path) -> None:
    w = two_branches(tmp_path, "concat", False)
    cat = w.layer(next(x.name for x in w if x.op is Op.CONCAT))
    assert cat.dims.G == 6 and cat.outputs_per_step == 6 * 16 and w.timesteps == 2


def test_resize_and_skip_concat(tmp_path: Path) -> None:
    b = GraphBuilder()
    x = b.input("x", [1, 2, 8, 8])
    enc = b.op("Conv", [x, b.weight("enc.weight", [4, 2, 3, 3])], kernel_shape=[3, 3], pads=[1] * 4)
    down = b.op(
        "Conv",
        [enc, b.weight("down.weight", [8, 4, 3, 3])],
        kernel_shape=[3, 3],
        strides=[2, 2],
        pads=[1] * 4,
    )
    up = b.op("Resize", [down, "", b.const([1.0, 1.0, 2.0, 2.0])], mode="nearest")
    cat = b.op("Concat", [up, enc], axis=1)
    b.output(
        b.op("Conv", [cat, b.weight("dec.weight", [2, 12, 3, 3])], kernel_shape=[3, 3], pads=[1] * 4), "y"
    )
    w = import_onnx(b.save(tmp_path / "unet.onnx"))
    resize = next(x for x in w if x.op is Op.RESIZE)
    concat = next(x for x in w if x.op is Op.CONCAT)
    assert (resize.dims.G, resize.dims.OY, resize.window.input_yx) == (8, 8, (4, 4))
    assert concat.dims.G == 12 and w.predecessors(concat.name) == [resize.name, "enc"]
    assert w.layer("down").window.input_yx == (8, 8)


@pytest.mark.parametrize("form", ["gemm", "matmul+add", "matmul"])
def test_gemm_and_matmul_are_dense(tmp_path: Path, form: str) -> None:
    b = GraphBuilder()
    x = b.input("x", [1, 8])
    if form == "gemm":
        y = b.op("Gemm", [x, b.weight("fc.weight", [5, 8]), b.weight("fc.bias", [5])], transB=1)
    else:
        y = b.op("MatMul", [x, b.weight("onnx::MatMul_7", [8, 5])])
        y = b.op("Add", [y, b.weight("fc.bias", [5])]) if form == "matmul+add" else y
    b.output(b.op("Relu", [y]), "y")
    (fc,) = list(import_onnx(b.save(tmp_path / "fc.onnx")))
    assert (fc.op, fc.dims.C, fc.dims.K, fc.weights) == (Op.DENSE, 8, 5, 40)
    assert fc.has_bias == (form != "matmul")
    assert len(fc.sources) == (1 if form != "matmul+add" else 2)  # the bias Add is folded in


def test_depthwise_conv_and_unread_rows(tmp_path: Path) -> None:
    b = GraphBuilder()
    x = b.input("x", [1, 4, 8, 8])
    dw = b.op("Conv", [x, b.weight("dw.weight", [4, 1, 3, 3])], kernel_shape=[3, 3], strides=[2, 2], group=4)
    y = b.op("Conv", [dw, b.weight("pw.weight", [6, 4, 2, 2])], kernel_shape=[2, 2], strides=[2, 2])
    b.output(y, "y")
    w = import_onnx(b.save(tmp_path / "dw.onnx"))
    dw_layer, pw = list(w)
    assert (dw_layer.dims.G, dw_layer.dims.K, dw_layer.dims.C, dw_layer.dims.OY) == (4, 1, 1, 3)
    assert dw_layer.weights == 4 * 9
    assert pw.window.input_yx == (3, 3) and pw.dims.OY == 1  # reads 2 of 3 rows: edge still valid


def test_sinabs_sumpool_pattern(tmp_path: Path) -> None:
    """sinabs SumPool2d exports as LP-pooling with p = 1: Pow, AveragePool, Sign, Abs, Relu, Mul, Mul, Pow."""
    b = GraphBuilder()
    x = b.input("x", [1, 4, 6, 6])
    c = b.op("Conv", [x, b.weight("0.weight", [4, 4, 1, 1])], kernel_shape=[1, 1])
    avg = b.op("AveragePool", [b.op("Pow", [c, b.const(1.0)])], kernel_shape=[2, 2], strides=[2, 2])
    y = b.op("Mul", [b.op("Sign", [avg]), b.op("Relu", [b.op("Abs", [avg])])])
    b.output(b.op("Pow", [b.op("Mul", [y, b.const(4.0)]), b.const(1.0)]), "y")
    _, pool = list(import_onnx(b.save(tmp_path / "sumpool.onnx")))
    assert (pool.op, pool.dims.G, pool.dims.FY, pool.dims.OY) == (Op.SUMPOOL, 4, 2, 3)


def test_dynamo_blocks_and_names(tmp_path: Path) -> None:
    """block = the enclosing user-class module (a residual block), else the layer's own module."""
    b = GraphBuilder(dynamo=True)
    x = b.input("x", [1, 2, 4, 4])
    with b.scope(dyn=(("features", SEQUENTIAL), ("features.0", CONV2D))):
        y = b.op("Conv", [x, b.weight("val_3", [2, 2, 1, 1])], kernel_shape=[1, 1])
    with b.scope(dyn=(("block", "__main__.Block"), ("block.conv1", CONV2D))):
        z = b.op("Conv", [y, b.weight("block.conv1.weight", [2, 2, 1, 1])], kernel_shape=[1, 1])
    with b.scope(dyn=(("block", "__main__.Block"),)):
        s = b.op("Add", [y, z])
    b.output(b.op("MaxPool", [s], kernel_shape=[2, 2], strides=[2, 2]), "y")  # functional, at the root
    w = import_onnx(b.save(tmp_path / "blocks.onnx"))
    assert [(x.name, x.block) for x in w] == [
        ("features.0", "features.0"),
        ("block.conv1", "block"),
        ("block", "block"),
        ("maxpool_4", "maxpool_4"),
    ]
    assert w.source.exporter == "dynamo"


def test_timesteps_argument_overrides_the_file(tmp_path: Path) -> None:
    path = unrolled_convnet(tmp_path, steps=3)
    w = import_onnx(path, timesteps=5)
    assert w.timesteps == 5 and all(x.dims.T == 5 for x in w)
    assert any("T = 3" in m and "T = 5" in m for m in w.warnings)
    assert not import_onnx(path, timesteps=3).warnings


def test_symbolic_batch_dimension(tmp_path: Path) -> None:
    b = GraphBuilder()
    x = b.input("x", ["batch", 3, 4, 4])
    b.output(b.op("Conv", [x, b.weight("c.weight", [2, 3, 1, 1])], kernel_shape=[1, 1]), "y")
    w = import_onnx(b.save(tmp_path / "dyn.onnx"))
    assert w.layer("c").dims.B == 1 and any("'batch'" in m for m in w.warnings)


# =========================================================================== bad input
def assert_one_line(err: pytest.ExceptionInfo[StemsInputError], path: Path, *needles: str) -> None:
    text = str(err.value)
    assert "\n" not in text and str(path) in text, text
    for needle in needles:
        assert needle in text, text


def small_model(tmp_path: Path) -> Path:
    b = GraphBuilder()
    x = b.input("x", [1, 3, 8, 8])
    b.output(b.op("Conv", [x, b.weight("c.weight", [16, 3, 3, 3])], kernel_shape=[3, 3]), "y")
    return b.save(tmp_path / "small.onnx")


@pytest.mark.parametrize("kind", ["empty", "text", "garbage", "truncated"])
def test_unreadable_files(tmp_path: Path, kind: str) -> None:
    data = small_model(tmp_path).read_bytes()
    content = {
        "empty": b"",
        "text": b"this is not a model\n",
        "garbage": b"\x08\x07garbage that is not protobuf" * 3,
        "truncated": data[: len(data) // 2],
    }[kind]
    path = tmp_path / f"{kind}.onnx"
    path.write_bytes(content)
    with pytest.raises(StemsInputError) as err:
        import_onnx(path)
    assert_one_line(err, path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StemsInputError) as err:
        import_onnx(tmp_path / "nope.onnx")
    assert_one_line(err, tmp_path / "nope.onnx", "no such file")


def test_missing_external_data(tmp_path: Path) -> None:
    model = onnx.load(small_model(tmp_path))
    path = tmp_path / "ext.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, location="ext.onnx.data", size_threshold=0)
    assert import_onnx(path).layer("c").weights == 16 * 27  # fine while the side file is there
    (tmp_path / "ext.onnx.data").unlink()
    with pytest.raises(StemsInputError) as err:
        import_onnx(path)
    assert_one_line(err, path, "ext.onnx.data", "c.weight")


@pytest.mark.parametrize("domain", ["", "my.ops"])
def test_unsupported_operator(tmp_path: Path, domain: str) -> None:
    b = GraphBuilder()
    x = b.input("x", [1, 3, 8, 8])
    c = b.op("Conv", [x, b.weight("c.weight", [4, 3, 3, 3])], kernel_shape=[3, 3])
    odd = b.op("Wobble", [c], domain=domain) if domain else b.op("LRN", [c], size=3)
    node = b.nodes[-1].name
    b.output(b.op("Conv", [odd, b.weight("d.weight", [2, 4, 1, 1])], kernel_shape=[1, 1]), "y")
    path = tmp_path / "odd.onnx"
    if domain:  # no schema: neither the checker nor shape inference knows it
        model = helper.make_model(
            helper.make_graph(b.nodes, "g", b.inputs, b.outputs, b.inits),
            opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(domain, 1)],
        )
        onnx.save(model, str(path))
    else:
        b.save(path)
    op = "Wobble" if domain else "LRN"
    with pytest.raises(StemsInputError) as err:
        import_onnx(path)
    assert_one_line(err, path, f"unsupported operator {op}", "--allow-unknown-ops", node)
    w = import_onnx(path, allow_unknown_ops=True)
    assert [x.name for x in w] == ["c", "d"] and w.edges == [("c", "d")]
    assert any(op in m and "zero-cost view" in m for m in w.warnings)


def test_matmul_of_two_activations_is_unsupported(tmp_path: Path) -> None:
    b = GraphBuilder()
    x = b.input("x", [1, 4, 4])
    b.output(b.op("MatMul", [x, b.op("Transpose", [x], perm=[0, 2, 1])]), "y")
    path = b.save(tmp_path / "att.onnx")
    with pytest.raises(StemsInputError) as err:
        import_onnx(path)
    assert_one_line(err, path, "constant weight", "node_matmul")


def test_neuron_without_synaptic_layer(tmp_path: Path) -> None:
    b = GraphBuilder()
    x = b.input("x", [1, 4])
    spk = b.op(
        "Cast", [b.op("Greater", [b.op("Sub", [x, b.const(1.0)]), b.const(0.0)])], to=TensorProto.FLOAT
    )
    b.output(b.op("Gemm", [spk, b.weight("fc.weight", [2, 4])], transB=1), "y")
    path = b.save(tmp_path / "enc.onnx")
    with pytest.raises(StemsInputError) as err:
        import_onnx(path)
    assert_one_line(err, path, "no synaptic layer", "graph input 'x'", "node_greater")


def test_neuron_fed_by_neuron_cannot_be_attributed(tmp_path: Path) -> None:
    b = GraphBuilder()
    x = b.input("x", [2, 1, 4])
    w1 = b.weight("fc1.weight", [3, 4])
    beta, thr = b.const(0.9, "lif1.beta"), b.const(1.0, "lif1.threshold")
    s1, s2, outs = State(), State(), []
    for t in range(2):
        with b.scope(ts=ts("fc1", t)):
            cur = b.op("Gemm", [step_input(b, x, t), w1], transB=1)
        with b.scope(ts=ts("lif1", t)):
            spk = leaky(b, cur, s1, beta, thr)
        with b.scope(ts=ts("lif2", t)):
            outs.append(leaky(b, spk, s2, beta, thr))
    b.output(stack(b, outs), "y")
    path = b.save(tmp_path / "nn.onnx")
    with pytest.raises(StemsInputError) as err:
        import_onnx(path)
    assert_one_line(err, path, "lif1 and lif2", "cannot be attributed", "/lif2_1/")


def test_shape_inference_failure(tmp_path: Path) -> None:
    b = GraphBuilder()
    x = b.input("x", [1, 3, 8, 8])
    y = b.op("Conv", [x, b.weight("c.weight", [4, 3, 1, 1])], kernel_shape=[1, 1])
    b.output(b.op("MatMul", [y, b.weight("fc.weight", [4, 8])]), "y")  # rows 8 != last dim 4
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(helper.make_graph(b.nodes, "g", b.inputs, b.outputs, b.inits)), str(path))
    with pytest.raises(StemsInputError) as err:
        import_onnx(path)
    assert_one_line(err, path, "shape inference failed", "Incompatible dimensions", "node_matmul_2")


def test_non_spiking_neuron_module_from_metadata(tmp_path: Path) -> None:
    """A leaky-integrator readout (norse LICell) has no comparison: the class alone says it is a neuron."""
    b = GraphBuilder(dynamo=True)
    x = b.input("x", [2, 1, 4])
    w, decay = b.weight("fc.weight", [3, 4]), b.const(0.9)
    v, outs = "", []
    for t in range(2):
        with b.scope(dyn=(("fc", "torch.nn.modules.linear.Linear"),)):
            cur = b.op("Gemm", [step_input(b, x, t), w], transB=1)
        with b.scope(dyn=(("li", "norse.torch.module.leaky_integrator.LICell"),)):
            v = b.op("Add", [b.op("Mul", [decay, v]), cur]) if v else b.op("Add", [cur, b.const(0.0)])
        outs.append(v)
    b.output(stack(b, outs), "v")
    (fc,) = list(import_onnx(b.save(tmp_path / "li.onnx")))
    assert fc.neuron.module == "li" and fc.neuron.model == "CubaLI" and not fc.neuron.spiking
    assert fc.neuron.state_vars == ("v", "i") and fc.stateful


def test_sinabs_batch_time_folding(tmp_path: Path) -> None:
    """sinabs IAFSqueeze: input [B*T, ...]; the neuron reshapes to [B, T, ...] and gathers axis 1."""
    batch, steps = 2, 3
    b = GraphBuilder()
    x = b.input("x", [batch * steps, 1, 4, 4])
    c = b.op("Conv", [x, b.weight("0.weight", [4, 1, 3, 3])], kernel_shape=[3, 3])
    y = b.op("Reshape", [c, b.const([batch, steps, 4, 2, 2])])
    thr, zero, v, spikes = b.const(1.0, "1.spike_threshold"), b.const(0.0), "", []
    for t in range(steps):
        xt = b.op("Gather", [y, b.const(np.array(t))], axis=1)
        v = b.op("Add", [v, xt]) if v else b.op("Add", [b.const(np.zeros((1, 4, 2, 2))), xt])
        floor = b.op(
            "Cast", [b.op("Cast", [b.op("Div", [v, thr])], to=TensorProto.INT64)], to=TensorProto.FLOAT
        )
        n = b.op("Mul", [b.op("Cast", [b.op("Greater", [v, zero])], to=TensorProto.FLOAT), floor])
        v = b.op("Sub", [v, b.op("Mul", [n, thr])])
        spikes.append(b.op("Unsqueeze", [n, b.const([1])]))
    b.output(b.op("Reshape", [b.op("Concat", spikes, axis=1), b.const([batch * steps, 4, 2, 2])]), "y")
    (conv,) = list(import_onnx(b.save(tmp_path / "sinabs.onnx")))
    assert {"T": steps, "B": batch}.items() <= conv.dims.as_dict().items()
    assert conv.neuron.model == "IF" and conv.neuron.n_state == 1  # multi-spike, no leak
    assert conv.neurons == batch * 4 * 2 * 2
