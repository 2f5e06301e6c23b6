"""`stems explore` end to end with the real schedule search, and the round trip: every Pareto point's
mapping file re-priced by `stems evaluate` gives the stored numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from explore_helpers import tiny_hw, tiny_sew_onnx

pytest.importorskip(
    "stems.schedule.search",
    reason="SKIPPED END TO END: stems.schedule.search (the schedule search) is not in this tree yet; "
    "the pipeline is covered with a stand-in search in test_explore.py and test_cli_tool.py",
)

from stems.cli import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("e2e")
    model = tiny_sew_onnx(d / "tiny.onnx")
    hw = tiny_hw(d / "tiny.yaml")
    out = d / "out"
    result = CliRunner().invoke(
        main,
        [
            "explore",
            str(model),
            "--hw",
            str(hw),
            "--sweep",
            "global_buffer.size=4KiB,64KiB",
            "--time-limit",
            "5",
            "--workers",
            "2",
            "--out",
            str(out),
            "--no-plots",
            "--quiet",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return out


def test_search_points_are_at_least_as_good_as_the_baselines(run_dir: Path) -> None:
    points = pd.read_csv(run_dir / "points.csv", dtype={"global_buffer.size": str})
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["search"]["status"] in ("optimal", "feasible")
    assert (points["source"] == "search").any()
    for size, group in points.groupby("global_buffer.size"):
        ok = group[group["feasible"]]
        search = ok[ok["source"] == "search"]
        lbl = ok[(ok["source"] == "baseline") & (ok["label"] == "layer-by-layer-sequential")]
        if len(lbl) and len(search):
            assert search["energy_pj"].min() <= lbl["energy_pj"].iloc[0] * (1 + 1e-9), size
            assert search["offchip_bytes"].min() <= lbl["offchip_bytes"].iloc[0] * (1 + 1e-9), size
    for lb in summary["lower_bound"]:
        assert lb["ratio"] >= 1 - 1e-9


def test_round_trip_of_every_pareto_point(run_dir: Path) -> None:
    result = CliRunner().invoke(main, ["evaluate", str(run_dir), "--check", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    data = data if isinstance(data, list) else [data]
    pareto = pd.read_csv(run_dir / "pareto.csv")
    assert len(data) == len(pareto) > 0 and all(d["matches_stored"] for d in data)
