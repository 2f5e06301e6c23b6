"""What a result was computed from, recorded so it can be loaded again: the model file, its annotations,
the hardware reference with its `--set` overrides, and the versions of stems and its solvers."""

from __future__ import annotations

import hashlib
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from stems.errors import StemsInputError
from stems.hardware import Hardware, load_hardware
from stems.hardware.load import ZIGZAG_PREFIX, list_shipped
from stems.workload import Workload, load_workload
from stems.workload.knobs import apply_knobs, merge_docs
from stems.workload.load import ZOO_PREFIX


def sha256_file(path: str | Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _rel(path: str, base: Path | None) -> str | None:
    if not path or base is None or path.startswith(ZOO_PREFIX):
        return None
    try:
        return os.path.relpath(path, base)
    except ValueError:  # another drive on Windows
        return None


def _find(path: str, relative: str | None, base: Path | None, what: str) -> str:
    """`path` if it exists, else `relative` resolved against `base` (the folder of the file that
    recorded it: results move together), else an error naming both."""
    if path and (path.startswith(ZOO_PREFIX) or Path(path).exists()):
        return path
    if relative and base is not None and (base / relative).exists():
        return str((base / relative).resolve())
    tried = " or ".join(p for p in (path, str(base / relative) if relative and base else "") if p)
    raise StemsInputError(f"cannot find the {what} ({tried or 'no path recorded'})")


@dataclass(frozen=True)
class ModelRef:
    """A model as explored: the file, its hash, T, and the annotations applied (kept inline, so a
    mapping file does not depend on the annotations file staying where it was)."""

    path: str
    name: str
    sha256: str
    timesteps: int
    annotations: Mapping[str, Any] | None = None
    annotations_path: str | None = None
    annotations_sha256: str | None = None
    allow_unknown_ops: bool = False
    format: str = ""
    knobs: Mapping[str, Any] | None = None
    """An annotations overlay applied after loading: a sweep value's network knobs and the rates of an
    activity file (`stems.workload.knobs`)."""

    @classmethod
    def of(
        cls,
        workload: Workload,
        *,
        annotations: str | Path | Mapping[str, Any] | None = None,
        allow_unknown_ops: bool = False,
    ) -> ModelRef:
        content: Mapping[str, Any] | None = None
        ann_path = ann_sha = None
        if isinstance(annotations, Mapping):
            content = dict(annotations)
        elif annotations is not None:
            ann_path = str(Path(annotations).resolve())
            ann_sha = sha256_file(annotations)
            content = yaml.safe_load(Path(annotations).read_text()) or {}
        src = workload.source
        return cls(
            path=src.path
            if not src.path or src.path.startswith(ZOO_PREFIX)
            else str(Path(src.path).resolve()),
            name=workload.name,
            sha256=src.sha256,
            timesteps=workload.timesteps,
            annotations=content,
            annotations_path=ann_path,
            annotations_sha256=ann_sha,
            allow_unknown_ops=allow_unknown_ops,
            format=src.format,
        )

    def with_timesteps(self, t: int) -> ModelRef:
        return ModelRef(**{**self.__dict__, "timesteps": t})

    def with_knobs(self, doc: Mapping[str, Any]) -> ModelRef:
        """This model with the overlay `doc` applied after the ones it has."""
        merged = merge_docs(self.knobs or {}, doc)
        return ModelRef(**{**self.__dict__, "knobs": merged or None})

    def to_dict(self, base: Path | None = None) -> dict[str, Any]:
        """Plain data; `base` (the folder the record is written to) adds `relative_path`."""
        out: dict[str, Any] = {
            "name": self.name,
            "path": self.path or None,
            "relative_path": _rel(self.path, base),
            "sha256": self.sha256 or None,
            "format": self.format or None,
            "timesteps": self.timesteps,
            "allow_unknown_ops": self.allow_unknown_ops,
            "annotations": None,
            "knobs": dict(self.knobs) if self.knobs else None,
        }
        if self.annotations is not None:
            out["annotations"] = {
                "path": self.annotations_path,
                "sha256": self.annotations_sha256,
                "content": dict(self.annotations),
            }
        return out

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], *, where: str = "model") -> tuple[ModelRef, str | None]:
        """The record and its `relative_path` (None if not recorded)."""
        if not isinstance(doc, Mapping):
            raise StemsInputError("expected a mapping with name, path, sha256, timesteps", where=where)
        ann = doc.get("annotations")
        if ann is not None and not isinstance(ann, Mapping):
            raise StemsInputError("expected {path, sha256, content} or null", where=f"{where}.annotations")
        t = doc.get("timesteps")
        if not isinstance(t, int) or isinstance(t, bool) or t < 1:
            raise StemsInputError(
                f"timesteps must be a positive integer, not {t!r}", where=f"{where}.timesteps"
            )
        return cls(
            path=str(doc.get("path") or ""),
            name=str(doc.get("name") or ""),
            sha256=str(doc.get("sha256") or ""),
            timesteps=t,
            annotations=(ann or {}).get("content") if ann else None,
            annotations_path=(ann or {}).get("path"),
            annotations_sha256=(ann or {}).get("sha256"),
            allow_unknown_ops=bool(doc.get("allow_unknown_ops", False)),
            format=str(doc.get("format") or ""),
            knobs=doc.get("knobs") or None,
        ), doc.get("relative_path")

    def load(
        self, *, path: str | Path | None = None, relative: str | None = None, base: Path | None = None
    ) -> Workload:
        """Import the model again (from `path` if given, else where it was recorded)."""
        found = (
            str(path) if path is not None else _find(self.path, relative, base, f"model file of {self.name}")
        )
        workload = load_workload(
            found,
            timesteps=self.timesteps,
            annotations=self.annotations,
            allow_unknown_ops=self.allow_unknown_ops,
        )
        return apply_knobs(workload, self.knobs or {}, "model.knobs")


