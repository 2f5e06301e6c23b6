"""Apply annotations to an imported workload and derive every layer's bit widths along the graph."""

from __future__ import annotations

import fnmatch
from dataclasses import fields, replace

from stems.errors import StemsInputError, did_you_mean
from stems.workload.annotations import Annotations, LayerSettings
from stems.workload.model import Layer, Neuron, Precision, Rates, Workload


def _merge(a: LayerSettings, b: LayerSettings) -> LayerSettings:
    """`b` over `a`: every field `b` sets wins."""
    return replace(a, **{f.name: v for f in fields(b) if (v := getattr(b, f.name)) is not None})


def _settings_per_layer(workload: Workload, ann: Annotations) -> dict[str, LayerSettings]:
    """Each layer's effective settings: its block's entries, then matching layer entries in file order.

    Block labels are resolved first (a `layers:` entry may set `block`), so `blocks:` entries match
    the final labels. An entry that matches no block or no layer is an error: typos never pass.
    """
    names = [x.name for x in workload]
    matches = []
    for pattern, entry in ann.layers:
        hits = fnmatch.filter(names, pattern)
        if not hits:
            raise StemsInputError(
                f"matches no layer{did_you_mean(pattern, names)}", path=ann.path, where=f"layers.{pattern}"
            )
        matches.append((hits, entry))
    block = {x.name: x.block for x in workload}
    for hits, entry in matches:
        if entry.block is not None:
            block.update(dict.fromkeys(hits, entry.block))
    labels = sorted(set(block.values()))
    per = {name: LayerSettings() for name in names}
    for label, entry in ann.blocks:
        if label not in labels:
            raise StemsInputError(
                f"no block '{label}' in the model{did_you_mean(label, labels)}; blocks: {', '.join(labels)}",
                path=ann.path,
                where=f"blocks.{label}",
            )
        for name in names:
            if block[name] == label:
                per[name] = _merge(per[name], entry)
    for hits, entry in matches:
        for name in hits:
            per[name] = _merge(per[name], entry)
    return per


def _neuron(current: Neuron | None, s: LayerSettings) -> Neuron | None:
    neuron = current
    if s.neuron == "none":
        neuron = None
    elif s.neuron is not None and (current is None or current.model != s.neuron):
        was = current.model if current else "none"
        neuron = Neuron.of(s.neuron, source_class=f"annotation (exported: {was})")
    if s.stateful is not None and neuron is not None:
        neuron = replace(neuron, stateful=s.stateful)
    return neuron


def annotate(workload: Workload, ann: Annotations) -> Workload:
    """The workload with annotations applied and I/O bit widths propagated from producers.

    Output bits: an explicit `output_bits`, else 1 for a spiking neuron, else `activation_bits`
    for a weighted or non-spiking-neuron layer, else (pool, add, concat, view, resize) the widest
    input. Input bits: the widest producer's output, or `input_bits` at the network input.
    """
    bits = ann.bits
    per = _settings_per_layer(workload, ann)
    done: dict[str, Layer] = {}
    for layer in workload:  # topological order: producers are done first
        s = per[layer.name]
        neuron = _neuron(layer.neuron, s)
        producers = [done[p] for p in workload.predecessors(layer.name)]
        in_bits = max((p.precision.O_final for p in producers), default=bits["input_bits"])
        if s.output_bits is not None:
            out_bits = s.output_bits
        elif neuron is not None and neuron.spiking:
            out_bits = 1
        elif layer.op.has_weights or neuron is not None:
            out_bits = bits["activation_bits"]
        else:
            out_bits = in_bits
        precision = Precision(
            I=in_bits,
            W=s.weight_bits or bits["weight_bits"],
            O=s.psum_bits or bits["psum_bits"],
            O_final=out_bits,
            V=s.state_bits or bits["state_bits"],
        )
        rates = Rates(
            I=s.rate_in if s.rate_in is not None else layer.rates.I,
            O=s.rate_out if s.rate_out is not None else layer.rates.O,
        )
        done[layer.name] = replace(
            layer,
            precision=precision,
            neuron=neuron,
            rates=rates,
            block=s.block if s.block is not None else layer.block,
        )
    return workload.replace_layers(done)
