"""Raw ONNX access for the importer: read a file safely, infer static shapes cheaply, index the graph.

Everything here is exporter-agnostic bookkeeping: which node produces and consumes each tensor, which
tensors are constants (and, for small ones, their values), static shapes, and the torch module a node
came from (dynamo metadata, else TorchScript node names). Weights are never read: only their shapes.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, external_data_helper, numpy_helper

from stems.errors import StemsInputError

WEIGHT_OPS = frozenset({"Conv", "Gemm", "MatMul"})
POOL_OPS = frozenset({"MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool"})
REDUCE_OPS = frozenset({"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"})
COMPARE_OPS = frozenset({"Greater", "GreaterOrEqual", "Less", "LessOrEqual"})
ELEMENTWISE = frozenset(
    {
        *COMPARE_OPS,
        *("Add", "Sub", "Mul", "Div", "Pow", "Neg", "Abs", "Sign", "Relu", "LeakyRelu", "PRelu", "Sigmoid"),
        *("HardSigmoid", "Tanh", "Exp", "Log", "Sqrt", "Reciprocal", "Floor", "Ceil", "Round", "Clip"),
        *("Min", "Max", "Mean", "Sum", "Where", "Not", "And", "Or", "Xor", "Equal", "Erf", "Softplus"),
        *("Softsign", "Elu", "Selu", "Celu", "Gelu", "HardSwish", "Mish", "Mod", "IsNaN", "IsInf"),
        *("Cast", "CastLike"),
    }
)
"""Per-element arithmetic: the stuff neurons, biases, residual adds and activations are made of."""
VIEW_OPS = frozenset(
    {
        *("Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Slice", "Gather", "Split"),
        *("Expand", "Dropout", "Softmax", "LogSoftmax", "ArgMax", "ArgMin"),
    }
)
"""Ops that move or select elements without arithmetic worth pricing."""
CONST_OPS = frozenset({"Constant", "ConstantOfShape", "Shape", "Size", "Range", "EyeLike"})
"""Ops whose outputs are known at export time (shapes are static)."""
SUPPORTED_OPS = frozenset(
    {
        *WEIGHT_OPS,
        *POOL_OPS,
        *REDUCE_OPS,
        *ELEMENTWISE,
        *VIEW_OPS,
        *CONST_OPS,
        "BatchNormalization",
        "Concat",
        "Resize",
        "Upsample",
    }
)
FLOAT_TYPES = frozenset({TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16})
SHAPE_ONLY_BYTES = 4096
"""Initializers larger than this go to shape inference as typed inputs, not data (speed)."""
VALUE_LIMIT = 4096
"""Constants with more elements than this are never materialised (we only need small ones)."""
_STATE_DICT_NAME = re.compile(r"^\w+(\.\w+)*\.\w+$")


@dataclass(frozen=True)
class Scope:
    """Where a node sits in the torch module tree.

    `path` is the module path ('' at the root or when unknown), `cls` its class when the exporter
    recorded it, `chain` the (path, class) pairs from the root's first child down to `path`, and
    `leaf` the node's own short name (dynamo fx name, TorchScript op name such as `MaxPool_1`).
    """

    path: str = ""
    cls: str = ""
    chain: tuple[tuple[str, str], ...] = ()
    leaf: str = ""


def read_model(path: Path) -> onnx.ModelProto:
    """Parse the file without external weights; every failure becomes a one-line input error."""
    if not path.is_file():
        raise StemsInputError("no such file", path=path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError, RuntimeWarning, ValueError...: all "not ONNX"
        raise StemsInputError(
            f"not a readable ONNX model, truncated or corrupt ({type(exc).__name__}: {exc})", path=path
        ) from None
    if model.ir_version <= 0 or not model.opset_import or not model.graph.node:
        raise StemsInputError(
            "not an ONNX model (no IR version, opset or nodes), or an empty file", path=path
        )
    if model.functions:
        from onnx import inliner

        model = inliner.inline_local_functions(model)
    _check_external_data(model, path)
    return model


def _check_external_data(model: onnx.ModelProto, path: Path) -> None:
    for init in model.graph.initializer:
        if init.data_location != TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in init.external_data}
        side = path.parent / info.get("location", "")
        if not info.get("location") or not side.is_file():
            raise StemsInputError(
                f"external data file '{info.get('location', '')}' is missing (keep it next to the model)",
                path=path,
                where=init.name,
            )
        end = int(info.get("offset", 0)) + int(info.get("length", 0))
        if side.stat().st_size < end:
            raise StemsInputError(
                f"external data file '{side.name}' is truncated", path=path, where=init.name
            )


class OnnxGraph:
    """Read-only index over one ONNX graph: producers, consumers, constants, shapes and scopes."""

    def __init__(self, model: onnx.ModelProto, path: Path) -> None:
        self.path = path
        self.model = model
        graph = model.graph
        self.inits = {i.name: i for i in graph.initializer}
        self.inputs = [i.name for i in graph.input if i.name not in self.inits]
        self.outputs = [o.name for o in graph.output]
        self.nodes = self._sorted(list(graph.node))
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[int]] = {}
        for i, node in enumerate(self.nodes):
            for t in node.input:
                if t:
                    self.consumers.setdefault(t, []).append(i)
            for t in node.output:
                if t:
                    self.producer[t] = i
        self.const = self._constants()
        self.exporter = self._exporter()
        self._ts_paths = self._torchscript_paths() if self.exporter == "torchscript" else set()
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.types: dict[str, int] = {}

    # ------------------------------------------------------------------ structure
    def _sorted(self, nodes: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
        """Nodes in topological order; an input nobody defines means a truncated or corrupt file."""
        known = set(self.inits) | set(self.inputs)
        made = {t for n in nodes for t in n.output if t}
        for n in nodes:
            for t in n.input:
                if t and t not in known and t not in made:
                    raise StemsInputError(
                        f"tensor '{t}' is used but never defined (truncated or corrupt file?)",
                        path=self.path,
                        where=n.name or n.op_type,
                    )
        done, order, pending = set(known), [], nodes
        while pending:
            rest = []
            for n in pending:
                if all(not t or t in done for t in n.input):
                    order.append(n)
                    done.update(t for t in n.output if t)
                else:
                    rest.append(n)
            if len(rest) == len(pending):
                raise StemsInputError("the graph has a cycle", path=self.path, where=rest[0].name)
            pending = rest
        return order

    def _constants(self) -> set[str]:
        const = set(self.inits)
        for node in self.nodes:
            ins = [t for t in node.input if t]
            if node.op_type in CONST_OPS or all(t in const for t in ins):
                const.update(t for t in node.output if t)
        return const

    def nonconst(self, node: onnx.NodeProto) -> list[str]:
        """The node's inputs that carry activations (not weights, shapes or folded constants)."""
        return [t for t in node.input if t and t not in self.const]

    def value(self, name: str) -> np.ndarray | None:
        """The value of a small constant (initializer, Constant node, or Identity/Cast of one)."""
        return _value(self, name)

    def int_attr(self, node: onnx.NodeProto, name: str, default: int) -> int:
        for a in node.attribute:
            if a.name == name:
                return int(a.i)
        return default

    def ints_attr(self, node: onnx.NodeProto, name: str) -> tuple[int, ...] | None:
        for a in node.attribute:
            if a.name == name:
                return tuple(int(x) for x in a.ints)
        return None

    def str_attr(self, node: onnx.NodeProto, name: str, default: str) -> str:
        for a in node.attribute:
            if a.name == name:
                return a.s.decode()
        return default

    def weight_name(self, tensor: str) -> str | None:
        """The initializer behind a constant weight operand, through Identity/Transpose/Cast/Reshape."""
        seen = 0
        while tensor not in self.inits and tensor in self.producer and seen < 8:
            node = self.nodes[self.producer[tensor]]
            if node.op_type == "Constant":
                return tensor
            if node.op_type not in ("Identity", "Transpose", "Cast", "Reshape", "Squeeze", "Unsqueeze"):
                return None
            tensor = node.input[0]
            seen += 1
        return tensor if tensor in self.inits else None

    def weight_dims(self, name: str) -> tuple[int, ...]:
        if name in self.inits:
            return tuple(int(d) for d in self.inits[name].dims)
        attr = next(a for a in self.nodes[self.producer[name]].attribute if a.name == "value")
        return tuple(int(d) for d in attr.t.dims)

    # ------------------------------------------------------------------ shapes
    def shape(self, tensor: str, node: onnx.NodeProto) -> tuple[int, ...]:
        try:
            return self.shapes[tensor]
        except KeyError:
            raise StemsInputError(
                f"shape inference could not determine the static shape of '{tensor}'",
                path=self.path,
                where=node.name or node.op_type,
            ) from None

    def is_float(self, tensor: str) -> bool:
        return self.types.get(tensor, TensorProto.FLOAT) in FLOAT_TYPES

    # ------------------------------------------------------------------ module scopes
    def _exporter(self) -> str:
        if any(p.key == "pkg.torch.onnx.name_scopes" for n in self.nodes[:50] for p in n.metadata_props):
            return "dynamo"
        named = sum(n.name.startswith("/") for n in self.nodes)
        return "torchscript" if named * 2 > len(self.nodes) else ""

    def _torchscript_paths(self) -> set[str]:
        paths = set()
        for n in self.nodes:
            parts = n.name[1:].split("/")[:-1] if n.name.startswith("/") else []
            for i in range(1, len(parts) + 1):
                paths.add("/".join(parts[:i]))
        return paths

    def scope(self, node: onnx.NodeProto) -> Scope:
        if self.exporter == "dynamo":
            meta = {p.key: p.value for p in node.metadata_props}
            return _dynamo_scope(
                meta.get("pkg.torch.onnx.name_scopes", ""), meta.get("pkg.torch.onnx.class_hierarchy", "")
            )
        if self.exporter == "torchscript" and node.name.startswith("/"):
            return self._torchscript_scope(node.name)
        return Scope(leaf=node.name)

    def _torchscript_scope(self, name: str) -> Scope:
        """`/layer1/layer1.0/conv1_1/Conv_2` -> path `layer1.0.conv1`: step suffixes `_<k>` are dropped
        when the unsuffixed scope also exists (step 0 has none)."""
        *parts, leaf = name[1:].split("/")
        raw, path, chain = "", "", []
        for part in parts:
            m = re.fullmatch(r"(.+)_(\d+)", part)
            if m and (f"{raw}/{m.group(1)}" if raw else m.group(1)) in self._ts_paths:
                part = m.group(1)
            raw = f"{raw}/{part}" if raw else part
            path = part if not path or part.startswith(path + ".") else f"{path}.{part}"
            chain.append((path, ""))
        return Scope(path=path, chain=tuple(chain), leaf=leaf)

    def module_params(self, module: str) -> set[str]:
        """Parameter names `<module>.<name>` that survive as tensor names (TorchScript keeps them)."""
        prefix = module + "."
        names = set(self.inits) | set(self.producer)
        return {n[len(prefix) :] for n in names if n.startswith(prefix) and "." not in n[len(prefix) :]}


