"""The `cloudmask` command line: parse, call the library, print. No work happens here."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

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


# options shared by run, batch and info (defined once)
QUICKLOOK_SIZE = typer.Option(
    1024, "--quicklook-size", help="Longest side of a quicklook in pixels."
)
QUICKLOOK_LAYOUT = typer.Option(
    "side", "--quicklook-layout", help="side (image | mask) | overlay (mask over the image)"
)
SPECTRAL = typer.Option(
    True,
    "--spectral-tests/--no-spectral-tests",
    help="Water and snow from published spectral tests where the network says land or shadow.",
)


def _fail(exc: Exception, code: int = 2) -> None:
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
        _fail(exc)
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
    sensor: str | None = typer.Option(None, "--sensor", help="Sensor name or YAML."),
    resolution: float | None = typer.Option(None, "--resolution", help="Working grid (m)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    quicklook: Path | None = typer.Option(
        None, "--quicklook", help="Also write a true-colour PNG of the product (replaced if there)."
    ),
    quicklook_size: int = QUICKLOOK_SIZE,
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
            data = scene.info()
            data["valid_fraction"] = round(scene.valid_fraction(), 4)
    except (InputError, ValueError) as exc:
        _fail(exc)
    if as_json:
        print(json.dumps(data, indent=2, default=str))
        return
    grid = data.pop("grid")
    bands = data.pop("bands")
    out.print(f"[bold]{data.pop('product')}[/bold]")
    for k, v in data.items():
        out.print(f"  {k}: {v}", highlight=False)
    out.print(
        f"  grid: {grid['crs']} {grid['width']}x{grid['height']} @ {grid['resolution']:g} m",
        highlight=False,
    )
    table = Table()
    for col in ("band", "type", "wavelength nm", "res m", "descriptor", "radiometry"):
        table.add_column(col)
    for b in bands:
        wl = f"{b['wavelength'][0]:g}-{b['wavelength'][1]:g}" if b["wavelength"] else "-"
        rad = ", ".join(
            f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in b["radiometry"].items()
        )
        table.add_row(b["name"], b["type"], wl, f"{b['resolution']:g}", b["descriptor"], rad)
    out.print(table)


@app.command()
def demo(
    path: Path = typer.Argument(..., help="Folder to write the demo product into."),
    kind: str = typer.Option("sentinel2", "--kind", help="sentinel2 | landsat8 | perusat1"),
    size: int = typer.Option(600, "--size", help="Width/height in pixels at 10 m (sentinel2)."),
) -> None:
    """Write a small product in a real format (with clouds) to try cloudmask on at once."""
    from cloudmask_cli.demo import write_demo

    try:
        written = write_demo(path, kind=kind, size=size)
    except (InputError, ValueError) as exc:
        _fail(exc)
    out.print(str(written), highlight=False)


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
    resolution: float | None = typer.Option(
        None, "--resolution", help="Working resolution in metres (default: finest band)."
    ),
    style: str = typer.Option("7class", "--style", help="7class | 4class | cloud | valid"),
    probabilities: Path | None = typer.Option(
        None, "--probabilities", help="Also write per-class probabilities (COG, x254)."
    ),
    weights: Path | None = typer.Option(None, "--weights", help="Other model weights."),
    sensor: str | None = typer.Option(
        None, "--sensor", help="Sensor name or YAML (overrides detection; needed for stacks)."
    ),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help=r"Windows per model call \[default: 2 on CPU, 16 on CUDA]."
    ),
    precision: str | None = typer.Option(
        None,
        "--precision",
        help=r"float32 | float16 | bfloat16 \[default: float16 on CUDA, float32 on CPU].",
    ),
    overlap: int = typer.Option(128, "--overlap", help="Window overlap in pixels."),
    aoi: Path | None = typer.Option(None, "--aoi", help="GeoJSON area (WGS84) to mask."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    stac: bool = typer.Option(
        False, "--stac", help="Also write a STAC item beside the mask (mask.tif -> mask.stac.json)."
    ),
    quicklook: Path | None = typer.Option(
        None, "--quicklook", help="Also write a quicklook: the product beside its mask (.png)."
    ),
    quicklook_size: int = QUICKLOOK_SIZE,
    quicklook_layout: str = QUICKLOOK_LAYOUT,
    spectral: bool = SPECTRAL,
    threads: int | None = typer.Option(
        None,
        "--read-threads",
        help=r"Threads decoding windows ahead \[default: 2 on CPU, up to 8 on CUDA].",
    ),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Print nothing but errors."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Print the sidecar summary."),
) -> None:
    """Mask clouds and shadows in a whole product; writes a COG and a sidecar JSON."""
    from cloudmask_cli.api import run as run_product

    _logging(quiet, verbose)
    try:
        with _progress(quiet) as progress:
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
        _fail(exc)
    if quiet:
        return
    fr = ", ".join(f"{k} {v:.1%}" for k, v in sidecar["class_fractions"].items())
    out.print(f"{output}: valid {sidecar['valid_fraction']:.1%}; {fr}", highlight=False)
    if verbose:
        t = sidecar["timings"]
        out.print(
            f"  {sidecar['windows']['run']} windows on {sidecar['device']} in {t['total_s']} s "
            f"(model {t['model_s']} s); sidecar {output}.json",
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
    quicklook_size: int = QUICKLOOK_SIZE,
    quicklook_layout: str = QUICKLOOK_LAYOUT,
    spectral: bool = SPECTRAL,
    sar: Path | None = typer.Option(None, "--sar", help="Sentinel-1 GeoTIFF for every product."),
    dem: Path | None = typer.Option(None, "--dem", help="DEM GeoTIFF for every product."),
    resolution: float | None = typer.Option(None, "--resolution", help="Working grid (m)."),
    style: str = typer.Option("7class", "--style", help="7class | 4class | cloud | valid"),
    weights: Path | None = typer.Option(None, "--weights", help="Other model weights."),
    sensor: str | None = typer.Option(None, "--sensor", help="Sensor name or YAML."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help=r"Windows per model call \[default: 2 on CPU, 16 on CUDA]."
    ),
    precision: str | None = typer.Option(
        None,
        "--precision",
        help=r"float32 | float16 | bfloat16 \[default: float16 on CUDA, float32 on CPU].",
    ),
    overlap: int = typer.Option(128, "--overlap", help="Window overlap in pixels."),
    aoi: Path | None = typer.Option(None, "--aoi", help="GeoJSON area (WGS84) to mask."),
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

    _logging(quiet, False)
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
        "overlap": overlap,
        "aoi": str(aoi) if aoi else None,
        "stac": stac,
        "quicklooks": quicklooks,
        "quicklook_size": quicklook_size,
        "quicklook_layout": quicklook_layout,
        "spectral": spectral,
    }

    def show(r: object) -> None:
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
        _fail(exc)
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


def _logging(quiet: bool, verbose: bool) -> None:
    import logging

    level = logging.ERROR if quiet else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="cloudmask: %(message)s")


class _progress:
    """A rich progress bar on a terminal; nothing when quiet or not a TTY."""

    def __init__(self, quiet: bool) -> None:
        self.enabled = not quiet and err.is_terminal
        self.bar = None
        self.task = None

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


# -- train / evaluate (cloudmask_cli.training) ------------------------------------------------
@app.command()
def train(
    config: Path = typer.Argument(..., help="Training config YAML (see examples/train-tiny.yaml)."),
    resume: Path | None = typer.Option(
        None,
        "--resume",
        help="Continue a run from its last.safetensors (training state beside it).",
    ),
    init: Path | None = typer.Option(
        None, "--init", help="Start from these weights (fine-tuning), e.g. the bundled ones."
    ),
    out_dir: Path | None = typer.Option(
        None, "--out", help="Output folder (default: config's out)."
    ),
    seed: int | None = typer.Option(
        None, "--seed", help="Use this seed instead of the config's (to measure run-to-run spread)."
    ),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Print nothing but errors."),
) -> None:
    """Train or fine-tune on labelled datasets; checkpoints and metrics.jsonl go to --out.

    Multi-GPU: torchrun --nproc_per_node=N -m cloudmask_cli.cli train CONFIG (same command)."""
    from cloudmask_cli.training.config import load_config
    from cloudmask_cli.training.loop import train as run_training

    try:
        cfg = load_config(config)
        if seed is not None:
            cfg = dataclasses.replace(cfg, seed=seed)  # recorded in the checkpoint's config
        result = run_training(
            cfg, out=out_dir, resume=resume, init=init, progress=not quiet and err.is_terminal,
            notice=None if quiet else (lambda m: err.print(f"cloudmask: {m}", markup=False)),
        )  # fmt: skip
    except (InputError, ValueError) as exc:
        _fail(exc)
    if not quiet:
        val = result.last("val")
        loss = f"; validation loss {val['loss']:.4f}" if val else ""
        out.print(
            f"{result.out}: {result.steps} steps, {result.epochs} epochs{loss}", highlight=False
        )


@app.command()
def evaluate(
    data: Path = typer.Option(
        ...,
        "--data",
        help="Training-format folder, a dataset in its own layout (--kind), or a "
        "training config (its validation splits).",
    ),  # fmt: skip
    weights: Path | None = typer.Option(
        None, "--weights", help="Model weights (default: bundled)."
    ),
    mask: Path | None = typer.Option(
        None, "--mask", help="Score an existing mask raster (or a folder of <sample id>.tif)."
    ),
    kind: str = typer.Option(
        "training", "--kind", help="Dataset layout (cloudsen12, biome-patches, ...)."
    ),
    split: str | None = typer.Option(
        None, "--split", help="Split of the dataset (train, val, ...)."
    ),
    option: list[str] | None = typer.Option(None, "--option", help="Adapter option key=value."),
    bands: str = typer.Option(
        "all", "--bands", help="all | RGB | RGBN | comma-separated band names."
    ),
    style: str | None = typer.Option(None, "--style", help="Style of --mask if its tags lack it."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
    json_out: Path | None = typer.Option(None, "--json", help="Write the full report (JSON) here."),
    baseline: float | None = typer.Option(
        None,
        "--baseline",
        help="Score the trivial baseline instead: cloud where the mean "
        "visible reflectance exceeds this value (e.g. 0.3).",
    ),  # fmt: skip
    peer: str | None = typer.Option(
        None,
        "--peer",
        help="Score a peer instead: ukis-csmask, ukis-csmask-l2a or s2cloudless (pip install cloudmask[peers]).",
    ),
    perturb: str | None = typer.Option(
        None,
        "--perturb",
        help="Perturb the inputs first: gain0.8, gain1.2, offset-0.02, offset+0.02, "
        "bandgain0.1, no_swir, no_thermal, no_cirrus.",
    ),  # fmt: skip
    cv: int | None = typer.Option(
        None,
        "--cv",
        help="Cross-validate the training config --data: train it on K scene-grouped "
        "folds of all its samples, score each held-out fold (model, baseline, --cv-peer).",
    ),  # fmt: skip
    lodo: bool = typer.Option(False, "--lodo", help="With --cv: also leave each dataset out."),
    cv_out: Path = typer.Option(Path("runs/crossval"), "--out", help="With --cv: output folder."),
    cv_perturb: list[str] | None = typer.Option(
        None,
        "--cv-perturb",
        help="With --cv: also score under these perturbations, repeated or comma-separated "
        "('all': every one).",
    ),
    cv_peer: list[str] | None = typer.Option(
        None, "--cv-peer", help="With --cv: peers to score (as --peer), on the same test pixels."
    ),
    jobs: int = typer.Option(
        1, "--jobs", help="With --cv: folds trained at once (one thread each)."
    ),
    cv_seed: int | None = typer.Option(
        None, "--seed", help="With --cv: this seed instead of the config's (run-to-run spread)."
    ),
    spectral: bool = SPECTRAL,
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Print nothing but errors."),
) -> None:
    """Score a model or masks against reference labels: the paper's pixel-wise metrics."""

    from cloudmask_cli.training.adapters import parse_options
    from cloudmask_cli.training.evaluate import evaluate as run_evaluation
    from cloudmask_cli.training.evaluate import tables, write_json

    if cv is not None:
        _cross_validate(
            data, cv, lodo, cv_out, cv_perturb or [], cv_peer or [], jobs, cv_seed, quiet
        )
        return
    if weights is not None and mask is not None:
        _fail(InputError(mask, "give --weights or --mask, not both"))
    try:
        options = parse_options(option)
    except InputError as exc:
        _fail(exc)
    try:
        report = run_evaluation(
            data, weights=weights, mask=mask, kind=kind, split=split, options=options, bands=bands,
            style=style, device=device, baseline=baseline, peer=peer, perturbation=perturb,
            spectral=spectral,
        )  # fmt: skip
        if json_out is not None:
            write_json(report, json_out)
    except (InputError, ValueError) as exc:
        _fail(exc)
    if not quiet:
        for table in tables(report):
            out.print(table)


