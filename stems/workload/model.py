"""The workload model: an SNN as a validated DAG of layers in einsum (loop-nest) form.

Every later stage (cost model, searches, schedules) reads only these types. A layer is one
synaptic operator with its loop sizes, the neuron model attached to its output (if any), the
precision of each operand and the spike rates. Recurrence stays inside a layer (a recurrent
weight operand plus the layer's own state), so the layer graph itself is always acyclic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any

import networkx as nx

from stems.errors import StemsInputError

LOOP_DIMS = ("T", "B", "G", "K", "C", "OY", "OX", "FY", "FX")
"""Loop dimensions, outermost first. G counts groups (depthwise conv: G = channels, K = C = 1)."""

REDUCTION_DIMS = ("C", "FY", "FX")
OPERANDS = ("I", "W", "O", "O_final", "V")


class Op(StrEnum):
    """What a layer computes. Only CONV and DENSE carry weights."""

    CONV = "conv"
    DENSE = "dense"
    ADD = "add"
    MUL = "mul"
    MAXPOOL = "maxpool"
    AVGPOOL = "avgpool"
    SUMPOOL = "sumpool"
    CONCAT = "concat"
    RESIZE = "resize"
    VIEW = "view"  # flatten/reshape/identity: zero cost, kept for traceability

    @property
    def has_weights(self) -> bool:
        return self in (Op.CONV, Op.DENSE)

    @property
    def is_pool(self) -> bool:
        return self in (Op.MAXPOOL, Op.AVGPOOL, Op.SUMPOOL)


@dataclass(frozen=True)
class Dims:
    """Loop sizes of one layer. K and C are per group; T is the number of timesteps."""

    T: int = 1
    B: int = 1
    G: int = 1
    K: int = 1
    C: int = 1
    OY: int = 1
    OX: int = 1
    FY: int = 1
    FX: int = 1

    def as_dict(self) -> dict[str, int]:
        return {d: getattr(self, d) for d in LOOP_DIMS}

    def product(self, dims: Iterable[str]) -> int:
        return math.prod(getattr(self, d) for d in dims)


@dataclass(frozen=True)
class Window:
    """Sliding-window geometry of a conv, pool or resize: (y, x) pairs; padding is (top, left, bottom, right).

    `input_yx` is the input's true size: a strided window can leave trailing rows unread, and a
    resize has no kernel, so the size cannot always be derived from the output.
    """

    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    input_yx: tuple[int, int] | None = None

    def input_size(self, out: int, kernel: int, axis: int) -> int:
        """Input rows (axis 0) or columns (axis 1): the stored size, else what `out` outputs read."""
        if self.input_yx is not None:
            return self.input_yx[axis]
        pad = self.padding[axis] + self.padding[axis + 2]
        return (out - 1) * self.stride[axis] + (kernel - 1) * self.dilation[axis] + 1 - pad


@dataclass(frozen=True)
class Precision:
    """Bits per element of each operand.

    I: input activations (1 for spikes); W: weights; O: partial sums while a reduction is open;
    O_final: the finished output (1 for spikes); V: one neuron state variable.
    """

    I: int = 1
    W: int = 4
    O: int = 12
    O_final: int = 1
    V: int = 12

    def __post_init__(self) -> None:
        for f in fields(self):
            bits = getattr(self, f.name)
            if not isinstance(bits, int) or isinstance(bits, bool) or not 1 <= bits <= 32:
                raise ValueError(f"precision {f.name} must be an integer from 1 to 32 bits, not {bits!r}")


@dataclass(frozen=True)
class Rates:
    """Fraction of non-zero elements of the input and output (1.0 = dense)."""

    I: float = 1.0
    O: float = 1.0

    def __post_init__(self) -> None:
        for name, r in (("I", self.I), ("O", self.O)):
            if not 0.0 <= r <= 1.0:
                raise ValueError(f"rate {name} must be within 0..1, not {r}")


NEURON_STATE_VARS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "IF": ("v",),
        "LIF": ("v",),
        "CubaLIF": ("i", "v"),
        "LI": ("v",),
        "CubaLI": ("i", "v"),
        "I": ("v",),
        "LinearMemory": ("m",),
    }
)
"""State variables of each neuron model; a Neuron may carry its own list (e.g. norse's v, i)."""

NEURON_PARAMS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "IF": ("threshold",),
        "LIF": ("threshold", "leak"),
        "CubaLIF": ("threshold", "leak_v", "leak_i"),
        "LI": ("leak",),
        "CubaLI": ("leak_v", "leak_i"),
        "I": (),
        "LinearMemory": (),
    }
)
"""Parameters of each neuron model (threshold, leaks), stored at `param_bits` per neuron or per layer."""

PARAM_SCOPES = ("layer", "neuron")
"""Where neuron parameters are stored: one set per layer (the default; small) or one per neuron."""

NON_SPIKING_MODELS = frozenset({"LI", "CubaLI", "I", "LinearMemory"})
"""Models whose output is a multi-bit value (a leaky integrator or memory), not a spike."""


