"""Loading hardware: a shipped name, a stems YAML file or `zigzag:PATH`, then `--set` overrides.

Every file goes the same way: read to a plain document (a ZigZag file is first translated into
a stems document), apply the overrides to the document, validate it against the schema table,
check what spans keys (operands, ports, dimension names) and build the frozen `Hardware`.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from stems.errors import StemsInputError, did_you_mean
from stems.hardware.schema import (
    ALTERNATIVES,
    HARDWARE,
    SCHEMA_VERSION,
    Either,
    Fields,
    Leaf,
    ListOf,
    Named,
    Node,
    check_tree,
    join,
)
from stems.hardware.spec import (
    MEMORY_OPERANDS,
    ArrayDim,
    ComputeUnits,
    Direction,
    Hardware,
    MemoryLevel,
    PEArray,
    Port,
    PortKind,
    Scaling,
    directions_of,
)

ZIGZAG_PREFIX = "zigzag:"
DEFAULT_HARDWARE = "stems-edge"


def shipped_dir() -> Path:
    """Where the shipped specs live: `stems/data/hw_specs`, a link to the repository's `hw_specs/`
    that a wheel build copies, so checkouts, editable installs and wheels all find them."""
    path = (Path(__file__).parent.parent / "data" / "hw_specs").resolve()
    if not path.is_dir():
        raise StemsInputError("cannot find the shipped hardware specs (stems/data/hw_specs)")
    return path


def list_shipped() -> list[str]:
    """Names of the shipped specs, for `--hw NAME`."""
    return sorted(p.stem for p in shipped_dir().glob("*.yaml"))


def load_hardware(ref: str | Path, overrides: Sequence[str] = ()) -> Hardware:
    """The hardware `ref` names: a shipped spec (`stems-edge`), a stems YAML path, or
    `zigzag:HW.yaml[,MAPPING.yaml]` (ZigZag's own files; the mapping gives the spatial loops)."""
    if isinstance(ref, Path):
        ref = str(ref)
    if ref.startswith(ZIGZAG_PREFIX):
        from stems.hardware.zigzag_yaml import read_zigzag

        path, _, mapping_path = ref[len(ZIGZAG_PREFIX) :].partition(",")
        if not path:
            raise StemsInputError("give a ZigZag hardware file: zigzag:HW.yaml[,MAPPING.yaml]", where=ref)
        doc = read_zigzag(path, mapping_path or None)
    else:
        path = str(_resolve(ref))
        doc = read_yaml(path, strict=True)
    doc = apply_overrides(doc, overrides, path=path)
    return build_hardware(doc, path=path, overrides=tuple(overrides))


def _resolve(ref: str) -> Path:
    if "/" in ref or "\\" in ref or ref.endswith((".yaml", ".yml")):
        return Path(ref)
    shipped = list_shipped()
    if ref in shipped:
        return shipped_dir() / f"{ref}.yaml"
    raise StemsInputError(
        f"no shipped hardware '{ref}'{did_you_mean(ref, shipped)}; shipped: {', '.join(shipped)} "
        "(or give a path to a .yaml file, or zigzag:PATH)"
    )


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice (PyYAML would silently keep the last)."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: list[Any] = []
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
        seen.append(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def read_yaml(path: str | Path, *, strict: bool, top: type = dict) -> Any:
    """A YAML file's content, every failure a one-line error. `strict` refuses duplicate keys;
    `top` is the type the document must be (a mapping, or a list for ZigZag mapping files)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise StemsInputError(f"cannot read: {err.strerror or err}", path=path) from None
    except UnicodeDecodeError as err:
        raise StemsInputError(f"not a YAML text file (byte {err.start} is not UTF-8)", path=path) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader if strict else yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise StemsInputError(f"{line}{problem}", path=path) from None
    if not isinstance(data, top):
        what = "mapping" if top is dict else "list"
        raise StemsInputError(f"expected a YAML {what} at the top of the file", path=path)
    return data


# ---- overrides -------------------------------------------------------------------------------


def apply_overrides(
    doc: dict[str, Any], overrides: Sequence[str], *, path: str | None = None
) -> dict[str, Any]:
    """A copy of `doc` with each `KEY=VALUE` applied. KEY is dotted (`memories.dram.size`; a
    memory's name alone stands for `memories.<name>`), VALUE is YAML. Unknown keys and values
    that fail their check are errors naming the override."""
    doc = copy.deepcopy(doc)
    for item in overrides:
        key, eq, raw = item.partition("=")
        key = key.strip()
        where = f"--set {key}"
        if not eq or not key:
            raise StemsInputError(
                f"expected KEY=VALUE, e.g. global_buffer.size=256KiB, not {item!r}", path=path
            )
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        parts = key.split(".")
        memories = doc.get("memories")
        if parts[0] not in HARDWARE.keys and isinstance(memories, dict) and parts[0] in memories:
            parts.insert(0, "memories")
        parent, last, node = _walk(doc, parts, path=path, where=where)
        check_tree(node, value, path=path, where=where)
        parent[last] = value
        if isinstance(parent, dict):
            parent.pop(ALTERNATIVES.get(parts[-1], ""), None)
    return doc


def _walk(
    doc: dict[str, Any], parts: list[str], *, path: str | None, where: str
) -> tuple[Any, str | int, Node]:
    """The container that holds the last key of `parts`, that key (a list index for explicit
    ports: `dram.ports.0.bw`) and the schema node of its value."""
    node: Node = HARDWARE
    target: Any = doc
    for depth, part in enumerate(parts):
        key: str | int = part
        if isinstance(node, Fields) and isinstance(target, dict):
            if part not in node.keys:
                choices = list(node.keys) + (list(doc.get("memories") or {}) if depth == 0 else [])
                raise StemsInputError(
                    f"unknown key '{part}'{did_you_mean(part, choices)}", path=path, where=where
                )
            child = node.keys[part]
        elif isinstance(node, Named) and isinstance(target, dict):
            if part not in target and not node.open_for_overrides:
                hint = did_you_mean(part, [str(k) for k in target])
                raise StemsInputError(f"no {node.what} '{part}'{hint}", path=path, where=where)
            check_tree(Leaf(node.check_name), part, path=path, where=where)
            child = node.entry
        elif isinstance(node, ListOf | Either) and isinstance(target, list):
            if not part.isdigit() or int(part) >= len(target):
                raise StemsInputError(
                    f"no item {part}: the list has {len(target)} (counted from 0)", path=path, where=where
                )
            key, child = int(part), node.entry if isinstance(node, ListOf) else node.items.entry
        else:
            raise StemsInputError(f"'{parts[depth - 1]}' holds no key '{part}'", path=path, where=where)
        if depth == len(parts) - 1:
            return target, key, child
        if isinstance(target, dict):
            target.setdefault(key, {})
        node, target = child, target[key]
    raise AssertionError("unreachable: parts is never empty")


# ---- building --------------------------------------------------------------------------------


def build_hardware(doc: dict[str, Any], *, path: str, overrides: tuple[str, ...] = ()) -> Hardware:
    """A validated `Hardware` from a stems document (overrides already applied)."""
    spec = check_tree(HARDWARE, doc, path=path, where="")
    if not spec["array"]:
        raise StemsInputError("lists no array dimension", path=path, where="array")
    dims = tuple(
        ArrayDim(name=name, size=d["size"], loops=d["loops"], systolic=d["systolic"])
        for name, d in spec["array"].items()
    )
    c = spec["compute"]
    if not c["op_energy"]:
        raise StemsInputError("lists no precision pair, e.g. 4x4: 0.16", path=path, where="compute.op_energy")
    compute = ComputeUnits(
        op_energy=tuple(sorted((i, w, pj) for (i, w), pj in c["op_energy"].items())),
        scaling=Scaling(c["scaling"]),
        neuron_update_pj=c["neuron_update_pj"],
        pool_pj=c["pool_pj"],
        eltwise_pj=c["eltwise_pj"],
        skips_zero_inputs=c["skips_zero_inputs"],
    )
    memories = _build_memories(spec["memories"], [d.name for d in dims], path=path)
    canonical = json.dumps(doc, sort_keys=True, default=str).encode()
    return Hardware(
        name=spec["name"],
        version=SCHEMA_VERSION,
        clock_hz=spec["clock"],
        array=PEArray(dims),
        compute=compute,
        memories=memories,
        description=spec["description"],
        source_path=path,
        sha256=hashlib.sha256(canonical).hexdigest(),
        overrides=overrides,
    )


def _build_memories(
    mems: dict[str, dict[str, Any]], dim_names: list[str], *, path: str
) -> tuple[MemoryLevel, ...]:
    if not mems:
        raise StemsInputError("lists no memory level", path=path, where="memories")
    names = list(mems)
    for name in names:  # a level's name stands for memories.<name> in --set, so it must not shadow a key
        if name in HARDWARE.keys:
            raise StemsInputError(
                f"a memory level cannot be named like the top-level key '{name}'",
                path=path,
                where=f"memories.{name}",
            )
    outermost: dict[str, str] = {}
    for operand in MEMORY_OPERANDS:
        holders = [n for n in names if operand in mems[n]["operands"]]
        if not holders:
            raise StemsInputError(
                f"no memory level holds operand {operand}; add it to a level's operands",
                path=path,
                where="memories",
            )
        outermost[operand] = holders[-1]
    top = names[-1]
    missing = [op for op in MEMORY_OPERANDS if op not in mems[top]["operands"]]
    if missing:
        raise StemsInputError(
            f"the outermost level must hold every operand (it is the backing store); it lacks {', '.join(missing)}",
            path=path,
            where=f"memories.{top}.operands",
        )
    levels = []
    for name, m in mems.items():
        where = f"memories.{name}"
        for d in m["served_dims"]:
            if d not in dim_names:
                raise StemsInputError(
                    f"unknown array dimension '{d}'{did_you_mean(d, dim_names)}; the array has {', '.join(dim_names)}",
                    path=path,
                    where=f"{where}.served_dims",
                )
        ports = _build_ports(name, m, outermost, path=path)
        levels.append(
            MemoryLevel(
                name=name,
                size_bits=m["size"],
                operands=frozenset(m["operands"]),
                served_dims=frozenset(m["served_dims"]),
                ports=tuple(sorted(ports, key=lambda p: p.name)),
                skips_zeros=m["skips_zeros"],
                double_buffered=m["double_buffered"],
            )
        )
    return tuple(levels)


def _energies(m: dict[str, Any], where: str, *, path: str) -> dict[str, tuple[str, float]]:
    """Per direction ('read'/'write'): ('bit' or 'word', pJ)."""
    out = {}
    for rw in ("read", "write"):
        per_bit, per_word = m.get(f"{rw}_pj_per_bit"), m.get(f"{rw}_pj_per_word")
        if per_bit is not None and per_word is not None:
            raise StemsInputError(
                f"give {rw}_pj_per_bit or {rw}_pj_per_word, not both",
                path=path,
                where=f"{where}.{rw}_pj_per_word",
            )
        if per_bit is None and per_word is None:
            raise StemsInputError(
                f"missing key '{rw}_pj_per_bit' (or {rw}_pj_per_word)",
                path=path,
                where=f"{where}.{rw}_pj_per_bit",
            )
        out[rw] = ("bit", per_bit) if per_bit is not None else ("word", per_word)
    return out


def _port(
    name: str,
    kind: PortKind,
    bw: int,
    min_bits: int,
    serves: set[tuple[str, Direction]],
    energy: dict[str, tuple[str, float]],
) -> Port:
    def per_bit(rw: str) -> float:
        unit, pj = energy[rw]
        return pj if unit == "bit" else pj / bw

    return Port(
        name=name,
        kind=kind,
        bw_bits=bw,
        min_bits=min_bits,
        read_pj_per_bit=per_bit("read") if kind is not PortKind.WRITE else 0.0,
        write_pj_per_bit=per_bit("write") if kind is not PortKind.READ else 0.0,
        serves=frozenset(serves),
    )


def _build_ports(name: str, m: dict[str, Any], outermost: dict[str, str], *, path: str) -> list[Port]:
    where = f"memories.{name}"
    energy = _energies(m, where, path=path)
    moves = [(op, d) for op in m["operands"] for d in directions_of(op)]
    if isinstance(m["ports"], str):
        return _preset_ports(m, moves, energy, where, path=path)
    for key in ("read_bw", "write_bw"):
        if key in m:
            raise StemsInputError(
                "not used when ports is a list: give each port its own bw", path=path, where=f"{where}.{key}"
            )
    ports: list[Port] = []
    served: dict[tuple[str, Direction], str] = {}
    for i, p in enumerate(m["ports"]):
        at = f"{where}.ports[{i}]"
        if any(q.name == p["name"] for q in ports):
            raise StemsInputError(f"port name '{p['name']}' is used twice", path=path, where=f"{at}.name")
        kind = PortKind(p["type"])
        min_bits = _min_access(
            p.get("min_access", m.get("min_access")), p["bw"], f"{at}.min_access", path=path
        )
        for op, d in p["serves"]:
            problem = _serve_problem(op, d, kind, m["operands"], served)
            if problem:
                raise StemsInputError(problem, path=path, where=f"{at}.serves")
            served[(op, d)] = p["name"]
        ports.append(_port(p["name"], kind, p["bw"], min_bits, set(p["serves"]), energy))
    for op, d in moves:
        needed = not (d in (Direction.FROM_HIGH, Direction.TO_HIGH) and outermost[op] == name)
        if needed and (op, d) not in served:
            raise StemsInputError(f"no port serves {op} {d}", path=path, where=f"{where}.ports")
    return ports


def _serve_problem(
    op: str, d: Direction, kind: PortKind, operands: tuple[str, ...], served: dict[tuple[str, Direction], str]
) -> str:
    """Why a port cannot serve `op` moving in `d`, or '' if it can."""
    if op not in operands:
        return f"operand {op} is not held by this level"
    if d not in directions_of(op):
        return f"{op} has no {d} movement (only O and V come back up)"
    if not kind.allows(d):
        return f"a {kind} port cannot serve {op} {d}"
    if (op, d) in served:
        return f"{op} {d} is already served by port '{served[(op, d)]}'"
    return ""


def _min_access(value: int | None, bw: int, where: str, *, path: str) -> int:
    if value is None:
        return bw
    if value > bw:
        raise StemsInputError(
            f"min_access {value} is wider than the port ({bw} bits)", path=path, where=where
        )
    return value


def _preset_ports(
    m: dict[str, Any],
    moves: list[tuple[str, Direction]],
    energy: dict[str, tuple[str, float]],
    where: str,
    *,
    path: str,
) -> list[Port]:
    """Ports of a preset, named as ZigZag names them (r_port_1, w_port_1, rw_port_1, ...)."""
    preset = m["ports"]
    for key in ("read_bw", "write_bw") if preset != "shared" else ("read_bw",):
        if key not in m:
            raise StemsInputError(f"missing key '{key}'", path=path, where=join(where, key))
    reads = {mv for mv in moves if mv[1].is_read}
    writes = {mv for mv in moves if not mv[1].is_read}
    r_bw, w_bw = m["read_bw"], m.get("write_bw", m["read_bw"])
    r_min = _min_access(m.get("min_access"), r_bw, f"{where}.min_access", path=path)
    w_min = _min_access(m.get("min_access"), w_bw, f"{where}.min_access", path=path)
    if preset == "shared":
        if w_bw != r_bw:
            raise StemsInputError(
                "a shared port has one width: write_bw must equal read_bw",
                path=path,
                where=f"{where}.write_bw",
            )
        return [_port("rw_port_1", PortKind.READ_WRITE, r_bw, r_min, reads | writes, energy)]
    if preset == "separate":
        return [
            _port("r_port_1", PortKind.READ, r_bw, r_min, reads, energy),
            _port("w_port_1", PortKind.WRITE, w_bw, w_min, writes, energy),
        ]
    ports = []
    for kind, bw, min_bits, dirs in (
        (PortKind.READ, r_bw, r_min, (Direction.TO_LOW, Direction.TO_HIGH)),
        (PortKind.WRITE, w_bw, w_min, (Direction.FROM_HIGH, Direction.FROM_LOW)),
    ):
        prefix = "r" if kind is PortKind.READ else "w"
        for d in dirs:
            serves = {mv for mv in moves if mv[1] is d}
            if serves:
                number = sum(p.kind is kind for p in ports) + 1
                ports.append(_port(f"{prefix}_port_{number}", kind, bw, min_bits, serves, energy))
    return ports
