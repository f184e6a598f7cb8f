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
import re
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cloudmask_cli.errors import InputError, first_line
from cloudmask_cli.inference.stac import stac_path
from cloudmask_cli.inference.writer import (
    check_outputs,
    quicklook_path,
    run_outputs,
    sidecar_path,
)
from cloudmask_cli.records import Sidecar
from cloudmask_cli.remote import is_url

if TYPE_CHECKING:
    from cloudmask_cli.masker import CloudMasker

PRODUCT_SUFFIXES = (".SAFE", ".zip", ".tar", ".tif", ".tiff", ".vrt")
THUMBNAIL = 320  # px, the HTML report's thumbnails (when there are no quicklook files)


@dataclass
class Result:
    product: str
    output: str
    status: str  # done | skipped | failed (| pending, in a report written while the batch runs)
    error: str = ""
    seconds: float = 0.0
    cloud_fraction: float | None = None
    class_fractions: dict[str, float] | None = None
    quicklook: str = ""  # the quicklook file (batch --quicklooks)
    thumbnail: str = ""  # a data: URI for the HTML report; never in the JSON/CSV reports


Product = Any  # a local Path, an http(s) URL (str) to a STAC item, or a pystac.Item


def expand_inputs(inputs: Iterable[str]) -> list[Product]:
    """Products from paths, glob patterns, ``@list.txt`` files (one per line, # comments),
    STAC item URLs, and STAC ItemCollection / Catalog JSON files (each of their items)."""
    found: list[Product] = []
    for item in inputs:
        if is_url(item):
            found.append(item)
        elif item.startswith("@"):
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
            found += _stac_items(Path(item)) or [Path(item)]
    out: list[Product] = []
    seen: set[str] = set()
    for p in found:
        key = label(p) if not isinstance(p, Path) else str(p.resolve())
        if key not in seen:
            seen.add(key)
            out.append(p.resolve() if isinstance(p, Path) else p)
    return out


def _stac_items(path: Path) -> list[Any]:
    """The items of an ItemCollection or (static) Catalog / Collection file; [] for others."""
    if not (path.is_file() and path.suffix.lower() in (".json", ".geojson")):
        return []
    try:
        kind = json.loads(path.read_text()).get("type")
    except (ValueError, OSError, AttributeError):
        return []
    if kind not in ("FeatureCollection", "Catalog", "Collection"):
        return []
    import pystac

    try:
        if kind == "FeatureCollection":
            items = list(pystac.ItemCollection.from_file(str(path)))
            for it in items:  # relative asset hrefs are relative to the collection file
                if it.get_self_href() is None:
                    it.set_self_href(str(path.resolve()))
        else:
            catalog = pystac.read_file(str(path))
            if not isinstance(catalog, pystac.Catalog):
                raise TypeError(f"a {type(catalog).__name__}, not a catalogue")
            items = list(catalog.get_items(recursive=True))
    except Exception as exc:  # noqa: BLE001 - pystac raises many kinds
        raise InputError(path, f"cannot read the STAC {kind} ({str(exc)[:200]})") from None
    if not items:
        raise InputError(path, f"the STAC {kind} holds no item")
    return items


def label(product: Product) -> str:
    """How a product is named in results and reports."""
    if isinstance(product, (str, Path)):
        return str(product)
    href = product.get_self_href()  # an ItemCollection's items share its file: add the id
    return f"{href}#{product.id}" if href else product.id