@dataclass(frozen=True)
class Neuron:
    """The neuron dynamics applied to a layer's output, one update per neuron per timestep.

    `stateful=False` models a neuron whose state is reset every timestep (no V kept across time),
    which is how a layer is made stateless; `spiking=False` covers leaky integrators and linear
    memories whose output is multi-bit.
    """

    model: str
    state_vars: tuple[str, ...]
    source_class: str = ""
    spiking: bool = True
    stateful: bool = True
    module: str = ""  # the neuron's module path in the source model (`features.2`, `lif1`), if known
    param_bits: int = 16
    param_scope: str = "layer"

    def __post_init__(self) -> None:
        bits = self.param_bits
        if not isinstance(bits, int) or isinstance(bits, bool) or not 1 <= bits <= 32:
            raise ValueError(f"param_bits must be an integer from 1 to 32, not {bits!r}")
        if self.param_scope not in PARAM_SCOPES:
            raise ValueError(
                f"param_scope must be one of {', '.join(PARAM_SCOPES)}, not {self.param_scope!r}"
            )

    @property
    def n_state(self) -> int:
        return len(self.state_vars) if self.stateful else 0

    @property
    def n_params(self) -> int:
        """Parameters per neuron model (threshold, leaks); 0 for a model stems does not list."""
        return len(NEURON_PARAMS.get(self.model, ()))

    @classmethod
    def of(cls, model: str, **kw: Any) -> Neuron:
        if model not in NEURON_STATE_VARS:
            raise ValueError(f"unknown neuron model {model!r}; known: {', '.join(NEURON_STATE_VARS)}")
        kw.setdefault("spiking", model not in NON_SPIKING_MODELS)
        return cls(model=model, state_vars=NEURON_STATE_VARS[model], **kw)


@dataclass(frozen=True)
class Layer:
    """One operator of the network in loop-nest form, with its neuron, precisions and rates.

    `recurrent_c` is the length of the vector fed back from the previous timestep (snntorch
    RLeaky, norse LIFRecurrentCell, an LMU memory): it adds a K x recurrent_c weight operand.
    """

    name: str
    op: Op
    dims: Dims
    precision: Precision = field(default_factory=Precision)
    window: Window = field(default_factory=Window)
    neuron: Neuron | None = None
    rates: Rates = field(default_factory=Rates)
    block: str = ""
    recurrent_c: int = 0
    has_bias: bool = False
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for d, n in self.dims.as_dict().items():
            if not isinstance(n, int) or n < 1:
                raise ValueError(f"loop {d} must be a positive integer, not {n!r}")
        if self.recurrent_c < 0:
            raise ValueError("recurrent_c must be >= 0")
        if self.op is Op.DENSE and (self.dims.FY, self.dims.FX, self.dims.OY, self.dims.OX) != (1, 1, 1, 1):
            raise ValueError("a dense layer has OY = OX = FY = FX = 1")

    # Sizes per inference (all timesteps) unless the name says per timestep.
    @property
    def weights(self) -> int:
        """Synaptic weights, recurrent ones included, biases excluded."""
        if not self.op.has_weights:
            return 0
        d = self.dims
        return d.G * d.K * (d.C * d.FY * d.FX + self.recurrent_c)

    @property
    def biases(self) -> int:
        return self.dims.G * self.dims.K if self.has_bias and self.op.has_weights else 0

    @property
    def outputs_per_step(self) -> int:
        d = self.dims
        return d.B * d.G * d.K * d.OY * d.OX

    @property
    def neurons(self) -> int:
        return self.outputs_per_step if self.neuron is not None else 0

    @property
    def stateful(self) -> bool:
        """A neuron state persists across timesteps. Not at T = 1: the state is born and dies within the
        one timestep, so it is only the accumulator, as in a stateless layer (no V kept or moved)."""
        return self.neuron is not None and self.neuron.n_state > 0 and self.dims.T > 1

    @property
    def state_bits(self) -> int:
        """Bits of neuron state kept across timesteps (0 for stateless layers)."""
        return self.neurons * self.neuron.n_state * self.precision.V if self.stateful else 0

    @property
    def param_bits(self) -> int:
        """Bits of neuron parameters (threshold, leaks): per layer or per neuron (`Neuron.param_scope`)."""
        n = self.neuron
        if n is None:
            return 0
        return n.n_params * n.param_bits * (self.neurons if n.param_scope == "neuron" else 1)

    @property
    def input_elements_per_step(self) -> int:
        """Elements of the input tensor read by one timestep (padding excluded)."""
        d = self.dims
        if self.op is Op.VIEW or self.op is Op.CONCAT:
            return self.outputs_per_step
        if self.op is Op.DENSE:
            return d.B * d.G * d.C
        iy = self.window.input_size(d.OY, d.FY, 0)
        ix = self.window.input_size(d.OX, d.FX, 1)
        return d.B * d.G * d.C * iy * ix

    @property
    def synaptic_ops(self) -> int:
        """Multiply-accumulates (or accumulates, for spike inputs) per inference."""
        if not self.op.has_weights:
            return 0
        d = self.dims
        return d.T * d.B * d.G * d.K * d.OY * d.OX * (d.C * d.FY * d.FX + self.recurrent_c)

    @property
    def spike_input(self) -> bool:
        """True when the input is 1-bit spikes, so the synaptic op is an accumulate, not a MAC."""
        return self.precision.I == 1


