"""The user-facing tool through click's runner: explore, evaluate, compare, report, schema mapping, with
every flag and the bad-input cases. The schedule search is the test-local stand-in
(`explore_helpers.fake_search`); `test_explore_e2e.py` runs the real one."""

from __future__ import annotations

import _thread
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from explore_helpers import FakeOutcome, fake_search, tiny_hw, tiny_sew_onnx

import stems.explore
from stems.cli import main

SWEEP = "global_buffer.size=4KiB,64KiB"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tool")
    tiny_sew_onnx(d / "tiny.onnx")
    tiny_hw(d / "tiny.yaml")
    return d


@pytest.fixture(scope="module")
def search_calls() -> list[dict]:
    return []


@pytest.fixture(autouse=True)
def stand_in_search(monkeypatch: pytest.MonkeyPatch, search_calls: list[dict]) -> None:
    def recording(workload, hw, **kw):
        search_calls.append({"timesteps": workload.timesteps, "hw": hw, **kw})
        return fake_search(workload, hw, **kw)

    monkeypatch.setattr(stems.explore, "default_search", lambda: recording)


def run(*args: object, ok: int | None = 0):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    if ok is not None:
        assert result.exit_code == ok, (result.exit_code, result.output)
    return result


def one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stems: error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def explored(files: Path) -> Path:
    """One full run with plots, shared by the evaluate, compare and report tests (which copy it to edit)."""
    out = files / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(stems.explore, "default_search", lambda: fake_search)
        result = run(
            "explore", files / "tiny.onnx", "--hw", files / "tiny.yaml", "--sweep", SWEEP, "--out", out
        )
    assert f"outputs in {out.resolve()}/" in result.stdout
    assert "paper baseline (LBL-ST)" in result.stdout and "energy_x" in result.stdout
    assert "sweep 2/2 global_buffer.size=64KiB" in result.stderr  # progress, on stderr
    return out


# ---- explore -----------------------------------------------------------------------------------------


