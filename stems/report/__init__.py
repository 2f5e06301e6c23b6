"""Reports of an exploration: plots (PNG and SVG), terminal tables and a self-contained HTML page."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stems.report.plots import Saved
    from stems.results.store import Exploration


@dataclass
class Rendered:
    """The plots written for one exploration (their files, and PNG bytes for the HTML report)."""

    saved: list[Saved] = field(default_factory=list)

    @property
    def plots(self) -> list[Path]:
        return [p for s in self.saved for p in s.paths]


def render(ex: Exploration, folder: str | Path) -> Rendered:
    """Draw every plot of `ex` into `folder/plots/` (PNG and SVG)."""
    from stems.report.figures import exploration_figures
    from stems.report.plots import save

    out = Path(folder) / "plots"
    out.mkdir(parents=True, exist_ok=True)
    rendered = Rendered()
    for name, title, fig in exploration_figures(ex):
        rendered.saved.append(save(fig, out, name, title))
    return rendered


__all__ = ["Rendered", "render"]
