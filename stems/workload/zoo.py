"""Built-in benchmark networks, written as ONNX files that go through the ordinary ONNX importer.

`stems zoo export NAME FILE.onnx` writes one of these. Each model is built here with
`onnx.helper` (no torch needed) in the shape torch's dynamo exporter gives a spikingjelly
multi-step SNN (see `stems.workload.zoo_graph`), with random float32 weights of the right shapes
from a fixed seed, so every export of a model is byte-identical. What ONNX cannot carry (bit widths,
block labels) travels in the model-level metadata key `stems.annotations` as annotations YAML
(schema in `stems.workload.annotations`).

Layer names are module paths: `blocks.<b>.<paper id>` for convs (c0..c15, r0..r13), with the neuron
in `blocks.<b>.<id>_lif`, ReLUs in `blocks.<b>.<id>_relu`, residual adds in `blocks.<b>.add` and
max-pools in `blocks.<b>.pool`, where <b> is the paper's block.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx

from stems.errors import StemsInputError, did_you_mean
from stems.files import atomic_write_bytes
from stems.workload.zoo_graph import (
    SEQUENTIAL,
    SJ_CONV2D,
    SJ_LIF,
    SJ_MAXPOOL2D,
    TORCH_RELU,
    Scope,
    SJGraph,
    Tensor,
    module,
)

SEED = 20250205
ANNOTATIONS_KEY = "stems.annotations"
PRODUCER = "stems.workload.zoo"
# Weight gains over torch's default init so that random weights keep spiking through every layer
# when the graph is run (onnxruntime, input 0..15 event counts): 8 for convs fed by spikes, 4 for
# RED-LIF's r9 (fed by ReLU activations). Rates then stay ~0.1-0.4; only shapes matter to stems.
SPIKE_GAIN = 8.0
ANN_GAIN = 4.0


@dataclass(frozen=True)
class ZooModel:
    """One built-in benchmark network."""

    name: str
    description: str  # one line
    reference: str
    timesteps: int
    input_shape: tuple[int, ...]  # [T, B, C, H, W]
    blocks: int
    build: Callable[[], onnx.ModelProto]


def _annotations(name: str, blocks: int) -> str:
    """Annotations YAML (schema 1): the paper's precisions and one block label per paper block."""
    lines = [
        f"# stems annotations for the built-in model {name}: paper precisions and blocks",
        "stems_annotations: 1",
        "defaults: {weight_bits: 4, state_bits: 12, psum_bits: 12, activation_bits: 4, input_bits: 4}",
        "layers:",
        *(f'  "blocks.{b}.*": {{block: "{b}"}}' for b in range(blocks)),
        "",
    ]
    return "\n".join(lines)


def _finish(g: SJGraph, entry: ZooModel, out: Tensor) -> onnx.ModelProto:
    g.output(out, "spikes")
    return g.model(
        graph_name="main_graph",
        doc=f"{entry.name}: {entry.description} ({entry.reference}). Random weights, shapes only.",
        metadata={
            ANNOTATIONS_KEY: _annotations(entry.name, entry.blocks),
            "stems.zoo.model": entry.name,
            "stems.zoo.reference": entry.reference,
        },
        producer=PRODUCER,
    )


# ---- SEW-ResNet on DVS128 Gesture (paper section 3.1) ---------------------------------------------

# (block, [(conv id, out channels, kernel)]): the block's last two convs are added, then max-pooled.
_SEW_BLOCKS: tuple[tuple[int, tuple[tuple[int, int, int], ...]], ...] = (
    (0, ((0, 64, 1), (1, 64, 3), (2, 64, 3))),
    (1, ((3, 64, 3), (4, 64, 3))),
    (2, ((5, 64, 3), (6, 64, 3))),
    (3, ((7, 64, 3), (8, 64, 3))),
    (4, ((9, 128, 1), (10, 128, 3), (11, 128, 3))),
    (5, ((12, 128, 3), (13, 128, 3))),
    (6, ((14, 128, 3), (15, 128, 3))),
)


