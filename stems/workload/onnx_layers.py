"""Group ONNX nodes into layers: every tensor is attributed to the layer whose output it carries.

One pass in topological order. Weight ops are keyed by their weight initializer, so the T unrolled
copies of a conv/dense fold into one layer; weightless ops (pools, resize, concat, elementwise
merges) are keyed by (module path, op, attributes, input layers), which folds their per-step copies
the same way. Everything else is transparent and inherits its input's layer: views, BatchNorm and
bias adds after a weight op (folded into it), and every elementwise op whose non-constant inputs
all come from one layer. That last rule is what absorbs a neuron's whole state update into the
layer feeding it (current, membrane and spikes all belong to that layer), while an elementwise op
joining two different layers (a residual add) becomes a layer of its own. Graph inputs, state
inputs and recurrent weight outputs are pseudo-sources: they never make an edge, and a recurrent
weight's output merging into a layer attaches that weight to the layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NoReturn

import onnx

from stems.errors import StemsInputError
from stems.workload.model import Op
from stems.workload.onnx_graph import (
    ELEMENTWISE,
    POOL_OPS,
    REDUCE_OPS,
    SUPPORTED_OPS,
    WEIGHT_OPS,
    OnnxGraph,
    Scope,
)
from stems.workload.onnx_time import TimeInfo

_MUL_OPS = frozenset({"Mul", "Div", "And", "Where"})
_REDUCE_POOL = {
    "ReduceMean": Op.AVGPOOL,
    "ReduceSum": Op.SUMPOOL,
    "ReduceMax": Op.MAXPOOL,
    "ReduceMin": Op.MAXPOOL,
}


@dataclass(frozen=True)
class Pseudo:
    """A source that is not a layer: a graph input, a state input, or a recurrent weight's output."""

    kind: str  # input | state | rec
    name: str  # the graph input, or the recurrent weight initializer


@dataclass(eq=False)
class LayerGroup:
    """A layer under construction: the ONNX nodes folded into it and the layers feeding it."""

    op: Op
    nodes: list[int]  # the main node of every copy (one per timestep, or one for a folded batch)
    scope: Scope
    weight: str | None = None  # weight initializer (conv/dense)
    folded: list[int] = field(default_factory=list)  # BatchNorm and bias nodes
    inputs: list[LayerGroup] = field(default_factory=list)
    has_bias: bool = False
    recurrent: list[str] = field(default_factory=list)  # weight initializers fed back into this layer
    feature_rank: int = 1  # trailing dims of the output that are features (the rest are batch/time)


Source = LayerGroup | Pseudo


@dataclass(frozen=True)
class Layers:
    """The result of the grouping pass."""

    groups: list[LayerGroup]  # in order of first appearance (topological)
    attr: dict[str, Source]  # tensor -> the layer (or pseudo-source) whose output it carries
    recurrent: dict[str, list[int]]  # recurrent weight initializer -> its nodes
    warnings: list[str]


def group_layers(g: OnnxGraph, time: TimeInfo, allow_unknown_ops: bool) -> Layers:
    """Fold the graph's nodes into layer groups; unknown ops fail unless `allow_unknown_ops`."""
    return _Walk(g, time, allow_unknown_ops).run()


