"""Time structure of an exported SNN: the timestep of every tensor, explicit state I/O, recurrent weights.

An unrolled export has no time loop, only copies: the input (or a folded layer output) is cut into
single-step slices (`Gather`/`Slice`/`Split` with one index), and everything computed from slice t
belongs to step t. A weight op whose output is added to something of a *later* step reads the
previous timestep: it is a recurrent weight (snntorch `RLeaky`, an LMU memory's A matrix). A step
graph (norse) has no slices; its state is explicit graph inputs paired with outputs, and a weight
op reading such a state input is recurrent too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import onnx

from stems.workload.onnx_graph import ELEMENTWISE, VIEW_OPS, WEIGHT_OPS, OnnxGraph

_IO_SUFFIX = re.compile(r"([._-]?(in|out|new|next|prev|old|input|output))+$")


@dataclass(frozen=True)
class TimeInfo:
    """What the importer knows about time before it groups nodes into layers."""

    steps: dict[str, int]  # tensor -> timestep it belongs to (-1: none, e.g. constants, state inputs)
    slices: int  # timesteps the input (or a folded tensor) is cut into; 0 when nothing is sliced
    state_inputs: dict[str, str]  # graph input -> the graph output that returns its next value
    recurrent: frozenset[int]  # indices of weight nodes that read an earlier step or a state input


def analyse_time(g: OnnxGraph) -> TimeInfo:
    slice_steps, slices = _time_slices(g)
    steps: dict[str, int] = {}
    for node in g.nodes:
        step = max((steps.get(t, -1) for t in g.nonconst(node)), default=-1)
        for out in node.output:
            if out and out not in g.const:
                steps[out] = slice_steps.get(out, step)
    state = _state_inputs(g)
    return TimeInfo(steps, slices, state, frozenset(_recurrent_weights(g, steps, state)))


def _slice_indices(g: OnnxGraph, node: onnx.NodeProto) -> list[tuple[str, str, int, int]]:
    """(output, sliced tensor, axis, index) for each single-index slice this node takes."""
    data = node.input[0] if node.input else ""
    shape = g.shapes.get(data)
    if not data or data in g.const or not shape:
        return []
    if node.op_type == "Gather":
        idx = g.value(node.input[1])
        if idx is None or idx.size != 1:
            return []
        axis = g.int_attr(node, "axis", 0) % len(shape)
        return [(node.output[0], data, axis, int(idx.flat[0]) % shape[axis])]
    if node.op_type == "Slice" and len(node.input) >= 3:
        starts, ends = g.value(node.input[1]), g.value(node.input[2])
        axes = g.value(node.input[3]) if len(node.input) > 3 and node.input[3] else np.zeros(1, int)
        out = g.shapes.get(node.output[0])
        if starts is None or ends is None or axes is None or starts.size != 1 or out is None:
            return []
        axis = int(axes.flat[0]) % len(shape)
        if out[axis] != 1:
            return []
        return [(node.output[0], data, axis, int(starts.flat[0]) % shape[axis])]
    if node.op_type == "Split":
        axis = g.int_attr(node, "axis", 0) % len(shape)
        outs = [o for o in node.output if o]
        if len(outs) == shape[axis] and all(g.shapes.get(o, (0,) * len(shape))[axis] == 1 for o in outs):
            return [(o, data, axis, k) for k, o in enumerate(outs)]
    return []


def _time_slices(g: OnnxGraph) -> tuple[dict[str, int], int]:
    """Slices that cut one tensor along one axis into at least two single steps are timesteps."""
    cuts: dict[tuple[str, int], dict[str, int]] = {}
    for node in g.nodes:
        if node.op_type in ("Gather", "Slice", "Split"):
            for out, data, axis, index in _slice_indices(g, node):
                cuts.setdefault((data, axis), {})[out] = index
    steps: dict[str, int] = {}
    count = 0
    for outs in cuts.values():
        if len(set(outs.values())) >= 2:
            steps.update(outs)
            count = max(count, len(set(outs.values())))
    return steps, count


def _state_inputs(g: OnnxGraph) -> dict[str, str]:
    """Pair state inputs with outputs by name stem and shape (`lif1_v` -> `lif1_v_out`), never by position."""
    pairs: dict[str, str] = {}
    for i in g.inputs:
        stem = _IO_SUFFIX.sub("", i)
        if not stem:
            continue
        for o in g.outputs:
            same = _IO_SUFFIX.sub("", o) == stem and g.shapes.get(o) == g.shapes.get(i)
            if same and o != i and o not in pairs.values():
                pairs[i] = o
                break
    return pairs


def _reads_state(g: OnnxGraph, tensor: str, state: dict[str, str]) -> bool:
    for _ in range(16):
        if tensor in state:
            return True
        node = g.nodes[g.producer[tensor]] if tensor in g.producer else None
        if node is None or node.op_type not in VIEW_OPS or len(g.nonconst(node)) != 1:
            return False
        tensor = g.nonconst(node)[0]
    return False


def _recurrent_weights(g: OnnxGraph, steps: dict[str, int], state: dict[str, str]) -> set[int]:
    """Weight nodes reading a state input, and weight groups (one initializer) all of whose copies
    feed a later step. "All" matters: the first copy of a feed-forward op also reaches a later step,
    through the neuron state whose initial value is a constant, but its last copy never does."""
    rec, copies = set(), {}
    for i, node in enumerate(g.nodes):
        if node.op_type not in WEIGHT_OPS or len(g.nonconst(node)) != 1:
            continue
        if _reads_state(g, g.nonconst(node)[0], state):
            rec.add(i)
        weight = next((t for t in node.input[1:] if t in g.const), node.input[1])
        copies.setdefault(g.weight_name(weight) or weight, []).append(i)
    for nodes in copies.values():
        if all(_feeds_later_step(g, g.nodes[i], steps) for i in nodes):
            rec.update(nodes)
    return rec


def _feeds_later_step(g: OnnxGraph, node: onnx.NodeProto, steps: dict[str, int]) -> bool:
    """True when the op's output is first combined, by arithmetic, with a value of a later timestep.

    Only the first merge counts: after it the value joins a neuron's state chain, which carries
    every step's input into the later steps.
    """
    step = steps.get(node.output[0], -1)
    frontier = [node.output[0]]
    while frontier:
        tensor = frontier.pop()
        for c in g.consumers.get(tensor, ()):
            consumer = g.nodes[c]
            out = consumer.output[0] if consumer.output else ""
            if consumer.op_type in ELEMENTWISE and len(g.nonconst(consumer)) > 1:
                if steps.get(out, -1) > step:
                    return True
            elif consumer.op_type in ELEMENTWISE | VIEW_OPS and steps.get(out, -1) == step:
                frontier.append(out)
    return False
