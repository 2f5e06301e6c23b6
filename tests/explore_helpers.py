"""Shared by the explore, results, report and CLI-tool tests: a stand-in schedule search, tiny models.

`fake_search` has the signature of `stems.schedule.search.search_schedules` and returns priced schedules
as points (the uniform baselines and variants of them with other residency decisions), so the pipeline
around the search (tables, Pareto marking, mapping files, summary, plots, CLI) is tested on its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stems.schedule import evaluate
from stems.schedule.baselines import all_baselines
from stems.schedule.model import StatePolicy, WeightPolicy
from stems.search.solver import SolveResult, Status


@dataclass(frozen=True)
class FakePoint:
    label: str
    schedule: Any
    cost: Any
    solve: SolveResult


@dataclass(frozen=True)
class FakeOutcome:
    points: tuple[FakePoint, ...]
    space: str
    wall_s: float
    stopped: str
    infeasible_reason: str | None


def fake_search(
    workload: Any,
    hw: Any,
    *,
    objectives: Any = (),
    pareto_steps: int = 6,
    allow_state_removal: bool = False,
    unit_cost: Any = None,
    buffer: str | None = None,
    options: Any = None,
    progress: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
    on_point: Callable[[int], None] | None = None,
    status: Status = Status.OPTIMAL,
) -> FakeOutcome:
    kw = {"buffer": buffer} | ({"unit_cost": unit_cost} if unit_cost is not None else {})
    points: list[FakePoint] = []
    schedules = []
    for b in all_baselines(workload, hw, **kw):
        if b.schedule is None:
            continue
        schedules.append((f"fake {b.name}", b.schedule))
        stateful = {x.name: StatePolicy.SPILL for x in workload if x.stateful}
        weights = {x.name: WeightPolicy.REFETCH for x in workload if x.weights}
        schedules.append((f"fake {b.name} spill", b.schedule.with_decisions(state=stateful, weights=weights)))
    for label, schedule in schedules:
        if stop is not None and stop.is_set():
            return FakeOutcome(tuple(points), "fake", 0.0, "interrupted", None)
        if progress is not None:
            progress(f"{label}: energy_pj optimum")
        cost = evaluate(
            workload, schedule, hw, buffer=buffer, **({"unit_cost": unit_cost} if unit_cost else {})
        )
        if not cost.feasible:
            continue
        workers = getattr(options, "workers", 1)
        gap = 0.0 if status is Status.OPTIMAL else 0.05
        solve = SolveResult(status, cost.total_pj, cost.total_pj * (1 - gap), 0.01, workers, 0)
        points.append(FakePoint(label, schedule, cost, solve))
        if on_point is not None:
            on_point(len(points))
    reason = None if points else "no schedule fits the buffers (fake)"
    return FakeOutcome(tuple(points), "fake: baselines and spilled variants", 0.01, "complete", reason)


def tiny_sew_onnx(path: Path, *, timesteps: int = 4, size: int = 16) -> Path:
    """A two-block SEW-ResNet-like ONNX file (convs with LIF neurons, a residual add, max-pools), exported
    the way the built-in zoo is (spikingjelly shape, block labels in the embedded annotations)."""
    from stems.files import atomic_write_bytes
    from stems.workload.zoo import ANNOTATIONS_KEY
    from stems.workload.zoo_graph import SEQUENTIAL, SJ_CONV2D, SJ_LIF, SJ_MAXPOOL2D, SJGraph, module

    g = SJGraph("__main__.TinySEW", timesteps=timesteps, seed=1)
    x = g.input("x_seq", (timesteps, 1, 2, size, size))
    blocks = module(g.root, "blocks", SEQUENTIAL)
    for b, convs in ((0, ((0, 4, 1), (1, 4, 3), (2, 4, 3))), (1, ((3, 8, 3), (4, 8, 3)))):
        blk = module(blocks, str(b), "__main__.SEWBlock")
        outs = []
        for cid, k, kernel in convs:
            y = g.conv(x, module(blk, f"c{cid}", SJ_CONV2D), k, kernel, pad=kernel // 2)
            x = g.lif(y, module(blk, f"c{cid}_lif", SJ_LIF))
            outs.append(x)
        s = g.add(outs[-1], outs[-2], module(blk, "add", "__main__.SEWConnect"))
        x = g.maxpool(s, module(blk, "pool", SJ_MAXPOOL2D), unfold=b == 1)
    g.output(x, "spikes")
    ann = (
        "stems_annotations: 1\n"
        "defaults: {weight_bits: 4, state_bits: 12, psum_bits: 12, activation_bits: 4, input_bits: 4}\n"
        "layers:\n" + "".join(f'  "blocks.{b}.*": {{block: "{b}"}}\n' for b in range(2))
    )
    model = g.model(
        graph_name="main_graph", doc="tiny SEW", metadata={ANNOTATIONS_KEY: ann}, producer="tests"
    )
    return atomic_write_bytes(path, model.SerializeToString())


TINY_HW = """\
stems_hardware: 1
name: tiny-edge
description: a small core for tests (stems-edge's array, a 16 KiB global buffer)
clock: 1GHz
array:
  D1: {size: 8, loops: [K]}
  D2: {size: 2, loops: [C]}
compute:
  op_energy: {1x4: 0.07, 4x4: 0.16}
  pool_pj: 0.07
  eltwise_pj: 0.07
memories:
  global_buffer:
    size: 16KiB
    operands: [I, W, O, V]
    served_dims: [D1, D2]
    read_pj_per_bit: 0.13
    write_pj_per_bit: 0.175
    read_bw: 256
    write_bw: 256
  dram:
    size: 1Gbit
    operands: [I, W, O, V]
    served_dims: [D1, D2]
    read_pj_per_word: 700
    write_pj_per_word: 750
    read_bw: 64
    write_bw: 64
    ports: shared
"""


def tiny_hw(path: Path, text: str = TINY_HW) -> Path:
    path.write_text(text)
    return path
