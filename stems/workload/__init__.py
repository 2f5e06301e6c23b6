"""Import: model files (ONNX, NIR) and annotations to a validated layer graph (the workload)."""

from stems.workload.load import load_workload
from stems.workload.model import Dims, Layer, Neuron, Op, Precision, Rates, Window, Workload
from stems.workload.summary import layer_table, totals

__all__ = [
    "Dims",
    "Layer",
    "Neuron",
    "Op",
    "Precision",
    "Rates",
    "Window",
    "Workload",
    "layer_table",
    "load_workload",
    "totals",
]