def _cross_validate(
    config: Path, k: int, lodo: bool, folder: Path, perturb: list[str], peers: list[str],
    jobs: int, seed: int | None, quiet: bool,
) -> None:  # fmt: skip
    from cloudmask_cli.training.crossval import cross_validate, robustness_rows, table
    from cloudmask_cli.training.robustness import PERTURBATIONS

    perturb = [name for item in perturb for name in item.split(",") if name]
    if perturb == ["all"]:
        perturb = list(PERTURBATIONS)
    try:
        result = cross_validate(
            config, folder, k=k, lodo=lodo, perturbations=perturb, peers=peers, jobs=jobs,
            seed=seed, notice=None if quiet else (lambda m: err.print(f"cloudmask: {m}", markup=False)),
        )  # fmt: skip
    except (InputError, ValueError) as exc:
        _fail(exc)
    if quiet:
        return
    for part, title in (("folds", f"{k} scene-grouped folds"), ("lodo", "each dataset left out")):
        rows = table(result, part)
        if not rows:
            continue
        t = Table(title=f"cross-validated, {title}: pooled % (mean ± spread over folds, n)")
        for col in ("predictor", "data", "cloud F1", "invalid F1", "water R/P", "snow R/P",
                    "shadow R/P"):  # fmt: skip
            t.add_column(col)
        for row in rows:
            t.add_row(*row)
        out.print(t, width=max(out.width, WIDE))  # not folded to 80 columns in a log file
    if perturb:
        r = Table(title="model under perturbed inputs: pooled cloud F1 % and change")
        for col in ("perturbation", "data", "cloud F1", "change"):
            r.add_column(col)
        for row in robustness_rows(result):
            if row[2] != "-":  # a set with no cloud figure
                r.add_row(*row)
        out.print(r, width=max(out.width, WIDE))
    out.print(f"{folder / 'crossval.json'}", highlight=False)


def main() -> None:
    """Console-script entry point: bad input -> one line on stderr and exit code 2."""
    try:
        app()
    except InputError as exc:  # raised outside a command's own handling
        err.print(f"cloudmask: error: {exc}", markup=False, highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
