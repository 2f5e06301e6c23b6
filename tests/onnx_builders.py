"""Small ONNX graphs shaped like real SNN exports, built with onnx.helper (torch is not needed).

`GraphBuilder` writes nodes the way the exporters do: TorchScript-style names (`/lif1_1/Sub`) or
dynamo-style metadata (`pkg.torch.onnx.name_scopes` / `class_hierarchy`), per scope. The neuron
helpers write one timestep of each library's neuron update, as seen in `shared/reference/snn-exports.md`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

LIF_NODE = "spikingjelly.activation_based.neuron.lif.LIFNode"
IF_NODE = "spikingjelly.activation_based.neuron.integrate_and_fire.IFNode"
CONV2D = "torch.nn.modules.conv.Conv2d"
SEQUENTIAL = "torch.nn.modules.container.Sequential"


@dataclass
class GraphBuilder:
    """Accumulates nodes, initializers and I/O; `save` writes a checked single-file model."""

    nodes: list[onnx.NodeProto] = field(default_factory=list)
    inits: list[onnx.TensorProto] = field(default_factory=list)
    inputs: list[onnx.ValueInfoProto] = field(default_factory=list)
    outputs: list[onnx.ValueInfoProto] = field(default_factory=list)
    ts_scope: str = ""  # TorchScript name prefix, e.g. "/lif1_1"
    dyn_scope: tuple[tuple[str, str], ...] = ()  # dynamo (module path, class) chain below the root
    dynamo: bool = False  # write dynamo metadata on every node (root-level ones too)
    counter: int = 0
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))

    def input(self, name: str, shape: list[int | str]) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
        return name

    def output(self, tensor: str, name: str = "") -> None:
        """Declare a graph output (renamed through an Identity when `name` is given)."""
        if name:
            self.nodes.append(helper.make_node("Identity", [tensor], [name], name=f"out_{name}"))
            tensor = name
        self.outputs.append(helper.make_tensor_value_info(tensor, TensorProto.FLOAT, None))

    def weight(self, name: str, shape: list[int]) -> str:
        data = self.rng.standard_normal(shape).astype(np.float32)
        self.inits.append(numpy_helper.from_array(data, name))
        return name

    def const(self, value: float | list[float] | list[int] | np.ndarray, name: str = "") -> str:
        self.counter += 1
        name = name or f"c{self.counter}"
        arr = np.asarray(value)
        arr = arr.astype(np.int64 if arr.dtype.kind in "iu" else np.float32)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    @contextmanager
    def scope(self, ts: str = "", dyn: tuple[tuple[str, str], ...] = ()) -> Iterator[None]:
        saved = self.ts_scope, self.dyn_scope
        self.ts_scope, self.dyn_scope = ts, dyn
        try:
            yield
        finally:
            self.ts_scope, self.dyn_scope = saved

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, **attrs: object) -> str:
        """Append a node; returns its first output."""
        self.counter += 1
        k = self.counter
        outs = [f"t{k}_{j}" for j in range(n_out)]
        name = (
            f"{self.ts_scope.rstrip('/')}/{op_type}_{k}" if self.ts_scope else f"node_{op_type.lower()}_{k}"
        )
        node = helper.make_node(op_type, inputs, outs, name=name, **attrs)
        if self.dyn_scope or self.dynamo:
            paths = ["", *(p for p, _ in self.dyn_scope), f"{op_type.lower()}_{k}"]
            classes = ["__main__.Net", *(c for _, c in self.dyn_scope), f"aten.{op_type.lower()}"]
            for key, value in (
                ("pkg.torch.onnx.name_scopes", paths),
                ("pkg.torch.onnx.class_hierarchy", classes),
            ):
                entry = node.metadata_props.add()
                entry.key, entry.value = key, repr(value)
        self.nodes.append(node)
        return outs[0]

    def model(self, opset: int = 17) -> onnx.ModelProto:
        """The model, with output shapes filled in by shape inference (the checker wants them)."""
        graph = helper.make_graph(self.nodes, "g", self.inputs, self.outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 8
        inferred = onnx.shape_inference.infer_shapes(model)
        known = {vi.name: vi for vi in (*inferred.graph.value_info, *inferred.graph.output)}
        for out in model.graph.output:
            vi = known.get(out.name)
            if vi is not None and vi.type.tensor_type.HasField("shape"):
                out.CopyFrom(vi)
        return model

    def save(self, path: Path, check: bool = True) -> Path:
        model = self.model()
        if check:
            onnx.checker.check_model(model)
        onnx.save(model, str(path))
        return path


# --------------------------------------------------------------------------- neuron steps
@dataclass
class State:
    """Tensors one timestep hands to the next (empty before step 0)."""

    values: dict[str, str] = field(default_factory=dict)


def leaky(b: GraphBuilder, cur: str, st: State, beta: str, thr: str) -> str:
    """snntorch Leaky, reset by subtraction: mem = beta*mem + cur - spk*thr; spk = (mem - thr > 0)."""
    if st.values:
        mem = b.op("Add", [b.op("Mul", [beta, st.values["mem"]]), cur])
        mem = b.op("Sub", [mem, b.op("Mul", [st.values["spk"], thr])])
    else:
        mem = b.op("Add", [cur, b.const(0.0)])
    spk = b.op("Cast", [b.op("Greater", [b.op("Sub", [mem, thr]), b.const(0.0)])], to=TensorProto.FLOAT)
    st.values.update(mem=mem, spk=spk)
    return spk


def synaptic(b: GraphBuilder, cur: str, st: State, alpha: str, beta: str, thr: str) -> str:
    """snntorch Synaptic: syn = alpha*syn + cur; mem = beta*mem + syn - spk*thr (two state variables)."""
    if st.values:
        syn = b.op("Add", [b.op("Mul", [alpha, st.values["syn"]]), cur])
        mem = b.op("Add", [b.op("Mul", [beta, st.values["mem"]]), syn])
        mem = b.op("Sub", [mem, b.op("Mul", [st.values["spk"], thr])])
    else:
        syn = b.op("Add", [cur, b.const(0.0)])
        mem = b.op("Add", [syn, b.const(0.0)])
    spk = b.op("Cast", [b.op("Greater", [b.op("Sub", [mem, thr]), b.const(0.0)])], to=TensorProto.FLOAT)
    st.values.update(syn=syn, mem=mem, spk=spk)
    return spk


def if_hard_reset(b: GraphBuilder, x: str, st: State, thr: str) -> str:
    """spikingjelly IFNode: h = v + x; s = (h - v_th >= 0); v = (1 - s) * h (hard reset to 0)."""
    h = b.op("Add", [st.values.get("v", b.const(0.0)), x])
    s = b.op("Cast", [b.op("GreaterOrEqual", [b.op("Sub", [h, thr]), b.const(0.0)])], to=TensorProto.FLOAT)
    st.values["v"] = b.op("Mul", [b.op("Sub", [b.const(1.0), s]), h])
    return s


def stack(b: GraphBuilder, steps: list[str]) -> str:
    """torch.stack over timesteps: Unsqueeze each step on axis 0, Concat."""
    axis = b.const([0])
    return b.op("Concat", [b.op("Unsqueeze", [s, axis]) for s in steps], axis=0)


def step_input(b: GraphBuilder, x: str, t: int) -> str:
    """x[t] on the time axis, as the unrolled loop reads it."""
    return b.op("Gather", [x, b.const(np.array(t, dtype=np.int64))], axis=0)
