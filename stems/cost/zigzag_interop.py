"""stems <-> zigzag-dse 3.9.1: the same layer, hardware and mapping as ZigZag objects, priced by ZigZag.

Needs the optional extra `stems[zigzag]` (zigzag-dse 3.9.1 and `six`, which it imports without
declaring); import this module only when it is installed. ZigZag has no T loop and no state, so
only ANN-equivalent layers (T = 1, no V) convert. The temporal mapping is built the way LOMA's
results are ("route B" of the CP-SAT notes): one list of loops per memory level per operand.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Any

from zigzag.cost_model.cost_model import CostModelEvaluation
from zigzag.datatypes import LayerDim, LayerOperand, OADimension
from zigzag.hardware.architecture.accelerator import Accelerator
from zigzag.mapping.spatial_mapping import MappingSingleOADim, SpatialMapping
from zigzag.mapping.spatial_mapping_internal import SpatialMappingInternal
from zigzag.mapping.temporal_mapping import TemporalMapping, TemporalMappingType
from zigzag.parser.accelerator_factory import AcceleratorFactory
from zigzag.parser.accelerator_validator import AcceleratorValidator
from zigzag.parser.workload_factory import LayerNodeFactory
from zigzag.stages.mapping.spatial_mapping_conversion import SpatialMappingConversionStage
from zigzag.workload.layer_node import LayerNode

from stems.cost.mapping import Mapping
from stems.errors import StemsInputError
from stems.hardware.spec import Direction, Hardware, PortKind
from stems.workload.model import LOOP_DIMS, Dims, Layer, Op, Precision, Window

MEMORY_OPERAND = {"I": "I1", "W": "I2", "O": "O"}
DIRECTION_CODE = {
    Direction.TO_LOW: "tl",
    Direction.FROM_HIGH: "fh",
    Direction.FROM_LOW: "fl",
    Direction.TO_HIGH: "th",
}
_EQUATION = "O[b][g][k][oy][ox]+=W[g][k][c][fy][fx]*I[b][g][c][iy][ix]"
_ZZ_DIMS = ("B", "G", "K", "C", "OY", "OX", "FY", "FX")


def _ann_only(layer: Layer) -> None:
    if layer.dims.T != 1 or layer.stateful or layer.recurrent_c or layer.op not in (Op.CONV, Op.DENSE):
        raise StemsInputError(
            "ZigZag prices ANN-equivalent conv and dense layers only (T = 1, no state, no recurrence)",
            where=layer.name,
        )


def to_zigzag_layer(layer: Layer) -> LayerNode:
    """The layer as a ZigZag LayerNode (conv form, which covers dense and depthwise layers too)."""
    _ann_only(layer)
    d, w, p = layer.dims, layer.window, layer.precision
    iy, ix = (w.input_size(d.OY, d.FY, 0), w.input_size(d.OX, d.FX, 1)) if layer.op is Op.CONV else (1, 1)
    top, left, bottom, right = w.padding
    data: dict[str, Any] = {
        "id": 1,
        "name": layer.name,
        "operator_type": "Conv",
        "equation": _EQUATION,
        "operand_source": {"W": 1, "I": 0},
        "loop_dims": list(_ZZ_DIMS),
        "loop_sizes": [getattr(d, x) for x in _ZZ_DIMS],
        "dimension_relations": [
            f"ix={w.stride[1]}*ox+{w.dilation[1]}*fx",
            f"iy={w.stride[0]}*oy+{w.dilation[0]}*fy",
        ],
        "operand_precision": {"W": p.W, "I": p.I, "O": p.O, "O_final": p.O_final},
        "pr_loop_dims": ["IX", "IY"],
        "pr_loop_sizes": [ix, iy],
        "padding": [[left, right], [top, bottom]],
    }
    mapping = [
        {
            "name": "default",
            "spatial_mapping": None,
            "spatial_mapping_hint": None,
            "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"},
            "temporal_ordering": None,
        }
    ]
    return LayerNodeFactory(data, mapping).create()


def to_zigzag_accelerator(hw: Hardware, precision: Precision) -> Accelerator:
    """The hardware as a ZigZag Accelerator for operands of `precision` (ZigZag has one energy per
    operation); V, which ZigZag lacks, is dropped."""
    if any(not (a.name[:1] == "D" and a.name[1:].isdigit()) for a in hw.array.dims):
        raise StemsInputError("ZigZag names array dimensions D1, D2, ...", where=hw.name)
    i_bits, w_bits = precision.I, precision.W
    memories = {}
    for lv in hw.memories:
        ops = [MEMORY_OPERAND[o] for o in ("I", "W", "O") if o in lv.operands]
        if not ops:
            continue
        ports, cost = [], {}
        for k, port in enumerate(lv.ports):
            moves = sorted(
                f"{MEMORY_OPERAND[o]}, {DIRECTION_CODE[d]}" for o, d in port.serves if o in MEMORY_OPERAND
            )
            if not moves:
                continue
            prefix = {PortKind.READ: "r", PortKind.WRITE: "w", PortKind.READ_WRITE: "rw"}[port.kind]
            ports.append(
                {
                    "name": f"{prefix}_port_{k + 1}",
                    "type": str(port.kind),
                    "bandwidth_min": port.min_bits,
                    "bandwidth_max": port.bw_bits,
                    "allocation": moves,
                }
            )
            for key, can, pj in (
                ("r_cost", port.kind is not PortKind.WRITE, port.read_pj_per_bit),
                ("w_cost", port.kind is not PortKind.READ, port.write_pj_per_bit),
            ):
                word = pj * port.bw_bits
                if can and key in cost and abs(cost[key] - word) > 1e-9 * max(1.0, word):
                    raise StemsInputError(
                        "ZigZag prices one energy per word per memory: ports disagree", where=lv.name
                    )
                if can:
                    cost[key] = word
        memories[lv.name] = {
            "size": lv.size_bits,
            "r_cost": cost.get("r_cost", 0.0),
            "w_cost": cost.get("w_cost", 0.0),
            "area": 0.0,
            "latency": 1,
            "operands": ops,
            "ports": ports,
            "served_dimensions": sorted(lv.served_dims),
            "force_double_buffering": lv.double_buffered,
        }
    doc = {
        "name": hw.name,
        "memories": memories,
        "operational_array": {
            "dimensions": [a.name for a in hw.array.dims],
            "sizes": [a.size for a in hw.array.dims],
            "systolic_dimensions": [a.name for a in hw.array.dims if a.systolic],
            "unit_energy": hw.compute.energy_per_op(i_bits, w_bits),
            "unit_area": 1.0,
            "input_precision": [i_bits, w_bits],
        },
    }
    validator = AcceleratorValidator(doc)
    data = validator.normalized_data
    if not validator.validate():
        raise StemsInputError(
            f"ZigZag refuses the converted hardware: {validator.validator.errors}", where=hw.name
        )
    return AcceleratorFactory(data).create()


def to_zigzag_mapping(
    node: LayerNode, acc: Accelerator, hw: Hardware, mapping: Mapping
) -> tuple[SpatialMappingInternal, SpatialMappingInternal, TemporalMapping]:
    """ZigZag's (spatial mapping, integer spatial mapping, temporal mapping) for `mapping`; sets
    `node.spatial_mapping` (ZigZag reads the systolic drain from it)."""
    spatial = SpatialMapping(
        {
            OADimension(a): MappingSingleOADim({LayerDim(d): f for d, f in loops})
            for a, loops in mapping.spatial
            if loops
        }
    )
    spatial.initialize_oa_dims({OADimension(a.name): a.size for a in hw.array.dims})
    node.spatial_mapping = spatial
    sm, sm_int = SpatialMappingConversionStage(
        [None], accelerator=acc, layer=node
    ).convert_user_spatial_mapping(spatial)
    loops = [(LayerDim(d), f) for d, f in mapping.temporal]
    operands = {str(op): op for op in node.layer_operands}
    per_level: dict[LayerOperand, list[list[tuple[LayerDim, int]]]] = {}
    for name, op in operands.items():
        cuts = [0, *(c for _, c in mapping.cuts_of(name))]
        per_level[op] = [loops[lo:hi] for lo, hi in pairwise(cuts)]
    return sm, sm_int, TemporalMapping(per_level, node, TemporalMappingType.UNEVEN)


def zigzag_price(layer: Layer, hw: Hardware, mapping: Mapping) -> CostModelEvaluation:
    """ZigZag's own `CostModelEvaluation` of the layer under the mapping (as its API runs it)."""
    node = to_zigzag_layer(layer)
    acc = to_zigzag_accelerator(hw, layer.precision)
    sm, sm_int, tm = to_zigzag_mapping(node, acc, hw, mapping)
    return CostModelEvaluation(
        accelerator=acc,
        layer=node,
        spatial_mapping=sm,
        spatial_mapping_int=sm_int,
        temporal_mapping=tm,
        access_same_data_considered_as_no_access=True,
    )


