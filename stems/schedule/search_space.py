"""What the schedule search chooses from: stages (blocks), the per-segment menu and the candidate segments.

A *stage* is a block of the network (a run of layers with one block label, in network order); stages are
merged where needed so that every producer's consumers lie in one stage (then an activation crossing a
segment boundary has one reader segment). A segment is a run of consecutive stages with one
configuration (time batch, tile); a *candidate* is one (run of stages, configuration) pair. The search
picks candidates that cover every stage exactly once.

Tiles are fused column tiles of the segment's widest layer at full height with the halo cached
(`Tile(cols)`), or layer by layer (None). A tile as wide as the segment gives the units of layer by layer,
and two tiles that give the same units are the same choice: both are merged into the smaller choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stems.errors import StemsInputError
from stems.schedule.model import INPUT, Segment, Tile
from stems.workload.model import Workload

DEFAULT_TILES: tuple[int | None, ...] = (None, 1, 2, 4, 8)
"""Layer by layer, then fused tiles of 1, 2, 4 and 8 columns of the segment's widest layer."""


@dataclass(frozen=True)
class SearchSpace:
    """The menu. `time_batches` None = every divisor of T; `tiles` None = layer by layer, an int = that
    many columns; `cuts` False = the whole network is one segment (a single-mode schedule)."""

    time_batches: tuple[int, ...] | None = None
    tiles: tuple[int | None, ...] = DEFAULT_TILES
    cuts: bool = True

    def batches_for(self, timesteps: int) -> tuple[int, ...]:
        if self.time_batches is None:
            return tuple(d for d in range(1, timesteps + 1) if timesteps % d == 0)
        bad = [b for b in self.time_batches if b < 1 or timesteps % b]
        if bad:
            raise StemsInputError(f"time batches {bad} do not divide the {timesteps} timesteps")
        return tuple(sorted(set(self.time_batches)))

    def tile_menu(self) -> tuple[int | None, ...]:
        bad = [t for t in self.tiles if t is not None and (not isinstance(t, int) or t < 1)]
        if bad:
            raise StemsInputError(f"tile widths must be positive integers or None, not {bad}")
        fused = sorted({t for t in self.tiles if t is not None})
        return ((None,) if None in self.tiles else ()) + tuple(fused)


@dataclass(frozen=True)
class Stage:
    index: int
    blocks: tuple[str, ...]
    layers: tuple[str, ...]

    @property
    def label(self) -> str:
        return "+".join(b or "''" for b in self.blocks)


@dataclass(frozen=True)
class Config:
    time_batch: int
    tile: int | None  # columns; None = layer by layer

    def label(self, timesteps: int) -> str:
        return Segment(("x",), self.time_batch, None if self.tile is None else Tile(self.tile)).label(
            timesteps
        )


@dataclass(frozen=True)
class Candidate:
    """Stages first..last (inclusive) run as one segment with `config`."""

    index: int
    first: int
    last: int
    config: Config


def stages_of(workload: Workload) -> list[Stage]:
    """Blocks in network order, merged so that each producer's consumers lie in one stage, the same as
    the producer's or the next (an edge that skips a stage merges the stages it spans, so that what
    crosses a segment boundary is decided by the two segments beside it)."""
    order = [x.name for x in workload]
    runs: list[tuple[list[str], list[str]]] = []  # (blocks, layers)
    for name in order:
        block = workload.layer(name).block
        if runs and runs[-1][0][-1] == block:
            runs[-1][1].append(name)
        else:
            runs.append(([block], [name]))
    while True:
        stage_of = {n: i for i, (_, ls) in enumerate(runs) for n in ls}
        merge: tuple[int, int] | None = None
        for name in order:
            cs = {stage_of[c] for c in workload.successors(name)}
            if len(cs) > 1:
                merge = (min(cs), max(cs))
                break
            if cs and max(cs) > stage_of[name] + 1:
                merge = (stage_of[name] + 1, max(cs))
                break
        if merge is None:
            break
        a, b = merge
        blocks = [blk for blks, _ in runs[a : b + 1] for blk in blks]
        layers = [n for _, ls in runs[a : b + 1] for n in ls]
        runs[a : b + 1] = [(blocks, layers)]
    return [Stage(i, tuple(dict.fromkeys(b)), tuple(ls)) for i, (b, ls) in enumerate(runs)]


def consumer_stage(workload: Workload, stages: Sequence[Stage]) -> dict[str, int | None]:
    """The stage holding every consumer of each layer (None for a network output)."""
    stage_of = {n: s.index for s in stages for n in s.layers}
    out: dict[str, int | None] = {}
    for s in stages:
        for n in s.layers:
            cs = {stage_of[c] for c in workload.successors(n)}
            assert len(cs) <= 1
            out[n] = cs.pop() if cs else None
    return out


def non_input_sources(workload: Workload, layer: str) -> list[str]:
    return [p for p in workload.predecessors(layer) if p != INPUT]
