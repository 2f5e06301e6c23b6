"""Results: design points, the Pareto front, mapping files and summaries of an exploration."""

from stems.results.mapping_file import (
    MAPPING_VERSION,
    Evaluation,
    InfeasibleMapping,
    evaluate_mapping,
    read_mapping,
    write_mapping,
)
from stems.results.metrics import METRICS, OBJECTIVES
from stems.results.pareto import pareto_front, pareto_mask
from stems.results.store import Exploration

__all__ = [
    "MAPPING_VERSION",
    "METRICS",
    "OBJECTIVES",
    "Evaluation",
    "Exploration",
    "InfeasibleMapping",
    "evaluate_mapping",
    "pareto_front",
    "pareto_mask",
    "read_mapping",
    "write_mapping",
]
