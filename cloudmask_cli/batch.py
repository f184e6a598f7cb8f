"""Many products: locally with N worker processes, or on a Dask distributed cluster.

Each product is one task; each worker process loads the model once and reuses it. A product
whose mask and sidecar both exist is complete (the sidecar is written last, after the mask is
renamed into place) and is skipped unless ``overwrite``. A failure is recorded and the batch goes
on. Ctrl-C stops the workers; each writer removes its temporaries, so no partial output is left
and running the same command again resumes.
"""

from __future__ import annotations

import csv
import glob
import json
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cloudmask_cli.errors import InputError
from cloudmask_cli.inference.stac import stac_path
from cloudmask_cli.inference.writer import check_outputs, run_outputs, sidecar_path

PRODUCT_SUFFIXES = (".SAFE", ".zip", ".tar", ".tif", ".tiff", ".vrt")


@dataclass
class Result:
    product: str
    output: str
    status: str  # done | skipped | failed
    error: str = ""
    seconds: float = 0.0
    cloud_fraction: float | None = None


def expand_inputs(inputs: Iterable[str]) -> list[Path]:
    """Paths from products, glob patterns and ``@list.txt`` files (one path per line, # comments)."""
    found: list[Path] = []
    for item in inputs:
        if item.startswith("@"):
            listing = Path(item[1:])
            if not listing.is_file():
                raise InputError(listing, "list file not found")
            lines = [ln.strip() for ln in listing.read_text().splitlines()]
            found += expand_inputs(ln for ln in lines if ln and not ln.startswith("#"))
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item))
            if not matches:
                raise InputError(item, "the pattern matches no file")
            found += [Path(m) for m in matches]
        else:
            found.append(Path(item))
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return [Path(p) for p in unique]


def product_name(path: Path) -> str:
    name = path.name
    for suffix in PRODUCT_SUFFIXES:
        if name.lower().endswith(suffix.lower()):
            return name[: -len(suffix)]
    return name


def output_for(product: Path, out_dir: Path, pattern: str) -> Path:
    """The output path: ``pattern`` with ``{name}`` = the product name without its extension."""
    try:
        return out_dir / pattern.format(name=product_name(product))
    except (KeyError, IndexError):
        raise InputError(None, f"--pattern {pattern!r}: only {{name}} may be used") from None