def search_items(
    api: str,
    collections: list[str],
    bbox: list[float] | None = None,
    datetime: str | None = None,
    max_items: int | None = None,
) -> list[Any]:
    """Items of a STAC API search (pystac-client, the optional extra ``cloudmask[stac]``)."""
    try:
        from pystac_client import Client
    except ImportError:
        raise InputError(
            None, "--stac-api needs pystac-client: pip install 'cloudmask[stac]'"
        ) from None
    try:
        search = Client.open(api).search(
            collections=collections or None, bbox=bbox, datetime=datetime, max_items=max_items
        )
        items = list(search.items())
    except Exception as exc:  # noqa: BLE001 - HTTP, JSON and API errors
        raise InputError(api, f"STAC API search failed ({first_line(exc)})") from None
    if not items:
        raise InputError(api, "the STAC API search found no item")
    return items


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """A product name (from a STAC item id or a URL: data from elsewhere) made safe for one
    file name: separators and odd characters become ``_``, no leading dots (``..``, hidden)."""
    safe = re.sub(r"\.{2,}", "_", _UNSAFE.sub("_", name))  # no "..", even inside a name
    safe = re.sub(r"_+", "_", safe).strip("._")
    if not safe:
        raise InputError(None, f"product name {name!r} gives no usable file name")
    return safe[:200]


def product_name(path: Product) -> str:
    if not isinstance(path, (str, Path)):
        return safe_name(path.id)
    if is_url(path):  # .../items/<id> or .../<id>.json
        tail = urlsplit(str(path)).path.rstrip("/").rsplit("/", 1)[-1]
        return safe_name(tail.removesuffix(".json") or "item")
    path = Path(path)
    if path.suffix.lower() == ".json":
        return safe_name(path.stem)
    name = path.name  # the user's own file: one path component, kept as it is
    for suffix in PRODUCT_SUFFIXES:
        if name.lower().endswith(suffix.lower()):
            return name[: -len(suffix)]
    return name


def output_for(product: Product, out_dir: Path, pattern: str) -> Path:
    """The output path: ``pattern`` with ``{name}`` = the product name without its extension
    (a STAC item's id); never outside ``out_dir``."""
    try:
        out = out_dir / pattern.format(name=product_name(product))
    except (KeyError, IndexError):
        raise InputError(None, f"--pattern {pattern!r}: only {{name}} may be used") from None
    root = Path(os.path.abspath(out_dir))
    if not Path(os.path.abspath(out)).is_relative_to(root) or Path(os.path.abspath(out)) == root:
        raise InputError(out, f"is outside --out-dir {out_dir}; change --pattern")
    return out