@dataclass(frozen=True)
class SourceInfo:
    """Where a workload came from, for traceability in every output."""

    path: str = ""
    format: str = ""  # onnx | nir | zoo
    sha256: str = ""
    exporter: str = ""  # dynamo | torchscript | ...
    library: str = ""  # snntorch | spikingjelly | norse | sinabs | stems | ...
    embedded_annotations: str = ""  # YAML a model carries in its metadata (`stems.annotations`)


class Workload:
    """A validated, read-only DAG of layers; edges run from producer to consumer.

    Build with `Workload(name, layers, edges)`: every edge end must be a layer, the graph must be
    acyclic, all layers share one T (a network runs every layer at every timestep), and element
    counts must agree along edges (views and concat included).
    """

    __slots__ = ("_graph", "inputs", "name", "source", "timesteps", "warnings")

    def __init__(
        self,
        name: str,
        layers: Iterable[Layer],
        edges: Iterable[tuple[str, str]],
        *,
        source: SourceInfo | None = None,
        inputs: Mapping[str, tuple[int, ...]] | None = None,
        warnings: Iterable[str] = (),
    ) -> None:
        g = nx.DiGraph()
        for layer in layers:
            if layer.name in g:
                raise StemsInputError("duplicate layer name", where=layer.name)
            g.add_node(layer.name, layer=layer)
        for src, dst in edges:
            for end in (src, dst):
                if end not in g:
                    raise StemsInputError(f"edge {src} -> {dst} names no layer", where=end)
            g.add_edge(src, dst)
        self._graph = nx.freeze(g)
        self.name = name
        self.source = source or SourceInfo()
        self.inputs = dict(inputs or {})
        self.warnings = tuple(warnings)
        self.timesteps = self._validate()

    def _validate(self) -> int:
        g = self._graph
        if len(g) == 0:
            raise StemsInputError("the network has no layers", path=self.source.path or None)
        if not nx.is_directed_acyclic_graph(g):
            cycle = nx.find_cycle(g)
            raise StemsInputError("layer graph has a cycle", where=" -> ".join(u for u, _ in cycle))
        ts = {layer.dims.T for layer in self}
        if len(ts) != 1:
            raise StemsInputError(f"layers disagree on the number of timesteps: {sorted(ts)}")
        for layer in self:
            preds = [self.layer(p) for p in g.predecessors(layer.name)]
            if not preds:
                continue
            produced = [p.outputs_per_step for p in preds]
            if layer.op is Op.CONCAT:
                ok = sum(produced) == layer.outputs_per_step
            elif layer.op in (Op.ADD, Op.MUL):
                ok = all(n == layer.outputs_per_step for n in produced)
            else:
                ok = len(preds) == 1 and produced[0] == layer.input_elements_per_step
            if not ok:
                names = ", ".join(f"{p.name}={n}" for p, n in zip(preds, produced, strict=True))
                raise StemsInputError(
                    f"element counts do not match along edges ({names}; "
                    f"{layer.op} expects {layer.input_elements_per_step} per timestep)",
                    where=layer.name,
                )
        return ts.pop()

    @property
    def graph(self) -> nx.DiGraph:
        """The frozen layer graph (node attribute `layer`)."""
        return self._graph

    def __iter__(self) -> Iterator[Layer]:
        """Layers in a deterministic topological order (ties broken by insertion order)."""
        order = {n: i for i, n in enumerate(self._graph.nodes)}
        for name in nx.lexicographical_topological_sort(self._graph, key=order.__getitem__):
            yield self._graph.nodes[name]["layer"]

    def __len__(self) -> int:
        return len(self._graph)

    def layer(self, name: str) -> Layer:
        try:
            return self._graph.nodes[name]["layer"]
        except KeyError:
            raise StemsInputError("no such layer", where=name) from None

    def predecessors(self, name: str) -> list[str]:
        return list(self._graph.predecessors(name))

    def successors(self, name: str) -> list[str]:
        return list(self._graph.successors(name))

    @property
    def edges(self) -> list[tuple[str, str]]:
        return list(self._graph.edges)

    def replace_layers(self, changed: Mapping[str, Layer]) -> Workload:
        """A new workload with some layers swapped (same names, same edges), re-validated."""
        layers = [changed.get(layer.name, layer) for layer in self]
        return Workload(
            self.name, layers, self.edges, source=self.source, inputs=self.inputs, warnings=self.warnings
        )

    def with_timesteps(self, t: int) -> Workload:
        """The same network run for `t` timesteps."""
        return self.replace_layers({x.name: replace(x, dims=replace(x.dims, T=t)) for x in self})


def layer_to_dict(layer: Layer) -> dict[str, Any]:
    """Plain-data form of a layer (JSON/YAML friendly)."""
    out = asdict(layer)
    out["op"] = str(layer.op)
    return out