def test_explore_writes_the_documented_outputs(explored: Path) -> None:
    names = {p.name for p in explored.iterdir()}
    assert names == {
        "points.csv",
        "pareto.csv",
        "layers.csv",
        "breakdown.csv",
        "mappings",
        "summary.json",
        "plots",
        "report.html",
    }
    header = (explored / "points.csv").read_text().splitlines()[0].split(",")
    for col in (
        "id",
        "global_buffer.size",
        "schedule",
        "energy_pj",
        "latency_cycles",
        "offchip_bytes",
        "offchip_bytes_W",
        "offchip_bytes_I",
        "offchip_bytes_O",
        "offchip_bytes_V",
        "onchip_peak_bytes",
        "state_bits",
        "status",
        "gap",
        "mapping",
    ):
        assert col in header
    summary = json.loads((explored / "summary.json").read_text())
    assert set(summary) >= {"inputs", "versions", "search", "best", "baselines", "lower_bound", "outputs"}
    assert summary["inputs"]["model"]["relative_path"] == "../tiny.onnx"
    plots = {p.name for p in (explored / "plots").iterdir()}
    for name in ("pareto", "energy_breakdown", "layer_energy", "offchip_vs_global_buffer_size"):
        assert {f"{name}.png", f"{name}.svg"} <= plots
    html = (explored / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and "<img alt='pareto'" in html
    assert "src='http" not in html and "<script" not in html


def test_explore_flags_reach_the_search_and_the_summary(files: Path, search_calls: list[dict]) -> None:
    ann = files / "ann.yaml"
    ann.write_text('stems_annotations: 1\nblocks: {"0": {stateful: false}}\n')
    search_calls.clear()
    out = files / "flags"
    result = run(
        "explore",
        files / "tiny.onnx",
        "--hw",
        files / "tiny.yaml",
        "--set",
        "global_buffer.size=64KiB",
        "--set",
        "clock=2GHz",
        "--sweep",
        "timesteps=2,4",
        "--timesteps",
        "2",
        "--annotations",
        ann,
        "--objective",
        "energy_pj",
        "--objective",
        "offchip_bytes",
        "--time-limit",
        "7",
        "--workers",
        "2",
        "--seed",
        "3",
        "--pareto-steps",
        "2",
        "--allow-state-removal",
        "--out",
        out,
        "--no-plots",
        "--json",
    )
    data = json.loads(result.stdout)  # nothing but JSON on stdout
    assert data["out"] == str(out.resolve()) and result.stderr == ""
    opts = data["inputs"]["options"]
    assert opts["objectives"] == ["energy_pj", "offchip_bytes"] and opts["sweep"] == {"timesteps": ["2", "4"]}
    assert (opts["time_limit_s"], opts["workers"], opts["seed"], opts["pareto_steps"]) == (7.0, 2, 3, 2)
    assert opts["allow_state_removal"] is True
    assert data["inputs"]["hardware"]["overrides"] == ["global_buffer.size=64KiB", "clock=2GHz"]
    assert data["inputs"]["model"]["annotations"]["content"]["blocks"] == {"0": {"stateful": False}}
    assert [c["timesteps"] for c in search_calls] == [2, 4]
    call = search_calls[0]
    assert call["objectives"] == ("energy_pj", "offchip_bytes") and call["pareto_steps"] == 2
    assert call["allow_state_removal"] and call["options"].time_limit_s == 7 and call["options"].workers == 2
    assert call["hw"].level("global_buffer").size_bits == 64 * 8192
    assert not (out / "plots").exists() and not (out / "report.html").exists()
    assert data["search"]["runs"][0]["timesteps"] == 2
    # block 0's state was removed by the annotations: fewer state bits than the plain run
    assert all(row["state_bits"] < 3 * 4 * 16 * 16 * 12 * 4 for row in [data["best"]["energy_pj"]])


def test_explore_default_folder_force_quiet_and_verbose(
    files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    if True:
        shutil.copy(files / "tiny.onnx", "m.onnx")
        args = ["explore", "m.onnx", "--set", "global_buffer.size=64KiB", "--no-plots"]
        first = runner.invoke(main, [*args, "--quiet"], catch_exceptions=False)
        assert first.exit_code == 0 and first.stderr == ""
        assert first.stdout.strip().splitlines()[-1] == str(Path("stems-out/m-stems-edge"))
        assert Path("stems-out/m-stems-edge/summary.json").is_file()
        again = runner.invoke(main, args, catch_exceptions=False)
        one_line_error(again, "stems-out/m-stems-edge: already exists; pass --force")
        loud = runner.invoke(main, [*args, "--force", "--verbose"], catch_exceptions=False)
        assert loud.exit_code == 0
        assert "search fake all-fused-tb: energy" in loud.stderr and "off-chip" in loud.stderr


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["missing.onnx"], ("missing.onnx", "no such file")),
        (["{m}", "--sweep", "global_buffer.size"], ("--sweep", "expected KEY=V1,V2")),
        (["{m}", "--sweep", "global_bufer.size=1KiB,2KiB"], ("--sweep global_bufer.size", "did you mean")),
        (["{m}", "--sweep", "timesteps=2,x"], ("timesteps must be positive integers",)),
        (["{m}", "--set", "global_buffer.size=lots"], ("--set global_buffer.size",)),
        (["{m}", "--hw", "stems-egde"], ("no shipped hardware 'stems-egde'", "did you mean 'stems-edge'")),
        (["{m}", "--annotations", "nope.yaml"], ("nope.yaml",)),
    ],
)
def test_explore_bad_input_is_one_line_exit_2(files: Path, args: list[str], needles: tuple[str, ...]) -> None:
    args = [a.replace("{m}", str(files / "tiny.onnx")) for a in args]
    one_line_error(run("explore", *args, "--out", files / "never", ok=None), *needles)
    assert not (files / "never").exists()


@pytest.mark.parametrize(
    "args",
    [["--objective", "energy"], ["--time-limit", "0"], ["--workers", "0"], ["--pareto-steps", "-1"]],
)
def test_explore_bad_option_values_exit_2(files: Path, args: list[str]) -> None:
    result = run("explore", files / "tiny.onnx", *args, ok=2)
    assert "Error: Invalid value" in result.stderr


