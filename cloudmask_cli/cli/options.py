"""Options shared by several commands, defined once so their names and help cannot drift.

Each is an ``Annotated`` type: ``device: Device = "auto"`` in a command's signature.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Device = Annotated[str, typer.Option("--device", help="auto | cpu | cuda | cuda:N")]
BatchSize = Annotated[
    int | None,
    typer.Option("--batch-size", help=r"Windows per model call \[default: 2 on CPU, 16 on CUDA]."),
]
Precision = Annotated[
    str | None,
    typer.Option(
        "--precision",
        help=r"float32 | float16 | bfloat16 \[default: float16 on CUDA, float32 on CPU].",
    ),
]
Runtime = Annotated[
    str,
    typer.Option(
        "--runtime",
        help="auto | torch | folded | openvino | compiled | openvino+compiled: how the model runs "
        "on the CPU (auto: compiled where torch.compile can build; README Speed and memory).",
    ),
]
Flips = Annotated[
    bool,
    typer.Option(
        "--flips",
        help="Test-time augmentation: average each window with its mirror images (~3x the "
        "model's time; a little better masks, see README Model quality).",
    ),
]
Overlap = Annotated[int, typer.Option("--overlap", help="Window overlap in pixels.")]
Aoi = Annotated[Path | None, typer.Option("--aoi", help="GeoJSON area (WGS84) to mask.")]
Style = Annotated[str, typer.Option("--style", help="7class | 4class | cloud | valid")]
Weights = Annotated[Path | None, typer.Option("--weights", help="Other model weights.")]
SensorName = Annotated[
    str | None,
    typer.Option("--sensor", help="Sensor name or YAML (overrides detection; needed for stacks)."),
]
Resolution = Annotated[
    float | None,
    typer.Option("--resolution", help="Working resolution in metres (default: finest band)."),
]
QuicklookSize = Annotated[
    int, typer.Option("--quicklook-size", help="Longest side of a quicklook in pixels.")
]
QuicklookLayout = Annotated[
    str,
    typer.Option("--quicklook-layout", help="side (image | mask) | overlay (mask over the image)"),
]
Spectral = Annotated[
    bool,
    typer.Option(
        "--spectral-tests/--no-spectral-tests",
        help="Water and snow from published spectral tests where the network says land or shadow.",
    ),
]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="Print nothing but errors.")]
