"""The CLI's shared options: declared once, so run, batch, info and evaluate say the same."""

from __future__ import annotations

import click
import typer.main

from cloudmask_cli.cli import app
from cloudmask_cli.demo import DEMO_KINDS


def _params(command: str) -> dict[str, click.Parameter]:
    group = typer.main.get_command(app)
    return {p.name: p for p in group.commands[command].params}


def test_shared_options_have_one_name_help_and_default() -> None:
    run, batch = _params("run"), _params("batch")
    shared = ("device", "batch_size", "precision", "overlap", "aoi", "style", "weights",
              "sensor", "resolution", "quicklook_size", "quicklook_layout", "spectral")  # fmt: skip
    for name in shared:
        a, b = run[name], batch[name]
        assert (a.opts, a.help, a.default) == (b.opts, b.help, b.default), name
    info = _params("info")
    assert (info["sensor"].help, info["resolution"].help) == (
        run["sensor"].help, run["resolution"].help
    )  # fmt: skip
    assert _params("evaluate")["spectral"].opts == ["--spectral-tests"]


def test_demo_kind_help_lists_every_kind_the_code_writes() -> None:
    help_text = _params("demo")["kind"].help
    assert all(kind in help_text for kind in DEMO_KINDS)
