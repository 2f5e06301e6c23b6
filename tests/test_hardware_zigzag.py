"""ZigZag hardware files read by stems: equal to the shipped tpu_like, and equal to what ZigZag itself parses."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from stems.errors import StemsInputError
from stems.hardware import Direction, Hardware, PortKind, load_hardware

zigzag = pytest.importorskip("zigzag")
pytest.importorskip("six")  # zigzag-dse 3.9.1 imports it without declaring it

from zigzag.hardware.architecture.accelerator import Accelerator  # noqa: E402
from zigzag.stages.parser.accelerator_parser import AcceleratorParserStage  # noqa: E402

INPUTS = Path(zigzag.__file__).parent / "inputs"
TPU = INPUTS / "hardware" / "tpu_like.yaml"
TPU_MAPPING = INPUTS / "mapping" / "tpu_like.yaml"
OPERANDS = {"I1": "I", "I2": "W", "O": "O"}
DIRECTIONS = {
    "rd_out_to_low": Direction.TO_LOW,
    "wr_in_by_high": Direction.FROM_HIGH,
    "wr_in_by_low": Direction.FROM_LOW,
    "rd_out_to_high": Direction.TO_HIGH,
}
NON_IMC = sorted(
    p.name
    for p in (INPUTS / "hardware").glob("*.yaml")
    if not yaml.safe_load(p.read_text())["operational_array"].get("is_imc")
)


def test_shipped_tpu_like_equals_zigzag_tpu_like_in_every_priced_field() -> None:
    ours = load_hardware("tpu_like")
    theirs = load_hardware(f"zigzag:{TPU},{TPU_MAPPING}")
    assert ours == theirs  # Hardware equality covers every field but provenance
    assert [(d.name, d.size, d.loops, d.systolic) for d in theirs.array.dims] == [
        ("D1", 32, ("K",), True),
        ("D2", 32, ("C",), True),
    ]


def assert_same_as_zigzag(hw: Hardware, acc: Accelerator) -> None:
    """Every number ZigZag prices with, level by level and port by port."""
    oa = acc.operational_array
    assert {d.name: d.size for d in hw.array.dims} == {str(k): v for k, v in oa.dimension_sizes.items()}
    assert {d.name for d in hw.array.dims if d.systolic} == {str(d) for d in oa.systolic_dimensions}
    assert hw.compute.energy_per_op(8, 8) == hw.compute.energy_per_op(1, 4) == oa.unit.energy_cost
    levels = acc.memory_hierarchy.mem_level_list
    assert [m.name for m in hw.memories] == [lvl.name for lvl in levels]
    for ours, lvl in zip(hw.memories, levels, strict=True):
        inst = lvl.memory_instance
        ops = {OPERANDS[str(op)] for op in lvl.operands}
        assert ours.operands == ops | ({"V"} if "O" in ops else set())
        assert ours.size_bits == inst.size and ours.double_buffered == inst.force_double_buffering
        assert ours.served_dims == {str(d) for d in lvl.served_dimensions}
        assert hw.instances(ours) == lvl.unroll_count
        assert [p.name for p in ours.ports] == sorted(p.name for p in lvl.ports)
        for port in lvl.ports:
            mine = next(p for p in ours.ports if p.name == port.name)
            assert (mine.kind, mine.bw_bits, mine.min_bits) == (PortKind(port.type), port.bw_max, port.bw_min)
            served = {(OPERANDS[str(op)], DIRECTIONS[d]) for op, _, d in port.served_op_lv_dir}
            assert mine.serves == served | {("V", d) for op, d in served if op == "O"}
            if mine.kind is not PortKind.WRITE:
                assert math.isclose(mine.read_pj_per_bit * mine.bw_bits, inst.r_cost, rel_tol=1e-12)
            if mine.kind is not PortKind.READ:
                assert math.isclose(mine.write_pj_per_bit * mine.bw_bits, inst.w_cost, rel_tol=1e-12)
    for zz_op, op in OPERANDS.items():
        chain = [lvl.name for lvl in levels if zz_op in {str(o) for o in lvl.operands}]
        assert [m.name for m in hw.levels_of(op)] == chain


def test_shipped_tpu_like_equals_what_zigzag_parses() -> None:
    assert_same_as_zigzag(load_hardware("tpu_like"), AcceleratorParserStage.parse_accelerator(str(TPU)))


@pytest.mark.parametrize("name", NON_IMC)
def test_every_zigzag_example_reads_as_zigzag_parses_it(name: str) -> None:
    path = INPUTS / "hardware" / name
    assert_same_as_zigzag(
        load_hardware(f"zigzag:{path}"), AcceleratorParserStage.parse_accelerator(str(path))
    )


def test_spatial_loops_come_from_mapping_then_dataflows_then_everything(tmp_path: Path) -> None:
    doc = yaml.safe_load(TPU.read_text())
    assert load_hardware(f"zigzag:{TPU}").array.dim("D1").loops == (
        "B",
        "G",
        "K",
        "C",
        "OY",
        "OX",
        "FY",
        "FX",
    )
    doc["dataflows"] = {"D1": ["K, 16", "OX, 2"], "D2": ["C, 32"]}
    path = tmp_path / "hw.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    hw = load_hardware(f"zigzag:{path}")
    assert hw.array.dim("D1").loops == ("K", "OX") and hw.array.dim("D2").loops == ("C",)
    mapping = tmp_path / "mapping.yaml"  # no `default` entry: all entries merged
    mapping.write_text(
        yaml.safe_dump(
            [
                {"name": "Conv", "spatial_mapping": {"D1": ["OY, 32"]}},
                {"name": "Gemm", "spatial_mapping": {"D1": ["K, 32"]}},
            ]
        )
    )
    hw = load_hardware(f"zigzag:{path},{mapping}")
    assert hw.array.dim("D1").loops == ("OY", "K") and "T" not in hw.array.dim("D2").loops


def test_overrides_apply_to_zigzag_files_in_stems_keys() -> None:
    hw = load_hardware(f"zigzag:{TPU}", ["sram_2MB.size=1MiB", "clock=700MHz", "sram_2MB.ports.0.bw=1024"])
    sram = hw.level("sram_2MB")
    assert sram.size_bits == 8 * 2**20 and hw.clock_hz == 7e8
    assert sram.port("I", Direction.TO_LOW).bw_bits == 1024  # energy per word is per the new width
    assert sram.pj_per_bit("I", Direction.TO_LOW) == 416.16 / 1024
    with pytest.raises(StemsInputError, match="no item 2: the list has 2"):
        load_hardware(f"zigzag:{TPU}", ["sram_2MB.ports.2.bw=1024"])


@pytest.mark.parametrize(
    ("edit", "where", "message"),
    [
        (lambda d: d["operational_array"].update(is_imc=True), "operational_array.is_imc", "in-memory"),
        (
            lambda d: d["memories"]["dram"].update(auto_cost_extraction=True),
            "memories.dram.auto_cost_extraction",
            "CACTI",
        ),
        (lambda d: d["memories"]["dram"].update(operands=["I1", "I3"]), "memories.dram.operands", "'I3'"),
        (lambda d: d["memories"]["dram"].update(operands=[]), "memories.dram.operands", "holds no operand"),
        (lambda d: d["memories"]["dram"].update(sise=1), "memories.dram.sise", "did you mean 'size'?"),
        (lambda d: d["memories"]["dram"].update(size=-1), "memories.dram.size", "non-negative"),
        (lambda d: d["memories"]["dram"].pop("r_cost"), "memories.dram.r_cost", "missing key 'r_cost'"),
        (lambda d: d["memories"].pop("dram"), "memories.sram_2MB.operands", "lacks W"),
        (
            lambda d: d["operational_array"].update(sizes=[32]),
            "operational_array.sizes",
            "one size per dimension",
        ),
        (lambda d: d.update(dataflows={"D3": ["K, 4"]}), "dataflows.D3", "unknown array dimension 'D3'"),
    ],
)
def test_bad_zigzag_files(edit: object, where: str, message: str, tmp_path: Path) -> None:
    doc = yaml.safe_load(TPU.read_text())
    edit(doc)
    path = tmp_path / "hw.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(StemsInputError) as info:
        load_hardware(f"zigzag:{path}")
    assert (info.value.path, info.value.where) == (str(path), where) and message in info.value.message
    assert "\n" not in str(info.value)


def test_gemm_style_loop_names_are_refused_with_a_hint() -> None:
    gemm = INPUTS / "hardware" / "gemm_l1.yaml"
    with pytest.raises(StemsInputError, match="unknown loop 'D0'; stems loops are T, B"):
        load_hardware(f"zigzag:{gemm},{INPUTS / 'mapping' / 'gemm_l1.yaml'}")
