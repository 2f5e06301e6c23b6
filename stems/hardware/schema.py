"""The hardware file schema as data, so validation, `--set` overrides and `stems schema hardware`
all read one table and cannot drift apart.

A schema is a tree of nodes: `Fields` (a mapping with fixed keys), `Named` (a mapping from
user-chosen names to entries), `ListOf`, `Either` (a string or a list) and `Leaf` (a value with a
check). `check_tree` validates a document against a node and returns it normalised; every error
is a one-line `StemsInputError` naming the file and the dotted key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from stems.errors import StemsInputError, did_you_mean
from stems.hardware.spec import MEMORY_OPERANDS, Direction, PortKind, Scaling
from stems.hardware.units import UnitError, parse_frequency, parse_size
from stems.workload.model import LOOP_DIMS

SCHEMA_VERSION = 1
VERSION_KEY = "stems_hardware"
PORT_PRESETS = ("separate", "shared", "per_direction")


class Invalid(ValueError):
    """A value that fails its check; the walker adds the file and key."""


@dataclass(frozen=True)
class Leaf:
    check: Callable[[Any], Any]


@dataclass(frozen=True)
class Fields:
    keys: Mapping[str, Node]
    required: frozenset[str] = frozenset()
    defaults: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Named:
    """Entries keyed by a user-chosen name; `check_name` validates (and may convert) each name."""

    entry: Node
    what: str
    check_name: Callable[[Any], Any]
    open_for_overrides: bool = False  # `--set` may add a new entry (e.g. a precision pair)


@dataclass(frozen=True)
class ListOf:
    entry: Node


@dataclass(frozen=True)
class Either:
    """A string checked by `text`, or a list checked by `items` (a port preset or explicit ports)."""

    text: Leaf
    items: ListOf


Node = Leaf | Fields | Named | ListOf | Either


def check_tree(node: Node, value: Any, *, path: str | None, where: str) -> Any:
    """`value` validated against `node`: defaults filled, leaves converted, names checked."""
    if isinstance(node, Leaf):
        try:
            return node.check(value)
        except (Invalid, UnitError) as err:
            raise StemsInputError(str(err), path=path, where=where) from None
    if isinstance(node, Either):
        if isinstance(value, str):
            return check_tree(node.text, value, path=path, where=where)
        return check_tree(node.items, value, path=path, where=where)
    if isinstance(node, ListOf):
        if not isinstance(value, list):
            raise StemsInputError(f"expected a list, not {value!r}", path=path, where=where)
        return [check_tree(node.entry, v, path=path, where=f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, dict):
        raise StemsInputError(f"expected a mapping, not {value!r}", path=path, where=where)
    if isinstance(node, Named):
        out = {}
        for name, entry in value.items():
            at = f"{where}.{name}" if where else str(name)
            try:
                key = node.check_name(name)
            except Invalid as err:
                raise StemsInputError(str(err), path=path, where=at) from None
            out[key] = check_tree(node.entry, entry, path=path, where=at)
        return out
    for key in value:
        if key not in node.keys:
            hint = did_you_mean(str(key), list(node.keys))
            raise StemsInputError(f"unknown key '{key}'{hint}", path=path, where=join(where, key))
    for key in sorted(node.required - value.keys()):
        raise StemsInputError(f"missing key '{key}'", path=path, where=join(where, key))
    out = dict(node.defaults)
    for key, v in value.items():
        out[key] = check_tree(node.keys[key], v, path=path, where=join(where, key))
    return out


def join(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


# ---- leaf checks -----------------------------------------------------------------------------


def _version(value: Any) -> int:
    if value != SCHEMA_VERSION or isinstance(value, bool):
        raise Invalid(f"unsupported schema version {value!r}; this stems reads version {SCHEMA_VERSION}")
    return SCHEMA_VERSION


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid(f"expected text, not {value!r}")
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"expected a non-empty name, not {value!r}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"expected true or false, not {value!r}")
    return value


def _number(value: Any) -> float:
    """A float from a number or a numeric string (PyYAML reads `1e-3` as a string)."""
    if isinstance(value, bool):
        raise Invalid(f"expected a number, not {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise Invalid(f"expected a number, not {value!r}") from None


def _energy(value: Any) -> float:
    pj = _number(value)
    if not pj >= 0.0 or pj == float("inf"):
        raise Invalid(f"energy must be a finite number of pJ >= 0, not {value!r}")
    return pj


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise Invalid(f"expected a positive integer, not {value!r}")
    return value


def _size(value: Any) -> int:
    bits = parse_size(value)
    if bits <= 0:
        raise Invalid(f"size must be positive, not {value!r}")
    return bits


def _clock(value: Any) -> float:
    hz = parse_frequency(value)
    if not hz > 0:
        raise Invalid(f"clock must be positive, not {value!r}")
    return hz


def _choice(choices: tuple[str, ...], what: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            hint = did_you_mean(str(value), choices)
            raise Invalid(f"unknown {what} {value!r}{hint}; choose one of {', '.join(choices)}")
        return value

    return check


def _names_from(
    choices: tuple[str, ...], what: str, *, allow_empty: bool
) -> Callable[[Any], tuple[str, ...]]:
    one = _choice(choices, what)

    def check(value: Any) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise Invalid(f"expected a list of {what}s, not {value!r}")
        if not value and not allow_empty:
            raise Invalid(f"lists no {what}; give at least one of {', '.join(choices)}")
        names = tuple(one(v) for v in value)
        if len(set(names)) < len(names):
            raise Invalid(f"repeats a {what}: {value!r}")
        return names

    return check


def _dim_names(value: Any) -> tuple[str, ...]:
    """Array dimension names; whether they exist is checked once the array is known."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Invalid(f"expected a list of array dimension names, not {value!r}")
    if len(set(value)) < len(value):
        raise Invalid(f"repeats an array dimension: {value!r}")
    return tuple(value)


