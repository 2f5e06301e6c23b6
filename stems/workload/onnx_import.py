"""ONNX exports of SNNs (snntorch, spikingjelly, norse, sinabs; dynamo or TorchScript) to a workload.

Pipeline: read and index the file (`onnx_graph`), find the timestep of every tensor and the
recurrent weights (`onnx_time`), fold nodes into layers (`onnx_layers`), attach neurons
(`onnx_neurons`), then turn each layer into loop dimensions here.

Decisions worth knowing:
- Views (Flatten, Reshape, Squeeze, Transpose, the Reshapes that fold T into the batch...) are
  elided: the consumer is connected straight to the producer. Element counts per timestep still
  match along every edge, because a view moves elements without changing their number.
- T is the number of unrolled steps the file holds (neuron comparisons per neuron, or slices of
  the input). A step graph with explicit state inputs (norse) holds no T: the caller's `timesteps`
  is used, else 1 with a warning. A `timesteps` that differs from the file's wins, with a warning.
- Dims.B is the true batch: the elements a layer's copies process, divided by T (a conv that runs
  once on a time-folded batch of T*B and T per-step copies of batch B both give B).
- Pools, resize, add, mul and concat have G = channels and K = C = 1.
- `block` is the module enclosing the layer when that is a user class (a residual block), else the
  layer's own module path; TorchScript has no classes, so a numeric last path component
  (`features.0`) is taken to mean a Sequential parent.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import onnx

from stems.errors import StemsInputError
from stems.workload.model import Dims, Layer, Neuron, Op, SourceInfo, Window, Workload
from stems.workload.onnx_graph import (
    REDUCE_OPS,
    SUPPORTED_OPS,
    OnnxGraph,
    infer_shapes,
    read_model,
    state_dict_module,
)
from stems.workload.onnx_layers import LayerGroup, Layers, group_layers
from stems.workload.onnx_neurons import FoundNeuron, find_neurons, library_of
from stems.workload.onnx_time import TimeInfo, analyse_time

ANNOTATIONS_KEY = "stems.annotations"
_CONTAINERS = "torch.nn.modules.container."


def import_onnx(
    path: str | Path, *, timesteps: int | None = None, allow_unknown_ops: bool = False
) -> Workload:
    """Import an ONNX file; bad input raises StemsInputError naming the file and node."""
    path = Path(path)
    return import_onnx_model(
        read_model(path),
        path,
        _sha256(path),
        timesteps=timesteps,
        allow_unknown_ops=allow_unknown_ops,
    )


def import_onnx_model(
    model: onnx.ModelProto,
    path: Path,
    sha256: str,
    *,
    timesteps: int | None = None,
    allow_unknown_ops: bool = False,
) -> Workload:
    """Import an ONNX model already in memory (a built-in one: `path` is then `zoo:NAME`)."""
    if timesteps is not None and timesteps < 1:
        raise StemsInputError(f"timesteps must be >= 1, not {timesteps}", path=path)
    try:
        return _import(path, model, sha256, timesteps, allow_unknown_ops)
    except StemsInputError as exc:
        if exc.path is None:  # raised by the workload model: add the file
            raise StemsInputError(exc.message, path=path, where=exc.where) from None
        raise
    except Exception as exc:  # a graph shape we did not foresee must still be one line for the user
        raise StemsInputError(f"cannot import this graph ({type(exc).__name__}: {exc})", path=path) from exc


def _import(
    path: Path, model: onnx.ModelProto, sha256: str, timesteps: int | None, allow_unknown_ops: bool
) -> Workload:
    warnings: list[str] = []
    g = OnnxGraph(model, path)
    unknown = {n.op_type for n in g.nodes if _is_unknown(n) and g.nonconst(n)}
    if unknown and not allow_unknown_ops:
        node = next(n for n in g.nodes if n.op_type in unknown and g.nonconst(n))
        raise StemsInputError(
            f"unsupported operator {node.op_type} (use --allow-unknown-ops to pass it through as a "
            "zero-cost view)",
            path=path,
            where=node.name or node.op_type,
        )
    infer_shapes(g, warnings, unknown)
    time = analyse_time(g)
    layers = group_layers(g, time, allow_unknown_ops)
    warnings += layers.warnings
    if not layers.groups:
        raise StemsInputError("no layers found (no Conv, Gemm, MatMul, pool or merge operator)", path=path)
    found = find_neurons(g, layers, time)
    t_file = _file_timesteps(g, time, layers, found, warnings)
    t = timesteps or t_file or 1
    if t_file is None and timesteps is None:
        warnings.append(
            "the file is a single step with explicit state (no T inside): using T = 1; give --timesteps"
        )
    elif t_file is not None and timesteps is not None and timesteps != t_file:
        warnings.append(f"the file unrolls T = {t_file} steps; using the requested T = {timesteps}")
    built = _Builder(g, layers, found, t_file or 1, t, warnings).build()
    meta = {p.key: p.value for p in model.metadata_props}
    source = SourceInfo(
        path=str(path),
        format="onnx",
        sha256=sha256,
        exporter=g.exporter,
        library=library_of(found, g),
        embedded_annotations=meta.get(ANNOTATIONS_KEY, ""),
    )
    inputs = {x: g.shapes[x] for x in g.inputs if x not in time.state_inputs and x in g.shapes}
    name = path.name.removeprefix("zoo:") if str(path).startswith("zoo:") else path.stem
    return Workload(name, built[0], built[1], source=source, inputs=inputs, warnings=warnings)


def _is_unknown(node: onnx.NodeProto) -> bool:
    return node.op_type not in SUPPORTED_OPS or node.domain not in ("", "ai.onnx")


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _file_timesteps(
    g: OnnxGraph, time: TimeInfo, layers: Layers, found: list[FoundNeuron], warnings: list[str]
) -> int | None:
    """T held in the file: None for a step graph with state I/O, else the input's time slices or the
    neurons' unrolled steps. Without neurons, slices count as time only if weights repeat per slice."""
    if time.state_inputs:
        return None
    steps = [f.steps for f in found if f.steps]
    if not steps:
        copies = max((len(grp.nodes) for grp in layers.groups if grp.op.has_weights), default=1)
        return time.slices if time.slices and (copies == time.slices or layers.recurrent) else 1
    t = time.slices or max(steps, key=lambda s: (steps.count(s), s))
    for f in found:
        if f.steps > t:
            raise StemsInputError(
                f"{f.steps} neuron steps attach to one layer of a {t}-step network: a neuron pattern "
                "that cannot be attributed (a neuron fed directly by another?)",
                path=g.path,
                where=g.nodes[f.compares[-1]].name,
            )
        if f.steps not in (0, 1, t):
            warnings.append(f"neuron {f.neuron.module or '?'} runs {f.steps} of {t} timesteps")
    if steps and time.slices and max(steps) < time.slices and max(steps) > 1:
        warnings.append(f"the input is cut into {time.slices} steps but neurons unroll {max(steps)}")
    return t