def _make_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise InputError(folder, "is not a folder (--out-dir)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(folder, f"cannot create the output folder ({exc.strerror})") from None


def is_complete(output: Path, stac: bool = False, quicklook: bool = False) -> bool:
    side = sidecar_path(output)
    if not (output.is_file() and side.is_file()):
        return False
    if stac and not stac_path(output).is_file():  # done before, without --stac
        return False
    if quicklook and not quicklook_path(output).is_file():  # done before, without --quicklooks
        return False
    return _read_sidecar(output) is not None


def _read_sidecar(output: Path) -> Sidecar | None:
    """The sidecar of a finished mask; None where there is none or it is not one (cut short)."""
    try:
        return Sidecar.read(sidecar_path(output))
    except InputError:
        return None


# -- one product in a worker ------------------------------------------------------------------
# the masker of this process (the main one, a local worker or a Dask worker): the model is
# loaded once for every product the process masks
_MASKER: CloudMasker | None = None


def _masker(weights: str | None, device: str, batch_size: int | None,
            precision: str | None, flips: bool = False, runtime: str = "auto") -> CloudMasker:  # fmt: skip
    from cloudmask_cli.masker import CloudMasker

    global _MASKER
    m = _MASKER
    if m is None or (m.weights, m.device, m.batch_size, m.precision, m.flips, m.runtime) != (
        weights, device, batch_size, precision, flips, runtime
    ):  # fmt: skip
        m = _MASKER = CloudMasker(weights, device=device, batch_size=batch_size,
                                  precision=precision, flips=flips, runtime=runtime)  # fmt: skip
    return m


def thumbnail(product: Product, output: str | Path, options: dict[str, Any], size: int) -> str:
    """A small quicklook of a finished product as a ``data:`` URI, or "" if it cannot be made
    (a report is no reason to fail a product)."""
    from cloudmask_cli.products import open_product
    from cloudmask_cli.quicklook import thumbnail_uri
    from cloudmask_cli.remote import gdal_env

    try:
        with gdal_env():
            scene = open_product(product, options.get("sensor"), options.get("resolution"))
            try:
                return thumbnail_uri(scene, Path(output), size=size)
            finally:
                scene.close()
    except (InputError, ValueError, OSError, RuntimeError):
        return ""


def _done(product: Product, output: str, sidecar: Sidecar | None, **kw: Any) -> Result:
    if sidecar is None:
        return Result(label(product), output, **kw)
    return Result(label(product), output, cloud_fraction=sidecar.cloud_fraction,
                  class_fractions=sidecar.class_fractions, quicklook=sidecar.quicklook or "",
                  **kw)  # fmt: skip


def run_one(product: Product, output: str, options: dict[str, Any]) -> Result:
    """Mask one product; never raises for a bad product (the error goes into the result).

    Batch-only options: ``quicklooks`` (a quicklook beside each mask, `quicklook_path`) and
    ``thumbnail`` (px: a small quicklook for the HTML report, when there is no quicklook file).
    """
    t0 = time.perf_counter()
    opts = dict(options)
    thumb = opts.pop("thumbnail", None)
    if opts.pop("quicklooks", False):
        opts["quicklook"] = quicklook_path(Path(output))
    try:
        masker = _masker(opts.pop("weights", None), opts.pop("device", "auto"),
                         opts.pop("batch_size", None), opts.pop("precision", None),
                         opts.pop("flips", False), opts.pop("runtime", "auto"))  # fmt: skip
        sidecar = masker.run(product, output, **opts)
        uri = thumbnail(product, output, opts, thumb) if thumb and not opts.get("quicklook") else ""
        return _done(product, output, sidecar, status="done", thumbnail=uri,
                     seconds=round(time.perf_counter() - t0, 2))  # fmt: skip
    except (InputError, ValueError, OSError, RuntimeError) as exc:
        return Result(
            label(product),
            output,
            "failed",
            error=first_line(exc),
            seconds=round(time.perf_counter() - t0, 2),
        )


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


# -- the batch --------------------------------------------------------------------------------
def plan(
    products: list[Product],
    out_dir: Path,
    pattern: str,
    overwrite: bool,
    stac: bool = False,
    quicklooks: bool = False,
) -> tuple[list, list]:
    """(to do: [(product, output)], skipped results)."""
    todo, skipped = [], []
    seen: dict[Path, str] = {}
    for p in products:
        out = output_for(p, out_dir, pattern)
        if out in seen:
            raise InputError(
                label(p), f"gives the same output {out.name} as {seen[out]}; change --pattern"
            )
        seen[out] = label(p)
        if not overwrite and is_complete(out, stac, quicklooks):
            skipped.append(_skipped(p, out))
        else:
            todo.append((p, out))
    return todo, skipped


def _skipped(product: Product, out: Path) -> Result:
    """A product complete before this batch, with the figures of its sidecar."""
    sidecar = _read_sidecar(out)
    if sidecar is not None and not sidecar.quicklook and quicklook_path(out).is_file():
        sidecar.quicklook = str(quicklook_path(out))
    return _done(product, str(out), sidecar, status="skipped")


def run_batch(
    products: list[Product],
    out_dir: Path,
    options: dict[str, Any],
    *,
    pattern: str = "{name}_cloudmask.tif",
    workers: int = 1,
    scheduler: str | None = None,
    overwrite: bool = False,
    on_result: Callable[[Result], None] | None = None,
    report: Path | None = None,
) -> list[Result]:
    """Mask every product; returns one `Result` per product, in input order.

    ``options`` are `cloudmask_cli.api.run`'s, plus ``quicklooks`` (see `run_one`).
    ``report`` (.html, .csv, else JSON) is written before the first product and rewritten
    after each one, atomically: it can be opened while the batch runs.
    """
    _make_folder(out_dir)
    stac = bool(options.get("stac"))
    quicklooks = bool(options.get("quicklooks"))
    if quicklooks:
        from cloudmask_cli.quicklook import check_layout

        check_layout(options.get("quicklook_layout", "side"), options.get("quicklook_size", 1024))
    todo, results = plan(products, out_dir, pattern, overwrite, stac, quicklooks)
    # every output is checked before the first product is read: a folder in the way or an
    # unwritable --out-dir is one error now, not one failure per product after its work
    ql = quicklook_path if quicklooks else (lambda _: None)
    outputs = [f for _, out in todo for f in run_outputs(out, stac=stac, quicklook=ql(out))]
    check_outputs(outputs + ([Path(report)] if report else []), overwrite=True)
    html = report is not None and Path(report).suffix.lower() in (".html", ".htm")
    if html and not quicklooks:
        options = {**options, "thumbnail": THUMBNAIL}
        for r in results:  # complete before: thumbnails of their masks, made here
            if not r.quicklook:
                r.thumbnail = thumbnail(_product_of(products, r), r.output, options, THUMBNAIL)
    started = time.time()
    pending = {str(out): Result(label(p), str(out), "pending") for p, out in todo}
    order = {label(p): i for i, p in enumerate(products)}

    def ordered(rs: list[Result]) -> list[Result]:
        return sorted(rs, key=lambda r: order.get(r.product, 0))

    def update(r: Result | None = None) -> None:
        if r is not None:
            pending.pop(r.output, None)
        if report is not None:  # first: a caller told of a result finds it in the report
            rows = ordered(results + list(pending.values())) if html else ordered(results)
            write_report(rows, Path(report), finished=not pending, started=started)
        if r is not None and on_result:
            on_result(r)

    for r in results:
        if on_result:
            on_result(r)
    update()
    # a product found incomplete is redone in place: its stale files are replaced
    opts = {**options, "overwrite": True}

    def collect(r: Result) -> None:
        results.append(r)
        update(r)

    if scheduler:
        _run_dask(todo, opts, scheduler, collect)
    elif workers <= 1:
        for p, out in todo:
            collect(run_one(p if not isinstance(p, Path) else str(p), str(out), opts))
    else:
        threads = max(1, (os.cpu_count() or 1) // workers)
        opts["read_threads"] = min(opts.get("read_threads") or 2, threads)
        # spawn, not fork: a forked child inherits torch's thread pools and can deadlock
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_init_worker, initargs=(threads,)
        ) as pool:
            futures = [
                pool.submit(run_one, p if not isinstance(p, Path) else str(p), str(out), opts)
                for p, out in todo
            ]
            for fut in as_completed(futures):
                collect(fut.result())
    return ordered(results)


def _product_of(products: list[Product], r: Result) -> Product:
    return next(p for p in products if label(p) == r.product)


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
                p if not isinstance(p, Path) else str(p),
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


def write_report(
    results: list[Result], path: Path, *, finished: bool = True, started: float | None = None
) -> None:
    """An HTML, CSV or JSON report (by the file's extension: .html/.htm, .csv, else JSON),
    written atomically."""
    if path.suffix.lower() in (".html", ".htm"):
        from cloudmask_cli.report import write_html

        write_html(results, path, finished=finished, started=started)
        return
    rows = [{k: v for k, v in asdict(r).items() if k != "thumbnail"} for r in results]
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    if path.suffix.lower() == ".csv":
        fields = [k for k in Result.__dataclass_fields__ if k != "thumbnail"]
        for row in rows:  # one cell: the fractions as JSON
            row["class_fractions"] = json.dumps(row["class_fractions"] or {})
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    else:
        tmp.write_text(json.dumps(rows, indent=2))
    os.replace(tmp, path)
