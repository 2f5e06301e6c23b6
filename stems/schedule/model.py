"""The inter-layer schedule: how a network is cut into segments, how each segment runs, and where every
tensor lives. Every choice is a small discrete value, so a CP-SAT model can pick them later.

Choices and their domains
-------------------------
Per segment (a set of layers, run to completion before the next segment starts):

* ``time_batch`` in the divisors of T: 1 is sequential (ST: each timestep runs through the whole
  segment before the next), T is time-batched (TB: one unit covers all timesteps), 1 < t < T batches.
* ``tile``: ``None`` is layer by layer (LBL: a unit covers the whole feature map); ``Tile(cols, rows)``
  is fused depth-first over spatial tiles. ``cols`` counts columns of the segment's widest layer
  (``rows``: rows of its tallest layer, ``None`` = full height): the segment's first layers advance by
  one tile per step and every other layer computes whatever its inputs allow, depth-first (see
  `stems.schedule.units`). ``Tile(1)`` is the paper's one-column tile.
* ``halo``: ``cache`` keeps the producer columns a later tile still needs on chip; ``recompute`` makes
  each tile recompute the overlap instead. Recompute applies only to layers that can recompute: stateless
  (a stateful neuron's state advances once per column per timestep, so a column cannot run twice), not a
  network output, and all of whose consumers are in the segment and read it on chip; others cache. A
  recomputing layer that reads DRAM re-fetches whatever its stream window (one output column's receptive
  field) no longer holds.

Per stateful layer (``state``): ``keep`` (on chip from the layer's first unit to its last), ``spill``
(streamed: each unit reads its tile of state from DRAM and writes it back), ``remove`` (the layer is made
stateless: a model change that needs retraining, reported with the state bits it saves).

Per weighted layer (``weights``): ``resident`` (fetched once, on chip from the layer's first unit to its
last) or ``refetch`` (fetched by every unit of the layer, i.e. per time batch and per tile; every weight
read once per unit). A re-fetching unit streams its weights through in slices of one output channel
(that channel's C x FY x FX weights in its group plus its recurrent row), each used for every position
and timestep of the unit: the buffer holds two slices (the next arrives while one computes) and the
unit's whole input tiles, which the slices all read. When that is more than the whole tensor, the unit
holds the whole tensor instead and its inputs stream through their windows (`units.refetch_bits`).

Per edge producer -> consumer (``edges``): ``onchip`` (the consumer reads the producer's tile from the
buffer, which keeps every element until its last on-chip reader has run) or ``dram`` (the producer writes
its output to DRAM once; the consumer streams it back). The network input always comes from DRAM and
every network output goes to DRAM.

``state_io``: ``load_store`` (the paper's model: a kept state is read from DRAM before its first use and
written back after its last, so every state crosses the chip boundary at least once per inference) or
``none`` (initial state is zero and the final state is dropped: a kept state never crosses).

Residency is thus an explicit decision of the schedule, not an emergent replacement policy. The STEMS
code's priority eviction (tensors ranked by how many computation nodes still need them; the lowest
evicted, states written back, weights dropped, activations written back) corresponds to choosing
``spill`` / ``refetch`` / ``dram`` for the tensors it would evict; the greedy rule of the baselines
(`stems.schedule.baselines`) is a static version of that ranking.

Defaults for entries a schedule leaves out: ``keep``, ``resident``, ``onchip``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from stems.errors import StemsInputError, did_you_mean
from stems.workload.model import Workload

SCHEDULE_VERSION = 1
INPUT = "<input>"
"""Source name of a layer's network input (it has no producer layer; it always lives in DRAM)."""


class StatePolicy(StrEnum):
    KEEP = "keep"
    SPILL = "spill"
    REMOVE = "remove"


class WeightPolicy(StrEnum):
    RESIDENT = "resident"
    REFETCH = "refetch"


class EdgeHome(StrEnum):
    ONCHIP = "onchip"
    DRAM = "dram"


class Halo(StrEnum):
    CACHE = "cache"
    RECOMPUTE = "recompute"


class StateIO(StrEnum):
    LOAD_STORE = "load_store"
    NONE = "none"


@dataclass(frozen=True)
class Tile:
    """A fused tile: `cols` columns of the segment's widest layer, `rows` rows of its tallest (None = all)."""

    cols: int = 1
    rows: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.cols, int) or self.cols < 1:
            raise StemsInputError(f"tile cols must be a positive integer, not {self.cols!r}")
        if self.rows is not None and (not isinstance(self.rows, int) or self.rows < 1):
            raise StemsInputError(f"tile rows must be a positive integer or null, not {self.rows!r}")


