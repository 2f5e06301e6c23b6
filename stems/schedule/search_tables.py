"""Exact cost tables for the schedule search: per candidate segment, what each layer costs and what the
buffer holds at each unit, as functions of the residency decisions (the same sums as `stems.schedule.cost`).

One spatial plan per (run of stages, tile) is unrolled once for a single time batch (runs starting at
the same stage with the same widest layer share one plan: the shorter run's units are the longer's,
restricted to its layers); the other batches repeat its units (`stems.schedule.units`), so every
per-unit quantity scales with the time batch `tb` and the `nb = T / tb` batches differ only in what
crosses batches:

* traffic per layer: weights `w` once (resident) or per unit (refetch); state `S` in and out once (keep)
  or `nb` times (spill); outputs `T x map` when written; DRAM inputs: the window-carried reads per batch
  times `nb`. Energy = the units' own energy (a table, with and without state) + bits x pJ per bit.
* latency per layer: sum over units of max(compute, DRAM port cycles), for every combination of the
  layer's own decisions (refetch, state, written to DRAM, which inputs come from DRAM), the first batch
  carrying the resident/kept loads and the last the kept store.
* occupancy: a row of coefficients over literal items (weights resident, or refetched: during the
  layer's units two output-channel slices and the input tiles, or all weights, `units.refetch_bits`;
  state kept/spilled, each producer's on-chip reader set, stream windows) per unit class (units holding
  the same items) and batch kind: kept tensors are live between batches, activations crossing segments
  grow (producer side) or shrink (reader side) by one batch per batch, so the first, second,
  second-to-last and last batch bound the others. Producers crossing the segment's boundary are split
  into cases (their reader set), which fixes the bits they hold (a per-row constant); rows whose most is
  at most another row's least in every case are dropped here, rows some other row bounds under every
  decision when a segment is solved (`search_local.implied`).
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from dataclasses import dataclass, field, replace

import numpy as np

from stems.hardware.spec import Direction, Hardware
from stems.schedule.model import INPUT, Schedule, Segment, Tile
from stems.schedule.search_space import (
    Candidate,
    Config,
    SearchSpace,
    Stage,
    consumer_stage,
    non_input_sources,
    stages_of,
)
from stems.schedule.unitcost import OnChip, TileShape, UnitCostFn
from stems.schedule.units import (
    Plan,
    Unit,
    _mode,
    build_plan,
    output_channels,
    read_range,
    refetch_bits,
)
from stems.workload.model import Layer, Workload

STATE_OPTIONS = ("keep", "spill", "remove")

Item = tuple  # ("Wres", L) ("Wref", L) ("Wtile", L) ("Vkeep", L) ("Vspill", L) ("A", P, readers) ("Aout", L) ("Ain", L, P) ("1",)


@dataclass
class _LayerUnits:
    """One layer's units in a spatial candidate (one batch)."""

    idx: np.ndarray  # local unit indices
    positions: np.ndarray
    keys: list[tuple[int, int, int]]  # (rows, cols, input bits per timestep) per unit
    maxrows: int
    new_bits: dict[str, np.ndarray]  # per source: bits newly read per timestep per unit (DRAM stream)
    read_rows: dict[str, int]  # per source: largest read height (the stream window's rows)
    read_area: dict[str, int]  # per source: largest read region (the input tile)
    span: dict[str, int]
    sig: tuple = ()  # everything the layer's tables depend on


@dataclass
class _Spatial:
    first: int
    last: int
    tile: int | None
    n_units: int
    layers: dict[str, _LayerUnits]
    alloc: dict[str, np.ndarray]  # producer -> (OY, OX) local unit index
    lastread: dict[tuple[str, str], np.ndarray]  # (producer, reader) -> (OY, OX) last local index or -1
    signature: tuple = ()
    cache: dict = field(default_factory=dict)


@dataclass(frozen=True)
class LayerTable:
    """One layer in one candidate: everything the model needs (a class: equal tables are shared)."""

    time_batch: int
    n_batches: int
    units: int  # per batch
    energy: float  # units' on-chip + compute pJ, all batches (stateful as given)
    energy_removed: float  # the same with the state removed
    dram_reads: tuple[tuple[str, int], ...]  # per non-input DRAM source: bits read over all batches
    input_reads: int  # bits read of the network input (always from DRAM)
    latency: tuple[int, ...]  # per local combination (see `combos`)

    @property
    def total_units(self) -> int:
        return self.units * self.n_batches


@dataclass
class Case:
    """One case: the reader set of each producer crossing the segment boundary (() = none) and the
    constant bits held at each row of its pool's `Rows`."""

    assignment: tuple[tuple[str, tuple[str, ...]], ...]
    const: np.ndarray


@dataclass
class Rows:
    """Occupancy rows of one candidate in one capacity pool: bits held at row r = case.const[r] + the
    sum over groups of options[r, starts[g] + the option chosen in group g]. `groups` are the exclusive
    choices (options = the items that are 1); `items` are the literals the options stand for."""

    items: list[Item]
    groups: list[tuple[tuple, list[list[int]]]]
    starts: np.ndarray
    options: np.ndarray  # rows x options
    cases: list[Case]

    def option_index(self, key: tuple, option: int) -> int:
        g = next(i for i, (k, _) in enumerate(self.groups) if k == key)
        return int(self.starts[g]) + option


