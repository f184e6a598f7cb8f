"""`CloudMasker`: the model and its engine, loaded once, masking any number of products.

As s2cloudless's detector object holds its classifier, a masker holds the network, the device
and the engine (whose batch size an out-of-memory halves for the rest of its life), so a user
looping over 500 scenes in Python, or a batch worker, loads the weights once::

    masker = CloudMasker(device="cuda")
    for safe in products:
        masker.run(safe, f"{safe.stem}_mask.tif")
    codes = masker.mask(data_array, sensor="landsat8_oli_tirs")

The model is loaded on first use, so bad input (a missing product, an output in the way) is
reported before the weights are read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rioxarray  # noqa: F401 - registers the .rio accessor
import xarray as xr

from cloudmask_cli.auxiliary import add_auxiliary
from cloudmask_cli.classes import check_style, fold, style_names
from cloudmask_cli.errors import InputError
from cloudmask_cli.inference.engine import Engine, select_device
from cloudmask_cli.inference.pipeline import RunOptions, mask_to_file, masked_strips
from cloudmask_cli.inference.writer import check_outputs, input_files, run_outputs
from cloudmask_cli.products import open_product
from cloudmask_cli.products import stack as stack_reader
from cloudmask_cli.records import Sidecar
from cloudmask_cli.remote import gdal_env
from cloudmask_cli.scene import InMemory, Scene
from cloudmask_cli.sensors import Sensor, get_sensor


def load_model(weights: str | Path | None = None, device: str = "cpu") -> tuple[Any, dict]:
    """The model from ``weights`` (default: the bundled weights) and a summary for sidecars."""
    from cloudmask_cli.model.checkpoint import load_checkpoint, weights_sha256
    from cloudmask_cli.weights import default_weights

    path = Path(weights) if weights else default_weights()
    model, config, meta = load_checkpoint(path, device=device)
    digest = weights_sha256(path)
    info = {
        "name": meta.get("name", path.stem),
        "path": str(path),
        "sha256": digest[:12],  # short, for people (as model_hash)
        "weights_sha256": digest,  # the whole digest, for the STAC item's provenance
        "architecture": config.to_dict() if hasattr(config, "to_dict") else config,
    }
    return model, info


def _scene_from_xarray(data: xr.DataArray, sensor: str | Path | Sensor) -> Scene:
    """A Scene over a DataArray's values as they are in memory (a stack's rules: the bands
    named by the ``band`` coordinate, scaled as the sensor's YAML says)."""
    sens = get_sensor(sensor) if not isinstance(sensor, Sensor) else sensor
    if "band" not in data.dims:
        raise InputError(None, "the DataArray needs a 'band' dimension with band names")
    names = [str(b) for b in data["band"].values]
    try:
        bands = tuple(sens.band(n) for n in names)
    except KeyError as exc:
        raise InputError(sens.path or sens.name, str(exc).strip("'\"")) from None
    subset = dataclasses.replace(sens, bands=bands)
    crs = data.rio.crs
    if crs is None:
        raise InputError(None, "the DataArray has no CRS (use rioxarray's .rio.write_crs)")
    t = data.rio.transform()
    if t.b or t.d:
        raise InputError(None, "the DataArray's grid is rotated; warp it to north-up first")
    if t.e > 0:  # rows running south to north: flipped to the north-up order of every grid
        data = data.isel({data.rio.y_dim: slice(None, None, -1)})
        t = data.rio.transform()
    arr = np.asarray(data.transpose("band", data.rio.y_dim, data.rio.x_dim).values)
    nodata = subset.nodata if subset.nodata is not None else data.rio.nodata
    memory = [InMemory(arr[i], t) for i in range(len(bands))]
    sources = stack_reader.band_sources(subset, "DataArray", nodata, abs(t.a), memory)
    h, w = arr.shape[1:]
    bounds = (t.c, t.f + t.e * h, t.c + t.a * w, t.f)
    return Scene(sensor=subset, bands=sources, crs=crs, bounds=bounds, product="DataArray",
                 product_type=f"in-memory array ({subset.name})", metadata={"level": "stack"})  # fmt: skip


