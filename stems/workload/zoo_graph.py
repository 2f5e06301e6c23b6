"""Build ONNX graphs shaped like spikingjelly multi-step models exported by torch's dynamo exporter.

Used by `stems.workload.zoo` to write the built-in benchmark networks. The graphs copy what
`torch.onnx.export(..., dynamo=True)` produces for spikingjelly 2.0 `activation_based` models in
`step_mode="m"` (see `shared/corpus/sj_vgg11_T4_dynamo.onnx`):

* stateless layers fold T into the batch: `Reshape [T,B,C,H,W] -> [T*B,C,H,W]`, `Conv`/`MaxPool`,
  `Reshape` back; a back-and-forth Reshape pair between a MaxPool and the next Conv is dropped, as
  the exporter's optimizer does, so such a Conv reads the MaxPool output directly;
* a LIFNode unrolls T steps inside its module: `Slice+Squeeze` per step (torch.unbind), the step
  subgraph `Sub, Div, Add, Sub, GreaterOrEqual, Cast, Mul, Sub, Mul, Add` (the last step stops at
  the Cast: its reset is dead code), `Unsqueeze` per step and one `Concat` (torch.stack);
* every node carries `namespace`, `pkg.torch.onnx.class_hierarchy` and `pkg.torch.onnx.name_scopes`
  metadata; node names are `node_<fx name>`; every intermediate tensor has a value_info.

One deliberate difference: the LIF's initial membrane potential is a `ConstantOfShape` node (in the
neuron's scope) instead of a full-size `full_like` initializer, so the files stay small.
"""

from __future__ import annotations

import math
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 18
IR_VERSION = 10  # what torch 2.13's dynamo exporter writes

SEQUENTIAL = "torch.nn.modules.container.Sequential"
SJ_CONV2D = "spikingjelly.activation_based.layer.stateless_wrapper.Conv2d"
SJ_MAXPOOL2D = "spikingjelly.activation_based.layer.stateless_wrapper.MaxPool2d"
SJ_LIF = "spikingjelly.activation_based.neuron.lif.LIFNode"
TORCH_RELU = "torch.nn.modules.activation.ReLU"

Scope = tuple[tuple[str, str], ...]
"""Module path from the root: ((attribute path, class), ...); the root's path is ''."""


@dataclass(frozen=True)
class Tensor:
    """A value in the graph. A 4-D shape is the T*B-folded form, a 5-D one is [T, B, C, H, W]."""

    name: str
    shape: tuple[int, ...]


