"""User annotations: what an export cannot carry (bits, neuron model, rates, state, blocks), validated.

An annotations file is YAML in a small versioned schema. It is applied to an imported workload
in order: `defaults`, then `blocks`, then `layers` (file order, names or fnmatch globs), so a
specific layer entry wins over its block's entry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stems.errors import StemsInputError, did_you_mean
from stems.workload.model import NEURON_STATE_VARS, PARAM_SCOPES

SCHEMA_VERSION = 1

DEFAULT_BITS: Mapping[str, int] = {
    "weight_bits": 4,
    "state_bits": 12,
    "psum_bits": 12,
    "activation_bits": 4,
    "input_bits": 8,
    "param_bits": 16,
}
"""Bit widths when nothing says otherwise: the STEMS paper's (weights 4, state 12, partial sums 12,
non-spiking activations 4); spikes are always 1 bit; the network input defaults to 8 bits; neuron
parameters (threshold, leaks), which the paper does not count, 16 bits."""

LAYER_KEYS = (
    "weight_bits",
    "state_bits",
    "psum_bits",
    "output_bits",
    "param_bits",
    "param_scope",
    "neuron",
    "stateful",
    "spike_rate",
    "sensitivity",
    "block",
)
TOP_KEYS = ("stems_annotations", "timesteps", "defaults", "layers", "blocks")
RATE_KEYS = ("input", "output")

SCHEMA_TEXT = f"""\
# stems annotations, schema version {SCHEMA_VERSION}. Every key is optional except stems_annotations.
stems_annotations: {SCHEMA_VERSION}
timesteps: 16                  # T, for exports that carry none (NIR, norse step graphs)
defaults:                      # bit widths for every layer (these are the built-in defaults)
  weight_bits: {DEFAULT_BITS["weight_bits"]}
  state_bits: {DEFAULT_BITS["state_bits"]}                # one neuron state variable
  psum_bits: {DEFAULT_BITS["psum_bits"]}                 # partial sums while a reduction is open
  activation_bits: {DEFAULT_BITS["activation_bits"]}            # outputs of non-spiking layers (spikes are 1 bit)
  input_bits: {DEFAULT_BITS["input_bits"]}                 # the network input
  param_bits: {DEFAULT_BITS["param_bits"]}                # neuron parameters: threshold, leaks
blocks:                        # by block label; same keys as a layer entry except `block`
  "0": {{stateful: false}}
layers:                        # by layer name or fnmatch glob, applied in file order after blocks
  "features.*":
    weight_bits: 8
    state_bits: 16
    psum_bits: 24
    output_bits: 4             # multi-bit activities instead of 1-bit spikes
    param_bits: 8              # neuron parameters (threshold, leaks)
    param_scope: neuron        # {" | ".join(PARAM_SCOPES)}: one parameter set per layer (default) or per neuron
    neuron: LIF                # {" | ".join([*NEURON_STATE_VARS, "none"])}
    stateful: false            # reset the state every timestep: no V kept (needs retraining)
    spike_rate: {{input: 0.2, output: 0.1}}   # fraction of non-zero elements
    sensitivity: 12.3          # >= 0, e.g. the mean Hessian trace: guides per-layer precision allocation
    block: "stage1"            # the unit the inter-layer scheduler treats together
