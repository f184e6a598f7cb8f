"""`cloudmask run` and `batch`: masks of one product, of many."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from cloudmask_cli.cli.common import Progress, app, err, fail, out, setup_logging
from cloudmask_cli.cli.options import (
    Aoi,
    BatchSize,
    Device,
    Flips,
    Overlap,
    Precision,
    QuicklookLayout,
    QuicklookSize,
    Quiet,
    Resolution,
    Runtime,
    SensorName,
    Spectral,
    Style,
    Weights,
)
from cloudmask_cli.errors import InputError

if TYPE_CHECKING:
    from cloudmask_cli.batch import Result as BatchResult


@app.command()
def run(
    product: str = typer.Argument(
        ..., help="Product folder, .zip, .tar, raster stack, or STAC item (file or URL)."
    ),
    output: Path = typer.Option(..., "-o", "--output", help="Output mask (COG)."),
    sar: Path | None = typer.Option(None, "--sar", help="Sentinel-1 GeoTIFF (any CRS)."),
    dem: Path | None = typer.Option(None, "--dem", help="DEM GeoTIFF (any CRS)."),
    sar_def: Path | None = typer.Option(
        None,
        "--sar-def",
        help="YAML naming the --sar raster's bands (when its band "
        "descriptions do not say VV/VH/angle).",
    ),  # fmt: skip
    resolution: Resolution = None,
    style: Style = "7class",
    probabilities: Path | None = typer.Option(
        None, "--probabilities", help="Also write per-class probabilities (COG, x254)."
    ),
    weights: Weights = None,
    sensor: SensorName = None,
    device: Device = "auto",
    batch_size: BatchSize = None,
    precision: Precision = None,
    flips: Flips = False,
    runtime: Runtime = "auto",
    overlap: Overlap = 128,
    aoi: Aoi = None,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    stac: bool = typer.Option(
        False, "--stac", help="Also write a STAC item beside the mask (mask.tif -> mask.stac.json)."
    ),
    quicklook: Path | None = typer.Option(
        None, "--quicklook", help="Also write a quicklook: the product beside its mask (.png)."
    ),
    quicklook_size: QuicklookSize = 1024,
    quicklook_layout: QuicklookLayout = "side",
    spectral: Spectral = True,
    threads: int | None = typer.Option(
        None,
        "--read-threads",
        help=r"Threads decoding windows ahead \[default: 2 on CPU, up to 8 on CUDA].",
    ),
    quiet: Quiet = False,
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Print the sidecar summary."),
) -> None:
    """Mask clouds and shadows in a whole product; writes a COG and a sidecar JSON."""
    from cloudmask_cli.api import run as run_product

    setup_logging(quiet, verbose)
    try:
        with Progress(quiet) as progress:
            sidecar = run_product(
                product,
                output,
                sensor=sensor,
                sar=sar,
                dem=dem,
                sar_def=sar_def,
                resolution=resolution,
                style=style,
                probabilities=probabilities,
                weights=weights,
                device=device,
                batch_size=batch_size,
                precision=precision,
                flips=flips,
                runtime=runtime,
                overlap=overlap,
                aoi=aoi,
                overwrite=overwrite,
                read_threads=threads,
                stac=stac,
                quicklook=quicklook,
                quicklook_size=quicklook_size,
                quicklook_layout=quicklook_layout,
                spectral=spectral,
                progress=progress,
                notice=None if quiet else (lambda m: err.print(f"cloudmask: {m}")),
            )
    except (InputError, ValueError) as exc:
        fail(exc)
    if quiet:
        return
    fr = ", ".join(f"{k} {v:.1%}" for k, v in sidecar.class_fractions.items())
    out.print(f"{output}: valid {sidecar.valid_fraction:.1%}; {fr}", highlight=False)
    if verbose and sidecar.timings is not None and sidecar.windows is not None:
        t = sidecar.timings
        out.print(
            f"  {sidecar.windows.run} windows on {sidecar.device} in {t.total_s} s "
            f"(model {t.model_s} s); sidecar {output}.json",
            highlight=False,
        )


@app.command()
def batch(
    inputs: list[str] | None = typer.Argument(
        None,
        help="Products, glob patterns, @list.txt files, STAC item files or URLs, "
        "ItemCollection or catalogue JSON files.",
    ),
    out_dir: Path = typer.Option(..., "--out-dir", help="Folder for the masks and sidecars."),
    pattern: str = typer.Option(
        "{name}_cloudmask.tif", "--pattern", help="Output name; {name} = product name."
    ),
    workers: int = typer.Option(1, "--workers", help="Local worker processes (one model each)."),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Dask scheduler address (tcp://host:port); needs cloudmask[dask]."
    ),
    skip_existing: bool = typer.Option(
        True, "--skip-existing/--no-skip-existing", help="Skip products already complete."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo every product."),
    report: Path | None = typer.Option(
        None,
        "--report",
        help="Report file: .html (a page with quicklooks, updated as the batch goes), .json, .csv.",
    ),
    quicklooks: bool = typer.Option(
        False, "--quicklooks", help="Also write a quicklook per product (<output stem>.png)."
    ),
    quicklook_size: QuicklookSize = 1024,
    quicklook_layout: QuicklookLayout = "side",
    spectral: Spectral = True,
    sar: Path | None = typer.Option(None, "--sar", help="Sentinel-1 GeoTIFF for every product."),
    dem: Path | None = typer.Option(None, "--dem", help="DEM GeoTIFF for every product."),
    resolution: Resolution = None,
    style: Style = "7class",
    weights: Weights = None,
    sensor: SensorName = None,
    device: Device = "auto",
    batch_size: BatchSize = None,
    precision: Precision = None,
    flips: Flips = False,
    runtime: Runtime = "auto",
    overlap: Overlap = 128,
    aoi: Aoi = None,
    stac: bool = typer.Option(
        False, "--stac", help="Also write a STAC item per product (<output stem>.stac.json)."
    ),
    stac_api: str | None = typer.Option(
        None, "--stac-api", help="Also mask the items of a STAC API search (cloudmask[stac])."
    ),
    collection: list[str] | None = typer.Option(
        None, "--collection", help="With --stac-api: collection id (repeatable)."
    ),
    bbox: str | None = typer.Option(
        None, "--bbox", help="With --stac-api: west,south,east,north (WGS84)."
    ),
    datetime: str | None = typer.Option(
        None, "--datetime", help="With --stac-api: a date, time or interval (RFC 3339, a/b)."
    ),
    max_items: int | None = typer.Option(
        None, "--max-items", help="With --stac-api: at most this many items."
    ),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Print only the failures."),
) -> None:
    """Mask many products; a failed product is reported and the batch goes on."""
    from cloudmask_cli.batch import expand_inputs, run_batch, search_items

    setup_logging(quiet, False)
    options = {
        "sensor": sensor,
        "sar": str(sar) if sar else None,
        "dem": str(dem) if dem else None,
        "resolution": resolution,
        "style": style,
        "weights": str(weights) if weights else None,
        "device": device,
        "batch_size": batch_size,
        "precision": precision,
        "flips": flips,
        "runtime": runtime,
        "overlap": overlap,
        "aoi": str(aoi) if aoi else None,
        "stac": stac,
        "quicklooks": quicklooks,
        "quicklook_size": quicklook_size,
        "quicklook_layout": quicklook_layout,
        "spectral": spectral,
    }

    def show(r: BatchResult) -> None:
        if r.status == "failed":
            err.print(
                f"cloudmask: failed: {r.product}: {r.error}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        elif not quiet:
            out.print(
                f"{r.status:8s} {r.product} ({r.seconds:.1f} s)", highlight=False, soft_wrap=True
            )

    try:
        products = expand_inputs(inputs or [])
        if stac_api:
            box = _bbox(bbox) if bbox else None
            products += search_items(stac_api, collection or [], box, datetime, max_items)
        if not products:
            raise InputError(None, "no products: give paths, STAC items, or --stac-api")
        results = run_batch(
            products,
            out_dir,
            options,
            pattern=pattern,
            workers=workers,
            scheduler=scheduler,
            overwrite=overwrite or not skip_existing,
            on_result=show,
            report=report,
        )
    except (InputError, ValueError) as exc:
        fail(exc)
    failed = [r for r in results if r.status == "failed"]
    if not quiet:
        table = Table(title=f"{len(results)} products")
        for col in ("product", "status", "seconds", "cloud", "error"):
            table.add_column(col)
        for r in results:
            cloud = f"{r.cloud_fraction:.1%}" if r.cloud_fraction is not None else ""
            table.add_row(Path(r.product).name, r.status, f"{r.seconds:.1f}", cloud, r.error)
        out.print(table)
    if failed:
        raise typer.Exit(1)


def _bbox(text: str) -> list[float]:
    try:
        box = [float(v) for v in text.split(",")]
    except ValueError:
        box = []
    if len(box) != 4 or not (box[0] < box[2] and box[1] < box[3]):
        raise InputError(None, f"--bbox {text!r}: expected west,south,east,north")
    return box
