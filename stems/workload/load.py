"""One entry point from a model file (ONNX or NIR) plus user knobs to an annotated workload."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stems.errors import StemsInputError
from stems.workload.annotate import annotate
from stems.workload.annotations import Annotations, load_annotations, parse_annotations_text
from stems.workload.model import Workload

ZOO_PREFIX = "zoo:"
"""`zoo:NAME` names a built-in model (`stems zoo list`) wherever a model file is expected."""
ONNX_SUFFIXES = (".onnx",)
NIR_SUFFIXES = (".nir", ".h5", ".hdf5")


def load_workload(
    path: str | Path,
    *,
    timesteps: int | None = None,
    annotations: str | Path | Mapping[str, Any] | None = None,
    allow_unknown_ops: bool = False,
) -> Workload:
    """Import a model (a file, or `zoo:NAME`) and apply annotations.

    T comes from `timesteps`, else the user's annotations, else the model's embedded
    annotations, else the file itself. The user's annotations apply over the embedded ones.
    """
    path = Path(path)
    zoo_name = str(path).removeprefix(ZOO_PREFIX) if str(path).startswith(ZOO_PREFIX) else None
    if zoo_name is None and not path.is_file():
        raise StemsInputError("no such file", path=path)
    user = load_annotations(annotations) if annotations is not None else Annotations()
    t = timesteps if timesteps is not None else user.timesteps
    suffix = path.suffix.lower()
    if zoo_name is not None:
        from stems.workload.onnx_import import import_onnx_model
        from stems.workload.zoo import build_model

        model = build_model(zoo_name)
        digest = hashlib.sha256(model.SerializeToString()).hexdigest()
        workload = import_onnx_model(model, path, digest, timesteps=t, allow_unknown_ops=allow_unknown_ops)
    elif suffix in ONNX_SUFFIXES:
        from stems.workload.onnx_import import import_onnx

        workload = import_onnx(path, timesteps=t, allow_unknown_ops=allow_unknown_ops)
    elif suffix in NIR_SUFFIXES:
        from stems.workload.nir_import import import_nir

        workload = import_nir(path, timesteps=t)
    else:
        raise StemsInputError(
            f"unknown model format '{suffix}': give an ONNX (.onnx) or NIR (.nir) file", path=path
        )
    embedded_text = workload.source.embedded_annotations
    if embedded_text:
        embedded = parse_annotations_text(embedded_text, f"{path} (embedded stems.annotations)")
        if t is None and embedded.timesteps not in (None, workload.timesteps):
            workload = workload.with_timesteps(embedded.timesteps)
        user = user.merged_over(embedded)
    return annotate(workload, user)