class CloudMasker:
    """Masks products with one model: ``weights`` (None: the bundled weights) on ``device``
    (``auto | cpu | cuda | cuda:N``), ``batch_size`` windows per call and ``precision``
    (None: the device's defaults, `inference.engine`); ``flips``: each window's probabilities
    averaged with those of its mirror images (test-time augmentation, 4 passes); ``runtime``
    (``auto | torch | openvino``) runs the SegFormer on OpenVINO on a CPU (inference/openvino.py)."""

    def __init__(
        self,
        weights: str | Path | None = None,
        *,
        device: str = "auto",
        batch_size: int | None = None,
        precision: str | None = None,
        flips: bool = False,
        runtime: str = "auto",
    ) -> None:
        self.weights = weights
        self.flips = flips
        self.runtime = runtime
        self.device = device
        self.batch_size = batch_size
        self.precision = precision
        self._engine: Engine | None = None
        self._info: dict[str, Any] = {}
        self.device_notice: str | None = None  # e.g. "no CUDA device found: running on the CPU"

    @property
    def engine(self) -> Engine:
        """The engine, the model loaded on first use."""
        if self._engine is None:
            dev, self.device_notice = select_device(self.device)
            model, self._info = load_model(self.weights)
            self._engine = Engine(model, dev, self.batch_size, self.precision, flips=self.flips,
                                  runtime=self.runtime)  # fmt: skip
        return self._engine

    @property
    def info(self) -> dict[str, Any]:
        """The model's summary for sidecars (name, path, SHA-256, architecture)."""
        _ = self.engine
        return self._info

    def mask(
        self,
        source: str | Path | xr.DataArray,
        *,
        sensor: str | Path | Sensor | None = None,
        sar: str | Path | None = None,
        dem: str | Path | None = None,
        resolution: float | None = None,
        style: str = "7class",
        overlap: int = 128,
        aoi: str | Path | None = None,
        spectral: bool = True,
    ) -> xr.DataArray:
        """The class codes of a product (path) or an ``xarray.DataArray`` (dims band/y/x, CRS
        set, values in the sensor's units as its YAML describes), with CRS and transform.
        ``spectral=False``: the network's classes without the water and snow tests."""
        check_style(style)
        with gdal_env():
            if isinstance(source, xr.DataArray):
                if sensor is None:
                    raise InputError(
                        None, "a DataArray needs sensor= (a bundled name or a YAML path)"
                    )
                scene = _scene_from_xarray(source, sensor)
            else:
                scene = open_product(source, sensor=sensor)
            if resolution:
                scene = scene.with_resolution(resolution)
            if sar or dem:
                scene = add_auxiliary(scene, sar=sar, dem=dem)
            options = RunOptions(style=style, overlap=overlap, aoi=aoi, spectral=spectral)
            codes = np.empty(scene.shape, dtype=np.uint8)
            for row, probs, valid in masked_strips(scene, self.engine, options):
                codes[row : row + probs.shape[1]] = fold(probs, style, valid).cpu().numpy()
        g = scene.grid
        t = g.transform
        out = xr.DataArray(
            codes,
            dims=("y", "x"),
            coords={
                "y": t.f + t.e * (np.arange(g.height) + 0.5),
                "x": t.c + t.a * (np.arange(g.width) + 0.5),
            },
            name="cloudmask",
            attrs={
                "style": style,
                "classes": {str(k): v for k, v in style_names(style).items()},
                "model": self.info["name"],
                "sensor": scene.sensor.name,
            },
        )
        return out.rio.write_crs(g.crs).rio.write_transform(t).rio.write_nodata(255)

    def run(
        self,
        product: str | Path,
        output: str | Path,
        *,
        sensor: str | Path | None = None,
        sar: str | Path | None = None,
        dem: str | Path | None = None,
        sar_def: str | Path | None = None,
        resolution: float | None = None,
        style: str = "7class",
        probabilities: str | Path | None = None,
        overlap: int = 128,
        aoi: str | Path | None = None,
        overwrite: bool = False,
        read_threads: int | None = None,
        stac: bool = False,
        quicklook: str | Path | None = None,
        quicklook_size: int = 1024,
        quicklook_layout: str = "side",
        spectral: bool = True,
        progress: Callable[[int, int], None] | None = None,
        notice: Callable[[str], None] | None = None,
    ) -> Sidecar:
        """What `cloudmask run` does: mask a product into a COG + sidecar (and, with ``stac``,
        a STAC item ``<mask stem>.stac.json``; with ``quicklook``, a PNG of the product and its
        mask, ``quicklook_size`` px on its longest side, ``side`` by side or ``overlay``);
        returns the sidecar. ``spectral=False``: the network's classes without the water and
        snow tests (`inference.refine`); ``notice`` receives remarks such as a CPU fallback."""
        check_style(style)
        if overlap < 0 or overlap >= 512:
            raise ValueError(f"--overlap must be between 0 and 511 px, got {overlap}")
        output = Path(output)
        ql = Path(quicklook) if quicklook is not None else None
        if ql is not None:
            from cloudmask_cli.quicklook import check_layout

            check_layout(quicklook_layout, quicklook_size)
        prob = Path(probabilities) if probabilities is not None else None
        outputs = run_outputs(output, prob, stac, ql)
        check_outputs(outputs, overwrite)
        with gdal_env():  # remote assets: range requests, retries, timeouts (see remote.py)
            scene = open_product(product, sensor=sensor, resolution=resolution)
            if stac:
                from cloudmask_cli.inference.stac import check_stac_source

                check_stac_source(scene.product, scene.metadata)  # before the model and any window
            if sar or dem:
                scene = add_auxiliary(scene, sar=sar, dem=dem, sar_definition=sar_def)
            # the outputs again, now that the input files are known (before the first window)
            check_outputs(outputs, overwrite, input_files(scene))
            engine = self.engine
            if self.device_notice and notice:
                notice(self.device_notice)
            options = RunOptions(style=style, overlap=overlap, aoi=aoi,
                                 read_threads=read_threads, spectral=spectral)  # fmt: skip
            return mask_to_file(
                scene,
                engine,
                output,
                options,
                probabilities=Path(probabilities) if probabilities else None,
                overwrite=overwrite,
                model_info=self.info,
                progress=progress,
                stac=stac,
                quicklook=ql,
                quicklook_size=quicklook_size,
                quicklook_layout=quicklook_layout,
            )
