"""Spike rates from recorded activity: a `.npz` of spike tensors per layer, read as an annotations overlay.

Each array is one layer's recorded output, keyed by the layer's name or its neuron's module path, shaped
[T, B, ...] or [T*B, ...] with the layer's per-sample output shape after that (any T and batch the
recording used). Its fraction of non-zero elements becomes the layer's output spike rate and the input
rate of the layers consuming it (a consumer of several recorded producers gets their size-weighted mean).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from stems.errors import StemsInputError, did_you_mean
from stems.workload.annotations import SCHEMA_VERSION
from stems.workload.model import Layer, Op, Workload


def output_shape(layer: Layer) -> tuple[int, ...]:
    """One sample's output at one timestep: (channels, rows, columns), or (channels,) for a dense layer."""
    d = layer.dims
    if layer.op is Op.DENSE:
        return (d.G * d.K,)
    return (d.G * d.K, d.OY, d.OX)


def _layer_of(workload: Workload, key: str, path: str) -> Layer:
    by_module = {x.neuron.module: x for x in workload if x.neuron is not None and x.neuron.module}
    names = [x.name for x in workload]
    if key in names:
        return workload.layer(key)
    if key in by_module:
        return by_module[key]
    raise StemsInputError(
        f"no layer or neuron module '{key}'{did_you_mean(key, [*names, *by_module])}", path=path, where=key
    )


def _rate(array: np.ndarray, layer: Layer, key: str, path: str) -> float:
    per_sample = math.prod(output_shape(layer))
    shape = tuple(array.shape)
    if array.size == 0 or not (
        math.prod(shape[1:]) == per_sample or (len(shape) > 2 and math.prod(shape[2:]) == per_sample)
    ):
        raise StemsInputError(
            f"shape {shape} does not match layer {layer.name}'s output: [T, B, *{output_shape(layer)}] "
            f"or [T*B, *{output_shape(layer)}]",
            path=path,
            where=key,
        )
    return float(np.count_nonzero(array)) / array.size


def activity_rates(workload: Workload, path: str | Path) -> dict[str, Any]:
    """The annotations overlay of the spike rates recorded in `path` (output and consumers' input rates)."""
    path = str(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError) as err:
        raise StemsInputError(f"cannot read the activity file ({err})", path=path) from None
    if not arrays:
        raise StemsInputError("no arrays in the activity file", path=path)
    out_rate: dict[str, float] = {}
    for key, array in arrays.items():
        layer = _layer_of(workload, key, path)
        out_rate[layer.name] = _rate(array, layer, key, path)
    layers: dict[str, dict[str, Any]] = {n: {"spike_rate": {"output": r}} for n, r in out_rate.items()}
    for layer in workload:
        recorded = [p for p in workload.predecessors(layer.name) if p in out_rate]
        if recorded:
            sizes = [workload.layer(p).outputs_per_step for p in recorded]
            rate = sum(out_rate[p] * n for p, n in zip(recorded, sizes, strict=True)) / sum(sizes)
            layers.setdefault(layer.name, {"spike_rate": {}})["spike_rate"]["input"] = rate
    return {"stems_annotations": SCHEMA_VERSION, "layers": layers}