@dataclass(frozen=True)
class Segment:
    """Layers run together: all time batches of the segment finish before the next segment starts."""

    layers: tuple[str, ...]
    time_batch: int = 1
    tile: Tile | None = None
    halo: Halo = Halo.CACHE

    @property
    def fused(self) -> bool:
        return self.tile is not None

    def label(self, timesteps: int) -> str:
        """ST-LBL, TB-F(1) ...: the paper's names, with the batch size when it is neither 1 nor T."""
        time = (
            "ST" if self.time_batch == 1 else "TB" if self.time_batch == timesteps else f"TB{self.time_batch}"
        )
        if self.tile is None:
            return f"{time}-LBL"
        rows = "" if self.tile.rows is None else f"x{self.tile.rows}r"
        return f"{time}-F({self.tile.cols}c{rows}{', recompute' if self.halo is Halo.RECOMPUTE else ''})"


@dataclass(frozen=True)
class ModelChange:
    """A change to the network a schedule makes (state removal): it must be retrained."""

    layer: str
    state_bits_saved: int
    note: str = "state removed: the layer is made stateless; retraining required"


def _frozen(m: Mapping[Any, Any] | None) -> Mapping[Any, Any]:
    return MappingProxyType(dict(m or {}))


@dataclass(frozen=True)
class Schedule:
    """An inter-layer schedule of one workload. Build with the constructor or `from_dict`; check against
    the workload with `validate` (every cost entry point does)."""

    segments: tuple[Segment, ...]
    state: Mapping[str, StatePolicy] = field(default_factory=dict)
    weights: Mapping[str, WeightPolicy] = field(default_factory=dict)
    edges: Mapping[tuple[str, str], EdgeHome] = field(default_factory=dict)
    state_io: StateIO = StateIO.LOAD_STORE
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", tuple(self.segments))
        object.__setattr__(self, "state", _frozen({k: StatePolicy(v) for k, v in self.state.items()}))
        object.__setattr__(self, "weights", _frozen({k: WeightPolicy(v) for k, v in self.weights.items()}))
        object.__setattr__(self, "edges", _frozen({tuple(k): EdgeHome(v) for k, v in self.edges.items()}))
        object.__setattr__(self, "state_io", StateIO(self.state_io))

    # Decisions, with defaults for what the schedule leaves out.
    def state_of(self, layer: str) -> StatePolicy:
        return self.state.get(layer, StatePolicy.KEEP)

    def weights_of(self, layer: str) -> WeightPolicy:
        return self.weights.get(layer, WeightPolicy.RESIDENT)

    def edge_home(self, producer: str, consumer: str) -> EdgeHome:
        if producer == INPUT:
            return EdgeHome.DRAM
        return self.edges.get((producer, consumer), EdgeHome.ONCHIP)

    def with_decisions(
        self,
        *,
        state: Mapping[str, StatePolicy] | None = None,
        weights: Mapping[str, WeightPolicy] | None = None,
        edges: Mapping[tuple[str, str], EdgeHome] | None = None,
        name: str | None = None,
    ) -> Schedule:
        """The same segments with some decisions overridden (merged over the current ones)."""
        return replace(
            self,
            state={**self.state, **(state or {})},
            weights={**self.weights, **(weights or {})},
            edges={**self.edges, **(edges or {})},
            name=self.name if name is None else name,
        )

    def removed(self) -> tuple[str, ...]:
        return tuple(n for n, p in self.state.items() if p is StatePolicy.REMOVE)

    def model_changes(self, workload: Workload) -> tuple[ModelChange, ...]:
        """One entry per layer whose state the schedule removes, with the state bits that saves."""
        return tuple(ModelChange(n, workload.layer(n).state_bits) for n in self.removed())

    def effective_workload(self, workload: Workload) -> Workload:
        """The workload the schedule runs: layers whose state is removed become stateless."""
        changed = {}
        for n in self.removed():
            layer = workload.layer(n)
            assert layer.neuron is not None
            changed[n] = replace(layer, neuron=replace(layer.neuron, stateful=False))
        return workload.replace_layers(changed) if changed else workload

    def validate(self, workload: Workload) -> None:
        """Raise StemsInputError naming the first problem: unknown names, a layer in no or two segments,
        an edge running backwards between segments, a time batch that does not divide T, a decision for a
        layer or edge that cannot take it."""
        names = [layer.name for layer in workload]
        known = set(names)
        if not self.segments:
            raise StemsInputError("a schedule needs at least one segment")
        seg_of: dict[str, int] = {}
        for i, seg in enumerate(self.segments):
            where = f"segment {i}"
            if not seg.layers:
                raise StemsInputError("segment has no layers", where=where)
            for n in seg.layers:
                if n not in known:
                    raise StemsInputError(f"no layer '{n}'{did_you_mean(n, known)}", where=where)
                if n in seg_of:
                    raise StemsInputError(f"layer '{n}' is in segments {seg_of[n]} and {i}", where=where)
                seg_of[n] = i
            t = workload.timesteps
            if not isinstance(seg.time_batch, int) or seg.time_batch < 1 or t % seg.time_batch:
                raise StemsInputError(
                    f"time_batch {seg.time_batch!r} must divide the {t} timesteps (1 = sequential, {t} = batched)",
                    where=where,
                )
        missing = [n for n in names if n not in seg_of]
        if missing:
            raise StemsInputError(f"layers in no segment: {', '.join(missing)}")
        for src, dst in workload.edges:
            if seg_of[src] > seg_of[dst]:
                raise StemsInputError(
                    f"edge {src} -> {dst} runs from segment {seg_of[src]} back to segment {seg_of[dst]}"
                )
        for n, p in self.state.items():
            if n not in known:
                raise StemsInputError(f"state decision for unknown layer '{n}'{did_you_mean(n, known)}")
            if not workload.layer(n).stateful:
                raise StemsInputError(f"state '{p}' given for a stateless layer", where=n)
        for n, p in self.weights.items():
            if n not in known:
                raise StemsInputError(f"weights decision for unknown layer '{n}'{did_you_mean(n, known)}")
            if workload.layer(n).weights == 0:
                raise StemsInputError(f"weights '{p}' given for a layer without weights", where=n)
        edges = set(workload.edges)
        for e in self.edges:
            if e not in edges:
                raise StemsInputError(
                    f"edge decision for {e[0]} -> {e[1]}, which is not an edge of the network"
                )

    # Plain data for mapping files.
    def to_dict(self) -> dict[str, Any]:
        return {
            "schedule": SCHEDULE_VERSION,
            "name": self.name,
            "state_io": str(self.state_io),
            "segments": [
                {
                    "layers": list(s.layers),
                    "time_batch": s.time_batch,
                    "tile": None if s.tile is None else {"cols": s.tile.cols, "rows": s.tile.rows},
                    "halo": str(s.halo),
                }
                for s in self.segments
            ],
            "state": {k: str(v) for k, v in sorted(self.state.items())},
            "weights": {k: str(v) for k, v in sorted(self.weights.items())},
            "edges": {f"{a}->{b}": str(v) for (a, b), v in sorted(self.edges.items())},
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Schedule:
        """Inverse of `to_dict`; bad keys or values raise StemsInputError naming them."""
        allowed = {"schedule", "name", "state_io", "segments", "state", "weights", "edges"}
        for k in doc:
            if k not in allowed:
                raise StemsInputError(f"unknown schedule key '{k}'{did_you_mean(k, allowed)}")
        if doc.get("schedule", SCHEDULE_VERSION) != SCHEDULE_VERSION:
            raise StemsInputError(
                f"schedule version {doc.get('schedule')!r}; this stems reads {SCHEDULE_VERSION}"
            )
        try:
            segments = []
            for i, s in enumerate(doc.get("segments") or []):
                extra = set(s) - {"layers", "time_batch", "tile", "halo"}
                if extra:
                    raise StemsInputError(f"unknown segment keys {sorted(extra)}", where=f"segment {i}")
                tile = s.get("tile")
                segments.append(
                    Segment(
                        layers=tuple(s["layers"]),
                        time_batch=int(s.get("time_batch", 1)),
                        tile=None if tile is None else Tile(int(tile.get("cols", 1)), tile.get("rows")),
                        halo=Halo(s.get("halo", "cache")),
                    )
                )
            edges = {}
            for key, v in (doc.get("edges") or {}).items():
                a, sep, b = key.partition("->")
                if not sep:
                    raise StemsInputError(f"edge key '{key}' must read PRODUCER->CONSUMER")
                edges[(a.strip(), b.strip())] = EdgeHome(v)
            return cls(
                segments=tuple(segments),
                state={k: StatePolicy(v) for k, v in (doc.get("state") or {}).items()},
                weights={k: WeightPolicy(v) for k, v in (doc.get("weights") or {}).items()},
                edges=edges,
                state_io=StateIO(doc.get("state_io", "load_store")),
                name=str(doc.get("name", "")),
            )
        except (KeyError, ValueError, TypeError, AttributeError) as e:
            raise StemsInputError(f"bad schedule: {e}") from None


def blocks_of(workload: Workload) -> list[str]:
    """Block labels in network order (by each block's first layer)."""
    return list(dict.fromkeys(layer.block for layer in workload))


@dataclass(frozen=True)
class BlockChoice:
    """What one block does: the paper's time bit (as a batch size) and depth bit (as a tile)."""

    time_batch: int
    tile: Tile | None = None
    halo: Halo = Halo.CACHE


def segments_from_blocks(workload: Workload, choices: Sequence[BlockChoice]) -> tuple[Segment, ...]:
    """One choice per block (network order). Consecutive blocks with the same choice form one segment:
    the STEMS scheduler runs consecutive fused blocks as one fused group and lets sequential blocks
    interleave timestep by timestep, which is what one segment models."""
    blocks = blocks_of(workload)
    if len(choices) != len(blocks):
        raise StemsInputError(
            f"{len(choices)} block choices given but the network has {len(blocks)} blocks ({', '.join(map(repr, blocks))})"
        )
    choice_of = dict(zip(blocks, choices, strict=True))
    segments: list[tuple[BlockChoice, list[str]]] = []
    for layer in workload:
        c = choice_of[layer.block]
        if segments and segments[-1][0] == c:
            segments[-1][1].append(layer.name)
        else:
            segments.append((c, [layer.name]))
    return tuple(Segment(tuple(ls), c.time_batch, c.tile, c.halo) for c, ls in segments)
