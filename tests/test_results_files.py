"""Result files: metrics, per-layer and per-level energy, the points table, and mapping files (write, read,
re-price, and the reasons a hand-edited one is rejected)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import concat_block, sew_block

from stems.cost.sample import sample_mappings
from stems.errors import StemsInputError
from stems.explore import parse_sweeps, sweep_values
from stems.hardware import load_hardware
from stems.results.inputs import HardwareRef, ModelRef
from stems.results.mapping_file import (
    SCHEMA_TEXT,
    InfeasibleMapping,
    evaluate_mapping,
    intra_entry,
    mapping_document,
    parse_mapping,
    plain,
    read_mapping,
    write_mapping,
)
from stems.results.metrics import METRICS, metrics_of, point_details, schedule_summary
from stems.results.points import best_row, columns, mark_pareto, points_frame
from stems.schedule.baselines import all_baselines, baseline

HW = load_hardware("stems-edge", overrides=["global_buffer.size=4KiB"])


@pytest.mark.parametrize("make", [sew_block, concat_block])
def test_details_add_up_to_the_schedule_totals(make) -> None:
    w = make(t=4)
    for b in all_baselines(w, HW):
        if b.cost is None:
            continue
        m = metrics_of(w, b.schedule, b.cost)
        assert list(m) == list(METRICS)
        assert m["energy_pj"] == pytest.approx(b.cost.total_pj)
        assert m["offchip_bytes"] == sum(m[f"offchip_bytes_{op}"] for op in "WIOV")
        d = point_details(w, b.schedule, b.cost, HW)
        assert d.layers["energy_pj"].sum() == pytest.approx(b.cost.total_pj, rel=1e-12)
        assert d.layers["offchip_bytes"].sum() == pytest.approx(b.cost.traffic.total_bytes)
        for part, total in (
            ("energy_compute_pj", b.cost.compute_pj),
            ("energy_onchip_pj", b.cost.onchip_pj),
            ("energy_offchip_pj", b.cost.offchip_pj),
        ):
            assert d.layers[part].sum() == pytest.approx(total, rel=1e-12)
        assert d.breakdown["energy_pj"].sum() == pytest.approx(b.cost.total_pj, rel=1e-12)
        dram = d.breakdown[d.breakdown["kind"] == "off-chip"]
        assert dram["energy_pj"].sum() == pytest.approx(b.cost.offchip_pj)
        assert list(d.layers["layer"]) == [x.name for x in w]


def test_state_metrics_and_summary_line() -> None:
    w = sew_block(t=4)
    big = load_hardware("stems-edge", overrides=["global_buffer.size=1MiB"])
    kept = baseline("layer-by-layer-sequential", w, big)
    m = metrics_of(w, kept.schedule, kept.cost)
    total = sum(x.state_bits for x in w)
    assert m["state_bits"] == m["state_kept_bits"] == total and m["state_removed_bits"] == 0
    assert schedule_summary(kept.schedule, w) == "ST-LBL x7; V keep 3/3"
    tb = baseline("all-fused-tb", w, HW)
    line = schedule_summary(tb.schedule, w)
    assert line.startswith("TB-F(1c) x7; V keep") and "spill" in line


def test_pareto_is_taken_per_sweep_value_over_feasible_points() -> None:
    rows = []
    for size in ("4KiB", "8KiB"):
        for i, (e, lat, ok) in enumerate(
            [(1.0, 5.0, True), (2.0, 1.0, True), (3.0, 3.0, True), (0.5, 0.5, False)]
        ):
            rows.append(
                {
                    "id": f"{size}-{i}",
                    "global_buffer.size": size,
                    "energy_pj": e * (2 if size == "8KiB" else 1),
                    "latency_cycles": lat,
                    "feasible": ok,
                }
            )
    df = mark_pareto(
        points_frame(rows, ["global_buffer.size"]), ["energy_pj", "latency_cycles"], ["global_buffer.size"]
    )
    assert list(df.columns) == columns(["global_buffer.size"])
    assert df.loc[df["pareto"], "id"].tolist() == ["4KiB-0", "4KiB-1", "8KiB-0", "8KiB-1"]
    assert best_row(df, "energy_pj")["id"] == "4KiB-0"  # the infeasible 0.5 is never best
    assert best_row(df, "latency_cycles")["id"] == "4KiB-1"


def test_parse_sweeps() -> None:
    assert parse_sweeps(["global_buffer.size=128KiB, 1MiB", "T=2,4"]) == {
        "global_buffer.size": ["128KiB", "1MiB"],
        "timesteps": ["2", "4"],
    }
    assert parse_sweeps(["array.D1.loops=[K, C],[K]"]) == {"array.D1.loops": ["[K, C]", "[K]"]}
    values = sweep_values({"a": ["1", "2"], "timesteps": ["4", "8"]})
    assert [v.label for v in values] == [
        "a=1, timesteps=4",
        "a=1, timesteps=8",
        "a=2, timesteps=4",
        "a=2, timesteps=8",
    ]
    assert values[1].hw_overrides == ("a=1",) and values[1].timesteps == 8
    assert sweep_values({}) == [sweep_values({})[0]] and sweep_values({})[0].label == ""
    for bad, needle in [
        (["global_buffer.size"], "expected KEY=V1,V2"),
        (["a=1,,2"], "empty value"),
        (["a=1,1"], "listed twice"),
        (["a=1", "a=2"], "swept twice"),
        (["timesteps=0,4"], "positive integers"),
    ]:
        with pytest.raises(StemsInputError, match=needle):
            parse_sweeps(bad)


def test_plain_turns_numpy_and_nan_into_yaml_and_json_types() -> None:
    out = plain({"a": np.int64(3), "b": np.float64("nan"), "c": (1, np.bool_(True)), "d": float("inf")})
    assert out == {"a": 3, "b": None, "c": [1, True], "d": None}
    assert type(out["a"]) is int


# ---- mapping files ---------------------------------------------------------------------------------


def _doc(w, hw, b, **kw):
    return mapping_document(
        point_id="p0001",
        label=b.name,
        source="baseline",
        sweep={"global_buffer.size": "4KiB"},
        model=ModelRef.of(w),
        hardware=HardwareRef.of("stems-edge", hw),
        workload=w,
        schedule=b.schedule,
        cost=b.cost,
        solve=None,
        **kw,
    )


@pytest.fixture
def written(tmp_path: Path):
    w = sew_block(t=4)
    b = baseline("all-time-batched", w, HW)
    path = write_mapping(tmp_path / "p0001.yaml", _doc(w, HW, b))
    return w, b, path


def test_mapping_file_round_trip(written) -> None:
    w, b, path = written
    text = path.read_text()
    assert text.startswith("# stems mapping file, schema version 1")
    doc = yaml.safe_load(text)
    assert doc["stems_mapping"] == 1 and doc["hardware"]["overrides"] == ["global_buffer.size=4KiB"]
    assert doc["schedule_summary"][0]["mode"] == "TB-LBL"
    assert set(doc["metrics"]) == set(METRICS)
    mf = read_mapping(path)
    assert mf.schedule == b.schedule and mf.model.timesteps == 4
    ev = evaluate_mapping(mf, workload=w, hardware=HW)
    assert ev.matches and not ev.differences and ev.metrics == doc["metrics"]
    # other hardware: re-priced, reported as such, never called a match
    other = evaluate_mapping(
        mf, workload=w, hardware=load_hardware("stems-edge", overrides=["global_buffer.size=1MiB"])
    )
    assert not other.same_hardware and not other.matches and other.notes


def test_every_documented_key_is_one_the_reader_knows() -> None:
    doc = yaml.safe_load(SCHEMA_TEXT)
    assert doc["stems_mapping"] == 1
    from stems.results.mapping_file import TOP_KEYS

    assert set(doc) <= set(TOP_KEYS) and set(doc["metrics"]) == set(METRICS)


def _edit(path: Path, change) -> Path:
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (
            lambda d: d["schedule"]["segments"][0].update(time_batch=3),
            "time_batch 3 must divide the 4 timesteps",
        ),
        (lambda d: d["schedule"]["segments"][0]["layers"].pop(), "layers in no segment: fc"),
        (lambda d: d["schedule"]["state"].update({"c9": "keep"}), "unknown layer 'c9'"),
        (
            lambda d: d["schedule"]["segments"][0].update(tile={"cols": 0}),
            "tile cols must be a positive integer",
        ),
        (lambda d: d.update(stems_mapping=2), "mapping schema version 2"),
        (lambda d: d.update(metrix={}), "unknown key 'metrix' (did you mean 'metrics'?)"),
        (lambda d: d.pop("schedule"), "missing key 'schedule'"),
        (lambda d: d["pricing"].update(unit_cost="zigzag"), "unit cost 'zigzag'"),
        (lambda d: d["model"].update(timesteps=0), "timesteps must be a positive integer"),
    ],
)
def test_hand_edited_mapping_that_breaks_a_rule_is_rejected(written, change, needle) -> None:
    w, _, path = written
    _edit(path, change)
    with pytest.raises(StemsInputError) as err:
        evaluate_mapping(read_mapping(path), workload=w, hardware=HW)
    assert needle in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_mapping_that_overflows_the_buffer_is_infeasible_with_the_reason(written) -> None:
    w, _, path = written
    tiny = load_hardware("stems-edge", overrides=["global_buffer.size=256B"])
    with pytest.raises(InfeasibleMapping) as err:
        evaluate_mapping(read_mapping(path), workload=w, hardware=tiny)
    assert "needs" in err.value.reason and "global_buffer" in err.value.reason


def test_intra_section_is_priced_and_checked(tmp_path: Path) -> None:
    from stems.cost import price

    w = sew_block(t=4)
    hw = load_hardware("stems-edge")
    b = baseline("layer-by-layer-sequential", w, hw)
    layer = w.layer("c1")
    good = sample_mappings(layer, hw, 1, seed=3)[0]
    entry = intra_entry(good, price(layer, hw, good))
    path = write_mapping(tmp_path / "m.yaml", _doc(w, hw, b, intra={"c1": entry}))
    ev = evaluate_mapping(read_mapping(path), workload=w, hardware=hw)
    assert ev.matches and ev.intra["c1"]["energy_pj"] == pytest.approx(entry["cost"]["energy_pj"])

    def t_inside_c(d):  # the stateful time rule: a T loop below a reduction loop
        loops = [x for x in d["intra"]["c1"]["mapping"]["temporal"] if x[0] != "T"]
        t = [x for x in d["intra"]["c1"]["mapping"]["temporal"] if x[0] == "T"]
        d["intra"]["c1"]["mapping"]["temporal"] = t + loops

    _edit(path, t_inside_c)
    with pytest.raises(StemsInputError, match=r"intra\.c1: the intra-layer mapping breaks a rule: .*T loop"):
        evaluate_mapping(read_mapping(path), workload=w, hardware=hw)

    def not_dividing(d):
        temporal = d["intra"]["c1"]["mapping"]["temporal"]
        temporal[-1][1] += 1

    path = write_mapping(tmp_path / "m2.yaml", _doc(w, hw, b, intra={"c1": entry}))
    _edit(path, not_dividing)
    with pytest.raises(StemsInputError, match=r"intra\.c1: the intra-layer mapping breaks a rule"):
        evaluate_mapping(read_mapping(path), workload=w, hardware=hw)
    path = write_mapping(tmp_path / "m3.yaml", _doc(w, hw, b, intra={"nope": entry}))
    with pytest.raises(StemsInputError, match="no layer 'nope'"):
        evaluate_mapping(read_mapping(path), workload=w, hardware=hw)


def test_stored_numbers_that_differ_are_reported(written) -> None:
    w, _, path = written
    _edit(path, lambda d: d["metrics"].update(energy_pj=d["metrics"]["energy_pj"] * 1.01))
    ev = evaluate_mapping(read_mapping(path), workload=w, hardware=HW)
    assert ev.same_inputs and not ev.matches and set(ev.differences) == {"energy_pj"}
    assert ev.to_dict()["differences"]["energy_pj"]["now"] == pytest.approx(ev.metrics["energy_pj"])


def test_parse_mapping_needs_a_mapping_schedule() -> None:
    with pytest.raises(StemsInputError, match="schedule"):
        parse_mapping(
            {
                "stems_mapping": 1,
                "model": {"name": "m", "timesteps": 2},
                "hardware": {"ref": "stems-edge"},
                "schedule": [],
            }
        )


def test_metrics_frame_is_json_clean() -> None:
    df = points_frame([{"id": "p0001", "energy_pj": 1.0, "gap": math.nan, "feasible": True}], [])
    assert isinstance(df, pd.DataFrame) and df.at[0, "mapping"] == ""
