"""`cloudmask sensors`, `info` and `demo`: what is bundled, what a product holds, a product to try."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from cloudmask_cli.cli.common import app, fail, out
from cloudmask_cli.cli.options import (
    QuicklookSize,
    Resolution,
    SensorName,
)
from cloudmask_cli.demo import DEMO_KINDS
from cloudmask_cli.errors import InputError


@app.command()
def sensors(
    check: Path | None = typer.Option(
        None, "--check", help="Validate a sensor YAML of your own and show its bands."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List the bundled sensor definitions (or validate your own YAML)."""
    from cloudmask_cli.sensors import bundled_sensors, load_sensor_file

    try:
        found = [load_sensor_file(check)] if check else list(bundled_sensors().values())
    except InputError as exc:
        fail(exc)
    if as_json:
        rows = [
            {
                "name": s.name,
                "title": s.title,
                "platforms": list(s.platforms),
                "bands": [
                    {
                        "name": b.name,
                        "type": b.type,
                        "wavelength": b.wavelength,
                        "resolution": b.resolution,
                    }
                    for b in s.bands
                ],
            }
            for s in found
        ]
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="sensor definitions" if not check else f"{check}: valid")
    for col in ("name", "title", "platforms", "bands"):
        table.add_column(col)
    for s in found:
        bands = (
            ", ".join(
                f"{b.name}"
                + (f" {b.wavelength[0]:g}-{b.wavelength[1]:g}nm" if b.wavelength else "")
                for b in s.bands
            )
            if check
            else " ".join(s.band_names)
        )
        table.add_row(s.name, s.title, ",".join(s.platforms), bands)
    out.print(table)


@app.command()
def info(
    product: str = typer.Argument(
        ..., help="A product folder, .zip, .tar, raster stack, or STAC item (file or URL)."
    ),
    sensor: SensorName = None,
    resolution: Resolution = None,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    quicklook: Path | None = typer.Option(
        None, "--quicklook", help="Also write a true-colour PNG of the product (replaced if there)."
    ),
    quicklook_size: QuicklookSize = 1024,
) -> None:
    """Describe a product: sensor, level, grid, bands and their radiometry, valid fraction."""
    from cloudmask_cli.products import open_product
    from cloudmask_cli.quicklook import look_before_masking
    from cloudmask_cli.remote import gdal_env

    try:
        with gdal_env():
            scene = open_product(product, sensor=sensor, resolution=resolution)
            if quicklook is not None:
                look_before_masking(scene, quicklook, quicklook_size)
            info = scene.info()
            info.valid_fraction = round(scene.valid_fraction(), 4)
    except (InputError, ValueError) as exc:
        fail(exc)
    if as_json:
        print(info.to_json())
        return
    # the other top-level entries (the reader's metadata among them) as the JSON orders them
    rest = {k: v for k, v in info.model_dump().items() if k not in ("product", "grid", "bands")}
    out.print(f"[bold]{info.product}[/bold]")
    for k, v in rest.items():
        out.print(f"  {k}: {v}", highlight=False)
    g = info.grid
    out.print(f"  grid: {g.crs} {g.width}x{g.height} @ {g.resolution:g} m", highlight=False)
    table = Table()
    for col in ("band", "type", "wavelength nm", "res m", "descriptor", "radiometry"):
        table.add_column(col)
    for b in info.bands:
        wl = f"{b.wavelength[0]:g}-{b.wavelength[1]:g}" if b.wavelength else "-"
        rad = ", ".join(
            f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in b.radiometry.items()
        )
        table.add_row(b.name, b.type, wl, f"{b.resolution:g}", b.descriptor, rad)
    out.print(table)


@app.command()
def demo(
    path: Path = typer.Argument(..., help="Folder to write the demo product into."),
    kind: str = typer.Option("sentinel2", "--kind", help=" | ".join(DEMO_KINDS)),
    size: int = typer.Option(600, "--size", help="Width/height in pixels at 10 m (sentinel2)."),
) -> None:
    """Write a small product in a real format (with clouds) to try cloudmask on at once."""
    from cloudmask_cli.demo import write_demo

    try:
        written = write_demo(path, kind=kind, size=size)
    except (InputError, ValueError) as exc:
        fail(exc)
    out.print(str(written), highlight=False)
