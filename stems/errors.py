"""The one error type for bad user input, so the CLI can print it as a single line and exit 2."""

from __future__ import annotations

from pathlib import Path


class StemsInputError(Exception):
    """Bad input: names the file and, when known, the node or key, plus what is wrong.

    The CLI prints ``str(error)`` as one line (no traceback) and exits with code 2.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, where: str | None = None):
        self.path = str(path) if path is not None else None
        self.where = where
        self.message = message
        super().__init__(self.line())

    def line(self) -> str:
        parts = [p for p in (self.path, self.where) if p]
        prefix = ": ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message


def did_you_mean(word: str, choices: list[str] | tuple[str, ...] | set[str]) -> str:
    """A ' (did you mean X?)' suffix for a misspelt key, or '' when nothing is close."""
    import difflib

    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
