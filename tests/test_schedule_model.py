"""The schedule model: validation, mapping-file round trip, blocks to segments, state removal, units."""

from __future__ import annotations

import pytest
from helpers import concat_block, sew_block

from stems.errors import StemsInputError
from stems.schedule import (
    BlockChoice,
    EdgeHome,
    Halo,
    Schedule,
    Segment,
    StateIO,
    StatePolicy,
    Tile,
    WeightPolicy,
    build_plan,
    segments_from_blocks,
)

SEW = [layer.name for layer in sew_block()]


def one_segment(**kw) -> Schedule:
    return Schedule((Segment(tuple(SEW), **kw),))


def test_round_trip_through_plain_data() -> None:
    s = Schedule(
        (Segment(tuple(SEW[:5]), 2, Tile(1, 4), Halo.RECOMPUTE), Segment(tuple(SEW[5:]), 1)),
        state={"c1": StatePolicy.SPILL, "c0": StatePolicy.REMOVE},
        weights={"c2": WeightPolicy.REFETCH},
        edges={("c1", "add"): EdgeHome.DRAM},
        state_io=StateIO.NONE,
        name="x",
    )
    assert Schedule.from_dict(s.to_dict()) == s
    assert s.to_dict()["edges"] == {"c1->add": "dram"}


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        (Schedule((Segment(tuple(SEW[:-1])),)), "layers in no segment: fc"),
        (Schedule((Segment((*SEW, "nope")),)), "no layer 'nope'"),
        (
            Schedule((Segment(tuple(SEW[3:])), Segment(tuple(SEW[:3])))),
            "runs from segment 1 back to segment 0",
        ),
        (one_segment(time_batch=3), "must divide the 2 timesteps"),
        (Schedule((Segment(tuple(SEW)),), state={"add": StatePolicy.SPILL}), "stateless layer"),
        (Schedule((Segment(tuple(SEW)),), weights={"pool": WeightPolicy.REFETCH}), "without weights"),
        (Schedule((Segment(tuple(SEW)),), edges={("c0", "fc"): EdgeHome.DRAM}), "not an edge"),
        (Schedule((Segment(tuple(SEW[:3])), Segment(tuple(SEW[2:])))), "is in segments 0 and 1"),
    ],
)
def test_validation_names_the_problem(schedule: Schedule, message: str) -> None:
    with pytest.raises(StemsInputError, match=message):
        schedule.validate(sew_block())


def test_from_dict_rejects_unknown_keys_and_values() -> None:
    with pytest.raises(StemsInputError, match="unknown schedule key 'segmnts'"):
        Schedule.from_dict({"segmnts": []})
    with pytest.raises(StemsInputError, match="bad schedule"):
        Schedule.from_dict({"segments": [{"layers": ["c0"]}], "state": {"c0": "forget"}})
    with pytest.raises(StemsInputError, match="PRODUCER->CONSUMER"):
        Schedule.from_dict({"segments": [], "edges": {"c0 c1": "dram"}})


def test_blocks_merge_into_segments() -> None:
    w = sew_block(t=4)  # blocks "0" (c0..pool) and "1" (flat, fc)
    same = segments_from_blocks(w, [BlockChoice(4, Tile(1))] * 2)
    assert len(same) == 1 and same[0].layers == tuple(SEW)
    split = segments_from_blocks(w, [BlockChoice(4, Tile(1)), BlockChoice(4)])
    assert [s.layers for s in split] == [tuple(SEW[:5]), tuple(SEW[5:])]
    assert [s.label(4) for s in split] == ["TB-F(1c)", "TB-LBL"]
    with pytest.raises(StemsInputError, match="3 block choices given but the network has 2 blocks"):
        segments_from_blocks(w, [BlockChoice(1)] * 3)


def test_state_removal_is_a_model_change() -> None:
    w = sew_block()
    s = one_segment().with_decisions(state={"c1": StatePolicy.REMOVE})
    (change,) = s.model_changes(w)
    assert change.layer == "c1" and change.state_bits_saved == 4 * 8 * 8 * 12
    assert "retraining" in change.note
    eff = s.effective_workload(w)
    assert not eff.layer("c1").stateful and eff.layer("c1").neuron is not None
    assert eff.layer("c0").stateful


def test_units_cover_every_output_once_with_cache() -> None:
    w = concat_block(t=2)
    s = Schedule((Segment(tuple(x.name for x in w), 1, Tile(1, 2)),))
    plan = build_plan(w, s)
    for layer in w:
        d = layer.dims
        seen = set()
        for u in plan.units_by_layer[layer.name]:
            for t in range(u.t0, u.t1):
                for y in range(*u.rows):
                    for x in range(*u.cols):
                        assert (t, y, x) not in seen
                        seen.add((t, y, x))
        assert len(seen) == d.T * d.OY * d.OX


def test_recompute_applies_only_to_stateless_inner_layers() -> None:
    w = concat_block()
    names = tuple(x.name for x in w)
    s = Schedule((Segment(names, 1, Tile(1), Halo.RECOMPUTE),))
    # c0, c1 are stateful; c3 is the network output; c2 and cat are stateless inner layers
    assert build_plan(w, s).recompute == {"c2", "cat"}
    # reading a layer through DRAM makes it cache
    assert build_plan(w, s.with_decisions(edges={("c2", "cat"): EdgeHome.DRAM})).recompute == {"cat"}
    # removing a state makes the layer eligible
    assert "c1" in build_plan(w, s.with_decisions(state={"c1": StatePolicy.REMOVE})).recompute
