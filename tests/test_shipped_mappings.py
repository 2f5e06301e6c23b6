"""The example mapping files shipped in mappings/ still reproduce their stored numbers: they are what a new
user opens first, so a change to the cost model, a hardware spec or a built-in model must regenerate them
(`make mappings`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stems.results.mapping_file import evaluate_mapping

SHIPPED = sorted((Path(__file__).resolve().parents[1] / "mappings").glob("*/*.yaml"))


def test_examples_are_shipped() -> None:
    assert len(SHIPPED) >= 4, "mappings/ lost its example mapping files: run `make mappings`"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_mapping_reproduces_its_numbers(path: Path) -> None:
    ev = evaluate_mapping(path)
    assert ev.same_inputs, f"{path}: the model or hardware changed since it was written; run `make mappings`"
    assert ev.matches, f"{path}: re-priced numbers differ {ev.differences}; run `make mappings`"
