"""Hardware descriptions: the spec dataclasses, the YAML schema and loaders (stems and ZigZag files).

Shipped specs live in the repository's `hw_specs/`, reached through the link `stems/data/hw_specs`
(which a wheel build copies).
"""

from stems.hardware.load import (
    DEFAULT_HARDWARE,
    apply_overrides,
    build_hardware,
    list_shipped,
    load_hardware,
    shipped_dir,
)
from stems.hardware.schema import SCHEMA_VERSION, hardware_schema
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
from stems.hardware.units import format_size, parse_frequency, parse_size

__all__ = [
    "DEFAULT_HARDWARE",
    "MEMORY_OPERANDS",
    "SCHEMA_VERSION",
    "ArrayDim",
    "ComputeUnits",
    "Direction",
    "Hardware",
    "MemoryLevel",
    "PEArray",
    "Port",
    "PortKind",
    "Scaling",
    "apply_overrides",
    "build_hardware",
    "directions_of",
    "format_size",
    "hardware_schema",
    "list_shipped",
    "load_hardware",
    "parse_frequency",
    "parse_size",
    "shipped_dir",
]
