"""Shared bits of the benchmark scripts: where the shared corpus is, and a median timer."""

from __future__ import annotations

import logging
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """`../shared` beside the repo, or $STEMS_SHARED."""
    return Path(os.environ.get("STEMS_SHARED", REPO.parent / "shared"))


def zigzag_resnet18() -> tuple[Path, list]:
    """zigzag-dse's shipped inputs folder, and its ResNet-18 ONNX (with its tpu_like mapping file)
    as stems layers, in graph order. Needs zigzag-dse (ImportError otherwise)."""
    import six  # noqa: F401  (zigzag-dse imports it without declaring it)
    import zigzag
    from zigzag.parser.onnx.onnx_model_parser import ONNXModelParser

    from stems.cost.zigzag_interop import layer_from_zigzag

    inputs = Path(zigzag.__file__).parent / "inputs"
    onnx_path, map_yaml = inputs / "workload" / "resnet18.onnx", inputs / "mapping" / "tpu_like.yaml"
    graph = ONNXModelParser(str(onnx_path), str(map_yaml)).run()
    return inputs, [layer_from_zigzag(n) for n in graph.topological_sort() if hasattr(n, "layer_dim_sizes")]


def resnet18_layers() -> list | None:
    """ResNet-18's layers (`zigzag_resnet18`) with ZigZag's logging off (it logs every layer it
    parses), or None after printing that the benchmark is skipped: zigzag-dse is not installed."""
    logging.disable(logging.WARNING)
    try:
        return zigzag_resnet18()[1]
    except ImportError as err:
        print(f"SKIPPED: zigzag-dse is not installed ({err}); pip install 'stems[zigzag]'")
        return None


def median_seconds(fn: Callable[[], object], runs: int = 5) -> tuple[float, list[float]]:
    """Median wall time of `fn` over `runs` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def same_answers(runs: list[list]) -> bool:
    """Whether runs of the intra-layer search (lists of `LayerMapping`) agree on every layer's
    mapping, value and bound: the determinism every benchmark checks."""
    return len({tuple((r.mapping, r.solve.objective, r.solve.best_bound) for r in rs) for rs in runs}) == 1
