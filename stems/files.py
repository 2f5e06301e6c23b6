"""Safe output writing: never clobber a user's file without --force, never leave a half-written one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from stems.errors import StemsInputError


def check_writable(path: str | Path, *, force: bool) -> Path:
    """The output path, refusing an existing file or directory unless `force` is given."""
    path = Path(path)
    if path.exists() and not force:
        raise StemsInputError("already exists; pass --force to overwrite it", path=path)
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to a temporary file beside `path`, then rename it into place.

    A reader never sees a half-written file, and a failed write leaves the old file untouched.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise StemsInputError(f"cannot write: {exc.strerror}", path=path) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise StemsInputError(f"cannot write: {exc.strerror}", path=path) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())
