"""Network knobs (issue 7): T = 1 leaves no state, neuron swaps, knob sweeps as annotations overlays,
retraining and footprint columns, activity files, accuracy tables and their bad input. Small models; the
SEW-ResNet-18 T sweep is in `test_knobs_sew.py`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from explore_helpers import fake_search, tiny_sew_onnx
from helpers import conv, sew_block

import stems.explore
from stems.cli import main
from stems.errors import StemsInputError
from stems.explore import explore
from stems.hardware import load_hardware
from stems.results.mapping_file import evaluate_mapping
from stems.results.metrics import energy_breakdown, metrics_of
from stems.schedule import Schedule, ScheduleCost, evaluate
from stems.schedule.baselines import baseline
from stems.workload.activity import activity_rates
from stems.workload.knobs import apply_knobs
from stems.workload.model import Workload

HW = load_hardware("stems-edge")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_sew_onnx(tmp_path_factory.mktemp("knobs") / "tiny.onnx")


def one_conv(t: int) -> Workload:
    return Workload("one", [conv("c", 2, 4, 8, t=t)], [])


def test_state_traffic_by_hand_and_none_at_t1() -> None:
    # 4 x 8 x 8 = 256 LIF neurons, one 12-bit state each (3072 bits, 384 bytes). At T = 2 a kept state is
    # read before the layer and written after it (load_store): 2 x 384 = 768 bytes; a spilled one, one
    # timestep per unit, crosses every timestep: 2 x 2 x 384 = 1536 bytes. At T = 1 the state is born and
    # dies in the one timestep (it is only the accumulator): nothing persists, nothing moves, no V energy.
    two = one_conv(2)
    doc = baseline("layer-by-layer-sequential", two, HW).schedule.to_dict()
    for policy, expected in (("keep", 768), ("spill", 1536)):
        schedule = Schedule.from_dict({**doc, "state": {"c": policy}})
        cost = evaluate(two, schedule, HW)
        assert metrics_of(two, schedule, cost)["offchip_bytes_V"] == expected
        assert v_energy(two, schedule, cost) > 0
    one = one_conv(1)
    b = baseline("layer-by-layer-sequential", one, HW)
    m = metrics_of(one, b.schedule, b.cost)
    assert (m["state_bits"], m["offchip_bytes_V"], v_energy(one, b.schedule, b.cost)) == (0, 0, 0)


def v_energy(w: Workload, schedule: Schedule, cost: ScheduleCost) -> float:
    rows = energy_breakdown(w, schedule, cost, HW)
    return float(rows[rows["operand"] == "V"]["energy_pj"].sum())


def test_neuron_swap_halves_state_bits_and_shows_in_offchip_traffic(tiny: Path) -> None:
    # Block 1 has two LIF convs of 8 x 8 x 8 neurons (6144 state bits each). As two-variable CubaLIF neurons
    # their state doubles; in a 2 KiB buffer the extra state crosses the chip boundary (read and written).
    ex = explore(
        tiny,
        overrides=["global_buffer.size=2KiB"],
        sweep=["blocks.1.neuron=CubaLIF,LIF"],
        objectives=["offchip_bytes"],
        time_limit_s=2,
        pareto_steps=0,
    )
    best = ex.points[ex.points["source"] == "search"].set_index("blocks.1.neuron")
    cuba, lif = best.loc["CubaLIF"], best.loc["LIF"]
    assert cuba["state_bits"] - lif["state_bits"] == 2 * 6144
    assert cuba["offchip_bytes_V"] - lif["offchip_bytes_V"] >= 2 * 2 * 6144 / 8
    assert cuba["offchip_bytes"] > lif["offchip_bytes"]
    assert (cuba["retraining"], cuba["network_changes"]) == ("required", "neuron LIF->CubaLIF (2 layers)")
    assert (lif["retraining"], lif["network_changes"]) == ("none", "")


def test_knob_sweeps_are_annotation_overlays() -> None:
    ex = explore(
        sew_block(t=2),
        sweep=["defaults.weight_bits=2,4", "layers.c1.output_bits=1,4", "layers.c*.param_scope=layer,neuron"],
        search=fake_search,
        objectives=["energy_pj"],
    )
    p = ex.points[ex.points["label"] == "layer-by-layer-sequential"].set_index(
        ["defaults.weight_bits", "layers.c1.output_bits", "layers.c*.param_scope"]
    )
    base = p.loc[("4", "1", "layer")]
    assert base["retraining"] == "none"
    two = p.loc[("2", "1", "layer")]
    assert two["footprint_weights_bytes"] == base["footprint_weights_bytes"] / 2
    assert two["network_changes"] == "weight_bits 4->2 (4 layers)"
    # c1 sends 4-bit activities: c2 multiplies (MAC) instead of accumulating
    multi = p.loc[("4", "4", "layer")]
    assert multi["energy_compute_pj"] > base["energy_compute_pj"]
    assert multi["network_changes"] == "output_bits 1->4 (1 layer)"
    # LIF: threshold and leak, 16 bits, per layer (3 convs) or per neuron (3 x 256)
    assert base["footprint_params_bytes"] == 3 * 2 * 16 / 8
    assert p.loc[("4", "1", "neuron")]["footprint_params_bytes"] == 3 * 256 * 2 * 16 / 8
    assert (base[[f"footprint_{k}_bytes" for k in ("states", "buffers")]] > 0).all()


def test_overlay_keeps_what_it_does_not_name() -> None:
    w = sew_block(t=2)
    ex = explore(w, sweep=["layers.c2.state_bits=8", "layers.c1.spike_rate.output=0.25"], search=fake_search)
    assert ex.points["state_bits"].iloc[0] == 256 * 12 * 2 + 256 * 8


@pytest.mark.parametrize(
    ("sweep", "needles"),
    [
        ("defaults.weight_bits=0,4", ["defaults.weight_bits", "from 1 to 32, not 0"]),
        ("layers.c1.state_bits=33", ["layers.c1.state_bits", "from 1 to 32, not 33"]),
        ("default.weight_bits=2", ["unknown key 'default'", "did you mean 'defaults'"]),
        ("defaults.weight_bitz=2", ["unknown key 'weight_bitz'", "did you mean 'weight_bits'"]),
        ("layers.c11.weight_bits=2", ["layers.c11", "matches no layer", "did you mean 'c1'"]),
        ("blocks.0.neuron=LIFF", ["unknown neuron model 'LIFF'", "did you mean 'LIF'"]),
        ("layers.c1=2", ["expected layers.NAME.KEY"]),
        ("timestep=2", ["did you mean 'timesteps'"]),
    ],
)
def test_bad_knob_sweeps_are_refused_before_searching(sweep: str, needles: list[str]) -> None:
    with pytest.raises(StemsInputError) as err:
        explore(sew_block(t=2), sweep=[sweep], search=None)
    for needle in needles:
        assert needle in str(err.value), str(err.value)


# ---------------------------------------------------------------------------------------------------
# Activity files


def test_activity_rates_from_recorded_spikes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    c0 = (rng.random((2, 1, 4, 8, 8)) < 0.25).astype(np.float32)  # [T, B, K, OY, OX]
    c1 = np.zeros((2, 4, 8, 8), np.uint8)  # [T*B, K, OY, OX]
    c1[0, 0, 0, :4] = 1
    np.savez(tmp_path / "act.npz", c0=c0, c1=c1)
    w = apply_knobs(sew_block(t=2), activity_rates(sew_block(t=2), tmp_path / "act.npz"))
    assert pytest.approx(c0.mean()) == w.layer("c0").rates.O
    assert pytest.approx(c0.mean()) == w.layer("c1").rates.I
    assert pytest.approx(4 / c1.size) == w.layer("c1").rates.O
    assert pytest.approx(4 / c1.size) == w.layer("c2").rates.I


@pytest.mark.parametrize(
    ("arrays", "needles"),
    [
        ({"c1": np.zeros((2, 1, 4, 8, 9))}, ["act.npz: c1: shape (2, 1, 4, 8, 9)", "(4, 8, 8)"]),
        ({"c11": np.zeros((2, 1, 4, 8, 8))}, ["act.npz: c11", "did you mean 'c1'"]),
    ],
)
def test_bad_activity_files(tmp_path: Path, arrays: dict, needles: list[str]) -> None:
    np.savez(tmp_path / "act.npz", **arrays)
    with pytest.raises(StemsInputError) as err:
        explore(sew_block(t=2), activity=tmp_path / "act.npz", search=None)
    for needle in needles:
        assert needle in str(err.value), str(err.value)


# ---------------------------------------------------------------------------------------------------
# Accuracy tables


def test_accuracy_joins_and_is_maximised_on_one_front_across_t(tmp_path: Path) -> None:
    (tmp_path / "acc.csv").write_text("timesteps,accuracy\n2,0.90\n4,0.95\n")
    sweep = ["timesteps=1,2,4"]
    ex = explore(
        sew_block(t=2),
        sweep=sweep,
        accuracy=tmp_path / "acc.csv",
        search=fake_search,
        objectives=["energy_pj", "accuracy"],
    )
    p = ex.points
    assert set(p[p["timesteps"] == "4"]["accuracy"]) == {0.95}
    assert not p[p["timesteps"] == "1"]["accuracy_known"].any()
    assert p[p["timesteps"] == "1"]["accuracy"].isna().all()
    front = ex.pareto
    assert set(front["timesteps"]) == {"2", "4"}  # one front: T=4 is more accurate, T=2 cheaper
    assert next(iter(front.sort_values("energy_pj")["accuracy"])) == 0.90


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("timesteps,acc\n2,0.9\n", ["expected a column 'accuracy'"]),
        ("timesteps,accuracy\n2,high\n", ["row 2", "accuracy must be a number, not 'high'"]),
        ("timestep,accuracy\n2,0.9\n", ["column 'timestep' is not a sweep key", "did you mean 'timesteps'"]),
        ("timesteps,accuracy\n2,0.9\n2.0,0.8\n", ["row 3", "listed twice"]),
        ("", ["cannot read the accuracy table"]),
    ],
)
def test_bad_accuracy_tables(tmp_path: Path, text: str, needles: list[str]) -> None:
    (tmp_path / "acc.csv").write_text(text)
    with pytest.raises(StemsInputError) as err:
        explore(sew_block(t=2), accuracy=tmp_path / "acc.csv", search=fake_search)
    assert "acc.csv" in str(err.value)
    for needle in needles:
        assert needle in str(err.value), str(err.value)


# ---------------------------------------------------------------------------------------------------
# The command line


@pytest.fixture
def stand_in_search(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stems.explore, "default_search", lambda: fake_search)


def run(*args: object) -> object:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.usefixtures("stand_in_search")
def test_cli_knob_sweep_writes_columns_plot_and_round_trips(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = run(
        "explore",
        tiny,
        "--sweep",
        "layers.blocks.1.*.state_bits=8,12",
        "--objective",
        "energy_pj",
        "--out",
        out,
        "--quiet",
    )
    assert r.exit_code == 0, r.output
    points = pd.read_csv(out / "points.csv")
    assert {"retraining", "network_changes", "footprint_params_bytes", "accuracy_known"} <= set(
        points.columns
    )
    assert set(points["retraining"]) == {"required", "none"}
    assert (out / "plots" / "knobs.png").is_file() and (out / "plots" / "knobs.svg").is_file()
    for mapping in sorted((out / "mappings").glob("*.yaml")):
        assert evaluate_mapping(mapping).matches, mapping


@pytest.mark.usefixtures("stand_in_search")
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--sweep", "defaults.state_bits=40"], "from 1 to 32, not 40"),
        (["--sweep", "layers.nope.weight_bits=2"], "matches no layer"),
        (["--sweep", "default.weight_bits=2"], "did you mean 'defaults'"),
        (["--activity", "ACT"], "does not match layer"),
        (["--accuracy", "ACC"], "expected a column 'accuracy'"),
        (["--objective", "accuracy"], "only with an accuracy table"),
    ],
)
def test_cli_bad_knob_input_is_one_line(tiny: Path, tmp_path: Path, args: list[str], needle: str) -> None:
    np.savez(tmp_path / "act.npz", **{"blocks.0.c1_lif": np.zeros((4, 1, 3, 16, 16))})
    (tmp_path / "acc.csv").write_text("timesteps\n4\n")
    paths = {"ACT": tmp_path / "act.npz", "ACC": tmp_path / "acc.csv"}
    r = run("explore", tiny, *[paths.get(a, a) for a in args], "--out", tmp_path / "out")
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stems: error: ") and needle in lines[0], r.stderr
