"""Small hand-built workloads shared by tests."""

from __future__ import annotations

from stems.workload.model import Dims, Layer, Neuron, Op, Window, Workload


def conv(
    name: str,
    c: int,
    k: int,
    size: int,
    *,
    t: int = 2,
    kernel: int = 3,
    stride: int = 1,
    neuron: str | None = "LIF",
    block: str = "",
) -> Layer:
    """A same-padded conv with `size` x `size` outputs (input `size * stride`)."""
    pad = kernel // 2
    return Layer(
        name=name,
        op=Op.CONV,
        dims=Dims(T=t, K=k, C=c, OY=size, OX=size, FY=kernel, FX=kernel),
        window=Window(stride=(stride, stride), padding=(pad, pad, pad, pad), input_yx=(size * stride,) * 2),
        neuron=Neuron.of(neuron) if neuron else None,
        block=block,
    )


def sew_block(t: int = 2) -> Workload:
    """conv -> conv -> conv, add(c2, c1), maxpool, flatten, dense: a residual block as SEW-ResNet has."""
    layers = [
        conv("c0", 2, 4, 8, t=t, kernel=1, block="0"),
        conv("c1", 4, 4, 8, t=t, block="0"),
        conv("c2", 4, 4, 8, t=t, block="0"),
        Layer("add", Op.ADD, Dims(T=t, G=4, OY=8, OX=8), block="0"),
        Layer(
            "pool",
            Op.MAXPOOL,
            Dims(T=t, G=4, OY=4, OX=4, FY=2, FX=2),
            window=Window(stride=(2, 2)),
            block="0",
        ),
        Layer("flat", Op.VIEW, Dims(T=t, K=64), block="1"),
        Layer("fc", Op.DENSE, Dims(T=t, K=10, C=64), block="1"),
    ]
    edges = [
        ("c0", "c1"),
        ("c1", "c2"),
        ("c2", "add"),
        ("c1", "add"),
        ("add", "pool"),
        ("pool", "flat"),
        ("flat", "fc"),
    ]
    return Workload("sew-block", layers, edges)


def concat_block(t: int = 2) -> Workload:
    """conv -> conv (stride 2) -> conv, concat(c2, c1) along channels, conv: a concat skip (DenseNet/U-Net style)."""
    layers = [
        conv("c0", 2, 4, 6, t=t, block="0"),
        conv("c1", 4, 4, 3, t=t, stride=2, block="0"),
        conv("c2", 4, 4, 3, t=t, neuron=None, block="1"),
        Layer("cat", Op.CONCAT, Dims(T=t, K=8, OY=3, OX=3), block="1"),
        conv("c3", 8, 2, 3, t=t, kernel=1, block="1"),
    ]
    edges = [("c0", "c1"), ("c1", "c2"), ("c2", "cat"), ("c1", "cat"), ("cat", "c3")]
    return Workload("concat-block", layers, edges)
