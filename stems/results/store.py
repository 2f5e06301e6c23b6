"""An exploration's results in memory (`Exploration`) and on disk (one output folder).

Folder layout (`Exploration.write`):

    points.csv        every evaluated design point (columns: `stems.results.points`)
    pareto.csv        the non-dominated subset, per sweep value
    layers.csv        energy per layer of every Pareto point and every baseline
    breakdown.csv     energy per (memory level, operand) of the same points
    mappings/<id>.yaml  one mapping file per Pareto point (`stems schema mapping`)
    summary.json      inputs, versions, search, best, baselines, lower_bound, outputs
    plots/*.png|svg   Pareto front, energy breakdown, per-layer energy, off-chip traffic vs the swept size
    report.html       the tables and plots in one self-contained file

The folder is written beside its destination and renamed into place, so a reader never sees half of one,
and an existing folder is replaced only with `force` (and only if it is a stems output folder).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from stems.errors import StemsInputError
from stems.files import atomic_write_text
from stems.results.mapping_file import plain, write_mapping
from stems.results.points import PAPER_BASELINE, best_row
from stems.workload.load import ZOO_PREFIX

SUMMARY_VERSION = 1
FILES = {
    "points": "points.csv",
    "pareto": "pareto.csv",
    "layers": "layers.csv",
    "breakdown": "breakdown.csv",
    "mappings": "mappings/",
    "summary": "summary.json",
    "plots": "plots/",
    "report": "report.html",
}


@dataclass
class Exploration:
    """Everything one exploration produced. `points`/`pareto` are the CSV tables (pandas), `summary` the
    JSON document, `mappings` the mapping-file documents of the Pareto points by id, `layers` and
    `breakdown` the energy per layer and per (level, operand) of the Pareto points and baselines."""

    points: pd.DataFrame
    pareto: pd.DataFrame
    summary: dict[str, Any]
    mappings: dict[str, dict[str, Any]] = field(default_factory=dict)
    layers: pd.DataFrame = field(default_factory=pd.DataFrame)
    breakdown: pd.DataFrame = field(default_factory=pd.DataFrame)
    path: Path | None = None

    # ---- reading it ------------------------------------------------------------------------------
    @property
    def sweep_keys(self) -> list[str]:
        return list(self.summary.get("inputs", {}).get("options", {}).get("sweep", {}) or {})

    @property
    def objectives(self) -> list[str]:
        return list(self.summary.get("inputs", {}).get("options", {}).get("objectives", []))

    @property
    def interrupted(self) -> bool:
        return bool(self.summary.get("search", {}).get("interrupted"))

    @property
    def status(self) -> str:
        return str(self.summary.get("search", {}).get("status", ""))

    @property
    def ok(self) -> bool:
        """Not interrupted, and a feasible point was found for at least one sweep value."""
        return not self.interrupted and self.status in ("optimal", "feasible", "partial")

    def best(self, objective: str = "energy_pj") -> pd.Series | None:
        """The feasible point with the least `objective` over every sweep value."""
        return best_row(self.points, objective)

    def baseline(self, sweep: dict[str, str] | None = None, name: str = PAPER_BASELINE) -> pd.Series | None:
        """The row of a named baseline at a sweep value (default: the first)."""
        rows = self.points[(self.points["source"] == "baseline") & (self.points["label"] == name)]
        for k, v in (sweep or {}).items():
            rows = rows[rows[k].astype(str) == str(v)]
        return rows.iloc[0] if len(rows) else None

    # ---- writing it ------------------------------------------------------------------------------
    def write(self, out: str | Path, *, force: bool = False, plots: bool = True) -> Path:
        """Write the output folder `out` (see the module docstring); returns its path."""
        out = Path(out)
        check_output_dir(out, force=force)
        with staged_dir(out) as tmp:
            self._write_into(tmp, final=out.resolve(), plots=plots)
        self.path = out
        return out

    def _write_into(self, folder: Path, *, final: Path, plots: bool) -> None:
        (folder / "mappings").mkdir()
        for pid, doc in self.mappings.items():
            # relative paths are computed for the final folder, where the files will live
            write_mapping(folder / "mappings" / f"{pid}.yaml", doc, base=final / "mappings")
        atomic_write_text(folder / FILES["points"], self.points.to_csv(index=False))
        atomic_write_text(folder / FILES["pareto"], self.pareto.to_csv(index=False))
        atomic_write_text(folder / FILES["layers"], self.layers.to_csv(index=False))
        atomic_write_text(folder / FILES["breakdown"], self.breakdown.to_csv(index=False))
        outputs: dict[str, Any] = dict(FILES)
        if plots:
            from stems.report import render

            written = render(self, folder)
            outputs["plots"] = [str(p.relative_to(folder)) for p in written.plots]
        else:
            outputs.pop("plots")
            outputs.pop("report")
        self.summary["outputs"] = outputs
        model = self.summary.get("inputs", {}).get("model", {})
        if model.get("path") and not model["path"].startswith(ZOO_PREFIX):
            model["relative_path"] = os.path.relpath(model["path"], final)
        atomic_write_text(folder / FILES["summary"], dumps_summary(self.summary))
        if plots:
            from stems.report.html import write_report

            write_report(self, folder)

    # ---- reading a folder ------------------------------------------------------------------------
    @classmethod
    def load(cls, folder: str | Path) -> Exploration:
        """Read an output folder back (CSV tables, summary, mapping documents)."""
        folder = Path(folder)
        summary_path = folder / FILES["summary"]
        if not folder.is_dir():
            raise StemsInputError("not a directory (give a folder `stems explore` wrote)", path=folder)
        if not summary_path.is_file():
            raise StemsInputError("no summary.json: not a stems output folder", path=folder)
        try:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:  # ValueError: bad JSON or not UTF-8
            raise StemsInputError(f"cannot read: {err}", path=summary_path) from None
        if not isinstance(summary, dict) or summary.get("stems_summary") != SUMMARY_VERSION:
            raise StemsInputError(
                f"not a stems summary of version {SUMMARY_VERSION} (key stems_summary)", path=summary_path
            )
        keys = list(summary.get("inputs", {}).get("options", {}).get("sweep", {}) or {})
        points = read_table(folder / FILES["points"], keys)
        pareto = read_table(folder / FILES["pareto"], keys)
        layers = read_table(folder / FILES["layers"], keys, required=False)
        breakdown = read_table(folder / FILES["breakdown"], keys, required=False)
        mappings: dict[str, dict[str, Any]] = {}
        from stems.hardware.load import read_yaml

        for path in sorted((folder / "mappings").glob("*.yaml")):
            mappings[path.stem] = read_yaml(path, strict=True)
        return cls(points, pareto, summary, mappings, layers, breakdown, path=folder)


def read_table(path: Path, sweep_keys: list[str], *, required: bool = True) -> pd.DataFrame:
    if not path.is_file():
        if required:
            raise StemsInputError("missing: not a complete stems output folder", path=path)
        return pd.DataFrame()
    text = ("mapping", "label", "schedule", "retraining", "network_changes")
    dtype = {k: str for k in ("id", *sweep_keys, *text)}
    try:
        df = pd.read_csv(path, dtype=dtype, keep_default_na=True)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (OSError, pd.errors.ParserError) as err:
        raise StemsInputError(f"cannot read: {err}", path=path) from None
    for c in text:
        if c in df:
            df[c] = df[c].fillna("")
    for c in ("pareto", "feasible", "retraining_required", "accuracy_known"):
        if c in df:
            df[c] = df[c].astype(str).str.lower().eq("true")
    return df


def dumps_summary(summary: dict[str, Any]) -> str:
    return json.dumps(plain(summary), indent=2, allow_nan=False) + "\n"


def is_output_dir(path: Path) -> bool:
    """A folder stems wrote: an exploration (summary.json) or a comparison (compare.json)."""
    for name, key in ((FILES["summary"], "stems_summary"), ("compare.json", "stems_compare")):
        try:
            if json.loads((path / name).read_text()).get(key) is not None:
                return True
        except (OSError, ValueError, AttributeError):
            continue
    return False


def check_output_dir(out: Path, *, force: bool) -> None:
    """Refuse an existing folder without `force`, and with it anything but an empty or stems folder."""
    if not out.exists():
        return
    if not out.is_dir():
        raise StemsInputError("exists and is not a folder; choose another --out", path=out)
    if not force:
        raise StemsInputError("already exists; pass --force to replace it", path=out)
    if any(out.iterdir()) and not is_output_dir(out):
        raise StemsInputError(
            "exists and is not a stems output folder (no summary.json); refusing to replace it", path=out
        )


@contextmanager
def staged_dir(out: Path) -> Iterator[Path]:
    """A fresh folder beside `out` to write into; on success it replaces `out` (call `check_output_dir`
    first), on failure it is removed and `out` is left as it was."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        _swap(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap(tmp: Path, out: Path) -> None:
    """Move the finished folder into place; the old one (if any) is removed only afterwards."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        if old.exists():
            shutil.rmtree(old)
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