def _make_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise InputError(folder, "is not a folder (--out-dir)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(folder, f"cannot create the output folder ({exc.strerror})") from None


def is_complete(output: Path, stac: bool = False) -> bool:
    side = sidecar_path(output)
    if not (output.is_file() and side.is_file()):
        return False
    if stac and not stac_path(output).is_file():  # done before, without --stac
        return False
    try:
        return "class_fractions" in json.loads(side.read_text())
    except (json.JSONDecodeError, OSError):
        return False


def _cloud_fraction(sidecar: dict[str, Any]) -> float | None:
    fr = sidecar.get("class_fractions", {})
    keys = [k for k in fr if "cloud" in k and not k.startswith("not")]
    return round(sum(fr[k] for k in keys), 6) if keys else None


# -- one product in a worker ------------------------------------------------------------------
_MODEL: dict[str, Any] = {}


def _loaded(weights: str | None, device: str) -> tuple[Any, dict]:
    key = f"{weights}|{device}"
    if key not in _MODEL:
        from cloudmask_cli.api import load_model

        _MODEL.clear()
        _MODEL[key] = load_model(weights)
    return _MODEL[key]


def run_one(product: str, output: str, options: dict[str, Any]) -> Result:
    """Mask one product; never raises for a bad product (the error goes into the result)."""
    from cloudmask_cli.api import run

    t0 = time.perf_counter()
    opts = dict(options)
    try:
        loaded = _loaded(opts.get("weights"), opts.get("device", "auto"))
        sidecar = run(product, output, loaded=loaded, **opts)
        return Result(
            product,
            output,
            "done",
            seconds=round(time.perf_counter() - t0, 2),
            cloud_fraction=_cloud_fraction(sidecar),
        )
    except (InputError, ValueError, OSError, RuntimeError) as exc:
        return Result(
            product,
            output,
            "failed",
            error=str(exc).splitlines()[0],
            seconds=round(time.perf_counter() - t0, 2),
        )


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


# -- the batch --------------------------------------------------------------------------------
def plan(
    products: list[Path], out_dir: Path, pattern: str, overwrite: bool, stac: bool = False
) -> tuple[list, list]:
    """(to do: [(product, output)], skipped results)."""
    todo, skipped = [], []
    seen: dict[Path, Path] = {}
    for p in products:
        out = output_for(p, out_dir, pattern)
        if out in seen:
            raise InputError(
                p, f"gives the same output {out.name} as {seen[out]}; change --pattern"
            )
        seen[out] = p
        if not overwrite and is_complete(out, stac):
            skipped.append(Result(str(p), str(out), "skipped"))
        else:
            todo.append((p, out))
    return todo, skipped


def run_batch(
    products: list[Path],
    out_dir: Path,
    options: dict[str, Any],
    *,
    pattern: str = "{name}_cloudmask.tif",
    workers: int = 1,
    scheduler: str | None = None,
    overwrite: bool = False,
    on_result: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Mask every product; returns one `Result` per product, in input order."""
    _make_folder(out_dir)
    stac = bool(options.get("stac"))
    todo, results = plan(products, out_dir, pattern, overwrite, stac)
    # every output is checked before the first product is read: a folder in the way or an
    # unwritable --out-dir is one error now, not one failure per product after its work
    check_outputs((f for _, out in todo for f in run_outputs(out, stac=stac)), overwrite=True)
    for r in results:
        if on_result:
            on_result(r)
    # a product found incomplete is redone in place: its stale files are replaced
    opts = {**options, "overwrite": True}
    if scheduler:
        results += _run_dask(todo, opts, scheduler, on_result)
    elif workers <= 1:
        for p, out in todo:
            r = run_one(str(p), str(out), opts)
            results.append(r)
            if on_result:
                on_result(r)
    else:
        threads = max(1, (os.cpu_count() or 1) // workers)
        opts["read_threads"] = min(opts.get("read_threads") or 2, threads)
        # spawn, not fork: a forked child inherits torch's thread pools and can deadlock
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_init_worker, initargs=(threads,)
        ) as pool:
            futures = [pool.submit(run_one, str(p), str(out), opts) for p, out in todo]
            for fut in as_completed(futures):
                r = fut.result()
                results.append(r)
                if on_result:
                    on_result(r)
    order = {str(p): i for i, p in enumerate(products)}
    return sorted(results, key=lambda r: order.get(r.product, 0))


def _run_dask(
    todo: list[tuple[Path, Path]],
    opts: dict[str, Any],
    scheduler: str,
    on_result: Callable[[Result], None] | None,
) -> list[Result]:
    try:
        from dask.distributed import Client
        from dask.distributed import as_completed as dask_completed
    except ImportError:
        raise InputError(None, "--scheduler needs Dask: pip install 'cloudmask[dask]'") from None
    # GPUs are declared as worker resources (dask worker --resources GPU=1); a CUDA run asks
    # for one per task so a worker never runs two products on the same card.
    resources = {"GPU": 1} if str(opts.get("device", "")).startswith("cuda") else None
    results = []
    with Client(scheduler) as client:
        futures = [
            client.submit(
                run_one,
                str(p),
                str(out),
                opts,
                key=f"cloudmask-{out.name}",
                resources=resources,
                pure=False,
            )
            for p, out in todo
        ]
        for fut in dask_completed(futures):
            r = fut.result()
            results.append(r)
            if on_result:
                on_result(r)
    return results


def write_report(results: list[Result], path: Path) -> None:
    """A JSON or CSV report (by the file's extension)."""
    rows = [asdict(r) for r in results]
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    if path.suffix.lower() == ".csv":
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(Result.__dataclass_fields__))
            writer.writeheader()
            writer.writerows(rows)
    else:
        tmp.write_text(json.dumps(rows, indent=2))
    os.replace(tmp, path)
