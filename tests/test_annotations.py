"""Annotations: schema validation with file-and-key errors, merging, and bit-width propagation."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import sew_block

from stems.errors import StemsInputError
from stems.workload.annotate import annotate
from stems.workload.annotations import (
    Annotations,
    load_annotations,
    parse_annotations,
    parse_annotations_text,
)


def ann(**body: object) -> Annotations:
    return parse_annotations({"stems_annotations": 1, **body}, "a.yaml")


def test_defaults_propagate_bits_along_the_graph() -> None:
    w = annotate(sew_block(), Annotations())
    p = {x.name: x.precision for x in w}
    assert p["c0"].I == 8  # network input
    assert p["c0"].O_final == 1 and p["c1"].I == 1  # spikes
    assert p["add"].O_final == 1 and p["pool"].O_final == 1  # spike add/pool stay 1 bit, as in STEMS
    assert p["fc"].I == 1 and p["fc"].O_final == 4  # readout without neuron: 4-bit activations
    assert (p["c1"].W, p["c1"].V, p["c1"].O) == (4, 12, 12)


def test_layer_entry_beats_block_entry_and_multibit_activity_propagates() -> None:
    a = ann(
        defaults={"input_bits": 4, "weight_bits": 8},
        blocks={"0": {"stateful": False, "state_bits": 16}},
        layers={"c1": {"stateful": True, "output_bits": 3}, "c*": {"spike_rate": {"input": 0.25}}},
    )
    w = annotate(sew_block(), a)
    c0, c1, c2 = (w.layer(n) for n in ("c0", "c1", "c2"))
    assert c0.precision.I == 4 and c0.precision.W == 8
    assert not c0.stateful and c1.stateful and not c2.stateful
    assert c1.precision.V == 16 and c1.precision.O_final == 3
    assert c2.precision.I == 3  # multi-bit activity: c2 now does MACs
    assert w.layer("add").precision.O_final == 3  # widest input of the add
    assert c0.rates.I == c2.rates.I == 0.25 and w.layer("fc").rates.I == 1.0


def test_neuron_swap_and_removal() -> None:
    w = annotate(sew_block(), ann(layers={"c1": {"neuron": "CubaLIF"}, "c2": {"neuron": "none"}}))
    assert w.layer("c1").neuron.state_vars == ("i", "v") and w.layer("c1").state_bits == 2 * 4 * 64 * 12
    assert w.layer("c2").neuron is None and w.layer("c2").precision.O_final == 4


def test_user_annotations_merge_over_embedded() -> None:
    embedded = ann(timesteps=16, defaults={"weight_bits": 8}, layers={"c1": {"block": "x"}})
    user = ann(defaults={"weight_bits": 4})
    merged = user.merged_over(embedded)
    assert merged.timesteps == 16 and merged.bits["weight_bits"] == 4 and merged.layers == embedded.layers


@pytest.mark.parametrize(
    ("body", "where", "message"),
    [
        ({"stems_annotations": 2}, "stems_annotations", "schema version"),
        ({"stems_annotations": 1, "layer": {}}, "(top level).layer", "did you mean 'layers'"),
        ({"stems_annotations": 1, "timesteps": 0}, "timesteps", "positive"),
        ({"stems_annotations": 1, "defaults": {"weight_bit": 4}}, "defaults.weight_bit", "did you mean"),
        ({"stems_annotations": 1, "defaults": {"weight_bits": 40}}, "defaults.weight_bits", "1 to 32"),
        (
            {"stems_annotations": 1, "layers": {"c1": {"neuron": "LIFF"}}},
            "layers.c1.neuron",
            "did you mean 'LIF'",
        ),
        (
            {"stems_annotations": 1, "layers": {"c1": {"stateful": "no"}}},
            "layers.c1.stateful",
            "true or false",
        ),
        (
            {"stems_annotations": 1, "layers": {"c1": {"spike_rate": {"input": 2}}}},
            "layers.c1.spike_rate.input",
            "0 to 1",
        ),
        ({"stems_annotations": 1, "blocks": {"0": {"block": "1"}}}, "blocks.0.block", "unknown key"),
        ({"stems_annotations": 1, "layers": ["c1"]}, "layers", "mapping"),
    ],
)
def test_schema_errors_name_file_and_key(body: dict, where: str, message: str) -> None:
    with pytest.raises(StemsInputError, match=message) as err:
        parse_annotations(body, "a.yaml")
    assert err.value.path == "a.yaml" and err.value.where == where
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"layers": {"c9": {"weight_bits": 2}}}, "layers.c9"),
        ({"blocks": {"7": {"stateful": False}}}, "blocks.7"),
    ],
)
def test_entries_matching_nothing_are_errors(body: dict, where: str) -> None:
    with pytest.raises(StemsInputError, match="no") as err:
        annotate(sew_block(), ann(**body))
    assert err.value.where == where


def test_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("stems_annotations: 1\nlayers: {c1: [\n")
    with pytest.raises(StemsInputError, match="not valid YAML") as err:
        load_annotations(bad)
    assert err.value.path == str(bad) and err.value.where.startswith("line")
    with pytest.raises(StemsInputError, match="cannot read"):
        load_annotations(tmp_path / "missing.yaml")


def test_schema_text_is_itself_valid() -> None:
    from stems.workload.annotations import SCHEMA_TEXT

    parsed = parse_annotations_text(SCHEMA_TEXT, "schema")
    assert parsed.timesteps == 16 and parsed.layers[0][1].output_bits == 4


def test_blocks_match_labels_set_by_layer_entries() -> None:
    """A model's embedded annotations label blocks by glob; a user's `blocks:` entry must see them."""
    embedded = ann(layers={"c*": {"block": "stem"}})
    user = ann(blocks={"stem": {"stateful": False}})
    w = annotate(sew_block(), user.merged_over(embedded))
    assert {x.name for x in w if x.block == "stem"} == {"c0", "c1", "c2"}
    assert not any(x.stateful for x in w)
