"""Network knobs: sweep keys that are annotations paths, applied as an overlay, and what moved from the model.

A network sweep key is a path into an annotations document: `defaults.weight_bits`, `blocks.3.neuron`,
`layers.conv1.state_bits`, `layers.blocks.0.c1.spike_rate.output` (layer names may hold dots: the last
part is the key). Each sweep value's network keys form one annotations overlay, validated by the
annotations parser and applied over the loaded model (`annotate(..., keep=True)`): its `defaults` set
every layer, its block and layer entries the layers they match, and nothing else moves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from stems.errors import StemsInputError
from stems.workload.annotate import annotate
from stems.workload.annotations import SCHEMA_VERSION, parse_annotations
from stems.workload.model import Layer, Workload

NETWORK_SECTIONS = ("defaults", "blocks", "layers")
"""First part of a network sweep key: the annotations section it addresses."""

LAYER_KNOBS = {
    "weight_bits": lambda x: x.precision.W if x.op.has_weights else None,
    "psum_bits": lambda x: x.precision.O if x.op.has_weights else None,
    "output_bits": lambda x: x.precision.O_final if x.op.has_weights or x.neuron else None,
    "state_bits": lambda x: x.precision.V if x.neuron else None,
    "neuron": lambda x: x.neuron.model if x.neuron else "none",
    "stateful": lambda x: x.neuron.stateful if x.neuron else None,
    "param_bits": lambda x: x.neuron.param_bits if x.neuron else None,
    "param_scope": lambda x: x.neuron.param_scope if x.neuron else None,
}
"""The per-layer knobs a network change is read from, where they mean something (a pool's output width
only follows its input; spike rates are data, not the network)."""


def is_network_key(key: str) -> bool:
    return key.split(".", 1)[0] in NETWORK_SECTIONS


def network_path(key: str) -> list[str]:
    """`layers.a.b.spike_rate.output` as ['layers', 'a.b', 'spike_rate', 'output']."""
    section, _, rest = key.partition(".")
    parts = rest.split(".") if rest else []
    if section == "defaults" and len(parts) == 1:
        return [section, rest]
    tail = 2 if len(parts) >= 3 and parts[-2] == "spike_rate" else 1
    if len(parts) <= tail:
        raise StemsInputError(
            f"expected {section}.NAME.KEY (e.g. {section}.3.weight_bits), not {key!r}"
            if section != "defaults"
            else f"expected defaults.KEY (e.g. defaults.weight_bits), not {key!r}",
            where="--sweep",
        )
    return [section, ".".join(parts[:-tail]), *parts[-tail:]]


def _value(raw: str) -> Any:
    """A sweep value as YAML reads it (`8` an int, `false` a bool, `LIF` a string)."""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def overlay_doc(values: Mapping[str, str]) -> dict[str, Any]:
    """The annotations document of a sweep value's network keys ({} when it has none)."""
    doc: dict[str, Any] = {}
    for key, raw in values.items():
        if not is_network_key(key):
            continue
        path = network_path(key)
        node = doc
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = _value(raw)
    return {"stems_annotations": SCHEMA_VERSION, **doc} if doc else {}


def merge_docs(*docs: Mapping[str, Any]) -> dict[str, Any]:
    """Annotations documents merged, later ones winning key by key (layer entries merged, not replaced)."""
    out: dict[str, Any] = {}
    for doc in docs:
        for key, value in doc.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
                out[key] = merge_docs(out[key], value)
            else:
                out[key] = value
    return out


def apply_knobs(workload: Workload, doc: Mapping[str, Any], where: str = "--sweep") -> Workload:
    """`workload` with an overlay annotations document applied (validated as an annotations file)."""
    if not doc:
        return workload
    return annotate(workload, parse_annotations(doc, where), keep=True)


def _layer_changes(base: Layer, now: Layer) -> dict[str, tuple[Any, Any]]:
    return {k: (f(base), f(now)) for k, f in LAYER_KNOBS.items() if f(base) != f(now)}


def network_changes(base: Workload, workload: Workload, removed: int = 0) -> list[str]:
    """What moved from the model as loaded, short: `T 16->4`, `weight_bits 4->2 (20 layers)`,
    `neuron (3 layers)`, `state removed (2 layers)` (by the schedule)."""
    out = []
    if workload.timesteps != base.timesteps:
        out.append(f"T {base.timesteps}->{workload.timesteps}")
    moved: dict[str, list[tuple[Any, Any]]] = {}
    for layer in workload:
        for knob, pair in _layer_changes(base.layer(layer.name), layer).items():
            moved.setdefault(knob, []).append(pair)
    for knob, pairs in moved.items():
        n = f"{len(pairs)} layer{'s' if len(pairs) > 1 else ''}"
        kinds = set(pairs)
        out.append(f"{knob} {pairs[0][0]}->{pairs[0][1]} ({n})" if len(kinds) == 1 else f"{knob} ({n})")
    if removed:
        out.append(f"state removed ({removed} layer{'s' if removed > 1 else ''})")
    return out
