"""Peer cloud masks scored in the same harness as our model (`evaluate.score_sets`).

A peer is a predictor ``predict(x, desc, bands) -> probs``: ``x`` float32 ``(k, h, w)`` physical
values (NaN invalid), ``bands`` the `Band` records of its rows, ``probs`` float32 ``(7, h, w)``
one-hot over `CLASSES`. The peer's own bands are found among ``bands`` by wavelength, so a peer
runs on any sensor that has them (a Sentinel-2, Landsat 8 or Landsat 7/5 band whose centre lies
in the peer band's window) and raises `PeerUnavailable` (an `InputError`: the harness reports
"n/a") where one is missing. No-data pixels are filled with 0 for the peer and left to the
harness, which masks them itself.

- ``ukis-csmask`` / ``ukis-csmask-l2a``: DLR's CNN (ukis-csmask 1.0, ONNX weights in the wheel,
  run with onnxruntime on the CPU) for TOA (L1C) / surface (L2A) reflectance; its 6-band model
  (blue, green, red, nir, swir16, swir22) or, without SWIR, its 4-band model, as the package
  itself chooses. Clear, cloud, shadow -> land, thick_cloud, cloud_shadow.
- ``s2cloudless``: Sentinel Hub's per-pixel LightGBM (s2cloudless 1.7), Sentinel-2 L1C only
  (10 bands, TOA reflectance). Cloud -> thick_cloud, else land: it has no shadow class.

    pip install cloudmask[peers]
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from cloudmask_cli.classes import CLASSES
from cloudmask_cli.errors import InputError
from cloudmask_cli.sensors import Band

Predictor = Callable[[np.ndarray, np.ndarray, Sequence[Band]], np.ndarray]
INSTALL = "pip install cloudmask[peers]"


class PeerUnavailable(InputError):
    """A peer cannot run: its package is not installed, or the input lacks a band it needs."""

    def __init__(self, problem: str) -> None:
        super().__init__(None, problem)


@dataclass(frozen=True)
class PeerBand:
    """A band a peer needs: a window (nm) the centre of an input band must lie in, and the
    centre preferred when several do (the window's middle by default)."""

    name: str
    lo: float
    hi: float
    centre: float | None = None

    @property
    def target(self) -> float:
        return (self.lo + self.hi) / 2 if self.centre is None else self.centre


# ukis-csmask's band names are STAC eo common names ("blue", ..., "swir22"); windows from the
# STAC eo extension's common-name table (github.com/stac-extensions/eo, "Common Band Names").
# "nir" is STAC's broad NIR (S2 B08, L5/7 B4; L8 B5 falls in it too): prefer a centre near
# S2 B08 (833 nm) so that B8A (865 nm) is not taken where both are given.
UKIS_BANDS = (
    PeerBand("blue", 450, 500),
    PeerBand("green", 500, 600),
    PeerBand("red", 600, 700),
    PeerBand("nir", 750, 1000, centre=833),
    PeerBand("swir16", 1550, 1750),
    PeerBand("swir22", 2100, 2300),
)
# s2cloudless's 10 Sentinel-2 bands in its model's order (s2cloudless/utils.py MODEL_BANDS);
# windows: centre +- half the bandwidth of ESA's Sentinel-2A spectral response functions
# (S2-SRF, COPE-GSEG-EOPG-TN-15-0007 v3), as sensors/sentinel2_msi.yaml.
S2CLOUDLESS_BANDS = (
    PeerBand("B01", 432, 453),
    PeerBand("B02", 459, 525),
    PeerBand("B04", 649, 680),
    PeerBand("B05", 697, 712),
    PeerBand("B08", 780, 886),
    PeerBand("B8A", 854, 875),
    PeerBand("B09", 935, 955),
    PeerBand("B10", 1358, 1389),
    PeerBand("B11", 1568, 1659),
    PeerBand("B12", 2115, 2290),
)


def match_bands(bands: Sequence[Band], wanted: Sequence[PeerBand], peer: str) -> list[int]:
    """Index in ``bands`` of each ``wanted`` band: a non-panchromatic reflectance band whose
    centre lies in its window (the one nearest its target centre); `PeerUnavailable` naming
    the missing ones."""
    out, missing = [], []
    for pb in wanted:
        found = [
            (abs(c - pb.target), i)
            for i, b in enumerate(bands)
            if b.type == "reflectance" and b.wavelength is not None and not b.panchromatic
            and pb.lo <= (c := sum(b.wavelength) / 2) <= pb.hi
        ]  # fmt: skip
        if found:
            out.append(min(found)[1])
        else:
            missing.append(f"{pb.name} ({pb.lo:g}-{pb.hi:g} nm)")
    if missing:
        have = ", ".join(b.name for b in bands) or "none"
        raise PeerUnavailable(f"{peer} needs {', '.join(missing)}: not among the bands ({have})")
    return out


def _one_hot(codes: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """``(7, h, w)`` probabilities from a peer's class codes (``classes[code]`` is ours)."""
    probs = np.zeros((len(CLASSES), *codes.shape), dtype=np.float32)
    for code, name in enumerate(classes):
        probs[CLASSES.index(name)][codes == code] = 1.0
    return probs


def _filled(x: np.ndarray, idx: Sequence[int]) -> np.ndarray:
    """``(h, w, n)`` float32 of rows ``idx``, NaN as 0 (the harness masks no data itself)."""
    return np.ascontiguousarray(np.nan_to_num(x[list(idx)], nan=0.0).transpose(1, 2, 0), np.float32)


def ukis_band_indexes(bands: Sequence[Band]) -> list[int]:
    """Rows of ``bands`` ukis-csmask reads, in its models' band order: its 6-band model's or,
    without SWIR, as `ukis_csmask.mask.CSmask` chooses, its 4-band model's (blue, green, red,
    NIR); `PeerUnavailable` naming the missing bands when even those are not all there."""
    try:
        return match_bands(bands, UKIS_BANDS, "ukis-csmask")
    except PeerUnavailable:
        return match_bands(bands, UKIS_BANDS[:4], "ukis-csmask")


def ukis_csmask(
    product_level: str = "l1c",
    threads: int = 1,
    batch_size: int = 4,
    providers: Sequence[str] = ("CPUExecutionProvider",),
    soft: bool = False,
) -> Predictor:
    """ukis-csmask: clear -> land, cloud -> thick_cloud, shadow -> cloud_shadow.

    ``product_level``: ``l1c`` (TOA reflectance) or ``l2a`` (surface reflectance): the input
    cannot tell, so the name picks it. Runs `ukis_csmask.mask.CSmask`'s steps (its model,
    band statistics, 256-pixel tiles at 0.2 overlap with smooth blending, argmax) on one cached
    onnxruntime session per model, rather than CSmask itself, which loads the 40 MB model for
    every window. ``threads``: onnxruntime's intra-op threads (inter-op: 1). ``soft``: return
    the blended softmax probabilities in those three rows instead of one-hot (a teacher needs
    the model's confidence, `cloudmask_cli.training.teacher`)."""
    try:
        import onnxruntime as ort
        import ukis_csmask as pkg
        from scipy.special import softmax
        from ukis_csmask.utils import tile_array, untile_array
    except ImportError as exc:
        raise PeerUnavailable(f"ukis-csmask is not installed ({exc.name}): {INSTALL}") from None
    if product_level not in ("l1c", "l2a"):
        raise InputError(
            None, f"ukis-csmask: product_level must be l1c or l2a, got {product_level!r}"
        )
    root = os.path.dirname(pkg.__file__)
    models: dict[int, tuple[Any, dict[str, Any]]] = {}
    classes = ("land", "thick_cloud", "cloud_shadow")  # CSmask.csm: 0 clear, 1 cloud, 2 shadow

    def model(n: int) -> tuple[Any, dict[str, Any]]:
        if n not in models:
            base = os.path.join(root, f"model_{n}b_{product_level}")
            with open(f"{base}.json", encoding="utf-8") as f:
                meta = json.load(f)["data"]
            so = ort.SessionOptions()
            so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
            so.log_severity_level = 3
            models[n] = (ort.InferenceSession(f"{base}.onnx", so, providers=list(providers)), meta)
        return models[n]

    def predict(x: np.ndarray, desc: np.ndarray, bands: Sequence[Band]) -> np.ndarray:
        idx = ukis_band_indexes(bands)
        session, meta = model(len(idx))
        mean, std = (np.asarray(v, np.float32) for v in meta["dataset_statistics"]["img"])
        img = (_filled(x, idx) - mean) / std  # UKIS_BANDS' order is the models' band_names
        ts = meta["target_size"]
        tiles = np.moveaxis(tile_array(img, xsize=ts[0], ysize=ts[1], overlap=0.2), -1, 1)
        name = session.get_inputs()[0].name
        prob = np.concatenate([
            softmax(session.run(None, {name: tiles[i : i + batch_size].astype(np.float32)})[0], axis=1)
            for i in range(0, len(tiles), batch_size)
        ])  # fmt: skip
        prob = untile_array(np.moveaxis(prob, 1, -1), (*img.shape[:2], prob.shape[1]),
                            overlap=0.2, smooth_blending=True)  # fmt: skip
        if soft:
            # the tiles' Tukey weights sum to about 1, not exactly: renormalise
            prob = prob / np.maximum(prob.sum(axis=2, keepdims=True), 1e-12)
            out = np.zeros((len(CLASSES), *prob.shape[:2]), dtype=np.float32)
            for code, cls in enumerate(classes):
                out[CLASSES.index(cls)] = prob[..., code]
            return out
        return _one_hot(np.argmax(prob, axis=2), classes)

    return predict


def s2cloudless(
    threshold: float = 0.4, average_over: int = 4, dilation_size: int = 2, threads: int = 1
) -> Predictor:
    """s2cloudless: cloud -> thick_cloud, everything else -> land. It has no shadow class, so
    its invalid (cloud or shadow) figures count every shadow as missed.

    Needs Sentinel-2's B01, B02, B04, B05, B08, B8A, B09, B10, B11, B12 as TOA (L1C)
    reflectance: n/a on Landsat (no red edge, no water vapour band) and on L2A (no B10).
    ``threshold``, ``average_over``, ``dilation_size``: the values Sentinel Hub's examples and
    eo-learn's ``get_s2_pixel_cloud_detector`` use (the class defaults are 0.4, 1, 1). The
    disks are in pixels, and Sentinel Hub runs the model on a coarse grid (eo-learn's
    AddCloudMaskTask downscales to a chosen cloud-mask resolution first, then upsamples): here
    it runs at the harness's resolution, unresampled, so its smoothing is narrower on the
    ground than on that grid."""
    try:
        import cv2
        from s2cloudless import S2PixelCloudDetector
    except ImportError as exc:
        raise PeerUnavailable(f"s2cloudless is not installed ({exc.name}): {INSTALL}") from None
    cv2.setNumThreads(threads)  # its smoothing and dilation: keep off the other cores
    detector = S2PixelCloudDetector(threshold=threshold, average_over=average_over,
                                    dilation_size=dilation_size, all_bands=False)  # fmt: skip

    def predict(x: np.ndarray, desc: np.ndarray, bands: Sequence[Band]) -> np.ndarray:
        idx = match_bands(bands, S2CLOUDLESS_BANDS, "s2cloudless")
        cloud = detector.get_cloud_masks(_filled(x, idx)[None], num_threads=threads)[0]
        return _one_hot(cloud, ("land", "thick_cloud"))

    return predict


PEERS: dict[str, Callable[..., Predictor]] = {
    "ukis-csmask": ukis_csmask,  # TOA (L1C) models
    "ukis-csmask-l2a": partial(
        ukis_csmask, product_level="l2a"
    ),  # surface reflectance (L2A) models
    "s2cloudless": s2cloudless,
}


def peer_predictor(name: str, **options: Any) -> Predictor:
    """The predictor of peer ``name`` (`PEERS`) with its factory's ``options``; raises
    `PeerUnavailable` when its package is not installed."""
    if name not in PEERS:
        raise InputError(None, f"unknown peer {name!r} (known: {', '.join(PEERS)})")
    factory = PEERS[name]
    known = inspect.signature(factory).parameters
    if unknown := sorted(set(options) - set(known)):
        raise InputError(None, f"peer {name}: unknown option(s) {unknown} (allowed: {list(known)})")
    return factory(**options)
