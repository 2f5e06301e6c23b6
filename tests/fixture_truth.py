"""Ground truth of the torch-made fixtures (tests/fixtures/fixtures.json) and how to compare with it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stems.workload import Workload, totals

FIXTURES = Path(__file__).parent / "fixtures"
TRUTH: dict[str, dict[str, Any]] = json.loads((FIXTURES / "fixtures.json").read_text())["fixtures"]


def names(suffix: str) -> list[str]:
    return sorted(name for name in TRUTH if name.endswith(suffix))


def assert_matches_truth(w: Workload, truth: dict[str, Any]) -> None:
    """Layer counts, weights, T, and per neuron layer its state variables and neuron count."""
    t = totals(w)
    for key in ("conv_layers", "linear_layers", "neuron_layers", "weights"):
        assert t[key] == truth[key], f"{key}: stems {t[key]}, truth {truth[key]}"
    if truth["T"] is not None:
        assert t["timesteps"] == truth["T"]
    assert t["recurrent_layers"] == len(truth["recurrent_layers"])
    got = sorted((x.neuron.n_state, x.neurons) for x in w if x.neuron is not None)
    want = sorted((len(n["state_vars"]), n["neurons_per_step"]) for n in truth["neurons"])
    assert got == want, f"(state vars, neurons) per neuron layer: stems {got}, truth {want}"
