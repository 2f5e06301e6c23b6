"""Mapping files: one design point (a schedule, optionally each layer's intra-layer mapping) with the
identity of the model and hardware it was priced on and the numbers it got, in a versioned YAML schema.

`stems explore` writes one per Pareto point (`mappings/<id>.yaml`); `stems evaluate` re-prices one without
searching and compares with the stored numbers; a hand-edited file that breaks a rule is rejected with the
reason. `SCHEMA_TEXT` (`stems schema mapping`) documents every key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stems import __version__
from stems.errors import StemsInputError, did_you_mean
from stems.files import atomic_write_text
from stems.hardware import Hardware
from stems.hardware.load import read_yaml
from stems.results.inputs import HardwareRef, ModelRef
from stems.results.metrics import METRIC_DOCS, METRICS, metrics_of
from stems.schedule.cost import ScheduleCost, evaluate
from stems.schedule.intra_unitcost import intra_unit_cost
from stems.schedule.model import Schedule
from stems.schedule.unitcost import UnitCostFn, default_unit_cost
from stems.search.solver import SolveResult
from stems.workload.model import Workload

MAPPING_VERSION = 1

UNIT_COSTS: dict[str, UnitCostFn] = {"default": default_unit_cost, "intra": intra_unit_cost}
"""Unit-cost models a mapping file may name in `pricing.unit_cost` (`stems evaluate` re-prices with it)."""

TOP_KEYS = (
    "stems_mapping",
    "id",
    "label",
    "source",
    "sweep",
    "model",
    "hardware",
    "pricing",
    "schedule",
    "schedule_summary",
    "intra",
    "metrics",
    "offchip",
    "onchip",
    "model_changes",
    "solve",
    "stems_version",
)
REQUIRED = ("stems_mapping", "model", "hardware", "schedule")


def _metric_lines() -> str:
    return "\n".join(f"  {k + ':':<26} # {doc}" for k, doc in METRIC_DOCS.items())


SCHEMA_TEXT = f"""\
# stems mapping file, schema version {MAPPING_VERSION}: one design point and what it costs.
# `stems explore` writes one per Pareto point (DIR/mappings/<id>.yaml); `stems evaluate FILE` re-prices
# it without searching. Required: stems_mapping, model, hardware, schedule. Everything under metrics,
# offchip, onchip, solve and schedule_summary is output: `stems evaluate` recomputes it and compares.
stems_mapping: {MAPPING_VERSION}
id: p0004                      # the point's id in points.csv / pareto.csv
label: energy_pj optimum       # how the point was found (an objective's optimum, a Pareto step, a baseline)
source: search                 # search | baseline
sweep: {{global_buffer.size: 256KiB}}   # the sweep values of this point (empty without --sweep)
model:                         # what was mapped
  name: sew-resnet18-dvs128
  path: /abs/path/sew-resnet18-dvs128.onnx
  relative_path: ../../sew-resnet18-dvs128.onnx   # from this file's folder; tried when `path` is gone
  sha256: 3f1c...              # of the model file; evaluate warns when the file changed
  format: onnx
  timesteps: 16                # T the point was priced at
  allow_unknown_ops: false
  annotations:                 # null, or the annotations applied, kept inline
    path: /abs/path/ann.yaml
    sha256: 9a0b...
    content: {{stems_annotations: 1, blocks: {{"0": {{stateful: false}}}}}}
hardware:                      # what it was mapped onto
  ref: stems-edge              # a shipped name, a YAML path or zigzag:HW.yaml[,MAPPING.yaml]
  name: stems-edge
  sha256: 5d2e...              # of the effective spec (overrides applied); evaluate warns when it differs
  overrides: [global_buffer.size=256KiB]   # --set and --sweep overrides, applied in order
  buffer: null                 # one level budgeting every operand, or null: each operand's outermost on-chip level
pricing:
  unit_cost: default           # per-unit on-chip cost: default (stems.schedule.unitcost) | intra (each unit's
                               # least-energy intra-layer mapping, stems.schedule.intra_unitcost)
