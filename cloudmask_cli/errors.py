"""One exception type for bad input: it always names the file and the problem."""

from __future__ import annotations

from os import PathLike


class InputError(Exception):
    """Bad input. Rendered as one line ``<file>: <problem>``; the CLI exits with code 2."""

    def __init__(self, path: str | PathLike[str] | None, problem: str) -> None:
        self.path = str(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


def first_line(exc: BaseException) -> str:
    """An exception's message as one line for an `InputError`: its first line (GDAL's run over
    several) cut at 200 characters, or its type where it has no message."""
    text = str(exc)
    return text.splitlines()[0][:200] if text.strip() else type(exc).__name__
