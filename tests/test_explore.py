"""The exploration pipeline around the schedule search: sweeps, the points table, Pareto points and their
mapping files, the summary, interruption, and the output folder. The search is a test-local stand-in
(`explore_helpers.fake_search`, the baselines and variants as points); the real search is exercised in
`test_explore_e2e.py`."""

from __future__ import annotations

import _thread
import json
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from explore_helpers import fake_search
from helpers import concat_block, sew_block

from stems.errors import StemsInputError
from stems.explore import Progress, explore
from stems.results.mapping_file import evaluate_mapping, parse_mapping, plain_document
from stems.results.metrics import METRICS, OBJECTIVES
from stems.results.points import columns
from stems.results.store import Exploration
from stems.search.solver import Status

SWEEP = {"global_buffer.size": ["1KiB", "4KiB", "64KiB"]}


@pytest.fixture(scope="module")
def ex() -> Exploration:
    return explore(sew_block(t=4), "stems-edge", sweep=SWEEP, search=fake_search)


def test_points_table_columns_ids_and_sources(ex: Exploration) -> None:
    p = ex.points
    assert list(p.columns) == columns(["global_buffer.size"])
    assert list(p["id"]) == [f"p{i:04d}" for i in range(1, len(p) + 1)]
    assert set(p["source"]) == {"search", "baseline"}
    assert set(p["global_buffer.size"]) == {"1KiB", "4KiB", "64KiB"}
    # identical schedules found twice are one point with both labels
    assert (
        p[p["source"] == "search"]
        .groupby("global_buffer.size")["schedule"]
        .apply(lambda s: s.is_unique)
        .all()
    )
    assert p["label"].str.contains("; ").any()
    base = p[p["source"] == "baseline"]
    assert (base["status"].isin(["evaluated", "infeasible"])).all() and base["gap"].isna().all()
    assert (p.loc[p["source"] == "search", "status"] == "optimal").all()
    assert (p.loc[~p["feasible"], "status"] == "infeasible").all()


def test_pareto_points_have_mapping_files(ex: Exploration) -> None:
    p, front = ex.points, ex.pareto
    assert set(front["id"]) == set(p.loc[p["pareto"], "id"]) and len(front) < len(p)
    assert (front["mapping"] == "mappings/" + front["id"] + ".yaml").all()
    assert (p.loc[~p["pareto"], "mapping"] == "").all()
    assert front["feasible"].all()
    assert set(ex.mappings) == set(front["id"])
    for pid, doc in ex.mappings.items():
        row = front[front["id"] == pid].iloc[0]
        assert doc["sweep"] == {"global_buffer.size": row["global_buffer.size"]}
        assert doc["metrics"]["energy_pj"] == pytest.approx(row["energy_pj"])
        assert f"global_buffer.size={row['global_buffer.size']}" in doc["hardware"].overrides


def test_mapping_documents_reprice_to_the_stored_numbers(ex: Exploration) -> None:
    from stems.hardware import load_hardware

    w = sew_block(t=4)
    for doc in ex.mappings.values():
        mf = parse_mapping(plain_document(doc))
        hw = load_hardware("stems-edge", mf.hardware.overrides)
        assert evaluate_mapping(mf, workload=w, hardware=hw).matches


def test_summary(ex: Exploration) -> None:
    s = ex.summary
    assert s["stems_summary"] == 1
    assert set(s) >= {"inputs", "versions", "search", "best", "baselines", "lower_bound"}
    json.dumps(s, allow_nan=False)
    assert s["inputs"]["hardware"]["name"] == "stems-edge" and len(s["inputs"]["hardware"]["sha256"]) == 64
    assert s["inputs"]["options"]["sweep"] == SWEEP and s["inputs"]["options"]["objectives"] == list(
        OBJECTIVES
    )
    assert {"stems", "python", "ortools"} <= set(s["versions"])
    search = s["search"]
    assert search["stopped"] == "complete" and not search["interrupted"]
    assert [r["label"] for r in search["runs"]] == [
        f"global_buffer.size={v}" for v in SWEEP["global_buffer.size"]
    ]
    assert search["points"] == len(ex.points) and search["pareto_points"] == len(ex.pareto)
    for objective in OBJECTIVES:
        best = s["best"][objective]
        row = ex.points[ex.points["id"] == best["id"]].iloc[0]
        assert best[objective] == ex.points.loc[ex.points["feasible"], objective].min() == row[objective]
        assert set(METRICS) <= set(best)
        assert best["baseline"]["name"] == "layer-by-layer-sequential"
    assert len(s["baselines"]) == 3
    for entry in s["baselines"]:
        lbl = entry["baselines"]["layer-by-layer-sequential"]
        assert lbl["id"] and set(METRICS) <= set(lbl)
        assert entry["baselines"]["stems-paper-5plif"]["status"] == "not applicable"
    for lb in s["lower_bound"]:
        assert lb["offchip_bytes"] > 0 and lb["ratio"] >= 1.0 - 1e-12
        assert lb["ratio"] == pytest.approx(lb["best_offchip_bytes"] / lb["offchip_bytes"])
    big = s["lower_bound"][-1]
    assert big["ratio"] == pytest.approx(1.0)  # 64 KiB holds everything: at the bound