@lru_cache(maxsize=4096)
def _dynamo_scope(scopes: str, classes: str) -> Scope:
    try:
        paths = ast.literal_eval(scopes) if scopes else []
        kinds = ast.literal_eval(classes) if classes else []
    except (ValueError, SyntaxError):
        return Scope()
    if len(paths) < 2 or len(kinds) != len(paths):
        return Scope(leaf=paths[-1] if paths else "")
    chain = tuple(zip(paths[1:-1], kinds[1:-1], strict=True))
    return Scope(path=paths[-2], cls=kinds[-2], chain=chain, leaf=paths[-1])


def state_dict_module(weight: str) -> str | None:
    """`features.0.weight` -> `features.0`; None for exporter-made names (`val_12`, `onnx::MatMul_3`)."""
    return weight.rsplit(".", 1)[0] if _STATE_DICT_NAME.match(weight) else None


def _value(g: OnnxGraph, name: str) -> np.ndarray | None:
    if name in g.inits:
        init = g.inits[name]
        if math.prod(init.dims) > VALUE_LIMIT:
            return None
        if init.data_location == TensorProto.EXTERNAL:
            init = TensorProto.FromString(init.SerializeToString())
            external_data_helper.load_external_data_for_tensor(init, str(g.path.parent))
        return numpy_helper.to_array(init)
    if name not in g.producer:
        return None
    node = g.nodes[g.producer[name]]
    if node.op_type == "Constant":
        for a in node.attribute:
            if a.name == "value" and math.prod(a.t.dims) <= VALUE_LIMIT:
                return numpy_helper.to_array(a.t)
            if a.name in ("value_int", "value_float"):
                return np.array(a.i if a.name == "value_int" else a.f)
            if a.name in ("value_ints", "value_floats"):
                return np.array(list(a.ints) if a.name == "value_ints" else list(a.floats))
        return None
    if node.op_type in ("Identity", "Cast") and node.input:
        return _value(g, node.input[0])
    return None