schedule:                      # the inter-layer schedule (stems.schedule.model)
  schedule: 1                  # schedule format version
  name: ""
  state_io: load_store         # load_store: kept states are read before and written after their layer | none
  segments:                    # in execution order; every layer in exactly one, edges never run backwards
    - layers: [blocks.0.c0, blocks.0.c0_lif]   # run together, all time batches before the next segment
      time_batch: 16           # timesteps per unit: 1 = sequential (ST), T = time-batched (TB); must divide T
      tile: {{cols: 1, rows: null}}   # null = layer by layer (LBL); else fused depth-first tiles of the
                               # widest layer's columns (rows: of the tallest layer's rows, null = all)
      halo: cache              # cache | recompute (stateless layers read on chip only)
  state: {{blocks.0.c0: keep}}   # per stateful layer: keep (on chip) | spill (streamed per unit) | remove (model change)
  weights: {{blocks.0.c0: resident}}   # per weighted layer: resident | refetch (per unit)
  edges: {{blocks.0.c0->blocks.0.c1: onchip}}   # per edge PRODUCER->CONSUMER: onchip | dram
  # left-out entries default to keep, resident, onchip
schedule_summary:              # output, for reading: each segment's mode (ST-LBL, TB-F(1c), ...) and span
  - {{mode: TB-F(1c), layers: 12, first: blocks.0.c0, last: blocks.3.pool}}
intra:                         # optional in version 1: per layer, its intra-layer mapping and its price
  blocks.0.c0:
    mapping:                   # stems.cost.mapping.Mapping: spatial unrolling, loop nest, level cuts
      spatial: {{D1: {{K: 32}}, D2: {{C: 2}}, D3: {{OY: 16}}}}
      temporal: [[FX, 3], [FY, 3], [OY, 8], [OX, 128], [T, 16]]   # innermost first
      cuts: {{I: {{i_lb: 2, global_buffer: 5, dram: 5}}, W: {{w_reg: 0, w_lb: 5, dram: 5}}}}   # per operand and level
    cost: {{energy_pj: 1.2e7, latency_cycles: 36864, valid: true}}   # output
metrics:                       # output; the names of the points.csv columns
{{metric_lines}}
offchip:                       # output: bits across the chip boundary per operand, and the compulsory bits
  read_bits: {{W: 0, I: 0, O: 0, V: 0}}
  write_bits: {{W: 0, I: 0, O: 0, V: 0}}
  compulsory_read_bits: {{W: 0, I: 0, O: 0, V: 0}}
  compulsory_write_bits: {{W: 0, I: 0, O: 0, V: 0}}
onchip:                        # output: per capacity pool (a memory level), peak occupancy and capacity
  peak_bits: {{global_buffer: 0}}
  capacity_bits: {{global_buffer: 0}}
  infeasible_reason: null      # the first unit that overflows a buffer, and what it holds there
model_changes: []              # output: layers whose state the schedule removes (retraining required)
solve:                         # how the point was found (null for baselines)
  status: optimal              # optimal | feasible (time limit, not proven) | ...
  gap: 0.0                     # relative optimality gap of that solve
  objective: 1.0e9
  best_bound: 1.0e9
  wall_s: 2.1
  workers: 2
  seed: 0
stems_version: {__version__}
""".replace("{metric_lines}", _metric_lines())


# ---------------------------------------------------------------------------------------------------
# Plain data and YAML


def plain(value: Any) -> Any:
    """`value` with numpy scalars, enums, tuples and mapping proxies turned into YAML/JSON types."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if hasattr(value, "item"):  # numpy scalar
        return plain(value.item())
    return str(value)


