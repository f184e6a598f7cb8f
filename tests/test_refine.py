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


GRASS = {490: 0.03, 560: 0.07, 665: 0.04, 865: 0.39, 1375: 0.002, 1610: 0.2, 2190: 0.09}


def test_green_vegetation_the_network_calls_water_or_snow_gets_its_next_class() -> None:
    # a network that never saw land decided on a sensor (a fold without Sentinel-2 labels)
    # called sunlit and shadowed pasture (NDVI 0.7-0.9) water: green vegetation is neither
    p = _probs("water", "water", "snow")
    p[IDX["cloud_shadow"], 0, 1] = 0.3  # the shaded pixel's second choice is shadow
    p[IDX["land"], 0, 1] = 0.1
    before = p.copy()
    refine(p, _image(GRASS, SHADED_GRASS, GRASS), S2)
    assert p.argmax(0).tolist() == [[IDX["land"], IDX["cloud_shadow"], IDX["land"]]]
    assert (p[IDX["water"]] == 0).all() and (p[IDX["snow"]] == 0).all()
    assert np.allclose(p.sum(0), before.sum(0)), "probability moves, none is made"
    # the network's probabilities given "not water, not snow": the classes left keep their
    # proportions (the network's order among them)
    rest = [IDX[c] for c in ("land", "thin_cloud", "thick_cloud", "cloud_shadow")]
    ratio = p[rest] / before[rest]
    assert np.allclose(ratio, ratio[:1])


def test_water_the_network_finds_on_a_lake_is_kept() -> None:
    p = _probs("water", "water")
    p[IDX["cloud_shadow"], 0, 1] = 0.2
    before = p.copy()
    refine(p, _image(LAKE, SHADED_GRASS), S2)
    assert p.argmax(0).tolist() == [[IDX["water"], IDX["cloud_shadow"]]]
    assert np.array_equal(p[:, :, 0], before[:, :, 0])


def test_the_vegetation_rule_does_not_jump_where_classes_nearly_tie() -> None:
    # last-bit differences (another batch size, another runtime) must stay last-bit differences:
    # a rule applied only where snow is the top class moved 0.3 of probability on one side of
    # a tie and none on the other, and `run` and `evaluate` then disagreed on a pixel
    a = _probs("snow")
    a[IDX["thick_cloud"]] = a[IDX["snow"]] - 1e-6
    b = a.copy()
    b[IDX["snow"]] -= 2e-6  # now thick cloud is on top, by as little
    refine(a, _image(GRASS), S2)
    refine(b, _image(GRASS), S2)
    assert np.abs(a - b).max() < 1e-4  # 2e-6 apart going in: a few times that coming out