def _build_sew() -> onnx.ModelProto:
    entry = ZOO["sew-resnet18-dvs128"]
    g = SJGraph("__main__.SEWResNet18DVS128", timesteps=entry.timesteps, seed=SEED)
    x: Tensor = g.input("x_seq", entry.input_shape)
    blocks = module(g.root, "blocks", SEQUENTIAL)
    for b, convs in _SEW_BLOCKS:
        blk = module(blocks, str(b), "__main__.SEWBlock")
        outs = []
        for cid, k, kernel in convs:
            gain = 1.0 if cid == 0 else SPIKE_GAIN
            y = g.conv(x, module(blk, f"c{cid}", SJ_CONV2D), k, kernel, pad=kernel // 2, gain=gain)
            x = g.lif(y, module(blk, f"c{cid}_lif", SJ_LIF))
            outs.append(x)
        # SEW ADD joins the outputs of the block's last two convs: add(c_last, c_last-1)
        s = g.add(outs[-1], outs[-2], module(blk, "add", "__main__.SEWConnect"))
        x = g.maxpool(s, module(blk, "pool", SJ_MAXPOOL2D), unfold=b == _SEW_BLOCKS[-1][0])
    return _finish(g, entry, x)


# ---- RED-LIF (paper section 3.2) --------------------------------------------------------------------


def _build_red_lif() -> onnx.ModelProto:
    entry = ZOO["red-lif"]
    g = SJGraph("__main__.REDLIF", timesteps=entry.timesteps, seed=SEED)
    x: Tensor = g.input("x_seq", entry.input_shape)
    blocks = module(g.root, "blocks", SEQUENTIAL)

    def ann(inp: Tensor, blk: Scope, rid: int, k: int, kernel: int = 3, stride: int = 1) -> Tensor:
        y = g.conv(inp, module(blk, f"r{rid}", SJ_CONV2D), k, kernel, stride, pad=kernel // 2)
        return g.relu(y, module(blk, f"r{rid}_relu", TORCH_RELU))

    res = "__main__.REDResBlock"
    add_cls = "__main__.ResidualAdd"
    b0 = module(blocks, "0", res)
    r0 = ann(x, b0, 0, 32, kernel=7, stride=2)
    r2 = ann(ann(r0, b0, 1, 64), b0, 2, 64, stride=2)
    r3 = ann(r0, b0, 3, 64, stride=2)  # shortcut
    add4 = g.add(r2, r3, module(b0, "add", add_cls))
    b1 = module(blocks, "1", res)
    r5 = ann(ann(add4, b1, 4, 64), b1, 5, 64)
    add7 = g.add(add4, r5, module(b1, "add", add_cls))
    b2 = module(blocks, "2", res)
    r7 = ann(ann(add7, b2, 6, 128), b2, 7, 128)
    r8 = ann(add7, b2, 8, 128)  # shortcut
    x = g.add(r7, r8, module(b2, "add", add_cls))
    for b, rid in zip(range(3, 8), range(9, 14), strict=True):
        blk = module(blocks, str(b), "__main__.LIFConvBlock")
        gain = ANN_GAIN if rid == 9 else SPIKE_GAIN
        y = g.conv(x, module(blk, f"r{rid}", SJ_CONV2D), 256, 3, 2, pad=1, gain=gain)
        x = g.lif(y, module(blk, f"r{rid}_lif", SJ_LIF))
    return _finish(g, entry, x)


ZOO: dict[str, ZooModel] = {
    m.name: m
    for m in (
        ZooModel(
            name="sew-resnet18-dvs128",
            description="SEW-ResNet (16 LIF convs, 7 ADD residuals + max-pools) on DVS128 Gesture, T=16",
            reference="STEMS paper sec. 3.1 (Eissa et al., arXiv 2502.03287; code SEW-RESNET/7PLIF.py)",
            timesteps=16,
            input_shape=(16, 1, 2, 128, 128),
            blocks=7,
            build=_build_sew,
        ),
        ZooModel(
            name="red-lif",
            description="RED-LIF hybrid detector backbone: 9 ReLU convs + 5 stride-2 LIF convs, 360x640, T=12",
            reference="STEMS paper sec. 3.2 (Eissa et al., arXiv 2502.03287; code RED_LIF_T.py)",
            timesteps=12,
            input_shape=(12, 1, 6, 360, 640),
            blocks=8,
            build=_build_red_lif,
        ),
    )
}
"""The built-in models by name."""


def get_model(name: str) -> ZooModel:
    try:
        return ZOO[name]
    except KeyError:
        raise StemsInputError(
            f"no built-in model '{name}'{did_you_mean(name, list(ZOO))}; known: {', '.join(ZOO)}"
        ) from None


def build_model(name: str) -> onnx.ModelProto:
    """The ONNX model of a built-in network (deterministic: same bytes on every call)."""
    return get_model(name).build()


def export_model(name: str, path: str | Path) -> Path:
    """Write the built-in model `name` to `path` as one self-contained .onnx file, atomically.

    Whether an existing file may be replaced is the caller's decision (`stems.files.check_writable`).
    """
    return atomic_write_bytes(path, build_model(name).SerializeToString())
