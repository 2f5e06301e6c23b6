"""Apply annotations to an imported workload and derive every layer's bit widths along the graph."""

from __future__ import annotations

import fnmatch
from dataclasses import fields, replace

from stems.errors import StemsInputError, did_you_mean
from stems.workload.annotations import DEFAULT_BITS, Annotations, LayerSettings
from stems.workload.model import Layer, Neuron, Precision, Rates, Workload


def _merge(a: LayerSettings, b: LayerSettings) -> LayerSettings:
    """`b` over `a`: every field `b` sets wins."""
    return replace(a, **{f.name: v for f in fields(b) if (v := getattr(b, f.name)) is not None})


def settings_per_layer(workload: Workload, ann: Annotations) -> dict[str, LayerSettings]:
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


def _neuron(current: Neuron | None, s: LayerSettings, param_bits: int | None, keep: bool) -> Neuron | None:
    """The layer's neuron under `s`; an overlay (`keep`) swaps or drops neurons but adds none."""
    neuron = current
    if s.neuron == "none" or (keep and current is None):
        neuron = None
    elif s.neuron is not None and (current is None or current.model != s.neuron):
        was = current.model if current else "none"
        neuron = Neuron.of(s.neuron, source_class=f"annotation (exported: {was})")
        if current is not None:
            neuron = replace(neuron, param_bits=current.param_bits, param_scope=current.param_scope)
    if neuron is None:
        return None
    return replace(
        neuron,
        stateful=s.stateful if s.stateful is not None else neuron.stateful,
        param_bits=s.param_bits or param_bits or neuron.param_bits,
        param_scope=s.param_scope or neuron.param_scope,
    )


def _out_bits(
    layer: Layer, neuron: Neuron | None, s: LayerSettings, in_bits: int, bits: dict, keep: bool
) -> int:
    """A layer's output width: explicit, else a pool/add/view passes its widest input on, else (with
    `keep`, unless its neuron or the activation width changes) what it was, else 1 for a spiking neuron
    and `activation_bits` for a weighted or non-spiking-neuron layer."""
    if s.output_bits is not None:
        return s.output_bits
    if not layer.op.has_weights and neuron is None:
        return in_bits
    spiking = neuron is not None and neuron.spiking
    if keep and s.neuron is None and (spiking or "activation_bits" not in bits):
        return layer.precision.O_final
    return 1 if spiking else bits.get("activation_bits", DEFAULT_BITS["activation_bits"])


def annotate(workload: Workload, ann: Annotations, *, keep: bool = False) -> Workload:
    """The workload with annotations applied and I/O bit widths propagated from producers.

    Output bits: an explicit `output_bits`, else 1 for a spiking neuron, else `activation_bits`
    for a weighted or non-spiking-neuron layer, else (pool, add, concat, view, resize) the widest
    input. Input bits: the widest producer's output, or `input_bits` at the network input.

    `keep=True` applies `ann` as an overlay on an annotated workload (a sweep value's knobs): only what
    it gives changes (its `defaults` apply to every layer, a neuron model only to layers with a neuron);
    every other width stays as it was.
    """
    bits = dict(ann.defaults) if keep else dict(ann.bits)
    per = settings_per_layer(workload, ann)
    done: dict[str, Layer] = {}
    for layer in workload:  # topological order: producers are done first
        s = per[layer.name]
        neuron = _neuron(layer.neuron, s, bits.get("param_bits"), keep)
        producers = [done[p] for p in workload.predecessors(layer.name)]
        in_bits = max(
            (p.precision.O_final for p in producers), default=bits.get("input_bits", layer.precision.I)
        )
        p = layer.precision
        precision = Precision(
            I=in_bits,
            W=s.weight_bits or bits.get("weight_bits", p.W),
            O=s.psum_bits or bits.get("psum_bits", p.O),
            O_final=_out_bits(layer, neuron, s, in_bits, bits, keep),
            V=s.state_bits or bits.get("state_bits", p.V),
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