def layer_from_zigzag(node: LayerNode) -> Layer:
    """A ZigZag conv or Gemm layer as a stems conv or dense layer (a Gemm's D rows become B)."""
    sizes = {str(k): int(v) for k, v in node.layer_dim_sizes.items()}
    sizes["B"] = sizes.pop("D", sizes.get("B", 1))
    unknown = set(sizes) - set(LOOP_DIMS)
    if unknown:
        raise StemsInputError(f"loops {sorted(unknown)} have no stems equivalent", where=node.name)
    dims = Dims(**{d: sizes.get(d, 1) for d in LOOP_DIMS})
    rel = {str(r.dim_1): r for r in node.dimension_relations}
    stride = tuple(rel[a].coef_2 if a in rel else 1 for a in ("IY", "IX"))
    dilation = tuple(rel[a].coef_3 if a in rel else 1 for a in ("IY", "IX"))
    (top, bottom), (left, right) = node.padding[LayerDim("IY")], node.padding[LayerDim("IX")]
    pr = {str(k): int(v) for k, v in node.pr_layer_dim_sizes.data.items()} if node.pr_layer_dim_sizes else {}
    conv = any(getattr(dims, x) > 1 for x in ("OY", "OX", "FY", "FX"))
    prec = node.operand_precision
    return Layer(
        name=node.name,
        op=Op.CONV if conv else Op.DENSE,
        dims=dims,
        precision=Precision(
            I=prec[LayerOperand("I")],
            W=prec[LayerOperand("W")],
            O=prec[LayerOperand("O")],
            O_final=prec[LayerOperand("O_final")],
        ),
        window=Window(
            stride=stride,
            padding=(top, left, bottom, right),
            dilation=dilation,
            input_yx=(pr["IY"], pr["IX"]) if conv and pr else None,
        ),
    )


