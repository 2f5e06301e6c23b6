"""Cost-model speed: one ZigZag CostModelEvaluation vs stems price_batch over 1,000 mappings of the
same layer (ResNet-18 layer1.0.conv1 on tpu_like), in one process; target: >= 100x per mapping.

ZigZag prices LOMA's own mapping of the layer (6 temporal loops, its fastest case); stems prices
1,000 distinct valid random mappings (typically 8-14 loops).
"""

from __future__ import annotations

import sys

from common import median_seconds

from stems.cost import Mapping, price_batch
from stems.cost.sample import sample_mappings
from stems.hardware import load_hardware
from stems.workload.model import Dims, Layer, Op, Precision, Window

TARGET = 100.0
BATCH = 1000
LAYER = Layer(
    "layer1.0.conv1",
    Op.CONV,
    Dims(K=64, C=64, OY=56, OX=56, FY=3, FX=3),
    precision=Precision(I=8, W=8, O=16, O_final=8),
    window=Window(padding=(1, 1, 1, 1), input_yx=(56, 56)),
)
LOMA = Mapping.of(  # zigzag-resnet18-tpu_like.csv, energy objective, idx 1
    {"D1": {"K": 32}, "D2": {"C": 32}},
    [("C", 2), ("FY", 3), ("FX", 3), ("OY", 56), ("OX", 56), ("K", 2)],
    {
        "W": {"rf_128B": 6, "dram": 6},
        "I": {"sram_2MB": 6, "dram": 6},
        "O": {"rf_2B": 3, "sram_2MB": 6, "dram": 6},
    },
)


def main() -> int:
    try:
        from zigzag.cost_model.cost_model import CostModelEvaluation

        from stems.cost.zigzag_interop import to_zigzag_accelerator, to_zigzag_layer, to_zigzag_mapping
    except ImportError as err:
        print(f"SKIPPED: zigzag-dse is not installed ({err}); pip install 'stems[zigzag]'")
        return 0
    hw = load_hardware("tpu_like")
    mappings = sample_mappings(LAYER, hw, BATCH, seed=0)
    node, acc = to_zigzag_layer(LAYER), to_zigzag_accelerator(hw, LAYER.precision)
    sm, sm_int, tm = to_zigzag_mapping(node, acc, hw, LOMA)

    def zigzag() -> None:
        CostModelEvaluation(
            accelerator=acc,
            layer=node,
            spatial_mapping=sm,
            spatial_mapping_int=sm_int,
            temporal_mapping=tm,
            access_same_data_considered_as_no_access=True,
        )

    zz, _ = median_seconds(zigzag, runs=25)
    batch, _ = median_seconds(lambda: price_batch(LAYER, hw, mappings), runs=9)
    ours = batch / len(mappings)
    ratio = zz / ours
    loops = sum(len(m.temporal) for m in mappings) / len(mappings)
    print(f"layer {LAYER.name} on {hw.name}")
    print(f"  ZigZag CostModelEvaluation, LOMA's mapping: {zz * 1e3:.3f} ms per mapping (median of 25)")
    print(
        f"  stems price_batch, {len(mappings)} valid mappings ({loops:.1f} loops on average): "
        f"{ours * 1e6:.1f} us per mapping (median of 9 batches)"
    )
    print(f"  ratio {ratio:.0f}x, target {TARGET:.0f}x -> {'MET' if ratio >= TARGET else 'NOT MET'}")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