"""


@dataclass(frozen=True)
class LayerSettings:
    """One validated `layers:` or `blocks:` entry; None means 'leave as is'."""

    weight_bits: int | None = None
    state_bits: int | None = None
    psum_bits: int | None = None
    output_bits: int | None = None
    param_bits: int | None = None
    param_scope: str | None = None
    neuron: str | None = None  # a model name, or "none" to drop the neuron
    stateful: bool | None = None
    rate_in: float | None = None
    rate_out: float | None = None
    sensitivity: float | None = None
    block: str | None = None


@dataclass(frozen=True)
class Annotations:
    timesteps: int | None = None
    defaults: Mapping[str, int] = field(default_factory=dict)  # only the keys given
    blocks: tuple[tuple[str, LayerSettings], ...] = ()
    layers: tuple[tuple[str, LayerSettings], ...] = ()
    path: str = ""

    @property
    def bits(self) -> Mapping[str, int]:
        """Default bit widths in force: the built-in ones overridden by `defaults`."""
        return {**DEFAULT_BITS, **self.defaults}

    def merged_over(self, base: Annotations) -> Annotations:
        """These annotations applied on top of `base` (e.g. a user's file over a model's embedded one)."""
        return Annotations(
            timesteps=self.timesteps if self.timesteps is not None else base.timesteps,
            defaults={**base.defaults, **self.defaults},
            blocks=base.blocks + self.blocks,
            layers=base.layers + self.layers,
            path=self.path or base.path,
        )


def _bits(value: Any, path: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 32:
        raise StemsInputError(
            f"bit width must be an integer from 1 to 32, not {value!r}", path=path, where=where
        )
    return value


def _rate(value: Any, path: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise StemsInputError(
            f"spike rate must be a number from 0 to 1, not {value!r}", path=path, where=where
        )
    return float(value)


def _sensitivity(value: Any, path: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < math.inf:
        raise StemsInputError(
            f"sensitivity must be a finite number >= 0, not {value!r}", path=path, where=where
        )
    return float(value)


def _mapping(value: Any, path: str, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise StemsInputError(f"expected a mapping, got {type(value).__name__}", path=path, where=where)
    return value


def _check_keys(entry: Mapping[str, Any], allowed: tuple[str, ...], path: str, where: str) -> None:
    for key in entry:
        if str(key) not in allowed:
            raise StemsInputError(
                f"unknown key '{key}'{did_you_mean(str(key), allowed)}", path=path, where=f"{where}.{key}"
            )


def _settings(entry: Any, path: str, where: str, *, allow_block: bool) -> LayerSettings:
    entry = _mapping(entry, path, where)
    allowed = LAYER_KEYS if allow_block else tuple(k for k in LAYER_KEYS if k != "block")
    _check_keys(entry, allowed, path, where)
    kw: dict[str, Any] = {}
    for key in ("weight_bits", "state_bits", "psum_bits", "output_bits", "param_bits"):
        if key in entry:
            kw[key] = _bits(entry[key], path, f"{where}.{key}")
    if "param_scope" in entry:
        if entry["param_scope"] not in PARAM_SCOPES:
            raise StemsInputError(
                f"must be one of {', '.join(PARAM_SCOPES)}, not {entry['param_scope']!r}",
                path=path,
                where=f"{where}.param_scope",
            )
        kw["param_scope"] = entry["param_scope"]
    if "neuron" in entry:
        model = entry["neuron"]
        choices = (*NEURON_STATE_VARS, "none")
        if model is None:
            model = "none"
        if model not in choices:
            raise StemsInputError(
                f"unknown neuron model {model!r}{did_you_mean(str(model), choices)}; "
                f"known: {', '.join(choices)}",
                path=path,
                where=f"{where}.neuron",
            )
        kw["neuron"] = model
    if "stateful" in entry:
        if not isinstance(entry["stateful"], bool):
            raise StemsInputError("must be true or false", path=path, where=f"{where}.stateful")
        kw["stateful"] = entry["stateful"]
    if "spike_rate" in entry:
        rates = _mapping(entry["spike_rate"], path, f"{where}.spike_rate")
        _check_keys(rates, RATE_KEYS, path, f"{where}.spike_rate")
        if "input" in rates:
            kw["rate_in"] = _rate(rates["input"], path, f"{where}.spike_rate.input")
        if "output" in rates:
            kw["rate_out"] = _rate(rates["output"], path, f"{where}.spike_rate.output")
    if "sensitivity" in entry:
        kw["sensitivity"] = _sensitivity(entry["sensitivity"], path, f"{where}.sensitivity")
    if "block" in entry:
        kw["block"] = str(entry["block"])
    return LayerSettings(**kw)


def parse_annotations(data: Any, path: str = "<annotations>") -> Annotations:
    """Validate a parsed annotations document; every problem names the file and the key."""
    data = _mapping(data, path, "(top level)")
    _check_keys(data, TOP_KEYS, path, "(top level)")
    version = data.get("stems_annotations")
    if version != SCHEMA_VERSION:
        raise StemsInputError(
            f"missing or unsupported schema version {version!r} (this stems reads {SCHEMA_VERSION})",
            path=path,
            where="stems_annotations",
        )
    timesteps = data.get("timesteps")
    if timesteps is not None and (
        isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1
    ):
        raise StemsInputError(f"must be a positive integer, not {timesteps!r}", path=path, where="timesteps")
    defaults = {}
    given = _mapping(data.get("defaults") or {}, path, "defaults")
    _check_keys(given, tuple(DEFAULT_BITS), path, "defaults")
    for key, value in given.items():
        defaults[key] = _bits(value, path, f"defaults.{key}")
    blocks = tuple(
        (str(k), _settings(v, path, f"blocks.{k}", allow_block=False))
        for k, v in _mapping(data.get("blocks") or {}, path, "blocks").items()
    )
    layers = tuple(
        (str(k), _settings(v, path, f"layers.{k}", allow_block=True))
        for k, v in _mapping(data.get("layers") or {}, path, "layers").items()
    )
    return Annotations(timesteps=timesteps, defaults=defaults, blocks=blocks, layers=layers, path=path)


def load_annotations(source: str | Path | Mapping[str, Any]) -> Annotations:
    """Read annotations from a YAML file path or an already-parsed mapping."""
    if isinstance(source, Mapping):
        return parse_annotations(source, "<annotations>")
    path = str(source)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise StemsInputError(f"cannot read annotations: {exc.strerror}", path=path) from None
    except UnicodeDecodeError as exc:
        raise StemsInputError(f"not a YAML text file (byte {exc.start} is not UTF-8)", path=path) from None
    return parse_annotations_text(text, path)


def parse_annotations_text(text: str, path: str) -> Annotations:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else None
        raise StemsInputError(
            f"not valid YAML ({getattr(exc, 'problem', exc)})", path=path, where=where
        ) from None
    return parse_annotations(data, path)
