"""The `stems` command line: a thin click layer over the Python API.

Exit codes: 0 success, 1 search failed or infeasible, 2 bad input (one line, no traceback).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from stems import __version__
from stems.errors import StemsInputError

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
@click.argument("what", type=click.Choice(["annotations", "hardware"]))
def schema(what: str) -> None:
    """Print the documented schema of an input file."""
    if what == "annotations":
        from stems.workload.annotations import SCHEMA_TEXT

        click.echo(SCHEMA_TEXT, nl=False)
    else:
        from stems.hardware import hardware_schema

        click.echo(hardware_schema(), nl=False)