def infer_shapes(g: OnnxGraph, warnings: list[str], unknown: set[str]) -> None:
    """Static shapes and element types of every tensor, via onnx shape inference on a weightless copy.

    Large initializers become typed graph inputs (inference needs only their shapes), which makes
    a 40 MB model infer in milliseconds. Symbolic input dimensions are pinned to 1 with a warning.
    Outputs of unknown ops (passed through on request) are assumed to keep their input's shape.
    """
    model, graph = g.model, g.model.graph
    light = onnx.ModelProto(ir_version=model.ir_version)
    light.opset_import.extend(model.opset_import)
    lg = light.graph
    lg.node.extend(g.nodes)
    lg.output.extend(graph.output)
    for vi in graph.input:
        if vi.name in g.inits:
            continue
        vi = onnx.ValueInfoProto.FromString(vi.SerializeToString())
        dims = vi.type.tensor_type.shape.dim
        if not vi.type.tensor_type.HasField("shape"):
            raise StemsInputError("graph input has no shape", path=g.path, where=vi.name)
        for i, d in enumerate(dims):
            if not d.HasField("dim_value") or d.dim_value <= 0:
                warnings.append(f"input '{vi.name}' dimension {i} ('{d.dim_param}') is not fixed: using 1")
                d.Clear()
                d.dim_value = 1
        lg.input.append(vi)
    for init in graph.initializer:
        big = init.data_location == TensorProto.EXTERNAL or len(init.raw_data) > SHAPE_ONLY_BYTES
        if big and math.prod(init.dims) > VALUE_LIMIT:
            lg.input.append(onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
        elif init.data_location == TensorProto.EXTERNAL:
            lg.initializer.append(numpy_helper.from_array(np.asarray(g.value(init.name)), init.name))
        else:
            lg.initializer.append(init)
    inferred = _run_inference(g, light, unknown)
    for vi in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output):
        tt = vi.type.tensor_type
        if tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim):
            g.shapes[vi.name] = tuple(int(d.dim_value) for d in tt.shape.dim)
            g.types[vi.name] = tt.elem_type
    for init in graph.initializer:
        g.shapes[init.name] = tuple(int(d) for d in init.dims)
        g.types[init.name] = init.data_type


