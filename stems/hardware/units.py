"""Quantities with units in hardware files: sizes (to bits) and clock frequencies (to Hz).

Sizes: a plain integer is bits. A suffix is an optional prefix plus `bit`/`b` (bits) or `B`
(bytes). SI prefixes k/K, M, G, T are powers of 1000 and IEC prefixes Ki, Mi, Gi, Ti powers of
1024, so `1MB` is 8,000,000 bits and `1MiB` 8,388,608 bits. Numbers may carry a fraction
(`1.5KiB`) as long as the result is a whole number of bits.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

_PREFIXES = {
    "": 1,
    "k": 1000,
    "K": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
}
_BASES = {"bit": 1, "bits": 1, "b": 1, "B": 8, "byte": 8, "bytes": 8}
_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_QUANTITY = re.compile(rf"^\s*({_NUMBER})\s*([A-Za-z]*)\s*$")

SIZE_UNITS: dict[str, int] = {
    f"{prefix}{base}": factor * _BASES[base]
    for prefix, factor in _PREFIXES.items()
    for base in ("bit", "B")
    if prefix != "K"
}
"""The canonical size units and their size in bits, as `format_size` writes them."""

_FREQ_UNITS = {"": 1, "Hz": 1, "kHz": 10**3, "MHz": 10**6, "GHz": 10**9}


class UnitError(ValueError):
    """A quantity that cannot be read; the caller adds the file and key."""


def _split(value: Any, what: str) -> tuple[Fraction, str]:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise UnitError(f"{what} must be a number or a string such as '256KiB', not {value!r}")
    if isinstance(value, int | float):
        return Fraction(value), ""
    match = _QUANTITY.match(value)
    if not match:
        raise UnitError(f"cannot read {value!r} as a {what}")
    return Fraction(match.group(1)), match.group(2)


def parse_size(value: Any) -> int:
    """Bits in a size such as 4096, '4bit', '256KiB', '1MB' or '10Gbit' (the sign is kept)."""
    number, unit = _split(value, "size")
    factor = _size_factor(unit, value)
    bits = number * factor
    if bits.denominator != 1:
        raise UnitError(f"size {value!r} is not a whole number of bits")
    return int(bits)


def _size_factor(unit: str, value: Any) -> int:
    for base in sorted(_BASES, key=len, reverse=True):
        if unit.endswith(base) and unit[: -len(base)] in _PREFIXES:
            return _PREFIXES[unit[: -len(base)]] * _BASES[base]
    if unit in _PREFIXES:  # a bare prefix ('8K') would silently mean bits: refuse it
        if unit == "":
            return 1
        raise UnitError(f"size {value!r} needs a unit after '{unit}': bit or B (e.g. '{unit}iB')")
    raise UnitError(f"unknown size unit '{unit}' in {value!r}; use bit or B with k, M, G, Ki, Mi, Gi")


def format_size(bits: int) -> str:
    """An exact spelling of `bits` with the smallest number, in bytes when it is whole bytes:
    '256KiB', '1250MB', '12bit'."""
    base = "B" if bits % 8 == 0 and bits > 0 else "bit"
    exact = [(bits // f, unit) for unit, f in SIZE_UNITS.items() if unit.endswith(base) and bits % f == 0]
    number, unit = min(exact, key=lambda e: abs(e[0]))
    return f"{number}{unit}"


def parse_frequency(value: Any) -> float:
    """Hz in a clock such as 1e9, '1GHz' or '700 MHz'."""
    number, unit = _split(value, "frequency")
    if unit not in _FREQ_UNITS:
        raise UnitError(f"unknown frequency unit '{unit}' in {value!r}; use Hz, kHz, MHz or GHz")
    return float(number * _FREQ_UNITS[unit])