class _Dumper(yaml.SafeDumper):
    """Block style for mappings, flow style for short lists of scalars and small flat mappings."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(not isinstance(v, dict | list) for v in data) or all(
        isinstance(v, list) and all(not isinstance(x, dict | list) for x in v) for v in data
    )
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _represent_dict(dumper: yaml.SafeDumper, data: dict[str, Any]) -> yaml.Node:
    flat = 0 < len(data) <= 6 and all(not isinstance(v, dict | list) for v in data.values())
    short = flat and sum(len(str(k)) + len(str(v)) + 4 for k, v in data.items()) < 90
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=short or None)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(dict, _represent_dict)


def dump_yaml(doc: Mapping[str, Any]) -> str:
    return yaml.dump(plain(doc), Dumper=_Dumper, sort_keys=False, width=110, allow_unicode=True)


HEADER = (
    "# stems mapping file, schema version {v} (every key: `stems schema mapping`).\n"
    "# Re-price it without searching: stems evaluate {name}   (--hw SPEC: on other hardware)\n"
)


# ---------------------------------------------------------------------------------------------------
# Building


def schedule_summary(schedule: Schedule, workload: Workload) -> list[dict[str, Any]]:
    t = workload.timesteps
    return [
        {"mode": s.label(t), "layers": len(s.layers), "first": s.layers[0], "last": s.layers[-1]}
        for s in schedule.segments
    ]


def solve_dict(solve: SolveResult | None) -> dict[str, Any] | None:
    if solve is None:
        return None
    return {
        "status": str(solve.status),
        "gap": solve.gap,
        "objective": solve.objective,
        "best_bound": solve.best_bound,
        "wall_s": solve.wall_s,
        "workers": solve.workers,
        "seed": solve.seed,
    }


def cost_sections(workload: Workload, schedule: Schedule, cost: ScheduleCost) -> dict[str, Any]:
    """The output sections of a mapping file (`metrics`, `offchip`, `onchip`, `model_changes`)."""
    return {
        "metrics": metrics_of(workload, schedule, cost),
        "offchip": {
            "read_bits": dict(cost.traffic.reads),
            "write_bits": dict(cost.traffic.writes),
            "compulsory_read_bits": dict(cost.compulsory.reads),
            "compulsory_write_bits": dict(cost.compulsory.writes),
        },
        "onchip": {
            "peak_bits": dict(cost.peak_bits),
            "capacity_bits": dict(cost.capacity_bits),
            "infeasible_reason": cost.violation.message() if cost.violation else None,
        },
        "model_changes": [
            {"layer": m.layer, "state_bits_saved": m.state_bits_saved, "note": m.note}
            for m in cost.model_changes
        ],
    }


def mapping_document(
    *,
    point_id: str,
    label: str,
    source: str,
    sweep: Mapping[str, str],
    model: ModelRef,
    hardware: HardwareRef,
    workload: Workload,
    schedule: Schedule,
    cost: ScheduleCost,
    solve: SolveResult | None,
    unit_cost: str = "default",
    intra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A mapping-file document (plain data; `model` and `hardware` hold the records, made plain by
    `write_mapping`, which knows the folder the paths are relative to)."""
    doc: dict[str, Any] = {
        "stems_mapping": MAPPING_VERSION,
        "id": point_id,
        "label": label,
        "source": source,
        "sweep": dict(sweep),
        "model": model,
        "hardware": hardware,
        "pricing": {"unit_cost": unit_cost},
        "schedule": schedule.to_dict(),
        "schedule_summary": schedule_summary(schedule, workload),
    }
    if intra:
        doc["intra"] = dict(intra)
    doc.update(cost_sections(workload, schedule, cost))
    doc["solve"] = solve_dict(solve)
    doc["stems_version"] = __version__
    return doc


def write_mapping(path: str | Path, doc: Mapping[str, Any], *, base: Path | None = None) -> Path:
    """Write a mapping document atomically. Model and hardware paths are also recorded relative to `base`,
    the folder the file will live in (default: its own)."""
    path = Path(path)
    header = HEADER.format(v=MAPPING_VERSION, name=path.name)
    return atomic_write_text(path, header + dump_yaml(plain_document(doc, base or path.resolve().parent)))


def plain_document(doc: Mapping[str, Any], base: Path | None = None) -> dict[str, Any]:
    """The document as plain data (the model and hardware records as dicts, paths relative to `base`)."""
    out = dict(doc)
    for key in ("model", "hardware"):
        if isinstance(out.get(key), ModelRef | HardwareRef):
            out[key] = out[key].to_dict(base)
    return plain(out)


# ---------------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class MappingFile:
    """A mapping file read and checked for shape (not yet against the model: see `evaluate_mapping`)."""

    path: str
    doc: dict[str, Any]
    model: ModelRef
    model_relative: str | None
    hardware: HardwareRef
    hardware_relative: str | None
    schedule: Schedule
    unit_cost: str
    intra: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.doc.get("id") or Path(self.path).stem)

    @property
    def stored_metrics(self) -> dict[str, Any]:
        return dict(self.doc.get("metrics") or {})

    @property
    def base(self) -> Path:
        return Path(self.path).resolve().parent


def read_mapping(path: str | Path) -> MappingFile:
    """Read and shape-check a mapping file; every problem is a one-line StemsInputError naming the key."""
    doc = read_yaml(path, strict=True)
    return parse_mapping(doc, str(path))


