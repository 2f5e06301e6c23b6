"""NIR graph (nir.read) to a workload: synaptic nodes become layers, neurons attach to what feeds them.

NIR semantics that shape the translation: a node with several incoming edges sums them (so we
insert an explicit add layer), nested graphs are flattened with `outer.inner` names, and a
weight node inside a cycle with a neuron is that neuron's recurrent weight matrix (RLeaky-style),
not a feed-forward layer. NIR has no time axis: T comes from the caller.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from stems.errors import StemsInputError
from stems.workload.model import Dims, Layer, Neuron, Op, SourceInfo, Window, Workload

NEURON_MODELS = {"LIF": "LIF", "CubaLIF": "CubaLIF", "IF": "IF", "LI": "LI", "CubaLI": "CubaLI", "I": "I"}
SYNAPTIC = ("Conv1d", "Conv2d", "Affine", "Linear")
POOLS = {"SumPool2d": Op.SUMPOOL, "AvgPool2d": Op.AVGPOOL}
PASS_THROUGH = ("Flatten", "Scale", "Delay", "Input", "Output")  # no compute we price


def _kind(node: Any) -> str:
    return type(node).__name__


def _flatten(graph: Any, prefix: str = "") -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Nodes and edges with nested graphs inlined; a nested graph's Input/Output become pass-throughs."""
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    for name, node in graph.nodes.items():
        full = f"{prefix}{name}"
        if _kind(node) == "NIRGraph":
            inner_nodes, inner_edges = _flatten(node, f"{full}.")
            nodes.update(inner_nodes)
            edges += inner_edges
            for inp in (n for n, x in node.nodes.items() if _kind(x) == "Input"):
                edges.append((full, f"{full}.{inp}"))
            for out in (n for n, x in node.nodes.items() if _kind(x) == "Output"):
                edges.append((f"{full}.{out}", f"{full}.out"))
            nodes[full] = None  # entry point of the nested graph
            nodes[f"{full}.out"] = None  # exit point
        else:
            nodes[full] = node
    for src, dst in graph.edges:
        s, d = f"{prefix}{src}", f"{prefix}{dst}"
        if s in nodes and nodes[s] is None and f"{s}.out" in nodes:
            s = f"{s}.out"  # leaving a nested graph
        edges.append((s, d))
    return nodes, edges


def _shape(node: Any, which: str) -> tuple[int, ...]:
    types = getattr(node, f"{which}_type", None) or {}
    value = next(iter(types.values()), None)
    return tuple(int(v) for v in np.atleast_1d(value)) if value is not None else ()


def _pair(value: Any) -> tuple[int, int]:
    arr = np.atleast_1d(np.asarray(value)).astype(int)
    return (int(arr[0]), int(arr[-1]))