def _precision_pair(name: Any) -> tuple[int, int]:
    parts = str(name).split("x")
    if len(parts) != 2 or not all(p.isdigit() and 1 <= int(p) <= 32 for p in parts):
        raise Invalid(
            f"precision pair must read '<input bits>x<weight bits>' (bits 1..32), e.g. '4x4', not {name!r}"
        )
    return int(parts[0]), int(parts[1])


def _serves(value: Any) -> tuple[tuple[str, Direction], ...]:
    """['O to_low', ...]: which operand moves in which direction through a port."""
    if not isinstance(value, list) or not value:
        raise Invalid(f"expected a non-empty list such as ['O to_low', 'O to_high'], not {value!r}")
    out = []
    for item in value:
        parts = str(item).split()
        if len(parts) != 2:
            raise Invalid(f"expected '<operand> <direction>' such as 'O to_low', not {item!r}")
        operand = _choice(MEMORY_OPERANDS, "operand")(parts[0])
        direction = _choice(tuple(Direction), "direction")(parts[1])
        out.append((operand, Direction(direction)))
    return tuple(out)


# ---- the stems hardware schema ---------------------------------------------------------------

ARRAY_DIM = Fields(
    keys={
        "size": Leaf(_count),
        "loops": Leaf(_names_from(LOOP_DIMS, "loop", allow_empty=False)),
        "systolic": Leaf(_bool),
    },
    required=frozenset({"size", "loops"}),
    defaults={"systolic": False},
)

COMPUTE = Fields(
    keys={
        "op_energy": Named(Leaf(_energy), "precision pair", _precision_pair, open_for_overrides=True),
        "scaling": Leaf(_choice(tuple(Scaling), "scaling")),
        "neuron_update_pj": Leaf(_energy),
        "pool_pj": Leaf(_energy),
        "eltwise_pj": Leaf(_energy),
        "skips_zero_inputs": Leaf(_bool),
    },
    required=frozenset({"op_energy"}),
    defaults={
        "scaling": Scaling.BITS_PRODUCT.value,
        "neuron_update_pj": 0.0,
        "pool_pj": 0.0,
        "eltwise_pj": 0.0,
        "skips_zero_inputs": False,
    },
)

PORT = Fields(
    keys={
        "name": Leaf(_name),
        "type": Leaf(_choice(tuple(PortKind), "port type")),
        "bw": Leaf(_size),
        "min_access": Leaf(_size),
        "serves": Leaf(_serves),
    },
    required=frozenset({"name", "type", "bw", "serves"}),
)

MEMORY = Fields(
    keys={
        "size": Leaf(_size),
        "operands": Leaf(_names_from(MEMORY_OPERANDS, "operand", allow_empty=False)),
        "served_dims": Leaf(_dim_names),
        "read_pj_per_bit": Leaf(_energy),
        "write_pj_per_bit": Leaf(_energy),
        "read_pj_per_word": Leaf(_energy),
        "write_pj_per_word": Leaf(_energy),
        "read_bw": Leaf(_size),
        "write_bw": Leaf(_size),
        "min_access": Leaf(_size),
        "ports": Either(Leaf(_choice(PORT_PRESETS, "port preset")), ListOf(PORT)),
        "skips_zeros": Leaf(_bool),
        "double_buffered": Leaf(_bool),
    },
    required=frozenset({"size", "operands", "served_dims"}),
    defaults={"ports": "separate", "skips_zeros": False, "double_buffered": False},
)

