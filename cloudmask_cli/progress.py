"""The one look of the progress bars of `cloudmask run`, `evaluate` and `train` (rich, stderr)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


def progress_bar(
    label: str, fields: str = "", *, transient: bool, console: Console | None = None
) -> Progress:
    """``label`` [bar] done/total ``fields`` elapsed remaining; ``fields`` may name task fields."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn(fields),
        TimeElapsedColumn(), TimeRemainingColumn(),
        console=console or Console(stderr=True), transient=transient,
    )  # fmt: skip
