"""Peer cloud masks (training/peers.py): band matching always; the peers themselves on real
Biome and Sen1Floods11 pixels when their packages (cloudmask[peers]) and ../shared are there."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import rasterio
from conftest import require
from rasterio.errors import NotGeoreferencedWarning

from cloudmask_cli.classes import CLASSES
from cloudmask_cli.errors import InputError
from cloudmask_cli.sensors import get_sensor
from cloudmask_cli.training.adapters.local import BIOME_PATCH_BANDS
from cloudmask_cli.training.peers import (
    S2CLOUDLESS_BANDS,
    UKIS_BANDS,
    PeerUnavailable,
    match_bands,
    peer_predictor,
)

BIOME_BANDS = BIOME_PATCH_BANDS  # the patches' band order, as the adapter reads them
CLOUD = [CLASSES.index("thin_cloud"), CLASSES.index("thick_cloud")]
INVALID = [*CLOUD, CLASSES.index("cloud_shadow")]


def names(sensor: str, wanted, order=None) -> list[str]:
    s = get_sensor(sensor)
    bands = s.bands if order is None else [s.band(n) for n in order]
    return [bands[i].name for i in match_bands(bands, wanted, "peer")]


def test_bands_matched_by_wavelength():
    # S2: B08 rather than B8A for nir; L8: not the panchromatic B8 for green
    assert names("sentinel2_msi", UKIS_BANDS) == ["B02", "B03", "B04", "B08", "B11", "B12"]
    l8 = ["B2", "B3", "B4", "B5", "B6", "B7"]
    assert (
        names("landsat8_oli_tirs", UKIS_BANDS)
        == names("landsat8_oli_tirs", UKIS_BANDS, BIOME_BANDS)
        == l8
    )
    assert names("landsat7_etm", UKIS_BANDS) == ["B1", "B2", "B3", "B4", "B5", "B7"]
    assert names("landsat5_tm", UKIS_BANDS) == ["B1", "B2", "B3", "B4", "B5", "B7"]
    assert names("sentinel2_msi", S2CLOUDLESS_BANDS) == [pb.name for pb in S2CLOUDLESS_BANDS]


def test_missing_band_is_one_line_naming_it():
    with pytest.raises(PeerUnavailable) as err:
        names("landsat8_oli_tirs", S2CLOUDLESS_BANDS, BIOME_BANDS)
    msg = str(err.value)
    assert isinstance(err.value, InputError) and "\n" not in msg
    assert "B05 (697-712 nm)" in msg and "B09 (935-955 nm)" in msg and "B01" in msg
    assert "B02" not in msg.split(":")[0]  # blue is there (L8 B2)
    with pytest.raises(PeerUnavailable, match="swir16"):  # 4 bands: no SWIR
        names("sentinel2_msi", UKIS_BANDS, ("B02", "B03", "B04", "B08"))


def test_unknown_peer_or_option_and_package_missing(monkeypatch):
    with pytest.raises(InputError, match="unknown peer"):
        peer_predictor("fmask")
    with pytest.raises(InputError, match="unknown option"):
        peer_predictor("s2cloudless", dilation=3)
    monkeypatch.setitem(sys.modules, "ukis_csmask", None)  # import fails as when not installed
    with pytest.raises(PeerUnavailable, match=r"pip install cloudmask\[peers\]"):
        peer_predictor("ukis-csmask")


def f1(probs: np.ndarray, label: np.ndarray, positive: list[int], codes: tuple[int, ...]) -> float:
    pred, ref, scored = probs[positive].sum(0) > 0.5, np.isin(label, codes), label != 0
    tp = (pred & ref & scored).sum()
    return 2 * tp / ((pred & scored).sum() + (ref & scored).sum())


def biome_patch(shared_data, name: str) -> tuple[np.ndarray, np.ndarray]:
    root = require(shared_data / "labelled/landsat8-biome-patches/val")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(require(root / "Images" / f"{name}.tif")) as ds:
            x = ds.read().astype(np.float32)
        with rasterio.open(root / "Masks" / f"{name}.tif") as ds:
            return x, ds.read(1)


@pytest.mark.realdata
def test_ukis_csmask_on_a_biome_patch(shared_data):
    pytest.importorskip("ukis_csmask")
    from ukis_csmask.mask import CSmask

    x, label = biome_patch(shared_data, "Forest_00_1008")  # 19 % cloud, 18 % shadow marked
    bands = [get_sensor("landsat8_oli_tirs").band(n) for n in BIOME_BANDS]
    x[:, :8, :8] = np.nan  # no data: filled for the peer, left to the harness
    probs = peer_predictor("ukis-csmask", threads=2)(x, np.zeros((8, 1)), bands)
    assert probs.shape == (7, *label.shape) and probs.dtype == np.float32
    assert np.all(probs.sum(0) == 1)
    assert f1(probs, label, CLOUD, (192, 255)) > 0.8  # measured 0.93
    assert f1(probs, label, INVALID, (64, 192, 255)) > 0.7  # measured 0.90
    # the same mask as the package's own CSmask (which reloads the model for every image)
    idx = match_bands(bands, UKIS_BANDS, "ukis")
    img = np.nan_to_num(x[idx]).transpose(1, 2, 0).copy()
    csm = CSmask(img, band_order=[pb.name for pb in UKIS_BANDS], intra_op_num_threads=2).csm[..., 0]
    ours = np.select([probs[CLASSES.index(c)] > 0 for c in ("thick_cloud", "cloud_shadow")], [1, 2])
    assert np.array_equal(ours, csm)


@pytest.mark.realdata
def test_s2cloudless_na_on_landsat_runs_on_sentinel2_l1c(shared_data):
    pytest.importorskip("s2cloudless")
    predict = peer_predictor("s2cloudless", threads=2)
    x, _ = biome_patch(shared_data, "Forest_00_1008")
    landsat = [get_sensor("landsat8_oli_tirs").band(n) for n in BIOME_BANDS]
    with pytest.raises(PeerUnavailable, match=r"s2cloudless needs B01 .*, B05 .*, B09"):
        predict(x, np.zeros((8, 1)), landsat)
    # Sen1Floods11 chip: the 13 L1C bands as DN / 10000 (no offset); no cloud label there
    path = require(shared_data / "products/sen1floods11/S2/Spain_7370579_S2Hand.tif")
    with rasterio.open(path) as ds:
        s2 = ds.read().astype(np.float32) / 10000
        order = [d if d == "B8A" else f"B{int(d[1:]):02d}" for d in ds.descriptions]
    bands = [get_sensor("sentinel2_msi").band(n) for n in order]
    probs = predict(s2, np.zeros((13, 1)), bands)
    assert probs.shape == (7, 512, 512) and np.all(probs.sum(0) == 1)
    assert probs[CLASSES.index("cloud_shadow")].sum() == 0  # it has no shadow class
    assert 0 <= probs[CLASSES.index("thick_cloud")].mean() < 0.5  # a mostly clear chip