def _run_inference(g: OnnxGraph, light: onnx.ModelProto, unknown: set[str]) -> onnx.ModelProto:
    if not unknown:
        try:
            return onnx.shape_inference.infer_shapes(
                light, check_type=False, strict_mode=True, data_prop=True
            )
        except Exception as exc:  # InferenceError / ValidationError: report the node named in the message
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            m = re.search(r"node name: ([^)]*)\)", text)
            raise StemsInputError(
                f"shape inference failed: {text}", path=g.path, where=m.group(1) if m else None
            ) from None
    # Unknown ops have no shape function: assume shape-preserving and iterate until stable.
    result = onnx.shape_inference.infer_shapes(light, check_type=False, strict_mode=False, data_prop=True)
    for _ in range(len(unknown) + 1):
        known = {vi.name: vi for vi in (*result.graph.value_info, *result.graph.input)}
        added = 0
        for node in light.graph.node:
            if node.op_type in unknown and node.output and node.output[0] not in known and node.input:
                src = known.get(node.input[0])
                if src is not None:
                    vi = onnx.ValueInfoProto.FromString(src.SerializeToString())
                    vi.name = node.output[0]
                    light.graph.value_info.append(vi)
                    added += 1
        if not added:
            break
        result = onnx.shape_inference.infer_shapes(light, check_type=False, strict_mode=False, data_prop=True)
    return result