def parse_mapping(doc: Mapping[str, Any], path: str = "<mapping>") -> MappingFile:
    if "stems_mapping" not in doc:
        what = " (it is a hardware spec)" if "stems_hardware" in doc else ""
        raise StemsInputError(
            f"not a stems mapping file{what}: missing key 'stems_mapping' (see `stems schema mapping`)",
            path=path,
        )
    for key in doc:
        if key not in TOP_KEYS:
            raise StemsInputError(f"unknown key '{key}'{did_you_mean(str(key), TOP_KEYS)}", path=path)
    for key in REQUIRED:
        if key not in doc:
            raise StemsInputError(f"missing key '{key}' (see `stems schema mapping`)", path=path)
    version = doc["stems_mapping"]
    if version != MAPPING_VERSION:
        raise StemsInputError(
            f"mapping schema version {version!r}; this stems ({__version__}) reads version {MAPPING_VERSION}",
            path=path,
            where="stems_mapping",
        )
    try:
        model, model_rel = ModelRef.from_dict(doc["model"])
        hardware, hw_rel = HardwareRef.from_dict(doc["hardware"])
        if not isinstance(doc["schedule"], Mapping):
            raise StemsInputError("expected a mapping (segments, state, weights, edges)", where="schedule")
        _check_integers(doc["schedule"])
        schedule = Schedule.from_dict(doc["schedule"])
    except StemsInputError as err:
        raise StemsInputError(err.message, path=path, where=err.where) from None
    pricing = doc.get("pricing") or {}
    unit_cost = str(pricing.get("unit_cost", "default")) if isinstance(pricing, Mapping) else ""
    if unit_cost not in UNIT_COSTS:
        raise StemsInputError(
            f"unit cost '{unit_cost}' is not one this stems can re-price with ({', '.join(UNIT_COSTS)})",
            path=path,
            where="pricing.unit_cost",
        )
    intra = doc.get("intra") or {}
    if not isinstance(intra, Mapping):
        raise StemsInputError("expected a mapping of layer name to {mapping, cost}", path=path, where="intra")
    metrics = doc.get("metrics")
    if metrics is not None and not isinstance(metrics, Mapping):
        raise StemsInputError("expected a mapping of metric name to value", path=path, where="metrics")
    return MappingFile(
        path=path,
        doc=dict(doc),
        model=model,
        model_relative=model_rel,
        hardware=hardware,
        hardware_relative=hw_rel,
        schedule=schedule,
        unit_cost=unit_cost,
        intra=dict(intra),
    )


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_integers(schedule: Mapping[str, Any]) -> None:
    """Time batches and tile sizes are whole numbers: refuse 2.5 or "4" rather than round them."""
    segments = schedule.get("segments")
    if not isinstance(segments, list):
        raise StemsInputError("expected a list of segments", where="schedule.segments")
    for i, seg in enumerate(segments):
        where = f"schedule.segments[{i}]"
        if not isinstance(seg, Mapping):
            raise StemsInputError("expected a mapping with layers, time_batch, tile, halo", where=where)
        if "time_batch" in seg and not _is_int(seg["time_batch"]):
            raise StemsInputError(
                f"time_batch must be a whole number, not {seg['time_batch']!r}", where=where
            )
        tile = seg.get("tile")
        if tile is None:
            continue
        if not isinstance(tile, Mapping):
            raise StemsInputError(f"tile must be null or {{cols, rows}}, not {tile!r}", where=where)
        for key in ("cols", "rows"):
            v = tile.get(key)
            if v is not None and not _is_int(v):
                raise StemsInputError(f"tile {key} must be a whole number, not {v!r}", where=where)


# ---------------------------------------------------------------------------------------------------
# Re-pricing


class InfeasibleMapping(Exception):
    """A well-formed mapping that does not fit the hardware (a buffer overflows)."""

    def __init__(self, path: str, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: infeasible: {reason}")


@dataclass
class Evaluation:
    """A mapping file re-priced: the numbers now, the stored ones, and whether the inputs are the same."""

    path: str
    id: str
    model: str
    hardware: str
    metrics: dict[str, Any]
    stored: dict[str, Any]
    same_model: bool
    same_hardware: bool
    notes: list[str] = field(default_factory=list)
    intra: dict[str, dict[str, Any]] = field(default_factory=dict)
    cost: ScheduleCost | None = None

    @property
    def same_inputs(self) -> bool:
        return self.same_model and self.same_hardware

    @property
    def differences(self) -> dict[str, tuple[Any, Any]]:
        """Metrics whose re-priced value differs from the stored one (relative 1e-9), with intra costs."""
        out = {}
        for key in METRICS:
            if key in self.stored and not _close(self.stored[key], self.metrics.get(key)):
                out[key] = (self.stored[key], self.metrics.get(key))
        for layer, entry in self.intra.items():
            for key in ("energy_pj", "latency_cycles"):
                stored = (entry.get("stored") or {}).get(key)
                if stored is not None and not _close(stored, entry.get(key)):
                    out[f"intra.{layer}.{key}"] = (stored, entry.get(key))
        return out

    @property
    def matches(self) -> bool:
        """The round trip: same inputs and every stored number reproduced."""
        return self.same_inputs and bool(self.stored) and not self.differences

    def to_dict(self) -> dict[str, Any]:
        return plain(
            {
                "mapping": self.path,
                "id": self.id,
                "model": self.model,
                "hardware": self.hardware,
                "same_model": self.same_model,
                "same_hardware": self.same_hardware,
                "matches_stored": self.matches,
                "metrics": self.metrics,
                "stored": self.stored,
                "differences": {k: {"stored": a, "now": b} for k, (a, b) in self.differences.items()},
                "intra": self.intra,
                "notes": self.notes,
            }
        )


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) == bool(b)
    if a is None or b is None:
        return a is b
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    except (TypeError, ValueError):
        return a == b


