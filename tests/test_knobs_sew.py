"""Acceptance on the built-in SEW-ResNet-18 (issue 7): T in {1, 2, 4, 8, 16}, the mapping re-optimised at
each T (a cheap search: least energy, 1 s per solve); the knobs table and plot; no state traffic at T = 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from stems.explore import explore
from stems.report.plots import knob_table
from stems.results.store import Exploration

TS = ["1", "2", "4", "8", "16"]


@pytest.fixture(scope="module")
def ex() -> Exploration:
    return explore(
        "zoo:sew-resnet18-dvs128",
        sweep={"timesteps": TS},
        objectives=["energy_pj"],
        time_limit_s=1,
        pareto_steps=0,
    )


def test_t_sweep_table_energy_latency_state_bits(ex: Exploration) -> None:
    table = knob_table(ex.points, "timesteps").set_index("timesteps")
    assert list(table.index) == TS
    assert table["energy_pj"].is_monotonic_increasing and table["latency_cycles"].is_monotonic_increasing
    # 16 LIF convs' 12-bit states (46,362,624 bits, the paper's figure) persist whenever T > 1
    assert list(table["state_bits"]) == [0] + [46_362_624] * 4
    assert list(table["retraining"]) == ["required"] * 4 + ["none"]
    assert table.loc["4", "network_changes"] == "T 16->4"


def test_no_state_traffic_at_t1(ex: Exploration) -> None:
    t1 = ex.points[ex.points["timesteps"] == "1"]
    assert (t1["offchip_bytes_V"] == 0).all() and (t1["state_bits"] == 0).all()
    b = ex.breakdown[ex.breakdown["timesteps"] == "1"]
    assert b[b["operand"] == "V"]["energy_pj"].sum() == 0
    t16 = ex.points[(ex.points["timesteps"] == "16") & (ex.points["source"] == "search")]
    assert (t16["offchip_bytes_V"] > 0).all()


def test_knobs_plot_in_the_report(ex: Exploration, tmp_path: Path) -> None:
    out = ex.write(tmp_path / "sew", force=True)
    assert (out / "plots" / "knobs.png").is_file() and (out / "plots" / "knobs.svg").is_file()
    assert "plots/knobs.png" in (out / "report.html").read_text()
