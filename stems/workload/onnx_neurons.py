"""Neurons: find the spike comparisons, attach each neuron to the layer feeding it, and classify it.

ONNX has no neuron operator. A spiking neuron shows up as a float comparison (`Greater`,
`GreaterOrEqual`, ...) whose result is cast to a number: the spike. The layer grouping has already
attributed the compared membrane to the layer that feeds the neuron (the whole state update is
elementwise on that layer's output), so comparisons are grouped by that layer: one neuron layer per
synaptic layer, however many timesteps were unrolled. The model and state variables come from the
module class (dynamo metadata), else from parameter names the TorchScript exporter keeps
(`lif1.beta`), else from structure: the tensors one step hands to the next (state variables) and
whether the state is scaled by a constant on its way (a leak).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import onnx

from stems.errors import StemsInputError
from stems.workload.model import NEURON_STATE_VARS, Neuron
from stems.workload.onnx_graph import COMPARE_OPS, ELEMENTWISE, OnnxGraph, Scope
from stems.workload.onnx_layers import LayerGroup, Layers, Pseudo
from stems.workload.onnx_time import TimeInfo

_KNOWN: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {
    **{("snntorch", c): ("LIF", ("mem",)) for c in ("Leaky", "RLeaky", "Lapicque")},
    **{("snntorch", c): ("CubaLIF", ("syn", "mem")) for c in ("Synaptic", "RSynaptic")},
    **{("norse", c): ("CubaLIF", ("v", "i")) for c in ("LIFCell", "LIFRecurrentCell", "LIF", "LIFRecurrent")},
    ("norse", "LIFBoxCell"): ("LIF", ("v",)),
    **{("norse", c): ("CubaLI", ("v", "i")) for c in ("LICell", "LI")},
    **{("sinabs", c): ("IF", ("v_mem",)) for c in ("IAF", "IAFSqueeze", "IAFRecurrent")},
    **{("sinabs", c): ("LIF", ("v_mem",)) for c in ("LIF", "LIFSqueeze", "LIFRecurrent")},
    **{("sinabs", c): ("LI", ("v_mem",)) for c in ("ExpLeak", "ExpLeakSqueeze")},
}
"""(library, class) -> (model, state variables) for the neuron modules of the four libraries."""


@dataclass(frozen=True)
class FoundNeuron:
    """A neuron attached to a layer, with the comparisons (one or more per timestep) that fire it."""

    layer: LayerGroup
    neuron: Neuron
    compares: tuple[int, ...]
    steps: int  # distinct timesteps seen (comparisons on distinct membranes)
    library: str


def known_class(cls: str) -> tuple[str, tuple[str, ...]] | None:
    lib, short = cls.split(".", 1)[0], cls.rsplit(".", 1)[-1]
    if lib == "spikingjelly" and short.endswith("Node"):
        return ("IF" if short == "IFNode" else "LIF", ("v",))
    return _KNOWN.get((lib, short))


def neuron_module(scope: Scope) -> tuple[str, str]:
    """The innermost enclosing module of a known neuron class, else the node's own module."""
    for path, cls in reversed(scope.chain):
        if known_class(cls):
            return path, cls
    return scope.path, scope.cls


def find_neurons(g: OnnxGraph, layers: Layers, time: TimeInfo) -> list[FoundNeuron]:
    by_layer: dict[LayerGroup, list[int]] = {}
    for i, node in enumerate(g.nodes):
        membrane = _membrane(g, node)
        if membrane is None:
            continue
        src = layers.attr.get(membrane)
        if not isinstance(src, LayerGroup):
            what = {"input": "graph input", "state": "state input", "rec": "recurrent weight"}
            origin = f"{what[src.kind]} '{src.name}'" if isinstance(src, Pseudo) else "constants"
            raise StemsInputError(
                f"neuron pattern ({node.op_type} -> Cast) has no synaptic layer: it is fed by {origin} only",
                path=g.path,
                where=node.name or node.op_type,
            )
        by_layer.setdefault(src, []).append(i)
    found = [_neuron_for(g, time, layer, compares) for layer, compares in by_layer.items()]
    return found + _silent_neurons(g, layers, found)


def _membrane(g: OnnxGraph, node: onnx.NodeProto) -> str | None:
    """The compared value if `node` fires spikes: a float comparison turned into numbers, by a Cast
    or by a Where choosing between two constants (a Where choosing activations is a ReLU-like mask)."""
    if node.op_type not in COMPARE_OPS:
        return None
    data = [t for t in g.nonconst(node) if g.is_float(t)]
    for c in g.consumers.get(node.output[0], ()):
        use = g.nodes[c]
        if use.op_type in ("Cast", "CastLike") or (use.op_type == "Where" and not g.nonconst(use)[1:]):
            return data[0] if data else None
    return None


def _neuron_for(g: OnnxGraph, time: TimeInfo, layer: LayerGroup, compares: list[int]) -> FoundNeuron:
    modules = list(dict.fromkeys(neuron_module(g.scope(g.nodes[c])) for c in compares))
    paths = sorted({p for p, _ in modules if p})
    if len(paths) > 1:
        raise StemsInputError(
            f"neurons {' and '.join(paths)} both read the output of one layer: a neuron fed directly "
            "by another neuron (no synaptic layer between them) cannot be attributed",
            path=g.path,
            where=g.nodes[compares[-1]].name,
        )
    path, cls = next(((p, c) for p, c in modules if p), modules[0])
    membranes = [m for m in dict.fromkeys(_membrane(g, g.nodes[c]) for c in compares) if m]
    known = known_class(cls) if cls else _guess_from_params(g, path)
    library = cls.split(".", 1)[0] if cls else ""
    if known:
        model, state_vars = known
        stateful = True
        library = library or ("snntorch" if "mem" in state_vars else "sinabs")
    else:
        model, state_vars, stateful = _structural(g, time, membranes, path)
    neuron = Neuron(
        model=model, state_vars=state_vars, source_class=cls, spiking=True, stateful=stateful, module=path
    )
    return FoundNeuron(layer, neuron, tuple(compares), len(membranes), library)