def load_inputs(
    mf: MappingFile,
    *,
    hw: str | None = None,
    overrides: tuple[str, ...] = (),
    model: str | Path | None = None,
    workload: Workload | None = None,
) -> tuple[Workload, Hardware, list[str]]:
    """The workload and hardware to re-price `mf` on, with notes on what differs from the recorded ones."""
    from stems.hardware import load_hardware

    notes = []
    if workload is None:
        workload = mf.model.load(path=model, relative=mf.model_relative, base=mf.base)
        if mf.model.sha256 and workload.source.sha256 != mf.model.sha256:
            notes.append(
                f"model file differs from the one recorded (sha256 {workload.source.sha256[:12]}...)"
            )
    if hw is not None:
        hardware = load_hardware(hw, overrides)
    else:
        hardware = mf.hardware.load(relative=mf.hardware_relative, base=mf.base, extra=overrides)
    if mf.hardware.sha256 and hardware.sha256 != mf.hardware.sha256:
        notes.append(
            f"hardware {hardware.name} differs from the recorded {mf.hardware.name} "
            f"(sha256 {hardware.sha256[:12]}... vs {mf.hardware.sha256[:12]}...)"
        )
    return workload, hardware, notes


def evaluate_mapping(
    mapping: str | Path | MappingFile,
    *,
    hw: str | None = None,
    overrides: tuple[str, ...] = (),
    model: str | Path | None = None,
    workload: Workload | None = None,
    hardware: Hardware | None = None,
) -> Evaluation:
    """Re-price a mapping file without searching.

    Raises StemsInputError when the file breaks a rule (unknown layers, a time batch that does not divide
    T, an intra-layer mapping whose loops do not multiply to the layer's sizes or that runs a stateful
    layer's T loop inside its reduction) and `InfeasibleMapping` when it does not fit the hardware.
    `hw`/`overrides` re-price it on other hardware (the stored numbers are then only shown beside).
    """
    mf = mapping if isinstance(mapping, MappingFile) else read_mapping(mapping)
    if hardware is None:
        workload, hardware, notes = load_inputs(
            mf, hw=hw, overrides=overrides, model=model, workload=workload
        )
    else:
        assert workload is not None, "give the workload with the hardware"
        notes = []
        if mf.hardware.sha256 and hardware.sha256 != mf.hardware.sha256:
            notes.append(f"hardware {hardware.name} differs from the recorded {mf.hardware.name}")
    if workload.timesteps != mf.model.timesteps:
        workload = workload.with_timesteps(mf.model.timesteps)
    same_model = not any(n.startswith("model") for n in notes)
    same_hw = not any(n.startswith("hardware") for n in notes)
    try:
        mf.schedule.validate(workload)
    except StemsInputError as err:
        raise StemsInputError(
            err.message, path=mf.path, where=f"schedule: {err.where}" if err.where else "schedule"
        ) from None
    cost = evaluate(
        workload, mf.schedule, hardware, unit_cost=UNIT_COSTS[mf.unit_cost], buffer=mf.hardware.buffer
    )
    intra = _price_intra(mf, workload, hardware)
    if cost.violation is not None:
        raise InfeasibleMapping(mf.path, f"on {hardware.name}: {cost.violation.message()}")
    return Evaluation(
        path=mf.path,
        id=mf.id,
        model=mf.model.name,
        hardware=hardware.name,
        metrics=metrics_of(workload, mf.schedule, cost),
        stored=mf.stored_metrics,
        same_model=same_model,
        same_hardware=same_hw,
        notes=notes,
        intra=intra,
        cost=cost,
    )


