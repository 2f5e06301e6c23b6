"""The unit sequence a schedule executes: which region of which layer each unit computes, for which
timesteps, and which region of each input it reads.

A unit is (layer, spatial tile, time batch). Segments run in order; inside a segment the time batch is
the outermost loop, then the tile grid (row bands, then column steps), then the segment's layers in
network order. Layer-by-layer segments have one tile, the whole map.

Fused tiles (depth-first, data-driven like the STEMS scheduler's "deepest ready first"). A segment with
``Tile(cols=w, rows=h)`` has ``n_c = ceil(W / w)`` column steps and ``n_r = ceil(H / h)`` row bands, W and
H the widest and tallest output of its layers. After column step i a layer has finished its first
done_c(L, i) columns (rows alike, per band):

* a layer with no producer in the segment advances by its share of the tile:
  done_c(L, i) = min(OX, floor((i+1) w OX / W));
* every other layer computes all it can: the most columns whose receptive fields lie within what each
  in-segment producer has finished (producers outside the segment are complete).

With ``halo: cache`` the unit of L at (band r, step i) computes rows [done_r(r-1), done_r(r)) x columns
[done_c(i-1), done_c(i)), each element exactly once, and producers keep the columns a later unit still
reads (the halo: FX - stride columns for a stride-s conv). A layer that recomputes (see
`stems.schedule.model`) keeps nothing: at each step it computes the bounding box of what its consumers
read at that step, overlapping the previous step's box by the halo. Steps where a layer has nothing new
to compute have no unit of that layer.

Receptive fields (`read_range`) per axis: conv and pool windows use stride, padding and dilation
(clipped to the input); element-wise ops, concat and views read the same positions when the spatial
shapes agree; resize reads the proportional range; dense layers and non-aligned views read everything.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

from stems.errors import StemsInputError
from stems.schedule.model import INPUT, EdgeHome, Halo, Schedule, Segment
from stems.workload.model import Layer, Op, Workload

Range = tuple[int, int]
"""Half-open [lo, hi)."""

WINDOW_OPS = (Op.CONV, Op.MAXPOOL, Op.AVGPOOL, Op.SUMPOOL)
SAME_POSITION_OPS = (Op.ADD, Op.MUL, Op.CONCAT, Op.VIEW, Op.RESIZE)


@dataclass(frozen=True)
class Source:
    """One input tensor of a layer: its producer (or INPUT), its spatial shape, channels and bits per element."""

    name: str
    shape: tuple[int, int]  # (rows, cols)
    channels: int
    bits: int

    @property
    def element_bits(self) -> int:
        """Bits of one spatial position (all channels) for one timestep."""
        return self.channels * self.bits


def output_channels(layer: Layer) -> int:
    d = layer.dims
    return d.B * d.G * d.K


def refetch_bits(layer: Layer, beyond_windows: int) -> tuple[int, int]:
    """(weight bits, input bits) a re-fetching layer holds during a unit, beyond its stream windows, in
    the cheaper of two orders that both read every weight once per unit. Slice by slice: the weights
    stream through in slices of one output channel (its C x FY x FX weights in its group, plus its
    recurrent row), two at a time so the next arrives while one computes, each slice used for all the
    unit's positions and timesteps, so the unit's input tiles stay whole: `beyond_windows` bits more
    than the windows (counted for every input: one read on chip is held anyway, an over-count that
    keeps the choice independent of the edges). Column by column: the whole tensor; inputs stream."""
    d = layer.dims
    whole = layer.weights * layer.precision.W
    two = 2 * (d.C * d.FY * d.FX + layer.recurrent_c) * layer.precision.W
    return (two, beyond_windows) if two + beyond_windows < whole else (whole, 0)


def input_shape(layer: Layer) -> tuple[int, int]:
    """Spatial shape of a layer's network input (it has no producer)."""
    d = layer.dims
    if layer.op in WINDOW_OPS:
        return layer.window.input_size(d.OY, d.FY, 0), layer.window.input_size(d.OX, d.FX, 1)
    if layer.op is Op.DENSE:
        return 1, 1
    return d.OY, d.OX


