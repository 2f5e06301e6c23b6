"""The `stems` command line: a thin click layer over the Python API.

Exit codes: 0 success, 1 search failed or infeasible, 2 bad input (one line, no traceback).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from stems import __version__
from stems.errors import StemsInputError
from stems.workload.load import ZOO_PREFIX

EXIT_BAD_INPUT = 2


def _fail_cleanly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn bad-input errors into one line on stderr and exit code 2."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except StemsInputError as err:
            click.echo(f"stems: error: {err.line()}", err=True)
            sys.exit(EXIT_BAD_INPUT)

    return wrapper


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stems")
def main() -> None:
    """Map spiking neural networks onto SNN accelerators: search, price, compare."""


model_options = [
    click.option(
        "--timesteps", "-T", type=click.IntRange(min=1), help="Timesteps T (NIR and step graphs carry none)."
    ),
    click.option(
        "--annotations",
        "-a",
        type=click.Path(dir_okay=False),
        help="Annotations YAML (see `stems schema annotations`).",
    ),
    click.option(
        "--allow-unknown-ops",
        is_flag=True,
        help="Pass unsupported operators through as zero-cost views, with a warning.",
    ),
]


def with_model_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(model_options):
        fn = option(fn)
    return fn


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@with_model_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with `layers` and `totals`.")
@click.option("--all-layers", is_flag=True, help="Also list zero-cost views (flatten, reshape).")
@_fail_cleanly
def inspect(
    model: str,
    timesteps: int | None,
    annotations: str | None,
    allow_unknown_ops: bool,
    as_json: bool,
    all_layers: bool,
) -> None:
    """Show the layer graph stems imports from MODEL (ONNX or NIR): loops, neurons, state, work."""
    from stems.workload import layer_table, load_workload, totals

    workload = load_workload(
        model, timesteps=timesteps, annotations=annotations, allow_unknown_ops=allow_unknown_ops
    )
    table = layer_table(workload, include_views=all_layers)
    if as_json:
        _echo_json(
            {
                "model": model,
                "source": {
                    "format": workload.source.format,
                    "library": workload.source.library,
                    "exporter": workload.source.exporter,
                    "sha256": workload.source.sha256,
                },
                "warnings": list(workload.warnings),
                "layers": table.to_dict(orient="records"),
                "totals": totals(workload),
            }
        )
        return
    for warning in workload.warnings:
        click.echo(f"warning: {warning}", err=True)
    src = workload.source
    click.echo(
        f"{model}: {src.library or 'unknown library'} via {src.exporter or src.format}, T = {workload.timesteps}"
    )
    with _pandas_display():
        click.echo(table.to_string(index=False, formatters=_thousands(table)))
    click.echo()
    for key, value in totals(workload).items():
        click.echo(f"  {key:<17} {value:>18,}")


def _thousands(table: Any) -> dict[str, Callable[[Any], str]]:
    return {
        c: "{:,}".format for c in ("weights", "neurons", "state_bits", "accumulates", "macs") if c in table
    }


def _pandas_display() -> Any:
    import pandas as pd

    return pd.option_context("display.width", 250, "display.max_columns", 100, "display.max_rows", 10_000)


@main.group()
def zoo() -> None:
    """Built-in benchmark networks (the STEMS paper's), written as ONNX by stems itself."""


@zoo.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def zoo_list(as_json: bool) -> None:
    """List the built-in models."""
    from stems.workload.zoo import ZOO

    if as_json:
        _echo_json([{"name": name, "description": m.description} for name, m in ZOO.items()])
        return
    for name, m in ZOO.items():
        click.echo(f"{name:<22} {m.description}")


@zoo.command("export")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@_fail_cleanly
def zoo_export(name: str, file: str, force: bool) -> None:
    """Write built-in model NAME to FILE (ONNX, precisions and blocks embedded)."""
    from stems.files import check_writable
    from stems.workload.zoo import export_model, get_model

    get_model(name)  # an unknown name is reported before anything else
    path = export_model(name, check_writable(file, force=force))
    click.echo(f"wrote {path}")


@main.command()
@click.argument("what", type=click.Choice(["annotations", "hardware", "mapping"]))
def schema(what: str) -> None:
    """Print the documented schema of an input file (annotations, hardware) or a mapping file."""
    if what == "annotations":
        from stems.workload.annotations import SCHEMA_TEXT

        click.echo(SCHEMA_TEXT, nl=False)
    elif what == "hardware":
        from stems.hardware import hardware_schema

        click.echo(hardware_schema(), nl=False)
    else:
        from stems.results.mapping_file import SCHEMA_TEXT as MAPPING_SCHEMA

        click.echo(MAPPING_SCHEMA, nl=False)


# ---- explore, evaluate, compare, report ---------------------------------------------------------

EXIT_FAILED = 1
OBJECTIVE_NAMES = ("energy_pj", "latency_cycles", "offchip_bytes", "onchip_peak_bytes")

output_options = [
    click.option("--quiet", "-q", is_flag=True, help="Print only the result (no progress, no notes)."),
    click.option("--verbose", "-v", is_flag=True, help="Also print every evaluated point."),
]

search_options = [
    click.option(
        "--hw",
        "hw",
        default=None,
        metavar="SPEC",
        help="Hardware: a shipped name (stems-edge, the default), a YAML path, or zigzag:HW.yaml[,MAPPING.yaml].",
    ),
    click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override a hardware key, e.g. --set global_buffer.size=256KiB (repeatable).",
    ),
    click.option(
        "--sweep",
        "sweeps",
        multiple=True,
        metavar="KEY=V1,V2,...",
        help="Explore every value of a hardware key, of timesteps, or of a network knob given as an annotations "
        "path (defaults.weight_bits, blocks.3.neuron, layers.NAME.state_bits), e.g. --sweep "
        "global_buffer.size=128KiB,1MiB (repeatable: the product is explored). precision_budget.W=uniform,1,4 "
        "allocates per-layer weight bits (or V, O_final) from the annotations' sensitivity scores within F x "
        "the perturbation of uniform 8 bits.",
    ),
    click.option(
        "--objective",
        "objectives",
        multiple=True,
        type=click.Choice([*OBJECTIVE_NAMES, "accuracy"]),
        help="Objective to minimise and to span the Pareto front with (repeatable; default: all four); "
        "accuracy (with --accuracy) is maximised.",
    ),
    click.option(
        "--time-limit",
        type=click.FloatRange(min=0, min_open=True),
        default=60.0,
        show_default=True,
        metavar="S",
        help="CP-SAT time limit of each solve, in seconds.",
    ),
    click.option(
        "--workers",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        metavar="N",
        help="CP-SAT workers.",
    ),
    click.option(
        "--seed", type=int, default=0, show_default=True, help="CP-SAT seed (results are reproducible)."
    ),
    click.option(
        "--pareto-steps",
        type=click.IntRange(min=0),
        default=6,
        show_default=True,
        metavar="N",
        help="Points the search places along the front between the objectives' optima.",
    ),
    click.option(
        "--allow-state-removal",
        is_flag=True,
        help="Let the search make stateful layers stateless (a model change that needs retraining).",
    ),
    click.option(
        "--unit-cost",
        type=click.Choice(["default", "intra"]),
        default="default",
        show_default=True,
        help="Price each unit inside the chip with one buffer access per element (default) or with the "
        "unit's least-energy intra-layer mapping (intra: slower, more faithful).",
    ),
]