def test_details_of_front_and_baselines(ex: Exploration) -> None:
    ids = set(ex.pareto["id"]) | set(ex.points.loc[ex.points["source"] == "baseline", "id"])
    assert set(ex.layers["id"]) == ids == set(ex.breakdown["id"])
    per = ex.layers.groupby("id")["energy_pj"].sum()
    energy = ex.points.set_index("id")["energy_pj"]
    for pid, total in per.items():
        assert total == pytest.approx(energy[pid], rel=1e-12)


def test_timesteps_sweep_and_progress() -> None:
    seen: list[Progress] = []
    ex = explore(
        concat_block(t=2),
        "stems-edge",
        overrides=["global_buffer.size=64KiB"],
        sweep=["timesteps=2,4"],
        objectives=["energy_pj", "offchip_bytes"],
        search=fake_search,
        progress=seen.append,
    )
    assert set(ex.points["timesteps"]) == {"2", "4"}
    assert [r["timesteps"] for r in ex.summary["search"]["runs"]] == [2, 4]
    assert all(d["model"].timesteps == int(d["sweep"]["timesteps"]) for d in ex.mappings.values())
    assert {(p.step, p.total) for p in seen} == {(1, 2), (2, 2)}
    assert any(p.kind == "point" and p.point and "energy_pj" in p.point for p in seen)
    assert any("energy_pj optimum" in p.message for p in seen)


def test_bad_input_is_refused_before_searching() -> None:
    calls = []

    def never(*a, **k):
        calls.append(1)
        raise AssertionError("searched")

    w = sew_block()
    for kwargs, needle in [
        ({"sweep": ["global_bufer.size=1KiB,2KiB"]}, "--sweep global_bufer.size"),
        ({"sweep": ["global_buffer.size=1KiB,lots"]}, "--sweep global_buffer.size"),
        ({"overrides": ["global_buffer.sise=1KiB"]}, "did you mean 'size'"),
        ({"objectives": ["energy"]}, "unknown objective 'energy'"),
        ({"time_limit_s": 0}, "time_limit_s"),
        ({"buffer": "l2"}, "no memory 'l2'"),
    ]:
        with pytest.raises(StemsInputError, match=needle):
            explore(w, "stems-edge", search=never, **kwargs)
    with pytest.raises(StemsInputError, match="no such file"):
        explore("missing.onnx", search=never)
    assert not calls


def test_stop_event_keeps_points_found_so_far() -> None:
    stop = threading.Event()

    def stopping(workload, hw, **kw):
        kw["on_point"] = lambda n: stop.set() if n == 2 else None
        return fake_search(workload, hw, **kw)

    ex = explore(sew_block(t=4), "stems-edge", sweep=SWEEP, search=stopping, stop=stop)
    s = ex.summary["search"]
    assert s["interrupted"] and s["stopped"] == "interrupted" and not ex.ok
    assert [r["stopped"] for r in s["runs"]] == ["interrupted", "not run", "not run"]
    assert (ex.points["source"] == "search").sum() == 2
    assert len(ex.summary["baselines"]) == 1


def test_ctrl_c_during_the_search_stops_it_and_keeps_points() -> None:
    def interrupted(workload, hw, *, stop, **kw):
        def poke(n: int) -> None:
            if n == 1:
                _thread.interrupt_main()  # what Ctrl-C does
                assert stop.wait(5), "explore did not set the stop event"

        return fake_search(workload, hw, stop=stop, on_point=poke, **kw)

    t0 = time.perf_counter()
    ex = explore(sew_block(t=4), "stems-edge", sweep=SWEEP, search=interrupted)
    assert time.perf_counter() - t0 < 30
    s = ex.summary["search"]
    assert s["interrupted"] and s["runs"][0]["stopped"] == "interrupted"
    assert (ex.points["source"] == "search").sum() == 1 and s["status"] == "partial"  # 2 of 3 not run