@dataclass(frozen=True)
class HardwareRef:
    """Hardware as explored: the reference given (`stems-edge`, a path, `zigzag:...`), the `--set`
    overrides applied (base overrides, then the sweep's), the effective spec's hash, and `buffer` (one
    level for every operand's on-chip budget, or None: each operand's outermost on-chip level)."""

    ref: str
    name: str
    sha256: str
    overrides: tuple[str, ...] = ()
    buffer: str | None = None
    description: str = field(default="", compare=False)

    @classmethod
    def of(cls, ref: str, hw: Hardware, buffer: str | None = None) -> HardwareRef:
        return cls(
            ref=canonical_ref(ref),
            name=hw.name,
            sha256=hw.sha256,
            overrides=tuple(hw.overrides),
            buffer=buffer,
            description=hw.description,
        )

    def to_dict(self, base: Path | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ref": self.ref,
            "name": self.name,
            "sha256": self.sha256,
            "overrides": list(self.overrides),
            "buffer": self.buffer,
        }
        if is_path_ref(self.ref):
            out["relative_ref"] = _rel(self.ref, base)
        return out

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], *, where: str = "hardware") -> tuple[HardwareRef, str | None]:
        """The record and its `relative_ref` (None if not recorded or not a path)."""
        if not isinstance(doc, Mapping) or not doc.get("ref"):
            raise StemsInputError("expected a mapping with ref, name, sha256, overrides", where=where)
        overrides = doc.get("overrides") or []
        if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
            raise StemsInputError("expected a list of KEY=VALUE strings", where=f"{where}.overrides")
        return cls(
            ref=str(doc["ref"]),
            name=str(doc.get("name") or ""),
            sha256=str(doc.get("sha256") or ""),
            overrides=tuple(overrides),
            buffer=doc.get("buffer"),
        ), doc.get("relative_ref")

    def load(
        self, *, relative: str | None = None, base: Path | None = None, extra: tuple[str, ...] = ()
    ) -> Hardware:
        """The hardware again (`extra` overrides applied after the recorded ones)."""
        ref = self.ref
        if is_path_ref(ref):
            ref = _find(ref, relative, base, f"hardware file of {self.name}")
        return load_hardware(ref, (*self.overrides, *extra))


def is_path_ref(ref: str) -> bool:
    return not ref.startswith(ZIGZAG_PREFIX) and ref not in list_shipped()


def canonical_ref(ref: str) -> str:
    """A hardware reference that still works from another folder: shipped names stay, paths become absolute."""
    if ref.startswith(ZIGZAG_PREFIX):
        parts = ref[len(ZIGZAG_PREFIX) :].split(",")
        return ZIGZAG_PREFIX + ",".join(str(Path(p).resolve()) if p else p for p in parts)
    if ref in list_shipped():
        return ref
    return str(Path(ref).resolve())


def versions() -> dict[str, str]:
    """Versions of stems, Python and the libraries that decide the numbers."""
    out = {"python": platform.python_version()}
    for dist in ("stems", "ortools", "numpy", "pandas", "matplotlib", "onnx", "pyyaml", "click"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out