def with_options(options: list[Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return deco


def _explore_kwargs(kw: dict[str, Any]) -> dict[str, Any]:
    from stems.hardware import DEFAULT_HARDWARE
    from stems.results.mapping_file import UNIT_COSTS

    return {
        "hw": kw["hw"] or DEFAULT_HARDWARE,
        "overrides": kw["overrides"],
        "sweep": kw["sweeps"],
        "timesteps": kw["timesteps"],
        "annotations": kw["annotations"],
        "allow_unknown_ops": kw["allow_unknown_ops"],
        "objectives": kw["objectives"] or OBJECTIVE_NAMES,
        "time_limit_s": kw["time_limit"],
        "workers": kw["workers"],
        "seed": kw["seed"],
        "pareto_steps": kw["pareto_steps"],
        "allow_state_removal": kw["allow_state_removal"],
        "unit_cost": UNIT_COSTS[kw["unit_cost"]],
        "activity": kw.get("activity"),
        "accuracy": kw.get("accuracy"),
    }


def _default_out(model: str, hw_name: str) -> str:
    from pathlib import Path

    return str(Path("stems-out") / f"{Path(model.removeprefix(ZOO_PREFIX)).stem}-{hw_name}")


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@with_options(search_options)
@with_model_options
@click.option(
    "--out", "-o", type=click.Path(file_okay=False), help="Output folder [stems-out/<model>-<hw>/]."
)
@click.option("--force", is_flag=True, help="Replace the output folder if it exists.")
@click.option(
    "--no-plots", is_flag=True, help="Skip the plots and report.html (tables, mappings, summary only)."
)
@click.option(
    "--activity",
    type=click.Path(dir_okay=False),
    help="A .npz of recorded spike tensors per layer (keys: layer names or neuron module paths): their "
    "spike rates replace the annotated ones.",
)
@click.option(
    "--accuracy",
    type=click.Path(dir_okay=False),
    help="A CSV of measured accuracy: a column per knob (named as its --sweep key, or timesteps) and "
    "accuracy; joined onto the points.",
)
@click.option(
    "--intra",
    is_flag=True,
    help="Also search each conv and dense layer's intra-layer mapping (least energy) and store it in the "
    "mapping files' intra section.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print summary.json (with the output folder) on stdout."
)
@with_options(output_options)
@_fail_cleanly
def explore(
    model: str,
    out: str | None,
    force: bool,
    no_plots: bool,
    intra: bool,
    as_json: bool,
    quiet: bool,
    verbose: bool,
    **kw: Any,
) -> None:
    """Search mappings of MODEL on the hardware: every sweep value, the named baselines and the compulsory
    bound beside, written to a folder of CSV tables, mapping files, summary.json and plots.

    Exit code 1 when no feasible point is found or the search is interrupted (Ctrl-C keeps the points
    found so far and writes them)."""
    from stems.explore import explore as run_explore
    from stems.hardware import load_hardware
    from stems.report.console import StatusLine
    from stems.results.store import check_output_dir

    options = _explore_kwargs(kw)
    base_hw = load_hardware(options["hw"], options["overrides"])
    folder = out or _default_out(model, base_hw.name)
    from pathlib import Path

    check_output_dir(Path(folder), force=force)  # before minutes of search
    status = StatusLine(quiet=quiet or as_json, verbose=verbose)
    mapper = None
    if intra:
        from stems.explore import intra_mapper
        from stems.search.solver import SolveOptions

        mapper = intra_mapper(SolveOptions(options["time_limit_s"], options["workers"], options["seed"]))
    try:
        ex = run_explore(model, progress=status, layer_mapper=mapper, **options)
    except KeyboardInterrupt:
        status.done()
        click.echo("stems: interrupted before any point was priced; nothing written", err=True)
        sys.exit(EXIT_FAILED)
    status.done()
    if not (quiet or as_json):
        for warning in ex.summary.get("warnings", []):
            click.echo(f"warning: {warning}", err=True)
        click.echo("writing tables, mapping files" + ("" if no_plots else " and plots"), err=True)
    try:
        path = ex.write(folder, force=force, plots=not no_plots)
    except KeyboardInterrupt:
        click.echo(f"stems: interrupted while writing; {folder} is as it was", err=True)
        sys.exit(EXIT_FAILED)
    if as_json:
        _echo_json({"out": str(path.resolve()), **ex.summary})
    else:
        _print_exploration(ex, path, quiet=quiet)
    _exit_for(ex, quiet=quiet)


def _print_exploration(ex: Any, path: Any, *, quiet: bool) -> None:
    from stems.report.tables import best_vs_baseline, to_text

    s = ex.summary["search"]
    if not quiet:
        click.echo(
            f"{s['points']} design points, {s['pareto_points']} on the Pareto front, in {s['wall_s']:.1f} s "
            f"(search {s['status']}, {s['stopped']})"
        )
        click.echo("best points against the paper's baseline (layer-by-layer, sequential); _x = ratio to it:")
    click.echo(to_text(best_vs_baseline(ex)))
    if quiet:
        click.echo(str(path))
        return
    n_maps = len(ex.mappings)
    plots = [p for p in ex.summary.get("outputs", {}).get("plots", []) if p.endswith(".png")]
    click.echo(f"\noutputs in {path.resolve()}/")
    click.echo("  points.csv  pareto.csv  layers.csv  breakdown.csv  summary.json")
    click.echo(
        f"  mappings/ ({n_maps} mapping files; re-price one with: stems evaluate {path}/mappings/<id>.yaml)"
    )
    if plots:
        click.echo(f"  plots/ ({', '.join(p.removeprefix('plots/') for p in plots)})  report.html")


def _exit_for(ex: Any, *, quiet: bool) -> None:
    s = ex.summary["search"]
    if s["interrupted"]:
        click.echo(f"stems: interrupted: kept the {s['points']} points found so far", err=True)
        sys.exit(EXIT_FAILED)
    if s["status"] in ("infeasible", "not run"):
        reasons = [r["infeasible_reason"] for r in s["runs"] if r.get("infeasible_reason")]
        click.echo(f"stems: no feasible mapping found{': ' + reasons[0] if reasons else ''}", err=True)
        sys.exit(EXIT_FAILED)
    if s["status"] == "partial" and not quiet:
        for r in s["runs"]:
            if r["status"] not in ("optimal", "feasible"):
                click.echo(f"warning: {r['label']}: no feasible point ({r['status']})", err=True)


@main.command()
@click.argument("mappings", nargs=-1, required=True, type=click.Path())
@click.option(
    "--hw", default=None, metavar="SPEC", help="Re-price on this hardware instead of the recorded one."
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Hardware overrides (after the recorded ones).",
)
@click.option(
    "--model",
    type=click.Path(dir_okay=False),
    help="The model file, if it moved since the mapping was written.",
)
@click.option(
    "--check", is_flag=True, help="Exit 1 unless every file reproduces its stored numbers (round trip)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@with_options(output_options)
@_fail_cleanly
def evaluate(
    mappings: tuple[str, ...],
    hw: str | None,
    overrides: tuple[str, ...],
    model: str | None,
    check: bool,
    as_json: bool,
    quiet: bool,
    verbose: bool,
) -> None:
    """Re-price MAPPING files (or every mapping of a results folder) without searching, and compare with
    the numbers stored in them. A file that breaks a rule is rejected with the reason (exit 2); one that
    does not fit the hardware is reported infeasible (exit 1)."""
    from stems.report.tables import to_text
    from stems.results.mapping_file import InfeasibleMapping, evaluate_many, mapping_paths

    paths = mapping_paths(list(mappings))
    results = evaluate_many(paths, hw=hw, overrides=tuple(overrides), model=model)
    infeasible = [r for r in results if isinstance(r, InfeasibleMapping)]
    done = [r for r in results if not isinstance(r, InfeasibleMapping)]
    if as_json:
        payload = [r.to_dict() for r in done] + [
            {"mapping": r.path, "infeasible": r.reason} for r in infeasible
        ]
        _echo_json(payload if len(paths) > 1 else payload[0])
    elif len(done) == 1 and len(paths) == 1:
        _print_evaluation(done[0], quiet=quiet)
    elif done and not quiet:
        import pandas as pd

        rows = [
            {
                "id": r.id,
                "hardware": r.hardware,
                "energy_pj": r.metrics["energy_pj"],
                "latency_cycles": r.metrics["latency_cycles"],
                "offchip_bytes": r.metrics["offchip_bytes"],
                "onchip_peak_bytes": r.metrics["onchip_peak_bytes"],
                "matches_stored": r.matches,
            }
            for r in done
        ]
        click.echo(to_text(pd.DataFrame(rows)))
    for r in infeasible:
        click.echo(f"stems: {r}", err=True)
    same = [r for r in done if r.same_inputs]
    if not as_json:
        for r in done if not quiet else ():
            for n in r.notes:
                click.echo(f"note: {r.id}: {n}", err=True)
        if same and len(paths) > 1:
            ok = sum(r.matches for r in same)
            click.echo(f"round trip: {ok}/{len(same)} mapping files reproduce their stored numbers")
    if infeasible or (check and (len(same) < len(paths) or not all(r.matches for r in same))):
        sys.exit(EXIT_FAILED)


def _print_evaluation(r: Any, *, quiet: bool) -> None:
    from stems.results.metrics import METRICS

    verdict = (
        "reproduces the stored numbers"
        if r.matches
        else "differs from the stored numbers"
        if r.same_inputs
        else "re-priced on other inputs"
    )
    click.echo(f"{r.id} ({r.path}): {r.model} on {r.hardware}, {verdict}")
    if quiet:
        return
    diffs = r.differences
    width = max(len(m) for m in METRICS)
    click.echo(f"  {'metric':<{width}}  {'stored':>20}  {'re-priced':>20}  ratio")
    for m in METRICS:
        now, was = r.metrics.get(m), r.stored.get(m)
        ratio = ""
        if (
            isinstance(now, int | float)
            and isinstance(was, int | float)
            and not isinstance(now, bool)
            and was
        ):
            ratio = f"{now / was:.6g}"
        mark = "  *" if m in diffs else ""
        click.echo(f"  {m:<{width}}  {_cell(was):>20}  {_cell(now):>20}  {ratio}{mark}")
    for layer, entry in r.intra.items():
        click.echo(
            f"  intra {layer}: energy_pj {_cell(entry['energy_pj'])}, latency_cycles {_cell(entry['latency_cycles'])}"
        )


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:.10g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


@main.command()
@click.argument("entries", nargs=-1, required=True)
@click.option("--model", type=click.Path(dir_okay=False), help="The model to explore hardware entries on.")
@with_options(search_options[1:])
@with_model_options
@click.option(
    "--out", "-o", type=click.Path(file_okay=False), help="Output folder [stems-out/compare-<entries>/]."
)
@click.option("--force", is_flag=True, help="Replace the output folder if it exists.")
@click.option(
    "--no-plots", is_flag=True, help="Skip the plots of the explorations run here (not the overlay)."
)
@click.option("--csv", "as_csv", is_flag=True, help="Print the table as CSV on stdout.")
@click.option("--json", "as_json", is_flag=True, help="Print the table (and notes) as JSON on stdout.")
@with_options(output_options)
@_fail_cleanly
def compare(
    entries: tuple[str, ...],
    model: str | None,
    out: str | None,
    force: bool,
    no_plots: bool,
    as_csv: bool,
    as_json: bool,
    quiet: bool,
    verbose: bool,
    **kw: Any,
) -> None:
    """Compare ENTRIES side by side: result folders, mapping files, or hardware specs (explored on --model
    with the same options). Prints each objective's best value and its ratio to the first entry, and writes
    compare.csv, compare.json, an overlaid Pareto plot and each exploration run here to the output folder."""
    from stems.explore import explore as run_explore
    from stems.files import atomic_write_text
    from stems.report.console import StatusLine
    from stems.report.plots import compare_figure, save
    from stems.report.tables import to_text
    from stems.results.compare import (
        classify,
        compare_table,
        entry_from_exploration,
        entry_from_mapping,
        entry_name,
        model_warnings,
    )
    from stems.results.store import Exploration, check_output_dir, dumps_summary, staged_dir

    if len(entries) < 2:
        raise StemsInputError("give at least two entries to compare")
    kinds = [classify(e) for e in entries]
    if "hardware" in kinds and model is None:
        raise StemsInputError("hardware entries are explored on a model: give --model MODEL")
    taken: set[str] = set()
    names = [entry_name(e, k, taken) for e, k in zip(entries, kinds, strict=True)]
    folder = Path(out or Path("stems-out") / ("compare-" + "-".join(names))[:120])
    check_output_dir(folder, force=force)
    silent = quiet or as_json or as_csv
    options = _explore_kwargs({**kw, "hw": None})
    explored: list[tuple[Any, str]] = []
    found = []
    for arg, kind, name in zip(entries, kinds, names, strict=True):
        if kind == "results":
            found.append(entry_from_exploration(Exploration.load(arg), name, kind, arg))
        elif kind == "mapping":
            entry = entry_from_mapping(arg)
            entry.name = name
            found.append(entry)
        else:
            if not silent:
                click.echo(f"exploring {model} on {arg}", err=True)
            status = StatusLine(quiet=silent, verbose=verbose)
            ex = run_explore(model, progress=status, **{**options, "hw": arg})
            status.done()
            explored.append((ex, name))
            found.append(entry_from_exploration(ex, name, kind, arg))
    table = compare_table(found)
    warnings = model_warnings(found)
    payload = {"entries": table.to_dict(orient="records"), "notes": warnings, "out": str(folder.resolve())}
    with staged_dir(folder) as tmp:
        for ex, name in explored:
            ex.write(tmp / name, plots=not no_plots)
        atomic_write_text(tmp / "compare.csv", table.to_csv(index=False))
        atomic_write_text(tmp / "compare.json", dumps_summary({"stems_compare": 1, **payload}))
        fig = compare_figure([(e.name, e.pareto) for e in found], "Pareto fronts: " + " vs ".join(names))
        saved = save(fig, tmp, "pareto_overlay", "Pareto fronts compared")
    if as_json:
        _echo_json(payload)
    elif as_csv:
        click.echo(table.to_csv(index=False), nl=False)
    else:
        click.echo(to_text(table))
        if not quiet:
            files = [
                "compare.csv",
                "compare.json",
                *(p.name for p in saved.paths),
                *(f"{n}/" for _, n in explored),
            ]
            click.echo(f"\noutputs in {folder.resolve()}/: {'  '.join(files)}")
    if not quiet:
        for w in warnings:
            click.echo(f"warning: {w}", err=True)
    if any(ex.interrupted for ex, _ in explored):
        click.echo("stems: interrupted", err=True)
        sys.exit(EXIT_FAILED)


@main.command()
@click.argument("folder", type=click.Path(file_okay=False))
@click.option(
    "--pareto", "pareto_only", is_flag=True, help="Tables of the Pareto points only (default: every point)."
)
@click.option("--no-plots", is_flag=True, help="Keep the plot files as they are; rewrite only report.html.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the table as CSV on stdout.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary and the table as JSON on stdout.")
@with_options(output_options)
@_fail_cleanly
def report(
    folder: str, pareto_only: bool, no_plots: bool, as_csv: bool, as_json: bool, quiet: bool, verbose: bool
) -> None:
    """Re-render the plots and tables of a stored exploration FOLDER and write FOLDER/report.html, one
    self-contained page (plots embedded) to share."""
    from stems.report import Rendered, render
    from stems.report.html import write_report
    from stems.report.tables import best_vs_baseline, readable, to_text
    from stems.results.store import Exploration

    ex = Exploration.load(folder)
    rendered = render(ex, folder) if not no_plots else Rendered()
    page = write_report(ex, folder, pareto_only=pareto_only)
    shown = ex.pareto if pareto_only else ex.points
    if as_json:
        _echo_json(
            {
                "report": str(page.resolve()),
                "plots": [str(p) for p in rendered.plots],
                "summary": ex.summary,
                "points": json.loads(shown.to_json(orient="records")),
            }
        )
        return
    if as_csv:
        click.echo(shown.to_csv(index=False), nl=False)
        return
    view = readable(shown, ex.sweep_keys)
    if verbose:
        view["schedule"] = shown["schedule"].to_numpy()
    click.echo(to_text(view))
    if not quiet:
        click.echo()
        click.echo(to_text(best_vs_baseline(ex)))
        click.echo(
            f"\nwrote {page.resolve()} and {len(rendered.plots)} plot files in {Path(folder).resolve() / 'plots'}/"
        )