def _guess_from_params(g: OnnxGraph, path: str) -> tuple[str, tuple[str, ...]] | None:
    """TorchScript keeps neuron parameters under their module path: snntorch and sinabs are recognisable."""
    if not path:
        return None
    params = g.module_params(path)
    if {"beta", "threshold"} <= params:
        return ("CubaLIF", ("syn", "mem")) if "alpha" in params else ("LIF", ("mem",))
    if "spike_threshold" in params:
        return ("LIF", ("v_mem",)) if params & {"alpha_mem", "tau_mem"} else ("IF", ("v_mem",))
    return None


def _walk_back(
    g: OnnxGraph, start: str, stop: set[int], through_cast: bool = True
) -> tuple[set[int], set[str], set[str]]:
    """Elementwise nodes computing `start`, back to comparisons, non-elementwise ops and `stop` nodes.

    Returns (nodes walked, tensors produced by `stop` nodes, graph inputs reached).
    """
    nodes: set[int] = set()
    hits: set[str] = set()
    inputs: set[str] = set()
    stack = [start]
    while stack:
        t = stack.pop()
        if t in g.const:
            continue
        p = g.producer.get(t)
        if p is None:
            inputs.add(t)
        elif p in stop:
            hits.add(t)
        elif p not in nodes:
            node = g.nodes[p]
            walkable = node.op_type in ELEMENTWISE and node.op_type not in COMPARE_OPS
            if walkable and (through_cast or node.op_type not in ("Cast", "CastLike")):
                nodes.add(p)
                stack.extend(g.nonconst(node))
    return nodes, hits, inputs


def _structural(
    g: OnnxGraph, time: TimeInfo, membranes: list[str], path: str
) -> tuple[str, tuple[str, ...], bool]:
    """Model, state variables and statefulness from the graph alone.

    State variables are the tensors one step hands to the next (or the state inputs of a step graph)
    that reach the next membrane without passing a comparison; a leak is a constant factor
    (other than 1) applied to such a tensor on its way to the next membrane.
    """
    before: set[int] = set()
    if time.state_inputs:
        _, _, inputs = _walk_back(g, membranes[-1], before)
        carried = [x for x in g.inputs if x in inputs and x in time.state_inputs]
        names = tuple(_strip_prefix(x, path) for x in carried)
    elif len(membranes) >= 2:
        before, _, _ = _walk_back(g, membranes[-2], before)
        _, carried_set, _ = _walk_back(g, membranes[-1], before)
        carried, names = sorted(carried_set), ()
    else:
        return "LIF", NEURON_STATE_VARS["LIF"], True  # one step, no state I/O: nothing to go on
    leak = _has_leak(g, membranes[-1], before, set(carried))
    n = len(carried)
    model = "CubaLIF" if n >= 2 else ("LIF" if leak else "IF")
    if not names:
        default = NEURON_STATE_VARS[model]
        names = default if len(default) == n or n == 0 else tuple(f"s{k}" for k in range(n))
    return model, names, n > 0


def _has_leak(g: OnnxGraph, membrane: str, before: set[int], carried: set[str]) -> bool:
    on_path, _, _ = _walk_back(g, membrane, before, through_cast=False)
    sources = {g.producer[t] for t in carried if t in g.producer}
    for i in on_path:
        node = g.nodes[i]
        consts = [t for t in node.input if t in g.const]
        if node.op_type not in ("Mul", "Div") or len(consts) != 1:
            continue
        value = g.value(consts[0])
        if value is not None and value.size == 1 and float(value.flat[0]) == 1.0:
            continue
        data = g.nonconst(node)[0]
        _, hits, inputs = _walk_back(g, data, sources, through_cast=False)
        if data in carried or (hits | inputs) & carried:
            return True
    return False


def _strip_prefix(name: str, module: str) -> str:
    for sep in ("_", "."):
        if module and name.startswith(module + sep):
            return name[len(module) + 1 :]
    return name


def _silent_neurons(g: OnnxGraph, layers: Layers, found: list[FoundNeuron]) -> list[FoundNeuron]:
    """Non-spiking neuron modules (norse LICell, sinabs ExpLeak): a known class but no comparison.

    The neuron attaches to the first layer its nodes compute on, unless that layer has a neuron."""
    if g.exporter != "dynamo":  # only dynamo records module classes
        return []
    taken = {f.neuron.module for f in found} | {id(f.layer) for f in found}
    out = []
    for node in g.nodes:
        path, cls = neuron_module(g.scope(node))
        known = known_class(cls) if cls else None
        src = layers.attr.get(node.output[0]) if node.output else None
        if known and known[0] in ("LI", "CubaLI") and path not in taken and isinstance(src, LayerGroup):
            if id(src) not in taken:
                neuron = Neuron(known[0], known[1], source_class=cls, spiking=False, module=path)
                out.append(FoundNeuron(src, neuron, (), 0, cls.split(".", 1)[0]))
                taken.add(id(src))
            taken.add(path)
    return out


def library_of(found: list[FoundNeuron], g: OnnxGraph) -> str:
    libs = Counter(f.library for f in found if f.library)
    if libs:
        return libs.most_common(1)[0][0]
    return "stems" if g.model.producer_name.startswith("stems") else ""