def test_explore_refuses_to_replace_a_folder_it_did_not_write(files: Path) -> None:
    mine = files / "mine"
    mine.mkdir(exist_ok=True)
    (mine / "notes.txt").write_text("keep me")
    one_line_error(
        run("explore", files / "tiny.onnx", "--out", mine, "--force", ok=None), "not a stems output folder"
    )
    assert (mine / "notes.txt").read_text() == "keep me"


def test_ctrl_c_keeps_the_points_and_exits_1(files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(workload, hw, *, stop, **kw):
        def poke(n: int) -> None:
            if n == 2:
                _thread.interrupt_main()
                stop.wait(5)

        return fake_search(workload, hw, stop=stop, on_point=poke, **kw)

    monkeypatch.setattr(stems.explore, "default_search", lambda: interrupted)
    out = files / "interrupted"
    result = run("explore", files / "tiny.onnx", "--sweep", SWEEP, "--out", out, "--no-plots", ok=1)
    assert "stems: interrupted: kept the" in result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["search"]["interrupted"] and summary["search"]["stopped"] == "interrupted"
    assert [r["stopped"] for r in summary["search"]["runs"]] == ["interrupted", "not run"]
    assert "search" in (out / "points.csv").read_text()


def test_no_feasible_point_exits_1_with_the_reason(files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        stems.explore,
        "default_search",
        lambda: (
            lambda *a, **k: FakeOutcome(
                (), "fake", 0.0, "complete", "blocks.0.c1 needs 2 KiB, the buffer holds 0.1"
            )
        ),
    )
    out = files / "infeasible"
    result = run(
        "explore", files / "tiny.onnx", "--set", "global_buffer.size=128B", "--out", out, "--no-plots", ok=1
    )
    assert "no feasible mapping found: blocks.0.c1 needs 2 KiB" in result.stderr
    assert json.loads((out / "summary.json").read_text())["search"]["status"] == "infeasible"


# ---- evaluate ----------------------------------------------------------------------------------------


def test_evaluate_round_trip_of_every_pareto_point(explored: Path) -> None:
    result = run("evaluate", explored, "--check")
    n = len(list((explored / "mappings").glob("*.yaml")))
    assert f"round trip: {n}/{n} mapping files reproduce their stored numbers" in result.stdout
    data = json.loads(run("evaluate", *sorted((explored / "mappings").glob("*.yaml")), "--json").stdout)
    assert len(data) == n and all(d["matches_stored"] and not d["differences"] for d in data)


def test_evaluate_one_file_other_hardware_and_json(explored: Path, files: Path) -> None:
    one = sorted((explored / "mappings").glob("*.yaml"))[0]
    text = run("evaluate", one).stdout
    assert "reproduces the stored numbers" in text and "energy_pj" in text and "offchip_bytes_V" in text
    assert run("evaluate", one, "-q").stdout.count("\n") == 1
    other = run("evaluate", one, "--hw", "stems-edge")
    assert (
        "re-priced on other inputs" in other.stdout and "differs from the recorded tiny-edge" in other.stderr
    )
    data = json.loads(run("evaluate", one, "--json", "--set", "clock=2GHz").stdout)
    assert not data["same_hardware"] and not data["matches_stored"] and data["metrics"]["energy_pj"] > 0
    assert run("evaluate", one, "--hw", "stems-edge", "--check", ok=1)


def test_evaluate_a_moved_model_with_model(explored: Path, files: Path) -> None:
    moved = files / "moved"
    shutil.copytree(explored, moved / "run")
    one = sorted((moved / "run" / "mappings").glob("*.yaml"))[0]
    doc = yaml.safe_load(one.read_text())
    doc["model"]["path"] = str(files / "gone.onnx")
    doc["model"]["relative_path"] = "../../gone.onnx"
    one.write_text(yaml.safe_dump(doc, sort_keys=False))
    one_line_error(run("evaluate", one, ok=None), "cannot find the model file of tiny")
    assert "reproduces the stored numbers" in run("evaluate", one, "--model", files / "tiny.onnx").stdout


def test_evaluate_rejects_hand_edits_with_the_reason(explored: Path, files: Path) -> None:
    one = sorted((explored / "mappings").glob("*.yaml"))[0]
    edited = files / "edited.yaml"
    doc = yaml.safe_load(one.read_text())
    doc["schedule"]["segments"][0]["time_batch"] = 3
    edited.write_text(yaml.safe_dump(doc, sort_keys=False))
    one_line_error(
        run("evaluate", edited, ok=None), "edited.yaml", "time_batch 3 must divide the 4 timesteps"
    )
    doc = yaml.safe_load(one.read_text())
    doc["schedule"]["segments"][0]["tile"] = {"cols": 2.5}
    edited.write_text(yaml.safe_dump(doc, sort_keys=False))
    one_line_error(
        run("evaluate", edited, ok=None), "edited.yaml", "tile cols must be a whole number, not 2.5"
    )
    full = run("evaluate", one, "--set", "global_buffer.size=128B", ok=1)
    assert "infeasible: on tiny-edge:" in full.stderr and "needs" in full.stderr
    doc = yaml.safe_load(one.read_text())
    doc["metrics"]["latency_cycles"] += 1
    edited.write_text(yaml.safe_dump(doc, sort_keys=False))
    result = run("evaluate", edited, "--check", ok=1)
    assert "differs from the stored numbers" in result.stdout
    one_line_error(run("evaluate", files / "nothing.yaml", ok=None), "no such file or folder")
    one_line_error(run("evaluate", files / "tiny.yaml", ok=None), "missing key 'stems_mapping'")


# ---- compare -----------------------------------------------------------------------------------------


def test_compare_results_mappings_and_hardware(explored: Path, files: Path) -> None:
    one = sorted((explored / "mappings").glob("*.yaml"))[0]
    out = files / "cmp"
    table = run(
        "compare",
        explored,
        one,
        files / "tiny.yaml",
        "stems-edge",
        "--model",
        files / "tiny.onnx",
        "--out",
        out,
        "--no-plots",
    )
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["entry", "kind", "model", "hardware"]
    assert "energy_pj_ratio" in lines[0] and lines[1].split()[0] == "run"
    assert {p.name for p in out.iterdir()} >= {
        "compare.csv",
        "compare.json",
        "pareto_overlay.png",
        "pareto_overlay.svg",
    }
    assert (out / "tiny" / "summary.json").is_file() and (out / "stems-edge" / "summary.json").is_file()
    data = json.loads(run("compare", explored, one, "--json", "--out", out, "--force").stdout)
    rows = data["entries"]
    assert [r["kind"] for r in rows] == ["results", "mapping"] and rows[0]["energy_pj_ratio"] == 1.0
    assert rows[1]["energy_pj"] >= rows[0]["energy_pj"]  # a front point is never below the best of its run
    csv = run("compare", explored, one, "--csv", "--out", out, "--force").stdout
    assert csv.splitlines()[0].startswith(
        "entry,kind,model,hardware,points,pareto_points,energy_pj,energy_pj_ratio"
    )
    one_line_error(run("compare", explored, one, "--out", out, ok=None), "already exists")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["{run}"], "at least two entries"),
        (["{run}", "stems-edge"], "give --model MODEL"),
        (["{run}", "nowhere"], "not a shipped hardware name"),
        (["{run}", "{dir}"], "not a stems output folder"),
        (["{run}", "{ann}"], "neither a stems mapping file"),
    ],
)
def test_compare_bad_input(explored: Path, files: Path, args: list[str], needle: str) -> None:
    (files / "plain").mkdir(exist_ok=True)
    (files / "ann2.yaml").write_text("stems_annotations: 1\n")
    subs = {"{run}": str(explored), "{dir}": str(files / "plain"), "{ann}": str(files / "ann2.yaml")}
    one_line_error(
        run("compare", *[subs.get(a, a) for a in args], "--out", files / "cmp-bad", ok=None), needle
    )