def _layer_for(name: str, node: Any, t: int, path: Path) -> Layer:
    """A workload layer for one synaptic or pooling NIR node."""
    kind = _kind(node)
    i, o = _shape(node, "input"), _shape(node, "output")
    if kind in ("Affine", "Linear"):
        k, c = np.asarray(node.weight).shape[-2:]
        return Layer(
            name, Op.DENSE, Dims(T=t, K=int(k), C=int(c)), has_bias=kind == "Affine", sources=(name,)
        )
    if len(i) == 2:  # 1-D conv/pool: a row of length L
        i, o = (i[0], 1, i[1]), (o[0], 1, o[1])
    if len(i) != 3 or len(o) != 3:
        raise StemsInputError(
            f"cannot infer the shape of {kind} (input {i}, output {o})", path=path, where=name
        )
    if kind in POOLS:
        fy, fx = _pair(node.kernel_size)
        window = Window(stride=_pair(node.stride), padding=(*_pair(node.padding),) * 2, input_yx=(i[1], i[2]))
        return Layer(
            name,
            POOLS[kind],
            Dims(T=t, G=i[0], OY=o[1], OX=o[2], FY=fy, FX=fx),
            window=window,
            sources=(name,),
        )
    weight = np.asarray(node.weight)
    groups = int(node.groups)
    kernel = weight.shape[2:] if weight.ndim == 4 else (1, weight.shape[2])
    pad = node.padding
    if isinstance(pad, str):  # 'same' / 'valid'
        pad = [(kk - 1) // 2 if pad == "same" else 0 for kk in kernel]
    py, px = _pair(pad) if weight.ndim == 4 else (0, _pair(pad)[0])
    sy, sx = _pair(node.stride) if weight.ndim == 4 else (1, _pair(node.stride)[0])
    dy, dx = _pair(node.dilation) if weight.ndim == 4 else (1, _pair(node.dilation)[0])
    dims = Dims(
        T=t,
        G=groups,
        K=weight.shape[0] // groups,
        C=weight.shape[1],
        OY=o[1],
        OX=o[2],
        FY=int(kernel[0]),
        FX=int(kernel[1]),
    )
    window = Window(stride=(sy, sx), padding=(py, px, py, px), dilation=(dy, dx), input_yx=(i[1], i[2]))
    bias = getattr(node, "bias", None)
    has_bias = bias is not None and np.any(np.asarray(bias) != 0)
    return Layer(name, Op.CONV, dims, window=window, has_bias=bool(has_bias), sources=(name,))


def _neuron(kind: str) -> Neuron:
    return Neuron.of(NEURON_MODELS[kind], source_class=f"nir.{kind}")


def import_nir(path: str | Path, *, timesteps: int | None = None) -> Workload:
    """Read a NIR file into a workload run for `timesteps` steps (1, with a warning, if not given)."""
    import nir

    path = Path(path)
    data = path.read_bytes()
    try:
        graph = nir.read(str(path))
    except Exception as exc:  # h5py and nir raise many types for a bad file; all mean the same to the user
        raise StemsInputError(f"not a readable NIR file ({type(exc).__name__}: {exc})", path=path) from None
    warnings: list[str] = []
    if timesteps is None:
        warnings.append("NIR carries no timestep count; using T = 1 (give --timesteps)")
        timesteps = 1
    nodes, edges = _flatten(graph)
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from(edges)
    for name, node in nodes.items():
        kind = _kind(node) if node is not None else "Input"
        if kind not in (*SYNAPTIC, *POOLS, *NEURON_MODELS, *PASS_THROUGH, "Threshold"):
            raise StemsInputError(f"unsupported NIR node type {kind}", path=path, where=name)

    def kind_of(n: str) -> str:
        return _kind(nodes[n]) if nodes[n] is not None else "Input"

    def is_neuron(n: str) -> bool:
        return kind_of(n) in NEURON_MODELS or kind_of(n) == "Threshold"

    # Recurrent weights: a synaptic node in a cycle with a neuron it feeds.
    recurrent: dict[str, str] = {}  # weight node -> neuron node
    for scc in nx.strongly_connected_components(g):
        if len(scc) < 2:
            continue
        for n in scc:
            if kind_of(n) in SYNAPTIC:
                fed = [s for s in g.successors(n) if s in scc and is_neuron(s)]
                if not fed:
                    raise StemsInputError("a cycle with no neuron cannot be a recurrence", path=path, where=n)
                recurrent[n] = fed[0]
    g.remove_nodes_from(recurrent)
    if not nx.is_directed_acyclic_graph(g):
        cycle = " -> ".join(u for u, _ in nx.find_cycle(g))
        raise StemsInputError("edge cycle without a recurrent weight matrix", path=path, where=cycle)

    layers: dict[str, Layer] = {}
    owner: dict[str, str] = {}  # NIR node -> the layer whose output it carries
    layer_edges: list[tuple[str, str]] = []

    def inputs_of(n: str) -> list[str]:
        return sorted({owner[p] for p in g.predecessors(n) if p in owner})

    def merge(n: str, srcs: list[str]) -> list[str]:
        """NIR sums multiple inputs: make that an explicit add layer."""
        if len(srcs) < 2:
            return srcs
        shape = _shape(nodes[n], "input") or (layers[srcs[0]].outputs_per_step,)
        c, y, x = (*shape, 1, 1)[:3] if len(shape) == 3 else (int(np.prod(shape)), 1, 1)
        add = Layer(f"{n}.sum", Op.ADD, Dims(T=timesteps, G=c, OY=y, OX=x), sources=(n,))
        layers[add.name] = add
        layer_edges.extend((s, add.name) for s in srcs)
        return [add.name]

    for n in nx.lexicographical_topological_sort(g):
        kind = kind_of(n)
        srcs = inputs_of(n)
        if kind in SYNAPTIC or kind in POOLS:
            srcs = merge(n, srcs)
            layer = _layer_for(n, nodes[n], timesteps, path)
            layers[n] = layer
            layer_edges.extend((s, n) for s in srcs)
            owner[n] = n
        elif kind in NEURON_MODELS or kind == "Threshold":
            srcs = merge(n, srcs)
            target = srcs[0] if srcs else None
            if target is None or layers[target].neuron is not None:
                raise StemsInputError(
                    "neuron has no synaptic layer of its own feeding it", path=path, where=n
                )
            layer = layers[target]
            neuron = _neuron(kind) if kind != "Threshold" else Neuron("Threshold", (), "nir.Threshold")
            if (
                neuron.state_vars
                and int(np.prod(_shape(nodes[n], "input") or (layer.outputs_per_step,)))
                != layer.outputs_per_step
            ):
                raise StemsInputError(
                    f"neuron shape {_shape(nodes[n], 'input')} does not match its layer {target}",
                    path=path,
                    where=n,
                )
            rec = [w for w, nn in recurrent.items() if nn == n]
            rec_c = sum(int(np.asarray(nodes[w].weight).shape[-1]) for w in rec)
            layers[target] = replace(
                layer, neuron=neuron, recurrent_c=rec_c, sources=(*layer.sources, n, *rec)
            )
            owner[n] = target
        else:  # pass-through: Input, Output, Flatten, Scale, Delay, nested-graph entry/exit
            srcs = merge(n, srcs) if kind != "Input" else srcs
            if srcs:
                owner[n] = srcs[0]
    if not layers:
        raise StemsInputError("the NIR graph has no synaptic layers", path=path)
    for name, layer in layers.items():
        block = name.rsplit(".", 1)[0] if "." in name else name
        layers[name] = replace(layer, block=block)
    source = SourceInfo(
        path=str(path), format="nir", sha256=hashlib.sha256(data).hexdigest(), exporter="nir", library="nir"
    )
    inputs = {n: _shape(nodes[n], "output") for n in nodes if nodes[n] is not None and kind_of(n) == "Input"}
    return Workload(path.stem, layers.values(), layer_edges, source=source, inputs=inputs, warnings=warnings)
