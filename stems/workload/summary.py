"""Per-layer table and network totals of a workload: what `stems inspect` shows."""

from __future__ import annotations

from typing import Any

import pandas as pd

from stems.workload.model import LOOP_DIMS, Layer, Op, Workload


def _row(layer: Layer) -> dict[str, Any]:
    n = layer.neuron
    ops = layer.synaptic_ops
    return {
        "name": layer.name,
        "op": str(layer.op),
        "block": layer.block,
        **layer.dims.as_dict(),
        "neuron": n.model if n else "",
        "state_vars": n.n_state if n else 0,
        "recurrent_c": layer.recurrent_c,
        "weights": layer.weights,
        "neurons": layer.neurons,
        "state_bits": layer.state_bits,
        "accumulates": ops if layer.spike_input else 0,
        "macs": 0 if layer.spike_input else ops,
        "bits_I_W_O_V": "/".join(
            str(b) for b in (layer.precision.I, layer.precision.W, layer.precision.O_final, layer.precision.V)
        ),
    }


def layer_table(workload: Workload, *, include_views: bool = False) -> pd.DataFrame:
    """One row per layer in topological order; zero-cost views are left out unless asked for."""
    rows = [_row(x) for x in workload if include_views or x.op is not Op.VIEW]
    columns = [
        "name",
        "op",
        "block",
        *LOOP_DIMS,
        "neuron",
        "state_vars",
        "recurrent_c",
        "weights",
        "neurons",
        "state_bits",
        "accumulates",
        "macs",
        "bits_I_W_O_V",
    ]
    return pd.DataFrame(rows, columns=columns)


def totals(workload: Workload) -> dict[str, int]:
    """Network totals; the keys are the `totals` object of `stems inspect --json`."""
    layers = list(workload)
    return {
        "layers": sum(x.op is not Op.VIEW for x in layers),
        "conv_layers": sum(x.op is Op.CONV for x in layers),
        "linear_layers": sum(x.op is Op.DENSE for x in layers),
        "neuron_layers": sum(x.neuron is not None for x in layers),
        "stateful_layers": sum(x.stateful for x in layers),
        "recurrent_layers": sum(x.recurrent_c > 0 for x in layers),
        "weights": sum(x.weights for x in layers),
        "biases": sum(x.biases for x in layers),
        "neurons": sum(x.neurons for x in layers),
        "state_bits": sum(x.state_bits for x in layers),
        "weight_bits": sum(x.weights * x.precision.W for x in layers),
        "accumulates": sum(x.synaptic_ops for x in layers if x.spike_input),
        "macs": sum(x.synaptic_ops for x in layers if not x.spike_input),
        "timesteps": workload.timesteps,
    }