# ---- report, schema, version -------------------------------------------------------------------------


def test_report_rerenders_plots_tables_and_html(explored: Path, files: Path) -> None:
    copy = files / "report-copy"
    shutil.copytree(explored, copy)
    shutil.rmtree(copy / "plots")
    (copy / "report.html").unlink()
    result = run("report", copy, "--pareto")
    pareto_ids = [line.split(",")[0] for line in (copy / "pareto.csv").read_text().splitlines()[1:]]
    listed = [line.split()[0] for line in result.stdout.splitlines()[1 : 1 + len(pareto_ids)]]
    assert listed == pareto_ids
    assert (copy / "plots" / "pareto.png").is_file() and (copy / "plots" / "pareto.svg").is_file()
    html = (copy / "report.html").read_text()
    assert "Pareto points (" in html and html.count("data:image/png;base64,") == 4
    full = run("report", copy, "--no-plots")
    assert "All design points" in (copy / "report.html").read_text()
    assert len(full.stdout.splitlines()) > len(result.stdout.splitlines())
    data = json.loads(run("report", copy, "--json", "--pareto", "--no-plots").stdout)
    assert [p["id"] for p in data["points"]] == pareto_ids and data["report"].endswith("report.html")
    csv = run("report", copy, "--csv", "--no-plots").stdout
    assert csv.splitlines()[0].startswith("id,global_buffer.size,source,label,schedule,energy_pj")


