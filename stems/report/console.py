"""What the commands print while they work: a status line on stderr (rewritten in place on a terminal,
one line per new message otherwise), and with `--verbose` every evaluated point."""

from __future__ import annotations

import sys
import threading
import time
from typing import IO, Any

import click

from stems.explore import Progress


def _fmt_point(p: dict[str, Any]) -> str:
    return (
        f"energy {p['energy_pj'] / 1e6:.4g} uJ, latency {p['latency_cycles']:,} cycles, "
        f"off-chip {p['offchip_bytes'] / 2**20:.4g} MiB, on-chip peak {p['onchip_peak_bytes'] / 2**10:.4g} KiB"
        + ("" if p.get("feasible", True) else ", over capacity")
    )


class StatusLine:
    """A `progress` callback for `stems.explore.explore`. `quiet` prints nothing; `verbose` adds points."""

    def __init__(self, *, quiet: bool = False, verbose: bool = False, stream: IO[str] | None = None):
        self.quiet = quiet
        self.verbose = verbose
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self.last = ""
        self.lock = threading.Lock()
        self.open = False

    def __call__(self, p: Progress) -> None:
        if self.quiet:
            return
        with self.lock:
            where = f"sweep {p.step}/{p.total} {p.sweep}: " if p.total > 1 or p.sweep else ""
            if p.kind == "point":
                if self.verbose and p.point is not None:
                    self._line(f"  {where}{p.message}: {_fmt_point(p.point)}", keep=True)
                return
            text = f"{where}{p.message}"
            if text == self.last:
                return
            self.last = text
            if self.tty:
                elapsed = time.perf_counter() - self.start
                bar = self._bar(p.step - 1, p.total)
                self._line(f"{bar} {elapsed:5.0f}s  {text}", keep=False)
            else:
                self._line(text, keep=True)

    @staticmethod
    def _bar(done: int, total: int, width: int = 12) -> str:
        filled = round(width * done / max(total, 1))
        return "[" + "#" * filled + "-" * (width - filled) + f"] {done}/{total}"

    def _line(self, text: str, *, keep: bool) -> None:
        if self.tty:
            cols = 200
            try:
                import shutil

                cols = shutil.get_terminal_size().columns
            except OSError:
                pass
            self.stream.write("\r\x1b[K" + text[: cols - 1])
            if keep:
                self.stream.write("\n")
            self.open = not keep
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def done(self) -> None:
        """End an in-place line so what follows starts on a fresh one."""
        if self.tty and self.open:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.open = False


def note(message: str, *, quiet: bool = False) -> None:
    if not quiet:
        click.echo(message, err=True)
