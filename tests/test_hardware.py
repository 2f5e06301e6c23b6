"""Hardware specs: shipped files, units, `--set` overrides and one-line errors for bad files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from stems.errors import StemsInputError
from stems.hardware import (
    MEMORY_OPERANDS,
    Direction,
    build_hardware,
    format_size,
    hardware_schema,
    list_shipped,
    load_hardware,
    parse_frequency,
    parse_size,
    shipped_dir,
)
from stems.hardware.schema import HARDWARE, Either, Fields, ListOf, Named
from stems.hardware.units import SIZE_UNITS, UnitError

KiB = 8 * 1024


def edge_doc() -> dict[str, Any]:
    return yaml.safe_load((shipped_dir() / "stems-edge.yaml").read_text())


def write(tmp_path: Path, doc: dict[str, Any]) -> str:
    path = tmp_path / "hw.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


# ---- shipped specs ---------------------------------------------------------------------------


def test_shipped_specs_are_listed() -> None:
    assert {"stems-edge", "tpu_like", "loihi-like"} <= set(list_shipped())


@pytest.mark.parametrize("name", list_shipped())
def test_every_shipped_spec_loads_and_is_consistent(name: str) -> None:
    hw = load_hardware(name)
    assert hw.name == name and hw.version == 1 and hw.clock_hz > 0
    assert hw.offchip.operands == frozenset(MEMORY_OPERANDS)
    for operand in MEMORY_OPERANDS:
        chain = hw.levels_of(operand)
        assert chain and chain[-1] is hw.offchip
        for level in chain:  # every movement the cost model walks has a port and an energy
            for d in (Direction.TO_LOW, Direction.FROM_HIGH):
                assert level.pj_per_bit(operand, d) >= 0
    assert all(d.loops for d in hw.array.dims)
    assert "[proposal]" in (shipped_dir() / f"{name}.yaml").read_text() or name == "tpu_like"


def test_stems_edge_matches_the_paper() -> None:
    hw = load_hardware("stems-edge")
    assert [(d.name, d.size, d.loops) for d in hw.array.dims] == [
        ("D1", 32, ("K",)),
        ("D2", 2, ("C",)),
        ("D3", 16, ("OY",)),
    ]
    assert hw.array.n_pes == 1024 and hw.clock_hz == 1e9
    assert [m.name for m in hw.memories] == ["w_reg", "o_reg", "w_lb", "i_lb", "global_buffer", "dram"]
    gb, dram = hw.level("global_buffer"), hw.level("dram")
    assert gb.size_bits == 1024 * KiB and gb.operands == {"I", "W", "O", "V"}
    assert gb.pj_per_bit("V", Direction.TO_HIGH) == 0.13 and gb.pj_per_bit("V", Direction.FROM_LOW) == 0.175
    assert gb.port("I", Direction.TO_LOW).bw_bits == 1024 and gb.port("I", Direction.TO_LOW).min_bits == 64
    assert dram.size_bits == 10**10 and dram.pj_per_bit("W", Direction.TO_LOW) == 700 / 64
    assert len(dram.ports) == 1  # one shared read/write port
    assert hw.instances(hw.level("w_reg")) == 64 and hw.instances(hw.level("o_reg")) == 512
    assert hw.level("o_reg").operands == {"O", "V"} and hw.level("w_lb").size_bits == 32 * KiB
    assert [m.name for m in hw.levels_of("I")] == ["i_lb", "global_buffer", "dram"]
    c = hw.compute
    assert c.energy_per_op(1, 4) == 0.07 and c.energy_per_op(4, 4) == 0.16 and c.neuron_update_pj == 0
    assert c.energy_per_op(8, 8) == pytest.approx(0.64)  # MAC scaled by the bits product
    assert c.energy_per_op(1, 8) == pytest.approx(0.14)  # accumulate scaled by weight bits


def test_equal_specs_compare_equal_whatever_their_provenance(tmp_path: Path) -> None:
    copy = load_hardware(write(tmp_path, edge_doc()))
    assert copy == load_hardware("stems-edge") and copy.source_path != load_hardware("stems-edge").source_path


# ---- units -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "bits"),
    [
        ("256KiB", 256 * KiB),
        ("1MB", 8_000_000),
        ("1MiB", 8 * 2**20),
        ("10Gbit", 10**10),
        ("10Gb", 10**10),
        (4096, 4096),
        ("4096", 4096),
        ("4bit", 4),
        ("2B", 16),
        ("1.5KiB", 12 * 1024),
        (" 2 MiB ", 16 * 2**20),
        ("32kB", 256_000),
    ],
)
def test_sizes_with_units(text: object, bits: int) -> None:
    assert parse_size(text) == bits


@pytest.mark.parametrize("text", ["abc", "1.5bit", "8K", "8XB", "MiB", True, None, [1]])
def test_unreadable_sizes(text: object) -> None:
    with pytest.raises(UnitError):
        parse_size(text)


def test_frequencies() -> None:
    assert (
        parse_frequency("1GHz") == 1e9 and parse_frequency("700 MHz") == 7e8 and parse_frequency(5e8) == 5e8
    )
    with pytest.raises(UnitError):
        parse_frequency("1Gbit")


@given(st.integers(min_value=-(2**60), max_value=2**60))
def test_size_formatting_round_trips(bits: int) -> None:
    assert parse_size(format_size(bits)) == bits


def test_size_formatting_prefers_whole_bytes() -> None:
    assert [format_size(b) for b in (256 * KiB, 8 * 2**20, 10**10, 12, 0)] == [
        "256KiB",
        "1MiB",
        "1250MB",
        "12bit",
        "0bit",
    ]


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(sorted(SIZE_UNITS)))
def test_every_unit_parses_to_its_factor(number: int, unit: str) -> None:
    assert parse_size(f"{number}{unit}") == number * SIZE_UNITS[unit]


# ---- overrides -------------------------------------------------------------------------------


def test_overrides_sweep_a_memory_size_without_copying_files() -> None:
    base = load_hardware("stems-edge")
    hw = load_hardware("stems-edge", ["global_buffer.size=256KiB"])
    assert hw.level("global_buffer").size_bits == 256 * KiB
    assert hw.overrides == ("global_buffer.size=256KiB",) and hw.sha256 != base.sha256
    assert load_hardware("stems-edge", ["memories.global_buffer.size=256KiB"]) == hw


def test_overrides_reach_every_part_of_the_spec() -> None:
    hw = load_hardware(
        "stems-edge",
        [
            "clock=500MHz",
            "array.D1.size=64",
            "array.D3.loops=[OY, OX]",
            "compute.op_energy.8x8=0.5",
            "compute.neuron_update_pj=1e-2",
            "w_reg.read_pj_per_bit=0.002",
            "dram.read_pj_per_bit=10",  # replaces the file's read_pj_per_word
            "global_buffer.skips_zeros=true",
        ],
    )
    assert hw.clock_hz == 5e8 and hw.array.n_pes == 2048 and hw.array.dim("D3").loops == ("OY", "OX")
    assert hw.compute.energy_per_op(8, 8) == 0.5 and hw.compute.neuron_update_pj == 0.01
    assert hw.level("w_reg").pj_per_bit("W", Direction.TO_LOW) == 0.002
    assert hw.level("dram").pj_per_bit("I", Direction.TO_LOW) == 10
    assert hw.level("global_buffer").skips_zeros


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("global_buffer.sise=1MiB", "unknown key 'sise' (did you mean 'size'?)"),
        ("global_bufer.size=1MiB", "unknown key 'global_bufer' (did you mean 'global_buffer'?)"),
        ("global_buffer.size=abc", "cannot read 'abc' as a size"),
        ("global_buffer.size=-8KiB", "size must be positive"),
        ("global_buffer.operands=[I, X]", "unknown operand 'X'"),
        ("array.D9.size=3", "no array dimension 'D9'"),
        ("array.D1.size=true", "expected a positive integer"),
        ("array.D1.loops=[]", "lists no loop"),
        ("compute.op_energy.4by4=1", "precision pair"),
        ("compute.scaling=linear", "unknown scaling 'linear'"),
        ("dram.ports.rw_port_1=1", "'ports' holds no key 'rw_port_1'"),
        ("clock.hz=1", "'clock' holds no key 'hz'"),
        ("clock", "expected KEY=VALUE"),
    ],
)
def test_bad_overrides_are_one_line_errors(override: str, message: str) -> None:
    with pytest.raises(StemsInputError) as info:
        load_hardware("stems-edge", [override])
    text = str(info.value)
    assert message in text and "\n" not in text
    assert "stems-edge.yaml" in text
    assert override == "clock" or f"--set {override.split('=')[0]}" in text


# ---- bad files -------------------------------------------------------------------------------


def _drop_operand(op: str) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        for m in doc["memories"].values():
            if op in m["operands"]:
                m["operands"].remove(op)
        doc["memories"] = {n: m for n, m in doc["memories"].items() if m["operands"]}

    return mutate


def _set(dotted: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = dotted.split(".")
        node = doc
        for p in parents:
            node = node[p]
        node[last] = value

    return mutate


def _delete(dotted: str) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = dotted.split(".")
        node = doc
        for p in parents:
            node = node[p]
        del node[last]

    return mutate


EXPLICIT_PORT = {"name": "w_port_1", "type": "write", "bw": 64, "serves": ["I to_low"]}

BAD_FILES = {
    "operand with no level": (_drop_operand("W"), "memories", "no memory level holds operand W"),
    "no memory levels": (_set("memories", {}), "memories", "lists no memory level"),
    "missing size": (_delete("memories.global_buffer.size"), "memories.global_buffer.size", "missing key"),
    "negative size": (
        _set("memories.global_buffer.size", "-1MiB"),
        "memories.global_buffer.size",
        "positive",
    ),
    "zero size": (_set("memories.w_reg.size", 0), "memories.w_reg.size", "positive"),
    "unknown operand": (_set("memories.i_lb.operands", ["I", "X"]), "memories.i_lb.operands", "operand 'X'"),
    "misspelt operand": (
        _set("memories.i_lb.operands", ["Wt"]),
        "memories.i_lb.operands",
        "did you mean 'W'?",
    ),
    "level holding nothing": (
        _set("memories.i_lb.operands", []),
        "memories.i_lb.operands",
        "lists no operand",
    ),
    "dim without loops": (_set("array.D1.loops", []), "array.D1.loops", "lists no loop"),
    "dim missing loops": (_delete("array.D2.loops"), "array.D2.loops", "missing key 'loops'"),
    "unknown loop": (_set("array.D1.loops", ["KK"]), "array.D1.loops", "did you mean 'K'?"),
    "zero dim size": (_set("array.D1.size", 0), "array.D1.size", "positive integer"),
    "no array": (_set("array", {}), "array", "lists no array dimension"),
    "unknown level key": (_set("memories.global_buffer.sise", 1), "memories.global_buffer.sise", "'size'?"),
    "unknown top key": (_set("memory", {}), "memory", "did you mean 'memories'?"),
    "missing clock": (_delete("clock"), "clock", "missing key 'clock'"),
    "bad clock": (_set("clock", "fast"), "clock", "cannot read 'fast'"),
    "wrong version": (_set("stems_hardware", 2), "stems_hardware", "unsupported schema version 2"),
    "unknown served dim": (_set("memories.w_reg.served_dims", ["D4"]), "memories.w_reg.served_dims", "'D4'"),
    "outermost lacks V": (
        _set("memories.dram.operands", ["I", "W", "O"]),
        "memories.dram.operands",
        "lacks V",
    ),
    "both energies": (
        _set("memories.dram.write_pj_per_bit", 1.0),
        "memories.dram.write_pj_per_word",
        "not both",
    ),
    "no energy": (_delete("memories.w_lb.read_pj_per_bit"), "memories.w_lb.read_pj_per_bit", "missing key"),
    "negative energy": (_set("memories.w_lb.read_pj_per_bit", -1), "memories.w_lb.read_pj_per_bit", ">= 0"),
    "no bandwidth": (_delete("memories.w_lb.write_bw"), "memories.w_lb.write_bw", "missing key 'write_bw'"),
    "bad preset": (_set("memories.dram.ports", "sharde"), "memories.dram.ports", "did you mean 'shared'?"),
    "min access too wide": (_set("memories.i_lb.min_access", 256), "memories.i_lb.min_access", "wider"),
    "shared widths differ": (_set("memories.dram.write_bw", 32), "memories.dram.write_bw", "one width"),
    "level named like a key": (
        lambda d: d["memories"].update(clock=d["memories"].pop("w_reg")),
        "memories.clock",
        "top-level key",
    ),
    "bad precision pair": (
        _set("compute.op_energy", {"4by4": 0.1}),
        "compute.op_energy.4by4",
        "precision pair",
    ),
    "no precision pair": (_set("compute.op_energy", {}), "compute.op_energy", "lists no precision pair"),
    "write port reads": (
        _set("memories.i_lb.ports", [EXPLICIT_PORT]),
        "memories.i_lb.read_bw",
        "give each port its own bw",
    ),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_bad_files_give_one_line_errors_naming_file_and_key(case: str, tmp_path: Path) -> None:
    mutate, where, message = BAD_FILES[case]
    doc = edge_doc()
    mutate(doc)
    path = write(tmp_path, doc)
    with pytest.raises(StemsInputError) as info:
        load_hardware(path)
    err = info.value
    assert err.path == path and err.where == where, str(err)
    assert message in err.message and "\n" not in str(err)


@pytest.mark.parametrize(
    ("port", "where", "message"),
    [
        (
            {**EXPLICIT_PORT, "type": "write"},
            "memories.i_lb.ports[0].serves",
            "a write port cannot serve I to_low",
        ),
        (
            {**EXPLICIT_PORT, "type": "read", "serves": ["V to_low"]},
            "memories.i_lb.ports[0].serves",
            "not held",
        ),
        (
            {**EXPLICIT_PORT, "type": "read", "serves": ["I from_low"]},
            "memories.i_lb.ports[0].serves",
            "no from_low",
        ),
        (
            {**EXPLICIT_PORT, "type": "read", "serves": ["I up"]},
            "memories.i_lb.ports[0].serves",
            "direction 'up'",
        ),
        ({**EXPLICIT_PORT, "type": "read"}, "memories.i_lb.ports", "no port serves I from_high"),
        ({**EXPLICIT_PORT, "tipe": "read"}, "memories.i_lb.ports[0].tipe", "did you mean 'type'?"),
    ],
)
def test_bad_explicit_ports(port: dict[str, Any], where: str, message: str, tmp_path: Path) -> None:
    doc = edge_doc()
    level = doc["memories"]["i_lb"]
    del level["read_bw"], level["write_bw"]
    level["ports"] = [port]
    path = write(tmp_path, doc)
    with pytest.raises(StemsInputError) as info:
        load_hardware(path)
    assert (info.value.path, info.value.where) == (path, where) and message in info.value.message


def test_explicit_ports_equal_the_preset_they_spell_out(tmp_path: Path) -> None:
    doc = edge_doc()
    level = doc["memories"]["i_lb"]
    del level["read_bw"], level["write_bw"]
    level["ports"] = [
        {"name": "r_port_1", "type": "read", "bw": 128, "serves": ["I to_low"]},
        {"name": "w_port_1", "type": "write", "bw": 128, "serves": ["I from_high"]},
    ]
    assert load_hardware(write(tmp_path, doc)) == load_hardware("stems-edge")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("stems_hardware: 1\nname: a\nname: b\n", "line 3: duplicate key 'name'"),
        ("stems_hardware: 1\nname: [a\n", "line 3"),
        ("- a\n- b\n", "expected a YAML mapping"),
        ("", "expected a YAML mapping"),
    ],
)
def test_unreadable_yaml(text: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "hw.yaml"
    path.write_text(text)
    with pytest.raises(StemsInputError) as info:
        load_hardware(str(path))
    assert message in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)


def test_unknown_references() -> None:
    with pytest.raises(StemsInputError, match="did you mean 'stems-edge'"):
        load_hardware("stems-egde")
    with pytest.raises(StemsInputError, match="cannot read"):
        load_hardware("no/such/file.yaml")
    with pytest.raises(StemsInputError, match="give a ZigZag hardware file"):
        load_hardware("zigzag:")


# ---- schema text -----------------------------------------------------------------------------


def _keys(node: object) -> set[str]:
    if isinstance(node, Fields):
        return set(node.keys).union(*(_keys(child) for child in node.keys.values()))
    if isinstance(node, Named | ListOf):
        return _keys(node.entry)
    if isinstance(node, Either):
        return _keys(node.items)
    return set()


def test_schema_text_documents_every_key() -> None:
    text = hardware_schema()
    assert not [k for k in _keys(HARDWARE) if f"{k}:" not in text and f"{k}=" not in text]


def test_schema_example_is_a_valid_spec() -> None:
    hw = build_hardware(yaml.safe_load(hardware_schema()), path="schema")
    assert [m.name for m in hw.memories] == ["w_reg", "dram"] and hw.level("dram").ports[0].bw_bits == 64


def test_cli_prints_the_schema() -> None:
    from click.testing import CliRunner

    from stems.cli import main

    result = CliRunner().invoke(main, ["schema", "hardware"])
    assert result.exit_code == 0 and "stems_hardware: 1" in result.output