def test_report_bad_input(files: Path) -> None:
    one_line_error(run("report", files / "nowhere", ok=None), "not a directory")
    (files / "empty").mkdir(exist_ok=True)
    one_line_error(run("report", files / "empty", ok=None), "no summary.json")


def test_schema_mapping_version_and_help() -> None:
    text = run("schema", "mapping").stdout
    assert text.startswith("# stems mapping file, schema version 1") and "stems_mapping: 1" in text
    assert yaml.safe_load(text)["stems_mapping"] == 1
    assert run("--version").stdout.startswith("stems, version ")
    helptext = run("--help").stdout
    for command in ("explore", "evaluate", "compare", "report", "schema"):
        assert command in helptext
    for command in ("explore", "evaluate", "compare", "report"):
        assert "--json" in run(command, "--help").stdout


def test_explore_intra_fills_the_intra_section_and_round_trips(files: Path) -> None:
    pytest.importorskip("stems.search.intra", reason="the intra-layer search is not in this tree")
    out = files / "intra"
    run(
        "explore",
        files / "tiny.onnx",
        "--set",
        "global_buffer.size=64KiB",
        "--intra",
        "--out",
        out,
        "--no-plots",
        "-q",
    )
    docs = [yaml.safe_load(p.read_text()) for p in sorted((out / "mappings").glob("*.yaml"))]
    assert docs and all(
        set(d["intra"]) == {"blocks.0.c0", "blocks.0.c1", "blocks.0.c2", "blocks.1.c3", "blocks.1.c4"}
        for d in docs
    )
    entry = docs[0]["intra"]["blocks.0.c1"]
    assert set(entry["mapping"]) == {"spatial", "temporal", "cuts"} and entry["cost"]["valid"]
    assert "round trip: " in run("evaluate", out, "--check").stdout


def test_unit_cost_intra_reaches_the_search_and_round_trips(files: Path, search_calls: list[dict]) -> None:
    """--unit-cost intra prices units with their intra-layer mappings: the search gets that function, the
    mapping files name it, and `stems evaluate --check` re-prices them with it."""
    from stems.schedule.intra_unitcost import intra_unit_cost

    search_calls.clear()
    out = files / "intra-units"
    tiny = ("explore", files / "tiny.onnx", "--hw", files / "tiny.yaml", "--set", "global_buffer.size=64KiB")
    run(*tiny, "--unit-cost", "intra", "--out", out, "--no-plots", "--quiet")
    assert search_calls[-1]["unit_cost"] is intra_unit_cost
    mapping = yaml.safe_load(next((out / "mappings").glob("*.yaml")).read_text())
    assert mapping["pricing"] == {"unit_cost": "intra"}
    assert "reproduce" in run("evaluate", out, "--check").stdout
    default = files / "default-units"
    run(*tiny, "--out", default, "--no-plots", "--quiet")
    energy = {d: pd.read_csv(d / "points.csv")["energy_onchip_pj"].sum() for d in (out, default)}
    assert energy[out] != energy[default]  # the same schedules, priced inside the chip another way
