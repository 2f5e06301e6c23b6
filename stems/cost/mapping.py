"""An intra-layer mapping: which loops unroll across the PE array, the order of the temporal loops, and
where each operand's memory levels cut that order.

This is ZigZag's "uneven" per-level temporal mapping in compact form, and exactly what a CP-SAT
mapper decides (loop positions and cuts):

* `spatial`: per array dimension, the loops unrolled along it with their factors, e.g.
  ``D1: {K: 32}, D2: {C: 3}``. Partial use is allowed (C=3 on a 32-wide D2); several loops may share
  an array dimension (their product must fit it); each loop must be one the dimension allows.
* `temporal`: one ordered list of (loop, factor), innermost first, every factor > 1. Per loop
  dimension the factors multiply to ceil(size / product of its spatial factors). A spatial factor
  that does not divide its loop is spread evenly over the temporal trips, as ZigZag does (C=48 on 32
  PEs: 2 trips of 24 PEs each).
* `cuts`: per operand (I, W, O and, for stateful layers, V), per memory level holding it
  (innermost first, by name; levels that bypass the operand have no cut): how many of the innermost
  temporal loops that level's tile contains. Cuts never decrease going out and the outermost level
  holds all loops. Level j's own loops are ``temporal[cut[j-1]:cut[j]]`` (cut[-1] = 0).

What the cost model reads from it:

* A tile of a level (one instance) is what the loops below its cut touch, times the spatial loops of
  the array dimensions that level serves (a spatial loop belongs to the lowest level of the operand
  serving its array dimension; above that level the copies are separate instances).
* Stationarity: the operand's irrelevant loops directly above a cut do not refill the tile, so the
  cut is raised past them (ZigZag's merge-down); refills happen once per iteration of the loops above
  the raised cut. At the array, the irrelevant loops at the very bottom of the nest keep the operand
  on the PE's input (read once, used many times).
* Validity: the rules above, capacity (per instance; operands sharing a level share its size; a
  double-buffered level counts twice every tile that is not the operand's whole remaining share;
  partial sums count at partial-sum bits where they accumulate) and, for stateful layers, every T
  loop outside every C, FY, FX loop, and no spatial T.

Plain-data form (`to_dict`), as in mapping files::

    spatial: {D1: {K: 32}, D2: {C: 3}}
    temporal: [[FX, 7], [FY, 7], [OY, 16], [OY, 7], [OX, 112], [K, 2]]
    cuts: {I: {sram_2MB: 6, dram: 6}, W: {rf_128B: 6, dram: 6}, O: {rf_2B: 2, sram_2MB: 6, dram: 6}}
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass
from typing import Any

from stems.errors import StemsInputError
from stems.workload.model import LOOP_DIMS

OPERANDS = ("I", "W", "O", "V")

Loops = tuple[tuple[str, int], ...]


def _pairs(items: MappingABC[str, int] | Iterable[tuple[str, int]] | Iterable[list[Any]]) -> Loops:
    pairs = items.items() if isinstance(items, MappingABC) else items
    return tuple((str(k), v) for k, v in pairs)


@dataclass(frozen=True)
class Mapping:
    """A spatial unrolling, a temporal loop order (innermost first) and per-operand level cuts.

    Hashable and immutable; build it with `Mapping.of` (canonical order) from dicts and lists.
    `stems.cost.price` validates it against a layer and hardware and says why it is invalid.
    """

    spatial: tuple[tuple[str, Loops], ...]
    temporal: Loops
    cuts: tuple[tuple[str, Loops], ...]

    @classmethod
    def of(
        cls,
        spatial: MappingABC[str, MappingABC[str, int]],
        temporal: Iterable[tuple[str, int]] | Iterable[list[Any]],
        cuts: MappingABC[str, MappingABC[str, int]],
    ) -> Mapping:
        """A mapping from plain containers: {array dim: {loop: factor}}, [(loop, factor), ...] innermost
        first, {operand: {level: cut}} innermost level first.

        Canonical, so equal mappings compare and hash equal whatever the dicts' order: array dimensions
        sorted by name, their loops and the operands in the usual order (T B G K C OY OX FY FX; I W O V).
        """
        loop_rank = {d: i for i, d in enumerate(LOOP_DIMS)}
        op_rank = {op: i for i, op in enumerate(OPERANDS)}
        return cls(
            spatial=tuple(
                (
                    str(a),
                    tuple(sorted(_pairs(loops), key=lambda x: (loop_rank.get(x[0], len(loop_rank)), x[0]))),
                )
                for a, loops in sorted(spatial.items())
            ),
            temporal=_pairs(temporal),
            cuts=tuple(
                (str(op), _pairs(levels))
                for op, levels in sorted(cuts.items(), key=lambda x: (op_rank.get(x[0], len(op_rank)), x[0]))
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data for YAML/JSON mapping files; `from_dict` reads it back."""
        return {
            "spatial": {a: dict(loops) for a, loops in self.spatial},
            "temporal": [[d, f] for d, f in self.temporal],
            "cuts": {op: dict(levels) for op, levels in self.cuts},
        }

    @classmethod
    def from_dict(cls, data: MappingABC[str, Any], *, where: str | None = None) -> Mapping:
        """The mapping `to_dict` wrote; shape errors are one-line `StemsInputError`s."""
        try:
            spatial, temporal, cuts = data["spatial"] or {}, data["temporal"] or [], data["cuts"]
            extra = set(data) - {"spatial", "temporal", "cuts"}
            if extra:
                raise StemsInputError(f"unknown mapping key(s) {', '.join(sorted(extra))}", where=where)
            for d, f in temporal:
                if not isinstance(f, int) or isinstance(f, bool):
                    raise TypeError(f"factor of {d} must be an integer, not {f!r}")
            for loops in [*spatial.values(), *cuts.values()]:
                if not all(isinstance(v, int) and not isinstance(v, bool) for v in loops.values()):
                    raise TypeError(f"expected integers in {dict(loops)}")
            return cls.of(spatial, temporal, cuts)
        except StemsInputError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise StemsInputError(
                f"expected a mapping with spatial {{dim: {{loop: factor}}}}, temporal [[loop, factor], ...] "
                f"and cuts {{operand: {{level: cut}}}} ({err})",
                where=where,
            ) from None

    def spatial_factor(self, loop: str) -> int:
        """Product of the spatial factors of `loop` over all array dimensions."""
        out = 1
        for _, loops in self.spatial:
            for d, f in loops:
                if d == loop:
                    out *= f
        return out

    def cuts_of(self, operand: str) -> Loops:
        """(level, cut) pairs of `operand`, innermost first (empty if not given)."""
        return next((levels for op, levels in self.cuts if op == operand), ())

    def __str__(self) -> str:
        """The loop nest, outermost loop first, with each operand's level boundaries drawn between loops."""
        sp = "  ".join(f"{a}{{{', '.join(f'{d}:{f}' for d, f in loops)}}}" for a, loops in self.spatial)
        n = len(self.temporal)
        below: dict[int, list[str]] = {}
        for op, levels in self.cuts:
            for level, cut in levels[:-1]:
                below.setdefault(cut, []).append(f"{op}@{level}")
        lines = [f"spatial: {sp or '-'}"]
        tops = ", ".join(f"{op}@{levels[-1][0]}" for op, levels in self.cuts if levels)
        lines.append(f"  == {tops}" if tops else "  ==")
        for cut in range(n, -1, -1):
            if cut in below:
                lines.append(f"  -- {', '.join(below[cut])}")
            if cut:
                d, f = self.temporal[cut - 1]
                lines.append(f"  for {d} in {f}")
        return "\n".join(lines)