ALTERNATIVES = {
    "read_pj_per_bit": "read_pj_per_word",
    "read_pj_per_word": "read_pj_per_bit",
    "write_pj_per_bit": "write_pj_per_word",
    "write_pj_per_word": "write_pj_per_bit",
}
"""Keys that exclude each other: setting one with `--set` drops the other."""

HARDWARE = Fields(
    keys={
        VERSION_KEY: Leaf(_version),
        "name": Leaf(_name),
        "description": Leaf(_text),
        "clock": Leaf(_clock),
        "array": Named(ARRAY_DIM, "array dimension", _name),
        "compute": COMPUTE,
        "memories": Named(MEMORY, "memory level", _name),
    },
    required=frozenset({VERSION_KEY, "name", "clock", "array", "compute", "memories"}),
    defaults={"description": ""},
)


def hardware_schema() -> str:
    """The documented schema, as an annotated example (printed by `stems schema hardware`)."""
    return f"""\
# stems hardware spec, schema version {SCHEMA_VERSION}. Unknown keys are errors. Units: sizes and
# bandwidths in bits unless suffixed (4bit, 64B, 256KiB, 1MiB, 10Gbit; k/M/G = 1000^n,
# Ki/Mi/Gi = 1024^n, B = 8 bits); energies in pJ; clock in Hz unless suffixed (1GHz, 700MHz).
# Any key can be overridden on the command line: --set global_buffer.size=256KiB (a memory's
# name stands for memories.<name>), --set clock=500MHz, --set array.D1.size=64,
# --set compute.op_energy.8x8=0.64, --set dram.ports.0.bw=128 (explicit ports, counted from 0).
# Values are YAML: --set array.D3.loops=[OY,OX].
{VERSION_KEY}: {SCHEMA_VERSION}
name: my-core
description: where every number comes from   # optional
clock: 1GHz                    # only turns cycles into seconds
array:                         # PE array dimensions; any names; product = number of PEs
  D1: {{size: 32, loops: [K]}}   # loops that may unroll spatially here: {", ".join(LOOP_DIMS)}
  D2: {{size: 16, loops: [OY, OX], systolic: false}}  # systolic: operands hop one PE per cycle
compute:
  op_energy:                   # pJ per operation, keyed '<input bits>x<weight bits>' (required)
    1x4: 0.07                  # 1-bit input: an accumulate (the spike gates the weight)
    4x4: 0.16                  # multi-bit input: a MAC
  scaling: bits_product        # unlisted pairs, from the nearest listed pair of the same kind:
                               #   bits_product scales by input_bits*weight_bits; constant does not
  neuron_update_pj: 0          # per neuron per timestep (default 0)
  pool_pj: 0                   # per pooling-window element on the pooling unit (default 0)
  eltwise_pj: 0                # per element of an add/mul on the SIMD unit (default 0)
  skips_zero_inputs: false     # event-driven: only non-zero inputs cost an operation
memories:                      # innermost (registers) first; the last is off-chip and holds all
  w_reg:
    size: 4bit
    operands: [W]              # any of {", ".join(MEMORY_OPERANDS)} (inputs, weights, partial sums, state)
    served_dims: [D2]          # array dims sharing one instance ([] = one per PE)
    read_pj_per_bit: 0         # or read_pj_per_word: energy of one access of a full port word
    write_pj_per_bit: 0        # or write_pj_per_word
    read_bw: 4                 # bits per cycle per read port (= the word one access moves)
    write_bw: 4                # bits per cycle per write port
    min_access: 4              # optional: transfers round up to this many bits (default: the port width)
    ports: separate            # {" | ".join(PORT_PRESETS)} | a list (below); default separate
    skips_zeros: false         # stores and moves only non-zero elements
    double_buffered: false     # a tile needs twice its size (ZigZag force_double_buffering)
  dram:
    size: 10Gbit
    operands: [I, W, O, V]
    served_dims: [D1, D2]
    read_pj_per_word: 700      # per 64-bit word: 10.94 pJ/bit
    write_pj_per_word: 750
    ports:                     # explicit ports: no read_bw/write_bw on the level then
      - name: rw_port_1
        type: read_write       # {" | ".join(PortKind)}
        bw: 64
        min_access: 64         # optional, default bw
        serves: [I to_low, I from_high, W to_low, W from_high, O to_low, O from_high,
                 O from_low, O to_high, V to_low, V from_high, V from_low, V to_high]
# Port presets: separate = one read port (read_bw) for every read, one write port (write_bw)
# for every write; shared = one read_write port of read_bw = write_bw; per_direction = a port
# per direction. Directions: to_low = read to the level below / the PEs, from_high = filled
# from above, from_low = written back from below (O, V only), to_high = read out to the level
# above (O, V only). Every operand needs to_low and from_high ports, O and V also from_low and
# to_high (the outermost level of an operand needs no *_high port).
"""
