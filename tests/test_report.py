"""Plots, terminal tables and the HTML report of an exploration (built with the stand-in search)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from explore_helpers import FakeOutcome, fake_search
from helpers import concat_block, sew_block

from stems.explore import explore
from stems.report import render
from stems.report.figures import best_and_baseline, exploration_figures
from stems.report.html import build_html, write_report
from stems.report.plots import compare_figure, pareto_figure, sweep_figure
from stems.report.tables import best_vs_baseline, readable, to_text
from stems.results.store import Exploration


@pytest.fixture(scope="module")
def ex() -> Exploration:
    return explore(
        sew_block(t=4),
        "stems-edge",
        sweep={"global_buffer.size": ["1KiB", "4KiB", "64KiB"]},
        search=fake_search,
    )


def labels(fig) -> list[str]:
    return [ax.get_xlabel() + " | " + ax.get_ylabel() for ax in fig.axes if ax.get_visible()]


def test_figures_have_labelled_axes_with_units(ex: Exploration) -> None:
    figs = {name: fig for name, _, fig in exploration_figures(ex)}
    assert list(figs) == ["pareto", "energy_breakdown", "layer_energy", "offchip_vs_global_buffer_size"]
    pareto = figs["pareto"]
    panels = [ax for ax in pareto.axes if ax.get_title().startswith("global_buffer.size")]
    assert [ax.get_title() for ax in panels] == [
        f"global_buffer.size = {v}" for v in ("1KiB", "4KiB", "64KiB")
    ]
    assert any("latency per inference (k cycles)" in x for x in labels(pareto))
    assert any("energy per inference (µJ)" in x for x in labels(pareto))
    assert any("off-chip traffic (" in ax.get_ylabel() for ax in pareto.axes)  # the colour bar
    legend = [t.get_text() for leg in pareto.legends for t in leg.get_texts()]
    assert "least energy" in legend and "baseline LBL-ST (paper baseline)" in legend
    assert figs["energy_breakdown"].axes[0].get_xlabel() == "energy per inference (nJ)"
    layer_ticks = [t.get_text() for t in figs["layer_energy"].axes[0].get_xticklabels()]
    assert layer_ticks == [x.name for x in sew_block()]
    sweep = figs["offchip_vs_global_buffer_size"]
    assert [t.get_text() for t in sweep.axes[0].get_xticklabels()] == ["1KiB", "4KiB", "64KiB"]
    assert "off-chip traffic per inference" in sweep.axes[0].get_ylabel()
    lines = [line.get_label() for line in sweep.axes[0].get_lines()]
    assert "compulsory traffic (bound)" in lines and "best searched point" in lines


def test_breakdown_and_layers_compare_the_best_point_with_the_paper_baseline(ex: Exploration) -> None:
    bars = best_and_baseline(ex)
    best = ex.best("energy_pj")
    assert bars[0][0] == best["id"] and "least energy" in bars[0][1]
    base = ex.baseline({"global_buffer.size": best["global_buffer.size"]})
    assert bars[1] == (base["id"], f"{base['id']} layer-by-layer-sequential")


def test_render_writes_png_and_svg(ex: Exploration, tmp_path: Path) -> None:
    rendered = render(ex, tmp_path)
    names = sorted(p.name for p in rendered.plots)
    assert len(names) == 8 and all((tmp_path / "plots" / n).stat().st_size > 1000 for n in names)
    assert (tmp_path / "plots" / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "plots" / "pareto.svg").read_text().lstrip().startswith("<?xml")
    page = write_report(ex, tmp_path)
    html = page.read_text()
    assert html.count("data:image/png;base64,") == 4
    assert "Best points against the paper's baseline" in html and "Compulsory off-chip traffic" in html
    assert "layer-by-layer-sequential" in html and "interrupted" not in html


def test_sweep_over_timesteps_and_unplottable_sweeps() -> None:
    ex = explore(
        concat_block(t=2),
        "stems-edge",
        overrides=["global_buffer.size=64KiB"],
        sweep=["timesteps=2,4,8"],
        search=fake_search,
    )
    names = [n for n, _, _ in exploration_figures(ex)]
    assert "offchip_vs_timesteps" in names
    fig = sweep_figure(ex.points.assign(timesteps="x"), [], "timesteps")
    assert fig is None  # values that are not numbers: no sweep plot


def test_many_sweep_values_get_a_grid_and_nothing_feasible_gets_a_note() -> None:
    ex = explore(
        sew_block(t=4),
        "stems-edge",
        sweep={"global_buffer.size": ["2KiB", "4KiB", "8KiB", "16KiB"]},
        search=fake_search,
    )
    fig = pareto_figure(ex.points, ex.sweep_keys)
    assert sum(ax.get_visible() and ax.get_title() != "" for ax in fig.axes) == 4

    def nothing(workload, hw, **kw):
        return FakeOutcome((), "fake", 0.0, "complete", "does not fit")

    none = explore(sew_block(t=4), "stems-edge", overrides=["global_buffer.size=64B"], search=nothing)
    figs = {n: f for n, _, f in exploration_figures(none)}
    assert list(figs) == ["pareto"]
    texts = [t.get_text() for ax in figs["pareto"].axes for t in ax.texts]
    assert "no feasible design point" in texts
    html = build_html(none, Path("."))
    assert "No feasible design point" in html


def test_tables_for_the_terminal(ex: Exploration) -> None:
    t = best_vs_baseline(ex)
    first = t[t["global_buffer.size"] == "1KiB"]
    assert first.iloc[0]["what"] == "paper baseline (LBL-ST)" and first.iloc[0]["energy_x"] == 1.0
    assert (first["energy_x"].iloc[1:] <= 1.0 + 1e-12).any()
    text = to_text(t)
    assert "energy_uJ" in text and "x " in text
    view = readable(ex.pareto, ex.sweep_keys)
    assert list(view.columns)[:6] == [
        "id",
        "global_buffer.size",
        "source",
        "label",
        "energy_uJ",
        "latency_Mcycles",
    ]
    assert to_text(pd.DataFrame()) == "(no rows)"


def test_compare_figure_overlays_entries(ex: Exploration) -> None:
    fig = compare_figure([("a", ex.pareto), ("b", ex.pareto.head(1)), ("c", ex.pareto.head(0))], "a vs b")
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == [f"a ({len(ex.pareto)} points)", "b (1 point)"]
    empty = compare_figure([("a", ex.pareto.head(0))])
    assert "nothing to compare" in empty.axes[0].texts[0].get_text()