class _Walk:
    """The single topological pass; `attr` and `rank` grow tensor by tensor."""

    def __init__(self, g: OnnxGraph, time: TimeInfo, allow_unknown_ops: bool) -> None:
        self.g, self.time, self.allow = g, time, allow_unknown_ops
        self.attr: dict[str, Source] = {}
        self.rank: dict[str, int] = {}
        self.groups: dict[object, LayerGroup] = {}
        self.recurrent: dict[str, list[int]] = {}
        self.warnings: list[str] = []
        self.passed: dict[str, list[str]] = {}

    def run(self) -> Layers:
        g = self.g
        for x in g.inputs:
            self.attr[x] = Pseudo("state" if x in self.time.state_inputs else "input", x)
            rank = len(g.shapes.get(x, ()))
            self.rank[x] = 3 if rank >= 4 else 1
        for i, node in enumerate(g.nodes):
            if not g.nonconst(node) or all(not t or t in g.const for t in node.output):
                continue
            self.visit(i, node)
        for op, names in self.passed.items():
            shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            self.warnings.append(f"unsupported operator {op} passed through as a zero-cost view ({shown})")
        return Layers(list(self.groups.values()), self.attr, self.recurrent, self.warnings)

    # ------------------------------------------------------------------ helpers
    def fail(self, node: onnx.NodeProto, message: str) -> NoReturn:
        raise StemsInputError(message, path=self.g.path, where=node.name or node.op_type)

    def sources(self, node: onnx.NodeProto) -> list[Source]:
        return [self.attr[t] for t in self.g.nonconst(node)]

    def out(self, node: onnx.NodeProto, source: Source, rank: int) -> None:
        for t in node.output:
            if t:
                self.attr[t] = source
                self.rank[t] = max(1, min(rank, len(self.g.shapes.get(t, (0,) * rank))))

    def group(self, key: object, node_index: int, op: Op, sources: list[Source]) -> LayerGroup:
        grp = self.groups.get(key)
        if grp is None:
            grp = self.groups[key] = LayerGroup(op=op, nodes=[], scope=self.g.scope(self.g.nodes[node_index]))
        grp.nodes.append(node_index)
        for s in sources:
            if isinstance(s, LayerGroup) and s is not grp and s not in grp.inputs:
                grp.inputs.append(s)
            elif isinstance(s, Pseudo) and s.kind == "rec" and s.name not in grp.recurrent:
                grp.recurrent.append(s.name)
        return grp

    def in_rank(self, node: onnx.NodeProto) -> int:
        return self.rank.get(self.g.nonconst(node)[0], 1)

    # ------------------------------------------------------------------ dispatch
    def visit(self, i: int, node: onnx.NodeProto) -> None:
        op = node.op_type
        if op not in SUPPORTED_OPS or node.domain not in ("", "ai.onnx"):
            self.unknown(node, f"unsupported operator {op}")
        elif op in WEIGHT_OPS:
            self.weight_op(i, node)
        elif op == "BatchNormalization":
            self.batch_norm(i, node)
        elif op in ELEMENTWISE:
            self.elementwise(i, node)
        elif op in POOL_OPS:
            self.pool(i, node)
        elif op in REDUCE_OPS:
            self.reduce(i, node)
        elif op == "Concat":
            self.concat(i, node)
        elif op in ("Resize", "Upsample"):
            src = self.sources(node)[0]
            grp = self.group(("resize", self.g.scope(node).path, src), i, Op.RESIZE, [src])
            grp.feature_rank = self.in_rank(node)
            self.out(node, grp, grp.feature_rank)
        else:  # views
            self.view(node)

    def unknown(self, node: onnx.NodeProto, message: str) -> None:
        if not self.allow:
            self.fail(node, f"{message} (use --allow-unknown-ops to pass it through as a zero-cost view)")
        self.passed.setdefault(node.op_type, []).append(node.name or node.op_type)
        self.out(node, self.sources(node)[0], self.in_rank(node))

    def weight_op(self, i: int, node: onnx.NodeProto) -> None:
        g = self.g
        data = g.nonconst(node)
        weight = node.input[1] if len(node.input) > 1 else ""
        if len(data) != 1 or data[0] != node.input[0] or weight not in g.const:
            self.unknown(node, f"{node.op_type} needs a constant weight and one activation input")
            return
        name = g.weight_name(weight) or weight
        src = self.attr[data[0]]
        if i in self.time.recurrent:
            self.recurrent.setdefault(name, []).append(i)
            self.out(node, Pseudo("rec", name), 1)
            return
        op = Op.CONV if node.op_type == "Conv" else Op.DENSE
        grp = self.group(("w", name), i, op, [src])
        grp.weight = name
        grp.has_bias |= len(node.input) > 2 and bool(node.input[2])
        rank = len(g.shape(node.output[0], node)) - 1 if op is Op.CONV else 1
        grp.feature_rank = rank
        self.out(node, grp, rank)

    def batch_norm(self, i: int, node: onnx.NodeProto) -> None:
        src = self.sources(node)[0]
        if isinstance(src, LayerGroup) and src.op.has_weights:
            src.folded.append(i)
            src.has_bias = True
        self.out(node, src, self.in_rank(node))

    def elementwise(self, i: int, node: onnx.NodeProto) -> None:
        sources = self.sources(node)
        distinct = list(
            dict.fromkeys(s for s in sources if not (isinstance(s, Pseudo) and s.kind != "input"))
        )
        rank = self.in_rank(node)
        if len(distinct) > 1:
            op = Op.MUL if node.op_type in _MUL_OPS else Op.ADD
            grp = self.group(("ew", op, self.g.scope(node).path, tuple(distinct)), i, op, sources)
            grp.feature_rank = rank
            self.out(node, grp, rank)
            return
        if not distinct:  # only state / recurrent inputs so far: carry the first along
            self.out(node, sources[0], rank)
            return
        src = distinct[0]
        if isinstance(src, LayerGroup):
            for s in sources:
                if isinstance(s, Pseudo) and s.kind == "rec" and s.name not in src.recurrent:
                    src.recurrent.append(s.name)
            if self.is_bias(node, src):
                src.folded.append(i)
                src.has_bias = True
        self.out(node, src, rank)

    def is_bias(self, node: onnx.NodeProto, grp: LayerGroup) -> bool:
        """Add(weight op output, constant vector of K non-zero values): the bias of a MatMul."""
        g = self.g
        if node.op_type != "Add" or not grp.op.has_weights or len(g.nonconst(node)) != 1:
            return False
        data = g.nonconst(node)[0]
        if g.producer.get(data) not in grp.nodes:
            return False
        const = next(t for t in node.input if t and t != data)
        if const not in g.inits and g.nodes[g.producer[const]].op_type not in ("Constant", "Identity"):
            return False
        k = g.shapes.get(data, (0,))[-1 if grp.op is Op.DENSE else 1]
        if math.prod(g.shapes.get(const, ())) != k:
            return False
        value = g.value(const)
        return value is None or bool((value != 0).any())

    def pool(self, i: int, node: onnx.NodeProto) -> None:
        g = self.g
        src = self.sources(node)[0]
        op = Op.MAXPOOL if "Max" in node.op_type else Op.AVGPOOL
        if node.op_type == "LpPool" or (node.op_type == "AveragePool" and self.after_pow(node)):
            op = Op.SUMPOOL  # sinabs SumPool2d / torch LPPool2d(p=1): Pow, AveragePool, ..., Pow
        attrs = tuple(sorted((a.name, str(onnx.helper.get_attribute_value(a))) for a in node.attribute))
        key = ("pool", node.op_type, g.scope(node).path, attrs, src)
        grp = self.group(key, i, op, [src])
        grp.feature_rank = len(g.shape(node.output[0], node)) - 1
        self.out(node, grp, grp.feature_rank)

    def after_pow(self, node: onnx.NodeProto) -> bool:
        p = self.g.producer.get(node.input[0])
        return p is not None and self.g.nodes[p].op_type == "Pow"

    def reduce(self, i: int, node: onnx.NodeProto) -> None:
        """A reduction over all spatial axes is a global pool; over time or batch it is a view."""
        g = self.g
        shape = g.shape(g.nonconst(node)[0], node)
        rank = self.in_rank(node)
        axes = g.ints_attr(node, "axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            value = g.value(node.input[1])
            axes = tuple(int(a) for a in value.flat) if value is not None else None
        axes = tuple(sorted(a % len(shape) for a in axes)) if axes else tuple(range(len(shape)))
        spatial = tuple(range(len(shape) - rank + 1, len(shape)))
        keep = g.int_attr(node, "keepdims", 1)
        if rank >= 2 and spatial and axes == spatial:
            src = self.sources(node)[0]
            grp = self.group(
                ("reduce", node.op_type, g.scope(node).path, src), i, _REDUCE_POOL[node.op_type], [src]
            )
            grp.feature_rank = rank if keep else 1
            self.out(node, grp, grp.feature_rank)
            return
        features_lost = sum(a >= len(shape) - rank for a in axes) if not keep else 0
        self.out(node, self.sources(node)[0], rank - features_lost)

    def concat(self, i: int, node: onnx.NodeProto) -> None:
        sources = self.sources(node)
        distinct = list(dict.fromkeys(s for s in sources if isinstance(s, LayerGroup)))
        rank = self.in_rank(node)
        if len(distinct) <= 1:  # a stack over timesteps (torch.stack of one layer's steps)
            self.out(node, distinct[0] if distinct else sources[0], rank)
            return
        grp = self.group(("concat", self.g.scope(node).path, tuple(sources)), i, Op.CONCAT, sources)
        grp.feature_rank = rank
        self.out(node, grp, rank)

    def view(self, node: onnx.NodeProto) -> None:
        g = self.g
        data = g.nonconst(node)[0]
        rank = self.rank.get(data, 1)
        if node.op_type in ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Expand"):
            rank = _suffix_rank(g.shapes.get(data, ()), rank, g.shapes.get(node.output[0], ()), rank)
        elif node.op_type == "Gather":
            shape = g.shapes.get(data, ())
            axis = g.int_attr(node, "axis", 0) % max(1, len(shape))
            lost = len(shape) - len(g.shapes.get(node.output[0], shape))
            rank = rank - lost if axis >= len(shape) - rank else rank
        self.out(node, self.attr[data], rank)


def _suffix_rank(shape_in: tuple[int, ...], rank_in: int, shape_out: tuple[int, ...], default: int) -> int:
    """Trailing dims of `shape_out` that hold exactly the features of `shape_in` (batch/time in front)."""
    features = math.prod(shape_in[len(shape_in) - rank_in :]) if shape_in else 0
    acc = 1
    for r in range(1, len(shape_out) + 1):
        acc *= shape_out[-r]
        if acc == features:
            return r
        if acc > features:
            break
    return default
