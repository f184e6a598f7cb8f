"""Water and snow from the spectral tests where the network says land or shadow (refine.py)."""

from __future__ import annotations

import numpy as np
import torch

from cloudmask_cli.classes import CLASSES
from cloudmask_cli.inference.refine import refine
from cloudmask_cli.sensors import get_sensor

IDX = {c: i for i, c in enumerate(CLASSES)}
S2 = [b for b in get_sensor("sentinel2_msi").bands if b.type == "reflectance"]
# reflectance against wavelength (nm), interpolated at each band's centre
LAKE = {490: 0.018, 560: 0.018, 665: 0.011, 865: 0.008, 1375: 0.001, 1610: 0.005, 2190: 0.003}
SHADED_GRASS = {490: 0.02, 560: 0.035, 665: 0.02, 865: 0.12, 1375: 0.001, 1610: 0.06, 2190: 0.03}
SNOW = {490: 0.8, 560: 0.78, 665: 0.75, 865: 0.65, 1375: 0.01, 1610: 0.08, 2190: 0.05}


def _image(*spectra: dict[int, float], bands=S2) -> np.ndarray:
    """One pixel per spectrum, in a row: ``(bands, 1, n)``."""
    centres = [sum(b.wavelength) / 2 for b in bands]
    cols = [np.interp(centres, list(s), list(s.values())) for s in spectra]
    return np.stack(cols, axis=1)[:, None, :].astype(np.float32)


def _probs(*tops: str) -> np.ndarray:
    """Probabilities ``(7, 1, n)``: 0.55 on each pixel's class, the rest spread evenly."""
    p = np.full((len(CLASSES), 1, len(tops)), 0.45 / 5, np.float32)
    p[IDX["no_data"]] = 0.0
    for k, c in enumerate(tops):
        p[IDX[c], 0, k] = 0.55
    return p


def test_a_lake_the_network_calls_shadow_or_land_becomes_water() -> None:
    p = _probs("cloud_shadow", "land")
    before = p.copy()
    refine(p, _image(LAKE, LAKE), S2)
    assert (p.argmax(0) == IDX["water"]).all()
    assert np.allclose(p.sum(0), before.sum(0)), "probability moves, none is made"
    assert (p[IDX["cloud_shadow"]] == 0).all() and (p[IDX["land"]] == 0).all()
    # what the network gave the clouds is kept
    assert np.array_equal(p[IDX["thick_cloud"]], before[IDX["thick_cloud"]])


def test_real_shadows_clouds_and_no_data_are_left_alone() -> None:
    # shadowed grass keeps its NDVI: not water; a cloud over a lake stays cloud
    x = _image(SHADED_GRASS, LAKE, LAKE, SNOW)
    x[:, 0, 2] = np.nan
    p = _probs("cloud_shadow", "thin_cloud", "cloud_shadow", "thick_cloud")
    before = p.copy()
    refine(p, x, S2)
    assert np.array_equal(p, before)


def test_snow_the_network_calls_land_becomes_snow() -> None:
    p = _probs("land", "cloud_shadow")
    refine(p, _image(SNOW, SNOW), S2)
    assert p.argmax(0).tolist() == [[IDX["snow"], IDX["cloud_shadow"]]]


def test_without_the_bands_a_test_needs_nothing_changes() -> None:
    rgb = [b for b in S2 if b.name in ("B02", "B03", "B04")]
    p = _probs("cloud_shadow")
    before = p.copy()
    refine(p, _image(LAKE, bands=rgb), rgb)
    assert np.array_equal(p, before)
    # the RGB + NIR form of the water test (On Cloud N's four bands) still finds the lake
    rgbn = [b for b in S2 if b.name in ("B02", "B03", "B04", "B08")]
    refine(p, _image(LAKE, bands=rgbn), rgbn)
    assert p.argmax(0).item() == IDX["water"]


def test_a_batch_of_windows_as_a_tensor() -> None:
    p = torch.from_numpy(np.stack([_probs("cloud_shadow", "land"), _probs("land", "land")]))
    x = np.stack([_image(LAKE, SHADED_GRASS), _image(SNOW, LAKE)])
    refine(p, x, S2)
    assert p.argmax(1)[:, 0].tolist() == [
        [IDX["water"], IDX["land"]],
        [IDX["snow"], IDX["water"]],
    ]