class SJGraph:
    """Accumulates nodes, initializers and value_infos of one spikingjelly-style dynamo graph."""

    def __init__(self, root_class: str, *, timesteps: int, batch: int = 1, seed: int = 0) -> None:
        self.root: Scope = (("", root_class),)
        self.T = timesteps
        self.B = batch
        self.seed = seed
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.value_infos: list[onnx.ValueInfoProto] = []
        self._fx_count: defaultdict[str, int] = defaultdict(int)
        self._val = 0
        self._consts: dict[tuple, str] = {}
        self._names: set[str] = set()
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []

    # ---- naming -------------------------------------------------------------------------------
    def fx(self, base: str) -> str:
        """The next fx node name for an aten op: `sub`, `sub_1`, `sub_2`, ..."""
        n = self._fx_count[base]
        self._fx_count[base] += 1
        return base if n == 0 else f"{base}_{n}"

    def val(self) -> str:
        """The next synthetic `val_<k>` name (exporter-made constants and decomposed ops)."""
        self._val += 1
        return f"val_{self._val}"

    def _claim(self, name: str) -> str:
        if name in self._names:
            raise ValueError(f"duplicate tensor name {name}")
        self._names.add(name)
        return name

    # ---- constants ----------------------------------------------------------------------------
    def ints(self, values: Sequence[int]) -> str:
        """A shared int64 vector initializer (shape or index), de-duplicated like the exporter does."""
        key = ("i64", tuple(values))
        if key not in self._consts:
            name = self._claim(self.val())
            self.initializers.append(numpy_helper.from_array(np.asarray(values, dtype=np.int64), name))
            self._consts[key] = name
        return self._consts[key]

    def scalar(self, value: float, name: str | None = None) -> str:
        """A shared float32 rank-0 initializer."""
        key = ("f32", float(value))
        if key not in self._consts:
            name = self._claim(name or self.val())
            self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
            self._consts[key] = name
        return self._consts[key]

    def weight(self, name: str, shape: tuple[int, ...], gain: float = 1.0) -> str:
        """A float32 weight initializer, torch's default uniform init times `gain`, seeded by the name."""
        fan_in = math.prod(shape[1:])
        bound = gain / math.sqrt(fan_in)
        rng = np.random.default_rng([self.seed, zlib.crc32(name.encode())])
        data = rng.uniform(-bound, bound, size=shape).astype(np.float32)
        self.initializers.append(numpy_helper.from_array(data, self._claim(name)))
        return name

    # ---- nodes --------------------------------------------------------------------------------
    def node(
        self,
        op_type: str,
        inputs: Sequence[str],
        scope: Scope,
        fx_name: str,
        target: str,
        *,
        out: str | None = None,
        out_shape: tuple[int, ...],
        elem_type: int = TensorProto.FLOAT,
        node_name: str | None = None,
        value_info: bool = True,
        **attrs: object,
    ) -> Tensor:
        """Append one node with dynamo metadata; returns its (single) output."""
        out = self._claim(out or fx_name)
        n = helper.make_node(op_type, list(inputs), [out], name=node_name or f"node_{fx_name}")
        n.attribute.extend(helper.make_attribute(k, v) for k, v in attrs.items())
        paths = [p for p, _ in scope]
        classes = [c for _, c in scope]
        meta = {
            "namespace": "/".join(f"{p}: {c}" for p, c in (*scope, (fx_name, target))),
            "pkg.torch.onnx.class_hierarchy": repr([*classes, target]),
            "pkg.torch.onnx.name_scopes": repr([*paths, fx_name]),
        }
        for k, v in meta.items():
            entry = n.metadata_props.add()
            entry.key, entry.value = k, v
        self.nodes.append(n)
        if value_info:
            self.value_infos.append(helper.make_tensor_value_info(out, elem_type, list(out_shape)))
        return Tensor(out, tuple(out_shape))

    def input(self, name: str, shape: tuple[int, ...]) -> Tensor:
        vi = helper.make_tensor_value_info(self._claim(name), TensorProto.FLOAT, list(shape))
        for k, v in (
            ("pkg.torch.export.graph_signature.InputSpec.kind", "USER_INPUT"),
            ("pkg.torch.export.graph_signature.InputSpec.persistent", "None"),
            ("pkg.torch.onnx.original_node_name", name),
        ):
            entry = vi.metadata_props.add()
            entry.key, entry.value = k, v
        self.inputs.append(vi)
        return Tensor(name, shape)

    def output(self, t: Tensor, name: str) -> None:
        """Make `t` the graph output `name` (renaming the tensor; it must have no consumers)."""
        if any(t.name in n.input for n in self.nodes):
            raise ValueError(f"{t.name} is consumed inside the graph")
        producer = next(n for n in self.nodes if t.name in n.output)
        producer.output[list(producer.output).index(t.name)] = self._claim(name)
        i = next(i for i, vi in enumerate(self.value_infos) if vi.name == t.name)
        vi = self.value_infos.pop(i)
        vi.name = name
        for k, v in (
            ("pkg.torch.export.graph_signature.OutputSpec.kind", "USER_OUTPUT"),
            ("pkg.torch.onnx.original_node_name", t.name),
        ):
            entry = vi.metadata_props.add()
            entry.key, entry.value = k, v
        self.outputs.append(vi)

    # ---- layers -------------------------------------------------------------------------------
    def _fold(self, x: Tensor, scope: Scope) -> Tensor:
        """[T,B,C,H,W] -> [T*B,C,H,W] (a 4-D input is already folded: the Reshape pair was dropped)."""
        if len(x.shape) == 4:
            return x
        t, b, *rest = x.shape
        return self._reshape(x, (t * b, *rest), scope)

    def _unfold(self, x: Tensor, scope: Scope) -> Tensor:
        return self._reshape(x, (self.T, self.B, *x.shape[1:]), scope)

    def _reshape(self, x: Tensor, shape: tuple[int, ...], scope: Scope) -> Tensor:
        return self.node(
            "Reshape",
            [x.name, self.ints(shape)],
            scope,
            self.fx("view"),
            "aten.view.default",
            out_shape=shape,
            allowzero=1,
        )

    def conv(
        self,
        x: Tensor,
        scope: Scope,
        out_channels: int,
        kernel: int,
        stride: int = 1,
        pad: int = 0,
        gain: float = 1.0,
    ) -> Tensor:
        """spikingjelly `layer.Conv2d(bias=False)` in multi-step mode; returns [T,B,K,OH,OW]."""
        path = scope[-1][0]
        xf = self._fold(x, scope)
        _, c, h, w = xf.shape
        oh = (h + 2 * pad - kernel) // stride + 1
        ow = (w + 2 * pad - kernel) // stride + 1
        wname = self.weight(f"{path}.weight", (out_channels, c, kernel, kernel), gain)
        y = self.node(
            "Conv",
            [xf.name, wname],
            scope,
            self.fx("conv2d"),
            "aten.conv2d.default",
            out_shape=(xf.shape[0], out_channels, oh, ow),
            group=1,
            pads=[pad] * 4,
            auto_pad="NOTSET",
            strides=[stride, stride],
            dilations=[1, 1],
            kernel_shape=[kernel, kernel],
        )
        return self._unfold(y, scope)

    def maxpool(self, x: Tensor, scope: Scope, *, unfold: bool) -> Tensor:
        """spikingjelly `layer.MaxPool2d(2, 2)`; `unfold=False` leaves the [T*B,...] output for a Conv."""
        xf = self._fold(x, scope)
        n, c, h, w = xf.shape
        y = self.node(
            "MaxPool",
            [xf.name],
            scope,
            self.fx("max_pool2d"),
            "aten.max_pool2d.default",
            out_shape=(n, c, h // 2, w // 2),
            storage_order=0,
            dilations=[1, 1],
            ceil_mode=0,
            pads=[0, 0, 0, 0],
            auto_pad="NOTSET",
            strides=[2, 2],
            kernel_shape=[2, 2],
        )
        return self._unfold(y, scope) if unfold else y

    def add(self, a: Tensor, b: Tensor, scope: Scope) -> Tensor:
        """Element-wise add of two [T,B,C,H,W] tensors (SEW `ADD`, a residual)."""
        if a.shape != b.shape:
            raise ValueError(f"add of {a.shape} and {b.shape}")
        return self.node("Add", [a.name, b.name], scope, self.fx("add"), "aten.add.Tensor", out_shape=a.shape)

    def relu(self, x: Tensor, scope: Scope) -> Tensor:
        """`torch.nn.ReLU` on the [T,B,C,H,W] tensor (no time folding needed for an element-wise op)."""
        return self.node("Relu", [x.name], scope, self.fx("relu"), "aten.relu.default", out_shape=x.shape)

    def lif(self, x: Tensor, scope: Scope, *, tau: float = 2.0, v_threshold: float = 1.0) -> Tensor:
        """spikingjelly `neuron.LIFNode(tau, v_reset=0, decay_input=True)`, multi-step, unrolled T times."""
        if len(x.shape) != 5:
            raise ValueError("a multi-step neuron takes [T,B,C,H,W]")
        step_shape = x.shape[1:]
        zero = self.scalar(0.0, "scalar_tensor_default")  # v_reset and the comparison's 0
        one = self.scalar(v_threshold)  # v_th (the exporter shares it with the 1 of `1 - spike`)
        tau_c = self.scalar(tau)
        axis0 = self.ints([0])

        unbind = self.fx("unbind")
        steps: list[Tensor] = []
        for t in range(self.T):
            k = self.val()
            sl = self.node(
                "Slice",
                [x.name, self.ints([t]) if t else axis0, self.ints([t + 1]), axis0],
                scope,
                unbind,
                "aten.unbind.int",
                out=k,
                node_name=f"node_Slice_{k[4:]}",
                out_shape=(1, *step_shape),
            )
            steps.append(
                self.node(
                    "Squeeze",
                    [sl.name, axis0],
                    scope,
                    unbind,
                    "aten.unbind.int",
                    out=self.fx("getitem"),
                    node_name=f"node_{unbind}__{t}",
                    out_shape=step_shape,
                )
            )

        full_like = self.fx("full_like")
        v = self.node(
            "ConstantOfShape",
            [self.ints(step_shape)],
            scope,
            full_like,
            "aten.full_like.default",
            out_shape=step_shape,
            value=numpy_helper.from_array(np.zeros(1, np.float32), "value"),
        )
        spikes: list[Tensor] = []
        for t, xt in enumerate(steps):

            def op(op_type: str, ins: Sequence[str], base: str, target: str, **kw: object) -> Tensor:
                return self.node(op_type, ins, scope, self.fx(base), target, out_shape=step_shape, **kw)

            d = op("Sub", [xt.name, v.name], "sub", "aten.sub.Tensor")  # x - (v - v_reset), v_reset = 0
            d = op("Div", [d.name, tau_c], "div", "aten.div.Tensor")
            h = op("Add", [v.name, d.name], "add", "aten.add.Tensor")  # charge
            m = op("Sub", [h.name, one], "sub", "aten.sub.Tensor")  # h - v_th
            ge = op("GreaterOrEqual", [m.name, zero], "ge", "aten.ge.Tensor", elem_type=TensorProto.BOOL)
            s = op("Cast", [ge.name], "_to_copy", "aten._to_copy.default", to=TensorProto.FLOAT)
            spikes.append(s)
            if t == self.T - 1:
                break  # the exporter drops the last step's reset: nothing reads it
            a = op("Mul", [s.name, zero], "mul", "aten.mul.Tensor")  # spike * v_reset
            r = op("Sub", [one, s.name], "sub", "aten.sub.Tensor")  # 1 - spike
            r = op("Mul", [r.name, h.name], "mul", "aten.mul.Tensor")
            v = op("Add", [a.name, r.name], "add", "aten.add.Tensor")  # hard reset

        stack = self.fx("stack")
        ups = []
        for s in spikes:
            k = self.val()
            ups.append(
                self.node(
                    "Unsqueeze",
                    [s.name, axis0],
                    scope,
                    stack,
                    "aten.stack.default",
                    out=k,
                    node_name=f"node_Unsqueeze_{k[4:]}",
                    out_shape=(1, *step_shape),
                )
            )
        return self.node(
            "Concat", [u.name for u in ups], scope, stack, "aten.stack.default", out_shape=x.shape, axis=0
        )

    # ---- model --------------------------------------------------------------------------------
    def model(self, *, graph_name: str, doc: str, metadata: dict[str, str], producer: str) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, graph_name, self.inputs, self.outputs, self.initializers, value_info=self.value_infos
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name=producer,
            producer_version="1",
            doc_string=doc,
        )
        model.ir_version = IR_VERSION
        helper.set_model_props(model, metadata)
        return model


def module(parent: Scope, attr: str, cls: str) -> Scope:
    """The scope of child module `attr` of `parent` (path `parent.attr`, or `attr` under the root)."""
    base = parent[-1][0]
    return (*parent, (f"{base}.{attr}" if base else attr, cls))