def test_no_feasible_point_and_time_limits() -> None:
    def nothing(workload, hw, **kw):
        from explore_helpers import FakeOutcome

        return FakeOutcome((), "fake", 0.0, "complete", "the network does not fit (fake)")

    ex = explore(sew_block(t=4), "stems-edge", overrides=["global_buffer.size=64B"], search=nothing)
    s = ex.summary["search"]
    assert s["status"] == "infeasible" and s["runs"][0]["infeasible_reason"].startswith("the network")
    assert not ex.ok and ex.pareto.empty and ex.best() is None
    assert not ex.points["feasible"].any()  # the baselines are there, all over capacity

    def slow(workload, hw, **kw):
        out = fake_search(workload, hw, status=Status.FEASIBLE, **kw)
        return type(out)(out.points, out.space, out.wall_s, "time limit", None)

    ex = explore(sew_block(t=4), "stems-edge", search=slow)
    s = ex.summary["search"]
    assert s["stopped"] == "time limit" and s["status"] == "feasible" and s["gap"] == pytest.approx(0.05)
    assert (ex.points.loc[ex.points["source"] == "search", "status"] == "feasible").all()


def test_write_and_load_back(ex: Exploration, tmp_path: Path) -> None:
    out = ex.write(tmp_path / "run", plots=False)
    assert {p.name for p in out.iterdir()} == {
        "points.csv",
        "pareto.csv",
        "layers.csv",
        "breakdown.csv",
        "mappings",
        "summary.json",
    }
    assert sorted(p.stem for p in (out / "mappings").glob("*.yaml")) == sorted(ex.pareto["id"])
    back = Exploration.load(out)
    pd.testing.assert_frame_equal(back.points, ex.points, check_dtype=False)
    pd.testing.assert_frame_equal(back.pareto, ex.pareto, check_dtype=False)
    assert back.summary["best"] == json.loads(json.dumps(ex.summary["best"]))
    assert not list(tmp_path.glob(".*"))  # no staging folder left behind
    with pytest.raises(StemsInputError, match="already exists; pass --force"):
        ex.write(out)
    (out / "stale.txt").write_text("x")
    ex.write(out, force=True, plots=False)
    assert not (out / "stale.txt").exists()  # the folder is replaced, not merged into
    other = tmp_path / "mine"
    other.mkdir()
    (other / "thesis.tex").write_text("x")
    with pytest.raises(StemsInputError, match="not a stems output folder"):
        ex.write(other, force=True)
    assert (other / "thesis.tex").exists()


def test_merged_labels_stay_short() -> None:
    from stems.explore import merge_labels

    assert (
        merge_labels(["optimum:energy_pj", "optimum:latency_cycles"])
        == "optimum:energy_pj; optimum:latency_cycles"
    )
    steps = [f"pareto:offchip_bytes<={v}" for v in (3, 2, 1)]
    assert (
        merge_labels(["optimum:offchip_bytes", *steps])
        == "optimum:offchip_bytes; pareto:offchip_bytes<=3 (+2 steps)"
    )
    assert merge_labels(steps[:2] + steps[:1]) == "pareto:offchip_bytes<=3 (+1 step)"


@pytest.mark.parametrize("allowed", [False, True])
def test_points_that_remove_state_join_the_front_only_when_allowed(allowed: bool) -> None:
    from explore_helpers import FakePoint

    from stems.schedule import StatePolicy, evaluate

    def removing(workload, hw, **kw):
        out = fake_search(workload, hw, **kw)
        base = out.points[0].schedule
        cut = base.with_decisions(state={x.name: StatePolicy.REMOVE for x in workload if x.stateful})
        cost = evaluate(workload, cut, hw)
        extra = FakePoint("removes state", cut, cost, out.points[0].solve)
        return type(out)((*out.points, extra), out.space, out.wall_s, out.stopped, None)

    ex = explore(sew_block(t=4), "stems-edge", search=removing, allow_state_removal=allowed)
    row = ex.points[ex.points["label"] == "removes state"].iloc[0]
    assert row["retraining_required"] and row["state_removed_bits"] > 0 and row["feasible"]
    assert bool(row["pareto"]) is allowed
    best = ex.summary["best"]["offchip_bytes"]
    assert (best["id"] == row["id"]) is allowed
