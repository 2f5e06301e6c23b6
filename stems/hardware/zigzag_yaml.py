"""ZigZag (zigzag-dse 3.9) hardware YAML read as stems hardware, so a ZigZag user's files work as they are.

The file is checked against ZigZag's own schema (the keys of its AcceleratorValidator) and
translated into a stems document, which then goes through the same overrides and validation as
a stems file. The translation keeps ZigZag's pricing exactly:

* memory operands I1 -> I, I2 -> W, O -> O (or as the mapping's `memory_operand_links` say);
  V, which ZigZag lacks, lives wherever O lives and shares O's ports, as in the STEMS fork;
* r_cost / w_cost are per access of a port's full width (bandwidth_max), so each port's energy
  per bit is r_cost / bandwidth_max; bandwidth_min becomes the port's min_access;
* unit_energy prices every operation whatever the precision (`scaling: constant`);
* systolic_dimensions and force_double_buffering carry over; area, latency and mem_type are
  not priced and are dropped. ZigZag has no clock: 1 GHz, like the shipped specs.

The loops that may unroll on each array dimension come from the mapping file, if given (its
`default` entry, else every entry), else the hardware file's `dataflows`, else every loop but T.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stems.errors import StemsInputError, did_you_mean
from stems.hardware.load import read_yaml
from stems.hardware.schema import (
    SCHEMA_VERSION,
    VERSION_KEY,
    Fields,
    Invalid,
    Leaf,
    ListOf,
    Named,
    check_tree,
)
from stems.hardware.spec import Direction
from stems.workload.model import LOOP_DIMS

ZIGZAG_OPERANDS = {"I1": "I", "I2": "W", "O": "O"}
ZIGZAG_DIRECTIONS = {
    "tl": Direction.TO_LOW,
    "fh": Direction.FROM_HIGH,
    "fl": Direction.FROM_LOW,
    "th": Direction.TO_HIGH,
}
DEFAULT_CLOCK = "1GHz"


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Invalid(f"expected a non-negative integer, not {value!r}")
    return value


def _opt_number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise Invalid(f"expected a number >= 0, not {value!r}")
    return float(value)


def _any(value: Any) -> Any:
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid(f"expected text, not {value!r}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"expected true or false, not {value!r}")
    return value


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Invalid(f"expected a list of strings, not {value!r}")
    return value


def _operands(value: Any) -> list[str]:
    for v in _strings(value):
        if v not in ZIGZAG_OPERANDS:
            raise Invalid(
                f"unknown memory operand '{v}'{did_you_mean(v, list(ZIGZAG_OPERANDS))}; use I1, I2 or O"
            )
    if not value:
        raise Invalid("holds no operand; list at least one of I1, I2, O")
    return value


def _allocation(value: Any) -> list[tuple[str, str]]:
    out = []
    for v in _strings(value):
        operand, _, direction = v.partition(", ")
        if operand not in ZIGZAG_OPERANDS or direction not in ZIGZAG_DIRECTIONS:
            raise Invalid(f"expected '<I1|I2|O>, <fh|tl|fl|th>', not {v!r}")
        out.append((operand, direction))
    return out


def _port_type(value: Any) -> str:
    if value not in ("read", "write", "read_write"):
        raise Invalid(f"port type must be read, write or read_write, not {value!r}")
    return value


_PORT = Fields(
    keys={
        "name": Leaf(_str),
        "type": Leaf(_port_type),
        "bandwidth_min": Leaf(_int),
        "bandwidth_max": Leaf(_int),
        "allocation": Leaf(_allocation),
    },
    required=frozenset({"name", "type", "bandwidth_min", "bandwidth_max", "allocation"}),
)
_MEMORY = Fields(
    keys={
        "size": Leaf(_int),
        "r_cost": Leaf(_opt_number),
        "w_cost": Leaf(_opt_number),
        "area": Leaf(_opt_number),
        "latency": Leaf(_int),
        "mem_type": Leaf(_str),
        "auto_cost_extraction": Leaf(_bool),
        "operands": Leaf(_operands),
        "ports": ListOf(_PORT),
        "served_dimensions": Leaf(_strings),
        "force_double_buffering": Leaf(_bool),
    },
    required=frozenset({"size", "latency", "operands", "ports", "served_dimensions"}),
    defaults={"auto_cost_extraction": False, "force_double_buffering": False},
)
_ARRAY = Fields(
    keys={
        "dimensions": Leaf(_strings),
        "sizes": Leaf(_any),
        "is_imc": Leaf(_bool),
        "systolic_dimensions": Leaf(_strings),
        "input_precision": Leaf(_any),
        "unit_energy": Leaf(_opt_number),
        "unit_area": Leaf(_opt_number),
        "imc_type": Leaf(_any),
        "adc_resolution": Leaf(_any),
        "bit_serial_precision": Leaf(_any),
    },
    required=frozenset({"dimensions", "sizes"}),
    defaults={"is_imc": False, "systolic_dimensions": []},
)
_ZIGZAG = Fields(
    keys={
        "name": Leaf(_str),
        "memories": Named(_MEMORY, "memory", _str),
        "operational_array": _ARRAY,
        "dataflows": Named(Leaf(_strings), "dataflow dimension", _str),
    },
    required=frozenset({"name", "memories", "operational_array"}),
)


def read_zigzag(path: str, mapping_path: str | None = None) -> dict[str, Any]:
    """The stems document equivalent to ZigZag hardware file `path` (and mapping file, if any)."""
    zz = check_tree(_ZIGZAG, read_yaml(path, strict=False), path=path, where="")
    oa = zz["operational_array"]
    if oa["is_imc"]:
        raise StemsInputError(
            "in-memory-computing arrays are not supported by stems",
            path=path,
            where="operational_array.is_imc",
        )
    if oa.get("unit_energy") is None:
        raise StemsInputError("missing key 'unit_energy'", path=path, where="operational_array.unit_energy")
    dims, sizes = oa["dimensions"], oa["sizes"]
    if not isinstance(sizes, list) or len(sizes) != len(dims):
        raise StemsInputError(
            f"expected one size per dimension ({len(dims)}), not {sizes!r}",
            path=path,
            where="operational_array.sizes",
        )
    mapping = read_yaml(mapping_path, strict=False, top=list) if mapping_path else None
    entry = _mapping_entry(mapping, mapping_path) if mapping else None
    links = _operand_links(entry, mapping_path)
    loops = _spatial_loops(entry, mapping_path, zz.get("dataflows"), dims, path)
    precision = oa.get("input_precision") or [8, 8]
    memories = {name: _memory(name, m, links, path) for name, m in zz["memories"].items()}
    source = f"ZigZag hardware {Path(path).name}" + (
        f", spatial loops from {Path(mapping_path).name}" if mapping_path else ""
    )
    return {
        VERSION_KEY: SCHEMA_VERSION,
        "name": zz["name"],
        "description": source,
        "clock": DEFAULT_CLOCK,
        "array": {
            d: {"size": s, "loops": loops[d], "systolic": d in oa["systolic_dimensions"]}
            for d, s in zip(dims, sizes, strict=True)
        },
        "compute": {
            "op_energy": {f"{precision[0]}x{precision[1]}": oa["unit_energy"]},
            "scaling": "constant",
        },
        "memories": memories,
    }


def _memory(name: str, m: dict[str, Any], links: dict[str, str], path: str) -> dict[str, Any]:
    where = f"memories.{name}"
    if m["auto_cost_extraction"]:
        raise StemsInputError(
            "auto_cost_extraction needs CACTI, which stems does not run: give r_cost and w_cost",
            path=path,
            where=f"{where}.auto_cost_extraction",
        )
    for key in ("r_cost", "w_cost"):
        if m.get(key) is None:
            raise StemsInputError(f"missing key '{key}'", path=path, where=f"{where}.{key}")

    def with_state(operands: list[str]) -> list[str]:
        return [*operands, "V"] if "O" in operands else operands

    # As in ZigZag's AcceleratorFactory: a movement allocated to two ports goes to the later one,
    # and a port left serving nothing is dropped.
    port_of = {(op, d): p["name"] for p in m["ports"] for op, d in p["allocation"]}
    ports = []
    for p in m["ports"]:
        moves = [(links[op], ZIGZAG_DIRECTIONS[d]) for (op, d), name in port_of.items() if name == p["name"]]
        moves += [("V", d) for op, d in moves if op == "O"]
        if moves:
            ports.append(
                {
                    "name": p["name"],
                    "type": p["type"],
                    "bw": p["bandwidth_max"],
                    "min_access": p["bandwidth_min"],
                    "serves": [f"{op} {d}" for op, d in moves],
                }
            )
    return {
        "size": m["size"],
        "operands": with_state([links[op] for op in m["operands"]]),
        "served_dims": m["served_dimensions"],
        "read_pj_per_word": m["r_cost"],
        "write_pj_per_word": m["w_cost"],
        "ports": ports,
        "double_buffered": m["force_double_buffering"],
    }


def _mapping_entry(mapping: list[Any], mapping_path: str | None) -> dict[str, Any]:
    """The `default` entry of a ZigZag mapping file, else all entries merged."""
    entries = [e for e in mapping if isinstance(e, dict)]
    if len(entries) != len(mapping) or not entries:
        raise StemsInputError("expected a list of mapping entries", path=mapping_path)
    default = [e for e in entries if e.get("name") == "default"]
    if default:
        return default[0]
    merged: dict[str, list[str]] = {}
    for e in entries:
        for dim, unrollings in (e.get("spatial_mapping") or {}).items():
            merged.setdefault(dim, []).extend(unrollings or [])
    return {"spatial_mapping": merged, "memory_operand_links": entries[0].get("memory_operand_links")}


def _operand_links(entry: dict[str, Any] | None, mapping_path: str | None) -> dict[str, str]:
    """ZigZag memory operand -> stems operand, from `memory_operand_links` (layer op -> memory op)."""
    given = (entry or {}).get("memory_operand_links")
    if not given:
        return dict(ZIGZAG_OPERANDS)
    if (
        not isinstance(given, dict)
        or sorted(given) != ["I", "O", "W"]
        or sorted(given.values()) != ["I1", "I2", "O"]
    ):
        raise StemsInputError(
            f"expected links for I, W and O onto I1, I2 and O, not {given!r}",
            path=mapping_path,
            where="memory_operand_links",
        )
    return {mem: layer for layer, mem in given.items()}


def _spatial_loops(
    entry: dict[str, Any] | None,
    mapping_path: str | None,
    dataflows: dict[str, list[str]] | None,
    dims: list[str],
    path: str,
) -> dict[str, list[str]]:
    if entry is not None:
        source, where, given = mapping_path, "spatial_mapping", entry.get("spatial_mapping") or {}
    else:
        source, where, given = path, "dataflows", dataflows or {}
    if not isinstance(given, dict):
        raise StemsInputError(
            f"expected a mapping of array dimensions, not {given!r}", path=source, where=where
        )
    loops: dict[str, list[str]] = {}
    for dim, unrollings in given.items():
        at = f"{where}.{dim}"
        if dim not in dims:
            raise StemsInputError(
                f"unknown array dimension '{dim}'{did_you_mean(str(dim), dims)}", path=source, where=at
            )
        if not isinstance(unrollings, list):
            raise StemsInputError(
                f"expected a list such as ['K, 32'], not {unrollings!r}", path=source, where=at
            )
        for u in unrollings:
            loop = str(u).split(",")[0].strip()
            if loop not in LOOP_DIMS:
                raise StemsInputError(
                    f"unknown loop '{loop}'{did_you_mean(loop, LOOP_DIMS)}; stems loops are {', '.join(LOOP_DIMS)}",
                    path=source,
                    where=at,
                )
            if loop not in loops.setdefault(dim, []):
                loops[dim].append(loop)
    every = [d for d in LOOP_DIMS if d != "T"]
    return {d: loops.get(d) or every for d in dims}