def sources_of(workload: Workload, layer: Layer) -> tuple[Source, ...]:
    preds = workload.predecessors(layer.name)
    if not preds:
        d = layer.dims
        return (Source(INPUT, input_shape(layer), d.B * d.G * d.C, layer.precision.I),)
    out = []
    for p in preds:
        pl = workload.layer(p)
        out.append(Source(p, (pl.dims.OY, pl.dims.OX), output_channels(pl), pl.precision.O_final))
    return tuple(out)


def _mode(layer: Layer, shape: tuple[int, int]) -> str:
    d = layer.dims
    if layer.op in WINDOW_OPS:
        expected = (layer.window.input_size(d.OY, d.FY, 0), layer.window.input_size(d.OX, d.FX, 1))
        return "window" if expected == shape else "full"
    if layer.op is Op.RESIZE:
        return "resize"
    if layer.op in SAME_POSITION_OPS and shape == (d.OY, d.OX):
        return "same"
    return "full"


def read_range(layer: Layer, source: Source, axis: int, lo: int, hi: int) -> Range:
    """Positions of `source` along `axis` (0 rows, 1 columns) that outputs [lo, hi) of `layer` read."""
    n = source.shape[axis]
    if hi <= lo:
        return (0, 0)
    mode = _mode(layer, source.shape)
    if mode == "window":
        w = layer.window
        s, pad, dil = w.stride[axis], w.padding[axis], w.dilation[axis]
        f = layer.dims.FY if axis == 0 else layer.dims.FX
        a = max(0, lo * s - pad)
        b = min(n, (hi - 1) * s - pad + (f - 1) * dil + 1)
        return (a, b) if a < b else (0, 0)
    if mode == "same":
        return (lo, hi)
    if mode == "resize":
        out = layer.dims.OY if axis == 0 else layer.dims.OX
        return (lo * n // out, min(n, -(-hi * n // out)))
    return (0, n)


def _empty(r: Range) -> bool:
    return r[1] <= r[0]


@dataclass(frozen=True)
class Read:
    source: str
    rows: Range
    cols: Range


@dataclass(frozen=True)
class Unit:
    """One unit of work: `layer` computes `rows` x `cols` of its output for timesteps [t0, t1)."""

    index: int
    segment: int
    layer: str
    batch: int
    t0: int
    t1: int
    step: tuple[int, int]  # (row band, column step); (0, 0) in layer-by-layer segments
    rows: Range
    cols: Range
    reads: tuple[Read, ...]

    @property
    def timesteps(self) -> int:
        return self.t1 - self.t0

    @property
    def positions(self) -> int:
        return (self.rows[1] - self.rows[0]) * (self.cols[1] - self.cols[0])

    def label(self) -> str:
        return (
            f"unit {self.index} ({self.layer}, segment {self.segment}, t {self.t0}..{self.t1 - 1}, "
            f"rows {self.rows[0]}..{self.rows[1] - 1}, cols {self.cols[0]}..{self.cols[1] - 1})"
        )


def recompute_layers(workload: Workload, schedule: Schedule) -> frozenset[str]:
    """Layers that recompute their halo: in a fused `recompute` segment, stateless (after state removal),
    not a network output, every consumer in the segment and read on chip."""
    out = set()
    for seg in schedule.segments:
        if not seg.fused or seg.halo is not Halo.RECOMPUTE:
            continue
        members = set(seg.layers)
        for n in seg.layers:
            succ = workload.successors(n)
            if (
                succ
                and not workload.layer(n).stateful
                and all(c in members and schedule.edge_home(n, c) is EdgeHome.ONCHIP for c in succ)
            ):
                out.add(n)
    return frozenset(out)


Region = tuple[int, int, int, int]  # rows lo, hi, cols lo, hi


def _computable(layer: Layer, source: Source, axis: int, done: int) -> int:
    """Most outputs [0, h) of `layer` along `axis` whose reads of `source` lie within its first `done`."""
    n_out = layer.dims.OY if axis == 0 else layer.dims.OX
    lo, hi = 0, n_out
    while lo < hi:  # read_range(..., 0, h)[1] grows with h: bisect for the largest h that fits
        mid = (lo + hi + 1) // 2
        if read_range(layer, source, axis, 0, mid)[1] <= done:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _fused_grid(
    workload: Workload,
    layers: list[str],
    seg: Segment,
    recompute: frozenset[str],
    sources: dict[str, tuple[Source, ...]],
) -> tuple[int, int, dict[str, list[list[Region | None]]]]:
    assert seg.tile is not None
    dims = {n: workload.layer(n).dims for n in layers}
    wmax = max(d.OX for d in dims.values())
    hmax = max(d.OY for d in dims.values())
    w = min(seg.tile.cols, wmax)
    h = hmax if seg.tile.rows is None else min(seg.tile.rows, hmax)
    n_c, n_r = math.ceil(wmax / w), math.ceil(hmax / h)
    members = set(layers)
    done_c: dict[str, list[int]] = {}
    done_r: dict[str, list[int]] = {}
    for n in layers:  # push: sources advance by the tile, every other layer computes all it can
        layer, d = workload.layer(n), dims[n]
        inner = [s for s in sources[n] if s.name in members]
        if not inner:
            done_c[n] = [min(d.OX, (i + 1) * w * d.OX // wmax) for i in range(n_c)]
            done_r[n] = [min(d.OY, (r + 1) * h * d.OY // hmax) for r in range(n_r)]
            continue
        done_c[n] = [min(_computable(layer, s, 1, done_c[s.name][i]) for s in inner) for i in range(n_c)]
        done_r[n] = [min(_computable(layer, s, 0, done_r[s.name][r]) for s in inner) for r in range(n_r)]
        assert done_c[n][-1] == d.OX and done_r[n][-1] == d.OY
    grid: dict[str, list[list[Region | None]]] = {}
    for n in reversed(layers):
        g: list[list[Region | None]] = [[None] * n_c for _ in range(n_r)]
        if n in recompute:  # the bounding box of what the consumers read at this step
            for c in workload.successors(n):
                cl = workload.layer(c)
                src = next(s for s in sources[c] if s.name == n)
                for r in range(n_r):
                    for i in range(n_c):
                        reg = grid[c][r][i]
                        if reg is None:
                            continue
                        rr = read_range(cl, src, 0, reg[0], reg[1])
                        rc = read_range(cl, src, 1, reg[2], reg[3])
                        if _empty(rr) or _empty(rc):
                            continue
                        box = g[r][i]
                        g[r][i] = (
                            (rr[0], rr[1], rc[0], rc[1])
                            if box is None
                            else (
                                min(box[0], rr[0]),
                                max(box[1], rr[1]),
                                min(box[2], rc[0]),
                                max(box[3], rc[1]),
                            )
                        )
        else:  # the columns and rows that became computable at this step, each once
            dc, dr = done_c[n], done_r[n]
            for r in range(n_r):
                r0 = dr[r - 1] if r else 0
                for i in range(n_c):
                    c0 = dc[i - 1] if i else 0
                    if r0 < dr[r] and c0 < dc[i]:
                        g[r][i] = (r0, dr[r], c0, dc[i])
        grid[n] = g
    return n_r, n_c, grid


@dataclass(frozen=True, eq=False)
class Plan:
    """A schedule unrolled into units over its effective workload (state removals applied).

    The plan is geometry only: it depends on the segments, the removals and the set of recomputing
    layers, not on the other residency decisions, so one plan prices many residency choices.
    """

    workload: Workload
    schedule: Schedule
    units: tuple[Unit, ...]
    recompute: frozenset[str]
    order: tuple[str, ...]
    segment_of: dict[str, int]
    sources: dict[str, tuple[Source, ...]]
    cache: dict[object, object] = field(default_factory=dict, repr=False)

    @property
    def timesteps(self) -> int:
        return self.workload.timesteps

    def layer(self, name: str) -> Layer:
        return self.workload.layer(name)

    @cached_property
    def units_by_layer(self) -> dict[str, list[Unit]]:
        out: dict[str, list[Unit]] = {n: [] for n in self.order}
        for u in self.units:
            out[u.layer].append(u)
        return out

    @cached_property
    def sinks(self) -> frozenset[str]:
        """Network outputs: layers nothing consumes (written to DRAM)."""
        return frozenset(n for n in self.order if not self.workload.successors(n))

    def source(self, layer: str, name: str) -> Source:
        return next(s for s in self.sources[layer] if s.name == name)

    def read_span(self, layer: str, source: str) -> int:
        """Widest column range of `source` one output column of `layer` reads: the stream window's width."""
        key = ("span", layer, source)
        if key not in self.cache:
            lay = self.layer(layer)
            src = self.source(layer, source)
            self.cache[key] = max(
                (b - a for a, b in (read_range(lay, src, 1, x, x + 1) for x in range(lay.dims.OX))), default=0
            )
        return self.cache[key]  # type: ignore[return-value]

    def compatible(self, schedule: Schedule) -> bool:
        """True when `schedule` unrolls to this plan's units (same segments, removals, recompute set)."""
        return (
            schedule.segments == self.schedule.segments
            and set(schedule.removed()) == set(self.schedule.removed())
            and recompute_layers(self.workload, schedule) == self.recompute
        )

    def __iter__(self) -> Iterator[Unit]:
        return iter(self.units)

    def __len__(self) -> int:
        return len(self.units)


def build_plan(workload: Workload, schedule: Schedule) -> Plan:
    """Validate `schedule` against `workload` and unroll it into units."""
    schedule.validate(workload)
    wl = schedule.effective_workload(workload)
    order = tuple(layer.name for layer in wl)
    sources = {layer.name: sources_of(wl, layer) for layer in wl}
    recompute = recompute_layers(wl, schedule)
    segment_of = {n: i for i, s in enumerate(schedule.segments) for n in s.layers}
    units: list[Unit] = []
    t_total = wl.timesteps

    def add(si: int, name: str, b: int, tb: int, step: tuple[int, int], rows: Range, cols: Range) -> None:
        layer = wl.layer(name)
        reads = []
        for s in sources[name]:
            rr = read_range(layer, s, 0, *rows)
            rc = read_range(layer, s, 1, *cols)
            if not (_empty(rr) or _empty(rc)):
                reads.append(Read(s.name, rr, rc))
        units.append(Unit(len(units), si, name, b, b * tb, (b + 1) * tb, step, rows, cols, tuple(reads)))

    for si, seg in enumerate(schedule.segments):
        members = set(seg.layers)
        layers = [n for n in order if n in members]
        tb = seg.time_batch
        if seg.tile is None:
            for b in range(t_total // tb):
                for n in layers:
                    d = wl.layer(n).dims
                    add(si, n, b, tb, (0, 0), (0, d.OY), (0, d.OX))
            continue
        n_r, n_c, grid = _fused_grid(wl, layers, seg, recompute, sources)
        for b in range(t_total // tb):
            for r in range(n_r):
                for i in range(n_c):
                    for n in layers:
                        reg = grid[n][r][i]
                        if reg is not None:
                            add(si, n, b, tb, (r, i), (reg[0], reg[1]), (reg[2], reg[3]))
    if not units:
        raise StemsInputError("the schedule has no units")
    return Plan(wl, schedule, tuple(units), recompute, order, segment_of, sources)