@dataclass
class Tables:
    workload: Workload
    stages: list[Stage]
    candidates: list[Candidate]
    allow_removal: bool
    pools: dict[str, str]  # tensor class (W, V, A) -> pool
    layer_class: dict[tuple[int, str], int]  # (candidate, layer) -> class index in classes[layer]
    classes: dict[str, list[LayerTable]]
    rows: dict[int, dict[str, Rows]]
    combos: dict[str, list[tuple]]  # per layer: (refetch, state, writes, dram sources tuple)
    weight_bits: dict[str, int]
    state_bits: dict[str, int]
    output_bits: dict[str, int]  # T x map x O_final: what a layer writes when it writes to DRAM
    consumers: dict[str, tuple[str, ...]]
    sources: dict[str, tuple[str, ...]]  # non-input sources
    reads_input: dict[str, bool]
    stateful: list[str]
    weighted: list[str]
    pj_read: dict[str, float]  # per operand: DRAM read + buffer fill, pJ per bit
    pj_write: dict[str, float]  # per operand: DRAM write + buffer drain
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def candidates_of_stage(self, stage: int) -> list[Candidate]:
        return [c for c in self.candidates if c.first <= stage <= c.last]


def subsets(names: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Nonempty subsets of a producer's consumers, in a fixed order."""
    return [c for k in range(1, len(names) + 1) for c in itertools.combinations(names, k)]


def layer_combos(
    workload: Workload, name: str, allow_removal: bool
) -> list[tuple[int, str | None, int, tuple[int, ...]]]:
    layer = workload.layer(name)
    f_opts = (0, 1) if layer.weights else (0,)
    st_opts: tuple[str | None, ...] = (
        (STATE_OPTIONS if allow_removal else STATE_OPTIONS[:2]) if layer.stateful else (None,)
    )
    wd_opts = (0, 1) if workload.successors(name) else (1,)
    srcs = non_input_sources(workload, name)
    return [
        (f, st, wd, src)
        for f in f_opts
        for st in st_opts
        for wd in wd_opts
        for src in itertools.product((0, 1), repeat=len(srcs))
    ]


def _stateless(layer: Layer) -> Layer:
    assert layer.neuron is not None
    return replace(layer, neuron=replace(layer.neuron, stateful=False))


# ----------------------------------------------------------------------------------------------------
# Spatial plans


def _segment_units(
    workload: Workload, stages: list[Stage], first: int, last: int, tile: int | None
) -> tuple[Plan, list[Unit]]:
    """The units of stages first..last run as one time-batched segment (one batch)."""
    t = workload.timesteps
    segs = []
    before = [n for s in stages[:first] for n in s.layers]
    inside = [n for s in stages[first : last + 1] for n in s.layers]
    after = [n for s in stages[last + 1 :] for n in s.layers]
    if before:
        segs.append(Segment(tuple(before), t))
    segs.append(Segment(tuple(inside), t, None if tile is None else Tile(tile)))
    if after:
        segs.append(Segment(tuple(after), t))
    plan = build_plan(workload, Schedule(tuple(segs)))
    si = 1 if before else 0
    return plan, [u for u in plan.units if u.segment == si]


def _spatial(
    workload: Workload, plan: Plan, all_units: list[Unit], inside: list[str], first: int, last: int, tile
) -> _Spatial:
    members = set(inside)
    units = [u for u in all_units if u.layer in members]
    local = {u.index: k for k, u in enumerate(units)}
    by_layer: dict[str, list] = defaultdict(list)
    for u in units:
        by_layer[u.layer].append(u)
    layers: dict[str, _LayerUnits] = {}
    for n in inside:
        us = by_layer[n]
        keys = []
        for u in us:
            in_bits = sum(
                (r.rows[1] - r.rows[0]) * (r.cols[1] - r.cols[0]) * plan.source(n, r.source).element_bits
                for r in u.reads
            )
            keys.append((u.rows[1] - u.rows[0], u.cols[1] - u.cols[0], in_bits))
        new_bits: dict[str, np.ndarray] = {}
        read_rows: dict[str, int] = {}
        read_area: dict[str, int] = {}
        span: dict[str, int] = {}
        for s in plan.sources[n]:
            sp = plan.read_span(n, s.name)
            eb = s.element_bits
            new = np.zeros(len(us), np.int64)
            rows = area_max = 0
            prev = None
            for k, u in enumerate(us):  # as `cost._read_arrays`, within one batch
                rd = next((r for r in u.reads if r.source == s.name), None)
                if rd is None:
                    prev = None
                    continue
                nr = rd.rows[1] - rd.rows[0]
                area = nr * (rd.cols[1] - rd.cols[0])
                carried = 0
                if prev is not None and prev[0].rows == u.rows:
                    pc = prev[1]
                    lo = max(rd.cols[0], pc[0], pc[1] - sp)
                    hi = min(rd.cols[1], pc[1])
                    carried = nr * max(0, hi - lo)
                new[k] = (area - carried) * eb
                rows = max(rows, nr)
                area_max = max(area_max, area)
                prev = (u, rd.cols)
            new_bits[s.name] = new
            read_rows[s.name] = rows
            read_area[s.name] = area_max
            span[s.name] = sp
        layers[n] = _LayerUnits(
            idx=np.fromiter((local[u.index] for u in us), np.int64, len(us)),
            positions=np.fromiter((u.positions for u in us), np.int64, len(us)),
            keys=keys,
            maxrows=max(u.rows[1] - u.rows[0] for u in us),
            new_bits=new_bits,
            read_rows=read_rows,
            read_area=read_area,
            span=span,
            sig=(tuple(keys), tuple((k, v.tobytes()) for k, v in sorted(new_bits.items()))),
        )
    alloc: dict[str, np.ndarray] = {}
    lastread: dict[tuple[str, str], np.ndarray] = {}
    for n in inside:
        d = workload.layer(n).dims
        a = np.full((d.OY, d.OX), -1, np.int64)
        for u in by_layer[n]:
            a[u.rows[0] : u.rows[1], u.cols[0] : u.cols[1]] = local[u.index]
        alloc[n] = a
        for u in by_layer[n]:
            for rd in u.reads:
                if rd.source == INPUT:
                    continue
                key = (rd.source, n)
                if key not in lastread:
                    pd = workload.layer(rd.source).dims
                    lastread[key] = np.full((pd.OY, pd.OX), -1, np.int64)
                lastread[key][rd.rows[0] : rd.rows[1], rd.cols[0] : rd.cols[1]] = local[u.index]
    sig = tuple((u.layer, u.rows, u.cols) for u in units)
    return _Spatial(first, last, tile, len(units), layers, alloc, lastread, sig)


def _read_mask(workload: Workload, plan: Plan, producer: str, reader: str) -> tuple[np.ndarray, bool]:
    """Positions of `producer` that `reader` reads over its whole output, and whether that holds for every
    tiling (adjacent output columns read touching or overlapping windows: no gaps a wide tile would fill)."""
    lay = workload.layer(reader)
    src = plan.source(reader, producer)
    d = lay.dims
    m = np.zeros(src.shape, bool)
    r = read_range(lay, src, 0, 0, d.OY)
    c = read_range(lay, src, 1, 0, d.OX)
    m[r[0] : r[1], c[0] : c[1]] = True
    exact = True
    if _mode(lay, src.shape) == "window":
        for x in range(d.OX - 1):
            a = read_range(lay, src, 1, x, x + 1)
            b = read_range(lay, src, 1, x + 1, x + 2)
            if a[1] < b[0]:
                exact = False
                break
    return m, exact


# ----------------------------------------------------------------------------------------------------
# Tables


def build_tables(
    workload: Workload,
    hw: Hardware,
    *,
    unit_cost: UnitCostFn,
    buffer: str | None,
    allow_removal: bool,
    space: SearchSpace,
    workers: int = 1,
) -> Tables:
    """Every candidate's tables. With `workers` > 1 (and `fork` available) the candidates are split over
    that many processes; the result is the same."""
    import time

    t0 = time.perf_counter()
    stages = stages_of(workload)
    cstage = consumer_stage(workload, stages)
    stage_of = {n: s.index for s in stages for n in s.layers}
    order = [x.name for x in workload]
    pos = {n: i for i, n in enumerate(order)}
    layer = {n: workload.layer(n) for n in order}
    T = workload.timesteps
    batches = space.batches_for(T)
    tiles = space.tile_menu()
    if not tiles or not batches:
        raise ValueError("the search space has no tile or no time batch")
    onchip = OnChip.of(hw, buffer)
    pools = {c: onchip.pool(c) for c in ("W", "V", "A")}
    dram = hw.offchip

    def pj(level_pj, op: str, d: Direction) -> float:
        try:
            return level_pj(op, d)
        except KeyError:
            return 0.0

    pj_read = {
        op: pj(dram.pj_per_bit, op, Direction.TO_LOW) + onchip.pj(op, Direction.FROM_HIGH) for op in "WIOV"
    }
    pj_write = {
        op: pj(dram.pj_per_bit, op, Direction.FROM_LOW) + onchip.pj(op, Direction.TO_HIGH) for op in "WIOV"
    }
    port_of: dict[tuple[str, bool], tuple[str, int]] = {}
    for op in "WIOV":
        for is_read, d in ((True, Direction.TO_LOW), (False, Direction.FROM_LOW)):
            try:
                p = dram.port(op, d)
                port_of[(op, is_read)] = (p.name, p.bw_bits)
            except KeyError:
                port_of[(op, is_read)] = ("<none>", 1)
    port_names = sorted({v[0] for v in port_of.values()})
    port_bw = {v[0]: v[1] for v in port_of.values()}

    consumers = {n: tuple(workload.successors(n)) for n in order}
    sources = {n: tuple(non_input_sources(workload, n)) for n in order}
    reads_input = {n: not workload.predecessors(n) for n in order}
    weight_bits = {n: layer[n].weights * layer[n].precision.W for n in order}
    state_bits = {n: layer[n].state_bits for n in order}
    output_bits = {
        n: T * layer[n].dims.OY * layer[n].dims.OX * output_channels(layer[n]) * layer[n].precision.O_final
        for n in order
    }
    stateful = [n for n in order if layer[n].stateful]
    weighted = [n for n in order if layer[n].weights]
    removed_layer = {n: _stateless(layer[n]) for n in stateful} if allow_removal else {}
    combos = {n: layer_combos(workload, n, allow_removal) for n in order}

    # 1. spatial plans: one per (first stage, tile, widest layer); shorter runs are restrictions
    spatial: list[_Spatial] = []
    nst = len(stages)
    any_plan: Plan | None = None
    firsts = [0] if not space.cuts else list(range(nst))
    for i in firsts:
        lasts = [nst - 1] if not space.cuts else list(range(i, nst))
        seen: set = set()
        for tile in tiles:
            groups: dict[int, list[int]] = defaultdict(list)
            for j in lasts:
                wmax = max(layer[n].dims.OX for s in stages[i : j + 1] for n in s.layers)
                if tile is not None and tile >= wmax:
                    continue  # one column step: the units of layer by layer
                groups[wmax].append(j)
            for js in groups.values():
                plan, units = _segment_units(workload, stages, i, max(js), tile)
                any_plan = plan
                for j in js:
                    inside = [n for s in stages[i : j + 1] for n in s.layers]
                    sp = _spatial(workload, plan, units, inside, i, j, tile)
                    if (j, sp.signature) in seen:
                        continue
                    seen.add((j, sp.signature))
                    spatial.append(sp)
    spatial.sort(key=lambda sp: (sp.first, sp.last, -1 if sp.tile is None else sp.tile))
    t1 = time.perf_counter()

    # 2. which producer positions a reader in the next stage reads (held across the boundary till then)
    assert any_plan is not None
    masks: dict[tuple[str, str], np.ndarray] = {}
    notes: list[str] = []
    for p in order:
        for c in consumers[p]:
            if stage_of[c] != stage_of[p]:
                masks[(p, c)], exact = _read_mask(workload, any_plan, p, c)
                if not exact:
                    notes.append(
                        f"{p}->{c}: a tile of {c} may skip some of {p}'s columns; held across a segment "
                        "boundary, all its columns are counted (conservative)"
                    )

    # 3. per candidate and time batch: layer tables and occupancy rows
    candidates: list[Candidate] = []
    layer_class: dict[tuple[int, str], int] = {}
    classes: dict[str, list[LayerTable]] = {n: [] for n in order}
    class_index: dict[str, dict[LayerTable, int]] = {n: {} for n in order}
    rows: dict[int, dict[str, Rows]] = {}
    ucache: dict[tuple, tuple[float, float, int]] = {}
    table_memo: dict[tuple, LayerTable] = {}
    coef_memo: dict[tuple, np.ndarray] = {}

    def ucost(n: str, removed: bool, key: tuple[int, int, int], tb: int) -> tuple[float, float, int]:
        k = (n, removed, key, tb)
        if k not in ucache:
            lay = removed_layer[n] if removed else layer[n]
            c = unit_cost(lay, TileShape(*key), tb, hw)
            ucache[k] = (c.energy_pj_onchip, c.compute_pj, c.cycles)
        return ucache[k]

    ctx = _RowContext(workload, T, stage_of, cstage, consumers, layer, pools, masks, pos, allow_removal)

    def work(indices: list[int]) -> list[tuple[int, int, dict[str, LayerTable], dict[str, Rows]]]:
        out = []
        for k in indices:
            sp = spatial[k]
            inside = [n for s in stages[sp.first : sp.last + 1] for n in s.layers]
            for tb in batches:
                nb = T // tb
                tabs = {}
                for n in inside:
                    lu = sp.layers[n]
                    memo_key = (n, tb, lu.sig)
                    tab = table_memo.get(memo_key)
                    if tab is None:
                        tab = table_memo[memo_key] = _layer_table(
                            n,
                            lu,
                            tb,
                            nb,
                            layer[n],
                            ucost,
                            n in removed_layer,
                            combos[n],
                            sources[n],
                            weight_bits[n],
                            state_bits[n],
                            port_of,
                            port_names,
                            port_bw,
                            reads_input[n],
                            coef_memo,
                        )
                    tabs[n] = tab
                out.append((k, tb, tabs, _rows(ctx, sp, tb, nb, inside)))
            sp.cache.clear()
        return out

    results = _in_parallel(work, [sp.n_units * len(sp.layers) for sp in spatial], workers)
    for k, tb, tabs, rws in sorted(results, key=lambda r: (r[0], r[1])):
        sp = spatial[k]
        ci = len(candidates)
        candidates.append(Candidate(ci, sp.first, sp.last, Config(tb, sp.tile)))
        for n, tab in tabs.items():
            idx = class_index[n].get(tab)
            if idx is None:
                idx = len(classes[n])
                classes[n].append(tab)
                class_index[n][tab] = idx
            layer_class[(ci, n)] = idx
        rows[ci] = rws
    t2 = time.perf_counter()
    return Tables(
        workload=workload,
        stages=stages,
        candidates=candidates,
        allow_removal=allow_removal,
        pools=pools,
        layer_class=layer_class,
        classes=classes,
        rows=rows,
        combos=combos,
        weight_bits=weight_bits,
        state_bits=state_bits,
        output_bits=output_bits,
        consumers=consumers,
        sources=sources,
        reads_input=reads_input,
        stateful=stateful,
        weighted=weighted,
        pj_read=pj_read,
        pj_write=pj_write,
        notes=notes,
        timings={"plans_s": t1 - t0, "tables_s": t2 - t1},
    )


def _layer_table(
    n: str,
    lu: _LayerUnits,
    tb: int,
    nb: int,
    lay: Layer,
    ucost,
    removable: bool,
    combos: list[tuple],
    srcs: tuple[str, ...],
    w: int,
    S: int,
    port_of: dict[tuple[str, bool], tuple[str, int]],
    port_names: list[str],
    port_bw: dict[str, int],
    reads_input: bool,
    coef_memo: dict[tuple, np.ndarray],
) -> LayerTable:
    nu = len(lu.idx)
    e_on = e_cp = 0.0
    cyc = np.zeros(nu, np.int64)
    e_on_r = e_cp_r = 0.0
    cyc_r = np.zeros(nu, np.int64)
    on_list, cp_list, on_r, cp_r = [], [], [], []
    for k, key in enumerate(lu.keys):
        a, b, c = ucost(n, False, key, tb)
        on_list.append(a)
        cp_list.append(b)
        cyc[k] = c
        if removable:
            a, b, c = ucost(n, True, key, tb)
            on_r.append(a)
            cp_r.append(b)
            cyc_r[k] = c
    e_on = math.fsum(on_list) * nb
    e_cp = math.fsum(cp_list) * nb
    if removable:
        e_on_r = math.fsum(on_r) * nb
        e_cp_r = math.fsum(cp_r) * nb
    else:
        e_on_r, e_cp_r, cyc_r = e_on, e_cp, cyc
    ch = output_channels(lay)
    # per-unit DRAM components (bits, one batch); names -> (operand, is_read)
    comp: dict[str, tuple[tuple[str, bool], np.ndarray]] = {}
    zero = np.zeros(nu, np.int64)
    first_only = zero.copy()
    first_only[0] = 1
    last_only = zero.copy()
    last_only[-1] = 1
    if w:
        comp["Wref"] = (("W", True), np.full(nu, w, np.int64))
        comp["Wres"] = (("W", True), first_only * w)  # batch 0 only
    if lay.stateful:
        assert lay.neuron is not None
        per = lu.positions * ch * lay.neuron.n_state * lay.precision.V
        comp["Vsr"] = (("V", True), per)
        comp["Vsw"] = (("V", False), per)
        comp["Vkr"] = (("V", True), first_only * S)  # batch 0 only
        comp["Vkw"] = (("V", False), last_only * S)  # last batch only
    comp["O"] = (("O", False), lu.positions * tb * ch * lay.precision.O_final)
    in_reads = 0
    if reads_input:
        comp["IN"] = (("I", True), lu.new_bits[INPUT] * tb)
        in_reads = int(lu.new_bits[INPUT].sum()) * tb * nb
    for s in srcs:
        comp["I:" + s] = (("I", True), lu.new_bits[s] * tb)
    names = list(comp)
    # coefficient of each component per combo and batch kind
    kinds = [("only", 1, True, True)] if nb == 1 else [("first", 1, True, False), ("last", 1, False, True)]
    if nb > 2:
        kinds.append(("mid", nb - 2, False, False))
    lat = np.zeros(len(combos), np.int64)
    for _, count, is_first, is_last in kinds:
        ckey = (n, is_first, is_last, tuple(names))
        coef = coef_memo.get(ckey)
        if coef is None:
            coef = coef_memo[ckey] = _coefficients(combos, names, srcs, is_first, is_last)
        dram_cyc = np.zeros((len(combos), nu), np.int64)
        for port in port_names:
            sel = [k for k, nm in enumerate(names) if port_of[comp[nm][0]][0] == port]
            if not sel:
                continue
            mat = np.stack([comp[names[k]][1] for k in sel])  # comps x units
            bits = coef[:, sel] @ mat  # combos x units
            bw = port_bw[port]
            dram_cyc = np.maximum(dram_cyc, -(-bits // bw))
        removed_rows = np.array([st == "remove" for (_, st, _, _) in combos])
        cy = np.where(removed_rows[:, None], cyc_r[None, :], cyc[None, :])
        lat += count * np.maximum(cy, dram_cyc).sum(axis=1)
    dram_reads = tuple((s, int(lu.new_bits[s].sum()) * tb * nb) for s in srcs)
    return LayerTable(
        time_batch=tb,
        n_batches=nb,
        units=nu,
        energy=e_on + e_cp,
        energy_removed=e_on_r + e_cp_r,
        dram_reads=dram_reads,
        input_reads=in_reads,
        latency=tuple(int(x) for x in lat),
    )


def _coefficients(
    combos: list[tuple], names: list[str], srcs: tuple[str, ...], is_first: bool, is_last: bool
):
    """How much of each DRAM component a unit moves under each combination of the layer's decisions."""
    coef = np.zeros((len(combos), len(names)), np.int64)
    for ci, (f, st, wd, src) in enumerate(combos):
        for k, nm in enumerate(names):
            if nm == "Wref":
                v = f
            elif nm == "Wres":
                v = (1 - f) * is_first
            elif nm in ("Vsr", "Vsw"):
                v = int(st == "spill")
            elif nm == "Vkr":
                v = int(st == "keep") * is_first
            elif nm == "Vkw":
                v = int(st == "keep") * is_last
            elif nm == "O":
                v = wd
            elif nm == "IN":
                v = 1
            else:
                v = src[srcs.index(nm[2:])]
            coef[ci, k] = v
    return coef


_JOB: list = []


def _job(indices: list[int]):
    return _JOB[0](indices)


def _in_parallel(work, costs: list[int], workers: int) -> list:
    """`work` over all indices, split over `workers` forked processes by cost (same result in any case)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    n = len(costs)
    if workers <= 1 or n < 2 * workers or "fork" not in mp.get_all_start_methods():
        return work(list(range(n)))
    parts: list[list[int]] = [[] for _ in range(workers)]
    load = [0] * workers
    for k in sorted(range(n), key=lambda k: -costs[k]):
        w = load.index(min(load))
        parts[w].append(k)
        load[w] += costs[k]
    _JOB[:] = [work]
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork")) as ex:
            return [r for part in ex.map(_job, parts) for r in part]
    except (OSError, RuntimeError):  # no processes here: do it in this one
        return work(list(range(n)))
    finally:
        _JOB.clear()


@dataclass
class _RowContext:
    workload: Workload
    T: int
    stage_of: dict[str, int]
    cstage: dict[str, int | None]
    consumers: dict[str, tuple[str, ...]]
    layer: dict[str, Layer]
    pools: dict[str, str]
    masks: dict[tuple[str, str], np.ndarray]
    pos: dict[str, int]
    allow_removal: bool


@dataclass
class _Structure:
    """What a spatial candidate holds at each unit, independent of the time batch."""

    classes: np.ndarray  # class of each unit (units holding the same items alike)
    order: np.ndarray  # units sorted by class
    starts: np.ndarray  # where each class begins in `order`
    first: dict[str, int]
    last: dict[str, int]
    own: dict[str, np.ndarray]  # per layer: 1 at its units (per class)
    kf: dict[str, np.ndarray]  # per layer: unit >= its first (per class)
    kl: dict[str, np.ndarray]  # per layer: unit <= its last (per class)
    internal: dict[
        tuple[str, tuple[str, ...]], np.ndarray
    ]  # (producer, readers) -> positions held (per class)
    outgoing: dict[tuple[str, tuple[str, ...]], tuple[np.ndarray, int]]  # per unit held, positions read
    incoming: dict[tuple[str, tuple[str, ...]], tuple[np.ndarray, int]]  # per unit still held, positions read
    cross: list[str]  # producers crossing the boundary


def _structure(ctx: _RowContext, sp: _Spatial, inside: list[str]) -> _Structure:
    if "structure" in sp.cache:
        return sp.cache["structure"]
    nu = sp.n_units
    ar = np.arange(nu)
    cols = []
    first, last, own_u, kf_u, kl_u = {}, {}, {}, {}, {}
    for n in inside:
        lu = sp.layers[n]
        first[n], last[n] = int(lu.idx[0]), int(lu.idx[-1])
        o = np.zeros(nu, np.int64)
        o[lu.idx] = 1
        own_u[n] = o
        kf_u[n] = (ar >= first[n]).astype(np.int64)
        kl_u[n] = (ar <= last[n]).astype(np.int64)
        cols += [o, kf_u[n], kl_u[n]]
    internal_u: dict = {}
    outgoing: dict = {}
    incoming: dict = {}
    cross = []
    for p in ctx.pos:
        cs = ctx.consumers[p]
        if not cs:
            continue
        ps, qs = ctx.stage_of[p], ctx.cstage[p]
        p_in = sp.first <= ps <= sp.last
        q_in = sp.first <= qs <= sp.last  # type: ignore[operator]
        if not p_in and not q_in:
            continue
        if p_in != q_in:
            cross.append(p)
        for R in subsets(cs):
            if p_in and q_in:
                alloc = sp.alloc[p].ravel()
                last_r = alloc.copy()
                for c in R:
                    np.maximum(last_r, sp.lastread[(p, c)].ravel(), out=last_r)
                delta = np.bincount(alloc, minlength=nu + 1) - np.bincount(last_r + 1, minlength=nu + 1)
                internal_u[(p, R)] = np.cumsum(delta[:nu])
                cols.append(internal_u[(p, R)])
            elif p_in:
                mask = np.zeros(sp.alloc[p].shape, bool)
                for c in R:
                    mask |= ctx.masks[(p, c)]
                alloc = sp.alloc[p]
                read_cum = np.cumsum(np.bincount(alloc[mask], minlength=nu)[:nu])
                unread_at = np.bincount(alloc[~mask], minlength=nu)[:nu]
                outgoing[(p, R)] = (read_cum + unread_at, int(mask.sum()))
            else:
                d = ctx.layer[p].dims
                last_r = np.full((d.OY, d.OX), -1, np.int64)
                for c in R:
                    np.maximum(last_r, sp.lastread[(p, c)], out=last_r)
                lr = last_r.ravel()
                cnt = np.bincount(lr[lr >= 0], minlength=nu)[:nu]
                incoming[(p, R)] = (np.cumsum(cnt[::-1])[::-1], int((lr >= 0).sum()))
    sig = np.stack(cols, axis=1)
    _, reps, classes = np.unique(sig, axis=0, return_index=True, return_inverse=True)
    classes = classes.ravel()
    order = np.argsort(classes, kind="stable")
    starts = np.searchsorted(classes[order], np.arange(len(reps)))
    pick = lambda v: v[reps]  # noqa: E731
    st = _Structure(
        classes=classes,
        order=order,
        starts=starts,
        first=first,
        last=last,
        own={n: pick(v) for n, v in own_u.items()},
        kf={n: pick(v) for n, v in kf_u.items()},
        kl={n: pick(v) for n, v in kl_u.items()},
        internal={k: pick(v) for k, v in internal_u.items()},
        outgoing=outgoing,
        incoming=incoming,
        cross=cross,
    )
    sp.cache["structure"] = st
    return st


def _rows(ctx: _RowContext, sp: _Spatial, tb: int, nb: int, inside: list[str]) -> dict[str, Rows]:
    st = _structure(ctx, sp, inside)
    T = ctx.T
    ncls = len(st.starts)
    variants = sorted({b for b in (0, 1, nb - 2, nb - 1) if 0 <= b < nb})
    cols: dict[Item, tuple[str, list[np.ndarray]]] = {}  # item -> (class, values per variant, per unit class)

    def add(item: Item, cls_: str, per_variant: list[np.ndarray]) -> None:
        if not any(v.any() for v in per_variant):
            return
        if item in cols:
            cols[item] = (cls_, [a + b for a, b in zip(cols[item][1], per_variant, strict=True)])
        else:
            cols[item] = (cls_, per_variant)

    def kept(n: str, b: int) -> np.ndarray:
        v = np.ones(ncls, np.int64)
        if b == 0:
            v = v * st.kf[n]
        if b == nb - 1:
            v = v * st.kl[n]
        return v

    for n in inside:
        lu = sp.layers[n]
        lay = ctx.layer[n]
        span = st.kf[n] * st.kl[n]
        eb = {
            s: lay.dims.B * lay.dims.G * lay.dims.C * lay.precision.I
            if s == INPUT
            else output_channels(ctx.layer[s]) * ctx.layer[s].precision.O_final
            for s in lu.read_rows
        }
        if lay.weights:
            w = lay.weights * lay.precision.W
            add(("Wres", n), "W", [kept(n, b) * w for b in variants])
            beyond = sum(
                max(0, lu.read_area[s] - rows * lu.span[s]) * eb[s] * tb for s, rows in lu.read_rows.items()
            )
            wb, ab = refetch_bits(lay, beyond)
            add(("Wref", n), "W", [st.own[n] * wb for _ in variants])
            add(("Wtile", n), "A", [st.own[n] * ab for _ in variants])
        ch = output_channels(lay)
        if lay.stateful:
            assert lay.neuron is not None
            add(("Vkeep", n), "V", [kept(n, b) * lay.state_bits for b in variants])
            win = lu.maxrows * ch * lay.neuron.n_state * lay.precision.V
            add(("Vspill", n), "V", [span * win for _ in variants])
        out_win = span * (lu.maxrows * ch * lay.precision.O_final * tb)
        add(("1",) if not ctx.consumers[n] else ("Aout", n), "A", [out_win for _ in variants])
        for s, rows in lu.read_rows.items():
            win = span * (rows * lu.span[s] * eb[s] * tb)
            add(("1",) if s == INPUT else ("Ain", n, s), "A", [win for _ in variants])
    for (p, R), held in st.internal.items():
        lp = ctx.layer[p]
        eb = output_channels(lp) * lp.precision.O_final
        add(("A", p, R), "A", [held * eb * tb for _ in variants])
    # the crossing producers: per unit (not per class), folded into each case's constant
    options_of_cross = [[(p, ()), *((p, R) for R in subsets(ctx.consumers[p]))] for p in st.cross]
    folded: set[Item] = set()
    for p in st.cross:
        folded.add(("Aout", p))
        folded.update(("Ain", c, p) for c in ctx.consumers[p])
    out: dict[str, Rows] = {}
    by_pool: dict[str, list[Item]] = defaultdict(list)
    for item, (cls_, _) in cols.items():
        if item not in folded and item != ("1",):
            by_pool[ctx.pools[cls_]].append(item)
    nv = len(variants)
    zero = np.zeros(ncls, np.int64)
    for pool in sorted(set(ctx.pools.values())):
        items = sorted(by_pool.get(pool, []), key=_item_key(ctx.pos))
        mat = (
            np.concatenate([np.stack([cols[i][1][k] for i in items], axis=1) for k in range(nv)])
            if items
            else np.zeros((nv * ncls, 0), np.int64)
        )
        groups = _groups(items, ctx.consumers, ctx.allow_removal)
        opt = np.zeros((len(items), sum(len(o) for _, o in groups)), np.int64)
        starts = []
        k = 0
        for _, options in groups:
            starts.append(k)
            for on in options:
                opt[on, k] = 1
                k += 1
        base = np.concatenate(
            [
                cols[("1",)][1][k] if ("1",) in cols and ctx.pools[cols[("1",)][0]] == pool else zero
                for k in range(nv)
            ]
        )
        pattern, reps = _patterns(mat)
        porder = np.argsort(pattern, kind="stable")
        pstarts = np.searchsorted(pattern[porder], np.arange(len(reps)))
        mat_r = mat[reps]
        # 0/1 option matrix: a float product is exact here (sums of a few items, far below 2^53) and fast
        ov_r = (
            (mat_r.astype(np.float64) @ opt.astype(np.float64)).astype(np.int64)
            if len(items)
            else np.zeros((len(reps), 0), np.int64)
        )
        pool_a = ctx.pools["A"] == pool
        keep_rows = np.zeros(len(reps), bool)
        consts = []
        for assignment in itertools.product(*options_of_cross):
            const = base.copy()
            if pool_a and assignment:
                for p, R in assignment:  # windows the choice opens (per class)
                    for item in [("Aout", p)] if not R else []:
                        if item in cols:
                            const += np.concatenate(cols[item][1])
                    for c in ctx.consumers[p]:
                        if c not in R and ("Ain", c, p) in cols:
                            const += np.concatenate(cols[("Ain", c, p)][1])
                held = []  # per variant, per unit: the crossing activations, then the most per class
                for b in variants:
                    u = np.zeros(sp.n_units, np.int64)
                    for p, R in assignment:
                        if not R:
                            continue
                        lp = ctx.layer[p]
                        eb = output_channels(lp) * lp.precision.O_final
                        if (p, R) in st.outgoing:
                            cnt, nread = st.outgoing[(p, R)]
                            u += (cnt + b * nread) * eb * tb
                        else:
                            cnt, nread = st.incoming[(p, R)]
                            u += (cnt * tb + (T - (b + 1) * tb) * nread) * eb
                    held.append(np.maximum.reduceat(u[st.order], st.starts))
                const += np.concatenate(held)
            best = np.maximum.reduceat(const[porder], pstarts)
            consts.append((tuple(assignment), best))
            keep_rows |= _maybe_max(best, ov_r, starts)
        ov_k = ov_r[keep_rows]
        if ov_k.size and ov_k.min() >= 0 and ov_k.max() < 2**31:
            ov_k = ov_k.astype(np.int32)  # half the memory; every use widens to 64 bits
        cases = [Case(a, c[keep_rows]) for a, c in consts]
        out[pool] = Rows(items, groups, np.asarray(starts, np.int64), ov_k, cases)
    return out


def _groups(
    items: list[Item], consumers: dict[str, tuple[str, ...]], allow_removal: bool
) -> list[tuple[tuple, list[list[int]]]]:
    """The items of a pool as exclusive choices: each group takes one option (a set of items that are 1)."""
    where = {it: j for j, it in enumerate(items)}
    keys: dict[tuple, None] = {}
    for it in items:
        kind = it[0]
        if kind in ("Wres", "Wref", "Wtile"):
            keys[("W", it[1])] = None
        elif kind in ("Vkeep", "Vspill"):
            keys[("V", it[1])] = None
        elif kind in ("A", "Aout"):
            keys[("P", it[1])] = None
        elif kind == "Ain":
            keys[("P", it[2])] = None
    out = []
    for key in keys:
        kind, n = key
        if kind == "W":
            options = [
                [where[i] for i in its if i in where] for its in ((("Wres", n),), (("Wref", n), ("Wtile", n)))
            ]
        elif kind == "V":
            options = [[where[i]] if i in where else [] for i in (("Vkeep", n), ("Vspill", n))]
            if allow_removal:
                options.append([])
        else:
            options = []
            for R in [(), *subsets(consumers[n])]:
                on = [where[("A", n, R)]] if R and ("A", n, R) in where else []
                if not R and ("Aout", n) in where:
                    on.append(where[("Aout", n)])
                on += [where[("Ain", c, n)] for c in consumers[n] if c not in R and ("Ain", c, n) in where]
                options.append(sorted(on))
        out.append((key, options))
    return out


def _patterns(mat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group equal rows: (group of each row, one representative row per group)."""
    if mat.shape[1] == 0:
        return np.zeros(len(mat), np.int64), np.zeros(1, np.int64)
    rng = np.random.default_rng(12345)
    h = mat @ rng.integers(1, 2**61, mat.shape[1], dtype=np.int64)  # wraps: a hash, checked below
    _, reps, pattern = np.unique(h, return_index=True, return_inverse=True)
    if not np.array_equal(mat, mat[reps][pattern.ravel()]):  # a hash collision: exact grouping instead
        _, reps, pattern = np.unique(mat, axis=0, return_index=True, return_inverse=True)
    return pattern.ravel(), reps


def _maybe_max(const: np.ndarray, ov: np.ndarray, starts: list[int]) -> np.ndarray:
    """Rows that may hold the most under some decision: a row whose most is at most another row's least
    never does."""
    if not starts or not len(const):
        return np.ones(len(const), bool)
    lo = const + np.minimum.reduceat(ov, starts, axis=1).sum(axis=1)
    hi = const + np.maximum.reduceat(ov, starts, axis=1).sum(axis=1)
    j = int(np.argmax(lo))
    keep = hi > lo[j]
    keep[j] = True
    return keep


def _item_key(pos: dict[str, int]):
    order = {"1": 0, "Wres": 1, "Wref": 2, "Wtile": 3, "Vkeep": 4, "Vspill": 5, "Aout": 6, "Ain": 7, "A": 8}

    def key(item: Item) -> tuple:
        kind = item[0]
        if kind == "1":
            return (0,)
        rest = tuple(pos[x] if isinstance(x, str) else tuple(pos[y] for y in x) for x in item[1:])
        return (order[kind], *rest)

    return key


# ----------------------------------------------------------------------------------------------------
# A full choice, priced from the tables (the model's arithmetic, in Python: a check on the tables)


@dataclass(frozen=True)
class Choice:
    """Candidates covering the stages in order, and every residency decision."""

    candidates: tuple[int, ...]
    resident: frozenset[str]  # weighted layers whose weights stay resident
    state: tuple[tuple[str, str], ...]  # stateful layer -> keep | spill | remove
    onchip: frozenset[tuple[str, str]]  # edges read on chip

    def state_of(self, n: str) -> str:
        return dict(self.state)[n]


def option_of(tables: Tables, choice: Choice, key: tuple) -> int:
    """The option a choice takes in a group: resident/refetch, keep/spill/remove, reader set index."""
    kind, n = key
    if kind == "W":
        return 0 if n in choice.resident else 1
    if kind == "V":
        return STATE_OPTIONS.index(choice.state_of(n))
    return [(), *subsets(tables.consumers[n])].index(onchip_readers(tables, choice, n))


def onchip_readers(tables: Tables, choice: Choice, p: str) -> tuple[str, ...]:
    return tuple(c for c in tables.consumers[p] if (p, c) in choice.onchip)


def combo_of(tables: Tables, choice: Choice, n: str) -> tuple:
    lay = tables.workload.layer(n)
    f = int(bool(lay.weights) and n not in choice.resident)
    st = choice.state_of(n) if lay.stateful else None
    cs = tables.consumers[n]
    wd = int(not cs or any((n, c) not in choice.onchip for c in cs))
    src = tuple(int((s, n) not in choice.onchip) for s in tables.sources[n])
    return (f, st, wd, src)


@dataclass(frozen=True)
class Priced:
    reads: dict[str, int]
    writes: dict[str, int]
    energy_pj: float
    latency_cycles: int
    peak_bits: dict[str, int]

    @property
    def offchip_bits(self) -> int:
        return sum(self.reads.values()) + sum(self.writes.values())


def price(tables: Tables, choice: Choice) -> Priced:
    reads = dict.fromkeys("WIOV", 0)
    writes = dict.fromkeys("WIOV", 0)
    energy = 0.0
    latency = 0
    peak: dict[str, int] = {}
    for ci in choice.candidates:
        cand = tables.candidates[ci]
        for s in tables.stages[cand.first : cand.last + 1]:
            for n in s.layers:
                tab = tables.classes[n][tables.layer_class[(ci, n)]]
                combo = combo_of(tables, choice, n)
                f, st, wd, src = combo
                w = tables.weight_bits[n]
                reads["W"] += w * tab.total_units if f else w
                S = tables.state_bits[n]
                if st == "keep":
                    reads["V"] += S
                    writes["V"] += S
                elif st == "spill":
                    reads["V"] += S * tab.n_batches
                    writes["V"] += S * tab.n_batches
                writes["O"] += tables.output_bits[n] * wd
                reads["I"] += tab.input_reads + sum(
                    b for (_, b), d in zip(tab.dram_reads, src, strict=True) if d
                )
                energy += tab.energy_removed if st == "remove" else tab.energy
                latency += tab.latency[tables.combos[n].index(combo)]
        for pool, r in tables.rows[ci].items():
            cols = [int(r.starts[g]) + option_of(tables, choice, key) for g, (key, _) in enumerate(r.groups)]
            for case in r.cases:
                if all(onchip_readers(tables, choice, p) == R for p, R in case.assignment):
                    held = case.const + (r.options[:, cols].sum(axis=1) if cols else 0)
                    peak[pool] = max(peak.get(pool, 0), int(held.max()) if len(held) else 0)
    energy += sum(reads[op] * tables.pj_read[op] + writes[op] * tables.pj_write[op] for op in "WIOV")
    return Priced(reads, writes, energy, latency, peak)


def schedule_of(tables: Tables, choice: Choice, name: str = "") -> Schedule:
    segs = []
    for ci in choice.candidates:
        cand = tables.candidates[ci]
        layers = tuple(n for s in tables.stages[cand.first : cand.last + 1] for n in s.layers)
        tile = cand.config.tile
        segs.append(Segment(layers, cand.config.time_batch, None if tile is None else Tile(tile)))
    return Schedule(
        tuple(segs),
        state={n: choice.state_of(n) for n in tables.stateful},
        weights={n: "resident" if n in choice.resident else "refetch" for n in tables.weighted},
        edges={e: "onchip" if e in choice.onchip else "dram" for e in tables.workload.edges},
        name=name,
    )