class _Builder:
    """Turns layer groups into `Layer`s: loop sizes from static shapes, names, blocks, neurons."""

    def __init__(
        self, g: OnnxGraph, layers: Layers, found: list[FoundNeuron], t_file: int, t: int, warnings: list[str]
    ) -> None:
        self.g, self.layers, self.t_file, self.t, self.warnings = g, layers, t_file, t, warnings
        self.neurons = {f.layer: f for f in found}
        self.names = self._names()

    def build(self) -> tuple[list[Layer], list[tuple[str, str]]]:
        merged = {w for grp in self.layers.groups for w in grp.recurrent}
        for w in self.layers.recurrent:
            if w not in merged:
                self.warnings.append(f"recurrent weight {w} feeds no layer it could belong to; ignored")
        layers = [self._layer(grp) for grp in self.layers.groups]
        edges = [(self.names[s], self.names[grp]) for grp in self.layers.groups for s in grp.inputs]
        return layers, edges

    # ------------------------------------------------------------------ names and blocks
    def _module(self, grp: LayerGroup) -> str:
        return (state_dict_module(grp.weight) if grp.weight else None) or grp.scope.path

    def _names(self) -> dict[LayerGroup, str]:
        names: dict[LayerGroup, str] = {}
        taken: set[str] = set()
        for k, grp in enumerate(self.layers.groups):
            node = self.g.nodes[grp.nodes[0]]
            base = self._module(grp) or grp.scope.leaf or node.name or f"{grp.op.value}_{k}"
            name = base
            if name in taken and grp.scope.leaf:
                name = f"{base}.{grp.scope.leaf}" if base != grp.scope.leaf else base
            n = 2
            while name in taken:
                name, n = f"{base}_{n}", n + 1
            taken.add(name)
            names[grp] = name
        return names

    def _block(self, grp: LayerGroup) -> str:
        module = self._module(grp)
        if not module:
            return self.names[grp]
        if self.g.exporter == "dynamo":
            chain = grp.scope.chain
            j = next((j for j, (p, _) in enumerate(chain) if p == module), -1)
            if j >= 1 and not chain[j - 1][1].startswith(_CONTAINERS):
                return chain[j - 1][0]
            return module
        if self.g.exporter == "torchscript" and "." in module:
            parent, last = module.rsplit(".", 1)
            return module if last.isdigit() else parent
        return module

    # ------------------------------------------------------------------ layers
    def _layer(self, grp: LayerGroup) -> Layer:
        g = self.g
        dims, window = self._dims(grp)
        found = self.neurons.get(grp)
        neuron = found.neuron if found else None
        rec_c, rec_nodes = self._recurrent(grp, dims)
        if rec_c and neuron is None:
            neuron = Neuron.of(
                "LinearMemory",
                source_class=grp.scope.cls if self.g.exporter == "dynamo" else "",
                module=self._module(grp),
            )
        nodes = [*grp.nodes, *grp.folded, *rec_nodes, *(found.compares if found else ())]
        sources = tuple(dict.fromkeys(g.nodes[i].name or f"{g.nodes[i].op_type}#{i}" for i in nodes))
        return Layer(
            name=self.names[grp],
            op=grp.op,
            dims=dims,
            window=window,
            neuron=neuron,
            block=self._block(grp),
            recurrent_c=rec_c,
            has_bias=grp.has_bias and grp.op.has_weights,
            sources=sources,
        )

    def _recurrent(self, grp: LayerGroup, dims: Dims) -> tuple[int, list[int]]:
        """recurrent_c of a layer: the fed-back weight elements per output channel."""
        if not grp.recurrent:
            return 0, []
        if not grp.op.has_weights:
            self.warnings.append(
                f"recurrent weights {', '.join(grp.recurrent)} feed {self.names[grp]}, which has no weights: ignored"
            )
            return 0, []
        total = sum(math.prod(self.g.weight_dims(w)) for w in grp.recurrent)
        per = dims.G * dims.K
        if total % per:
            raise StemsInputError(
                f"recurrent weights ({total} elements) do not fit {per} output channels",
                path=self.g.path,
                where=self.names[grp],
            )
        return total // per, [i for w in grp.recurrent for i in self.layers.recurrent.get(w, [])]

    def _batch(self, grp: LayerGroup, n: int) -> int:
        total = len(grp.nodes) * n
        if total % self.t_file:
            self.warnings.append(
                f"layer {self.names[grp]} processes {total} samples in {self.t_file} steps: "
                f"using B = {max(1, total // self.t_file)}"
            )
        return max(1, total // self.t_file)

    def _dims(self, grp: LayerGroup) -> tuple[Dims, Window]:
        g = self.g
        node = g.nodes[grp.nodes[0]]
        out = g.shape(node.output[0], node)
        x = g.shape(g.nonconst(node)[0], node)
        t = self.t
        if grp.op is Op.CONV:
            w = g.weight_dims(grp.weight or "")
            if len(out) not in (3, 4):
                raise StemsInputError(
                    f"{len(out) - 2}-D convolution is not supported", path=g.path, where=node.name
                )
            groups = g.int_attr(node, "group", 1)
            (oy, ox), (iy, ix), (fy, fx) = _yx(out[2:]), _yx(x[2:]), _yx(w[2:])
            dims = Dims(
                T=t,
                B=self._batch(grp, out[0]),
                G=groups,
                K=out[1] // groups,
                C=w[1],
                OY=oy,
                OX=ox,
                FY=fy,
                FX=fx,
            )
            return dims, _window(g, node, (iy, ix), (oy, ox), (fy, fx))
        if grp.op is Op.DENSE:
            trans_a = node.op_type == "Gemm" and g.int_attr(node, "transA", 0)
            c = x[0] if trans_a else x[-1]
            n = x[1] if trans_a else math.prod(out[:-1])
            return Dims(T=t, B=self._batch(grp, n), K=out[-1], C=c), Window()
        if grp.op.is_pool and node.op_type not in REDUCE_OPS:
            (oy, ox), (iy, ix) = _yx(out[2:]), _yx(x[2:])
            kernel = g.ints_attr(node, "kernel_shape")
            fy, fx = _yx(kernel) if kernel else (iy, ix)
            dims = Dims(T=t, B=self._batch(grp, out[0]), G=out[1], OY=oy, OX=ox, FY=fy, FX=fx)
            return dims, _window(g, node, (iy, ix), (oy, ox), (fy, fx))
        rank = grp.feature_rank
        if grp.op.is_pool:  # a reduction over all spatial axes: a global pool
            n, c, (iy, ix) = math.prod(x[: len(x) - rank]), x[len(x) - rank], _yx(x[len(x) - rank + 1 :])
            dims = Dims(T=t, B=self._batch(grp, n), G=c, FY=iy, FX=ix)
            return dims, Window(input_yx=(iy, ix))
        n, c, (oy, ox) = (
            math.prod(out[: len(out) - rank]),
            out[len(out) - rank],
            _yx(out[len(out) - rank + 1 :]),
        )
        dims = Dims(T=t, B=self._batch(grp, n), G=c, OY=oy, OX=ox)
        if grp.op is Op.RESIZE:
            return dims, Window(input_yx=_yx(x[len(x) - rank + 1 :]))
        return dims, Window()


def _yx(spatial: tuple[int, ...] | list[int]) -> tuple[int, int]:
    """(rows, columns) of 0-, 1- or 2-D spatial dims; more dims are folded into rows."""
    spatial = tuple(spatial)
    if not spatial:
        return 1, 1
    return math.prod(spatial[:-1]), spatial[-1]


def _window(
    g: OnnxGraph, node: onnx.NodeProto, i: tuple[int, int], o: tuple[int, int], k: tuple[int, int]
) -> Window:
    n = len(g.shape(node.output[0], node)) - 2
    stride = _yx(g.ints_attr(node, "strides") or (1,) * n)
    dilation = _yx(g.ints_attr(node, "dilations") or (1,) * n)
    pads = g.ints_attr(node, "pads")
    if pads and n == 2:
        padding = (pads[0], pads[1], pads[2], pads[3])
    elif pads and n == 1:
        padding = (0, pads[0], 0, pads[1])
    else:  # auto_pad SAME_* or none: the padding the output size implies
        total = [max(0, (o[a] - 1) * stride[a] + (k[a] - 1) * dilation[a] + 1 - i[a]) for a in (0, 1)]
        upper = g.str_attr(node, "auto_pad", "NOTSET") != "SAME_LOWER"
        first = [tot // 2 if upper else tot - tot // 2 for tot in total]
        padding = (first[0], first[1], total[0] - first[0], total[1] - first[1])
    return Window(stride=stride, padding=padding, dilation=dilation, input_yx=i)