def from_zigzag(
    node: LayerNode,
    temporal: TemporalMapping,
    spatial: SpatialMapping | dict[str, dict[str, int]],
    hw: Hardware,
) -> tuple[Layer, Mapping]:
    """A ZigZag layer with its (user-format) spatial and uneven temporal mappings as stems objects;
    every operand's levels must partition one loop order, as ZigZag's own mappings do."""
    per_op = {str(op): levels for op, levels in temporal.mapping_dic_origin.items()}
    rename = lambda d: "B" if str(d) == "D" else str(d)  # noqa: E731
    order = [(rename(d), int(f)) for level in per_op["O"] for d, f in level]
    cuts = {}
    for name in ("W", "I", "O"):
        levels = hw.levels_of(name)
        flat = [(rename(d), int(f)) for level in per_op[name] for d, f in level]
        if flat != order or len(per_op[name]) != len(levels):
            raise StemsInputError(f"operand {name}'s levels do not partition one loop order", where=node.name)
        bounds = [sum(len(level) for level in per_op[name][: j + 1]) for j in range(len(levels))]
        cuts[name] = {lv.name: c for lv, c in zip(levels, bounds, strict=True)}
    space = {
        str(a): {rename(d): math.ceil(f) for d, f in loops.items() if f > 1} for a, loops in spatial.items()
    }
    return layer_from_zigzag(node), Mapping.of({a: v for a, v in space.items() if v}, order, cuts)