def _price_intra(mf: MappingFile, workload: Workload, hw: Hardware) -> dict[str, dict[str, Any]]:
    """Price each layer's intra mapping; an invalid one is rejected with the cost model's reason."""
    if not mf.intra:
        return {}
    from stems.cost import Mapping as LayerMapping
    from stems.cost import price

    effective = mf.schedule.effective_workload(workload)
    names = [x.name for x in effective]
    out = {}
    for name, entry in mf.intra.items():
        where = f"intra.{name}"
        if name not in names:
            raise StemsInputError(
                f"no layer '{name}'{did_you_mean(str(name), names)}", path=mf.path, where=where
            )
        if not isinstance(entry, Mapping) or "mapping" not in entry:
            raise StemsInputError(
                "expected {mapping: {spatial, temporal, cuts}, cost: {...}}", path=mf.path, where=where
            )
        m = LayerMapping.from_dict(entry["mapping"], where=f"{where}.mapping")
        c = price(effective.layer(name), hw, m)
        if not c.valid and math.isnan(c.energy_pj):
            raise StemsInputError(
                f"the intra-layer mapping breaks a rule: {c.reason}", path=mf.path, where=where
            )
        if not c.valid:
            raise InfeasibleMapping(
                mf.path, f"{where}: the intra-layer mapping does not fit {hw.name}: {c.reason}"
            )
        out[str(name)] = {
            "energy_pj": c.energy_pj,
            "latency_cycles": c.latency_cycles,
            "valid": c.valid,
            "stored": dict(entry.get("cost") or {}),
        }
    return out


def intra_entry(mapping: Any, cost: Any) -> dict[str, Any]:
    """The `intra` entry of one layer from a `stems.cost.Mapping` and its `stems.cost.Cost`."""
    return {
        "mapping": mapping.to_dict(),
        "cost": {"energy_pj": cost.energy_pj, "latency_cycles": cost.latency_cycles, "valid": cost.valid},
    }


def mapping_paths(args: list[str]) -> list[Path]:
    """Mapping files named by `args`: files as given, folders expanded (DIR/mappings/*.yaml or DIR/*.yaml)."""
    out: list[Path] = []
    for a in args:
        p = Path(a)
        if p.is_dir():
            found = sorted((p / "mappings").glob("*.yaml")) or sorted(p.glob("*.yaml"))
            if not found:
                raise StemsInputError("a folder without mapping files (mappings/*.yaml)", path=p)
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise StemsInputError("no such file or folder", path=p)
    return out


def evaluate_many(
    paths: list[Path],
    *,
    hw: str | None = None,
    overrides: tuple[str, ...] = (),
    model: str | None = None,
) -> list[Evaluation | InfeasibleMapping]:
    """`evaluate_mapping` over several files, importing each distinct model and hardware once.
    Infeasible mappings come back as `InfeasibleMapping` (in order); bad input raises."""
    cache: dict[str, Any] = {}
    out: list[Evaluation | InfeasibleMapping] = []
    for path in paths:
        mf = read_mapping(path)
        m_key = repr(
            (model or mf.model.path, mf.model.sha256, mf.model.timesteps, plain(mf.model.annotations))
        )
        h_key = repr((hw, overrides) if hw else (mf.hardware.ref, mf.hardware.overrides, overrides))
        if m_key not in cache:
            cache[m_key] = mf.model.load(path=model, relative=mf.model_relative, base=mf.base)
        workload = cache[m_key]
        if h_key not in cache:
            cache[h_key] = (
                load_hardware_ref(hw, overrides)
                if hw
                else mf.hardware.load(relative=mf.hardware_relative, base=mf.base, extra=overrides)
            )
        hardware = cache[h_key]
        notes = []
        if mf.model.sha256 and workload.source.sha256 != mf.model.sha256:
            notes.append(
                f"model file differs from the one recorded (sha256 {workload.source.sha256[:12]}...)"
            )
        try:
            ev = evaluate_mapping(mf, workload=workload, hardware=hardware)
        except InfeasibleMapping as err:
            out.append(err)
            continue
        ev.notes = notes + ev.notes
        ev.same_model = not notes
        out.append(ev)
    return out


def load_hardware_ref(ref: str, overrides: tuple[str, ...]) -> Hardware:
    from stems.hardware import load_hardware

    return load_hardware(ref, overrides)
