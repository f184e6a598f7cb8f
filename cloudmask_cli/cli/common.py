"""The `cloudmask` app, its consoles, error exit, logging and progress bar: what every
command module shares."""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich.console import Console

from cloudmask_cli import __version__
from cloudmask_cli.errors import InputError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Cloud and cloud-shadow masks for whole satellite products (SEnSeI-v2 + SegFormer).",
    pretty_exceptions_enable=False,
)
out = Console()
WIDE = 150  # columns for the wide tables when the output is not a terminal
err = Console(stderr=True)


def fail(exc: Exception, code: int = 2) -> None:
    err.print(f"cloudmask: error: {exc}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        out.print(f"cloudmask {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    pass


def setup_logging(quiet: bool, verbose: bool) -> None:
    import logging

    level = logging.ERROR if quiet else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="cloudmask: %(message)s")


class Progress:
    """A rich progress bar on a terminal; nothing when quiet or not a TTY."""

    def __init__(self, quiet: bool) -> None:
        self.enabled = not quiet and err.is_terminal
        self.bar: Any = None  # a rich Progress while entered
        self.task: Any = None

    def __enter__(self):  # noqa: ANN204
        if not self.enabled:
            return None
        from cloudmask_cli.progress import progress_bar

        self.bar = progress_bar("windows", "{task.fields[rate]}", transient=True, console=err)
        self.bar.__enter__()
        return self.update

    def update(self, done: int, total: int) -> None:
        if self.task is None:
            self.task = self.bar.add_task("run", total=total, rate="")
        elapsed = self.bar.tasks[0].elapsed or 0
        rate = f"{done / elapsed:.1f} win/s" if elapsed and done else ""
        self.bar.update(self.task, completed=done, total=total, rate=rate)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def process_defaults() -> None:
    """What the program sets for its own process, where it starts (never on import, so a library
    user's process is left as it is); the user's own values win.

    The read threads decode while torch computes; OpenMP workers that spin-wait between
    operators take the cores the decoders need (see benchmarks/README.md). libgomp reads
    ``OMP_WAIT_POLICY`` once, when torch loads, so this runs before any command imports torch.
    The GDAL block cache is capped for every command's reads, as `gdal_env` caps it for a run.
    """
    import os

    from cloudmask_cli.remote import CACHE_MB

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("GDAL_CACHEMAX", str(CACHE_MB))


def main() -> None:
    """Console-script entry point: bad input -> one line on stderr and exit code 2."""
    process_defaults()
    try:
        app()
    except InputError as exc:  # raised outside a command's own handling
        err.print(f"cloudmask: error: {exc}", markup=False, highlight=False)
        sys.exit(2)
