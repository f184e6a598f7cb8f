"""One exception type for bad input: it always names the file and the problem."""

from __future__ import annotations

from os import PathLike


class InputError(Exception):
    """Bad input. Rendered as one line ``<file>: <problem>``; the CLI exits with code 2."""

    def __init__(self, path: str | PathLike[str] | None, problem: str) -> None:
        self.path = str(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)
