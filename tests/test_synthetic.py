"""Synthetic clouds and shadows: exact labels, per-band physics, geometry, robustness."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import DATA, require

from cloudmask_cli.classes import CLASSES
from cloudmask_cli.sensors import Band, get_sensor
from cloudmask_cli.training.adapters.local import BIOME_PATCH_BANDS
from cloudmask_cli.training.synthetic import (
    SHADOW_ALPHA,
    THICK_ALPHA,
    THIN_ALPHA,
    SyntheticClouds,
    render_clouds,
    simulate_clouds,
)

IDX = {c: i for i, c in enumerate(CLASSES)}
CLEAR_PARTIAL = ("land", "water", "snow", "cloud_shadow")
S2 = get_sensor("sentinel2_msi").bands


def landsat8_bands() -> tuple[Band, ...]:
    try:
        return get_sensor("landsat8_oli_tirs").bands
    except Exception:  # the sensor file is written in parallel; the physics only needs these
        spec = [
            ("B1", "reflectance", (435, 451)),
            ("B2", "reflectance", (452, 512)),
            ("B3", "reflectance", (533, 590)),
            ("B4", "reflectance", (636, 673)),
            ("B5", "reflectance", (851, 879)),
            ("B6", "reflectance", (1567, 1651)),
            ("B7", "reflectance", (2107, 2294)),
            ("B9", "reflectance", (1363, 1384)),
            ("B10", "brightness_temperature", (10600, 11190)),
            ("B11", "brightness_temperature", (11500, 12510)),
        ]
        return tuple(Band(name=n, type=t, wavelength=w) for n, t, w in spec)


SAR_DEM = (
    Band(name="VV", type="sar_vv", units="db"),
    Band(name="VH", type="sar_vh", units="db"),
    Band(name="angle", type="sar_angle"),
    Band(name="elevation", type="dem"),
)


def band(bands, name: str) -> int:
    return [b.name for b in bands].index(name)


def clear_scene(bands, rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """Dark vegetated land: low visible, bright NIR, mid SWIR, dark cirrus band, 290 K."""
    shape = (size, size)
    layers = []
    for b in bands:
        noise = rng.normal(0.0, 1.0, shape)
        if b.type == "reflectance":
            lam = sum(b.wavelength) / 2
            if 1340 < lam < 1400:
                base = 0.003  # water vapour absorbs the surface signal
            elif lam < 700:
                base = 0.05
            elif lam < 1000:
                base = 0.28
            else:
                base = 0.15
            layers.append(base * (1.0 + 0.1 * noise))
        elif b.type == "brightness_temperature":
            layers.append(290.0 + 1.5 * noise)
        elif b.type == "dem":
            layers.append(200.0 + 30.0 * noise)
        elif b.type == "sar_angle":
            layers.append(35.0 + noise)
        else:
            layers.append(-12.0 + 2.0 * noise)
    return np.stack(layers).astype(np.float32)


def labels(size: int = 128, classes=("land",)) -> np.ndarray:
    p = np.zeros((len(CLASSES), size, size), bool)
    for c in classes:
        p[IDX[c]] = True
    return p


def only(possible: np.ndarray, cls: str) -> np.ndarray:
    """Pixels whose label set is exactly {cls}."""
    want = np.zeros(len(CLASSES), bool)
    want[IDX[cls]] = True
    return (possible == want[:, None, None]).all(axis=0)


def bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint32)


def reflective(bands) -> list[int]:
    return [i for i, b in enumerate(bands) if b.type == "reflectance"]


# --- labels -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_labels_are_exact(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = clear_scene(S2, rng)
    poss = labels()
    r = simulate_clouds(x, S2, poss, rng, cover=0.4, thin_fraction=0.3)
    thick, thin = only(r.possible, "thick_cloud"), only(r.possible, "thin_cloud")
    shadow = only(r.possible, "cloud_shadow")
    assert thick.any() and thin.any() and shadow.any()

    assert (r.alpha[thick] >= THICK_ALPHA).all()
    assert ((r.alpha[thin] >= THIN_ALPHA) & (r.alpha[thin] < THICK_ALPHA)).all()
    # ...and the other way round: every opaque enough pixel is labelled
    assert thick[r.alpha >= THICK_ALPHA].all()
    assert thin[(r.alpha >= THIN_ALPHA) & (r.alpha < THICK_ALPHA)].all()

    # Shadows: not under a cloud, opaque enough, darker than before in every reflective band.
    assert (r.alpha[shadow] == 0).all() and (r.shadow[shadow] >= SHADOW_ALPHA).all()
    for b in reflective(S2):
        assert (r.x[b][shadow] < x[b][shadow]).all(), S2[b].name
    # A faint haze over a shadow is honestly ambiguous.
    hazy = (r.alpha > 0) & (r.alpha < THIN_ALPHA) & (r.shadow >= SHADOW_ALPHA)
    assert r.possible[IDX["cloud_shadow"]][hazy].all() and r.possible[IDX["thin_cloud"]][hazy].all()

    # Outside clouds and shadows nothing changed, bit for bit.
    outside = (r.alpha == 0) & (r.shadow == 0)
    assert outside.any()
    assert np.array_equal(bits(r.x)[:, outside], bits(x)[:, outside])
    assert np.array_equal(r.possible[:, outside], poss[:, outside])
    # Too faint to be labelled: original label kept.
    faint = (r.alpha < THIN_ALPHA) & (r.shadow < SHADOW_ALPHA)
    assert np.array_equal(r.possible[:, faint], poss[:, faint])
    # Every pixel keeps at least one possible class.
    assert r.possible.any(axis=0).all()


def test_cover_is_respected() -> None:
    rng = np.random.default_rng(5)
    x = clear_scene(S2, rng)
    for cover in (0.1, 0.3, 0.6):
        r = simulate_clouds(x, S2, labels(), rng, cover=cover, thin_fraction=0.0)
        assert abs((r.alpha >= THIN_ALPHA).mean() - cover) < 0.03
    r = simulate_clouds(x, S2, labels(), rng, cover=0.0)
    assert (r.alpha == 0).all() and np.array_equal(r.possible, labels())


def test_real_cloud_labels_and_partial_labels() -> None:
    rng = np.random.default_rng(7)
    x = clear_scene(S2, rng)
    poss = labels(classes=CLEAR_PARTIAL)
    poss[:, :, :32] = False
    poss[IDX["thick_cloud"], :, :32] = True  # a real cloud: untouchable
    poss[IDX["thin_cloud"], :, 32:64] = True  # maybe clear, maybe a real thin cloud
    r = simulate_clouds(x, S2, poss, rng, cover=0.6, thin_fraction=0.3)
    assert np.array_equal(bits(r.x)[:, :, :32], bits(x)[:, :, :32])
    assert np.array_equal(r.possible[:, :, :32], poss[:, :, :32])

    mixed = np.zeros_like(r.alpha, bool)
    mixed[:, 32:64] = True
    t = IDX["thick_cloud"]
    thin_here = mixed & (r.alpha >= THIN_ALPHA) & (r.alpha < THICK_ALPHA)
    assert thin_here.any()
    # a synthetic thin cloud over a possible real thin cloud may add up to a thick one
    assert r.possible[t][thin_here].all() and r.possible[IDX["thin_cloud"]][thin_here].all()
    assert not r.possible[IDX["land"]][thin_here].any()
    assert only(r.possible, "thick_cloud")[mixed & (r.alpha >= THICK_ALPHA)].all()


def test_shadow_on_dark_water_stays_water_too() -> None:
    """A shadow over open water still looks like water: with ``water_dark`` its label keeps
    water beside shadow, so dark and flat is not taught to be shadow alone; land is unchanged."""
    rng = np.random.default_rng(11)
    x = clear_scene(S2, rng)
    poss = labels(classes=CLEAR_PARTIAL)
    lake = np.zeros(x.shape[1:], bool)
    lake[:, :64] = True
    for i, b in enumerate(S2):  # open water: NIR and SWIR absorbed
        if b.type == "reflectance" and b.wavelength[0] >= 760:
            x[i][lake] = 0.01
    poss[IDX["water"]][~lake] = False  # a label that rules water out on the land half
    runs = {
        dark: simulate_clouds(x, S2, poss, np.random.default_rng(3), cover=0.5, water_dark=dark)
        for dark in (0.0, 0.08)
    }
    shade = only(runs[0.0].possible, "cloud_shadow")
    assert (shade & lake).any() and (shade & ~lake).any()
    r = runs[0.08]
    assert np.array_equal(r.x, runs[0.0].x)  # the pixels are the same, only the labels differ
    both = r.possible[IDX["water"]] & r.possible[IDX["cloud_shadow"]]
    assert both[shade & lake].all()
    assert only(r.possible, "cloud_shadow")[shade & ~lake].all()
    assert SyntheticClouds.from_config({"water_dark": 0.08}).water_dark == 0.08
    with pytest.raises(ValueError, match="water_dark"):
        SyntheticClouds.from_config({"water_dark": 2})


def test_nan_pixels_untouched() -> None:
    rng = np.random.default_rng(11)
    x = clear_scene(S2, rng)
    x[:, 40:80, 40:80] = np.nan  # no data in every band
    x[3, 10:20, 100:120] = np.nan  # one band missing
    poss = labels()
    poss[:, 40:80, 40:80] = False
    poss[IDX["no_data"], 40:80, 40:80] = True
    r = simulate_clouds(x, S2, poss, rng, cover=0.7, thin_fraction=0.2)
    nan_px = ~np.isfinite(x).all(axis=0)
    assert np.array_equal(np.isnan(r.x), np.isnan(x))
    assert np.array_equal(bits(r.x)[:, nan_px], bits(x)[:, nan_px])
    assert np.array_equal(r.possible[:, nan_px], poss[:, nan_px])
    assert (r.alpha[nan_px] > 0).any()  # there was a cloud over them


# --- per-band physics ---------------------------------------------------------------------------


def test_thick_cloud_spectrum_sentinel2() -> None:
    rng = np.random.default_rng(3)
    x = clear_scene(S2, rng)
    r = simulate_clouds(x, S2, labels(), rng, cover=0.5, thin_fraction=0.0, cloud_height=1.5)
    thick = only(r.possible, "thick_cloud")
    assert thick.sum() > 500

    def mean(name: str, a=r.x) -> float:
        return float(a[band(S2, name)][thick].mean())

    for vis in ("B02", "B03", "B04"):
        assert mean(vis) > 0.3 and mean(vis) > 4 * mean(vis, x)  # bright over dark land
    # flat across visible and NIR
    assert abs(mean("B02") - mean("B8A")) < 0.15 * mean("B02")
    # lower in SWIR, and lower at 2.2 um than at 1.6 um
    assert mean("B12") < mean("B11") < 0.9 * mean("B04")
    # water vapour band dimmer than the NIR beside it; a low cloud barely shows at 1.38 um
    assert mean("B09") < 0.95 * mean("B8A")
    assert mean("B10") < 0.3 * mean("B04")


def test_cirrus_band_shows_thin_cirrus() -> None:
    rng = np.random.default_rng(4)
    x = clear_scene(S2, rng)
    r = simulate_clouds(x, S2, labels(), rng, cover=0.5, thin_fraction=1.0)
    cirrus = only(r.possible, "thin_cloud") & (r.alpha_low == 0)
    clear = (r.alpha == 0) & (r.shadow == 0)
    assert cirrus.sum() > 500 and clear.sum() > 500
    b10 = band(S2, "B10")
    assert r.x[b10][clear].max() < 0.01  # the surface stays dark there
    assert r.x[b10][cirrus].mean() > 0.03
    assert r.x[b10][cirrus].mean() > 8 * x[b10][cirrus].mean()
    # the same cirrus is much less contrasted in the red over land
    b4 = band(S2, "B04")
    rel_red = r.x[b4][cirrus].mean() / x[b4][cirrus].mean()
    rel_cirrus = r.x[b10][cirrus].mean() / x[b10][cirrus].mean()
    assert rel_cirrus > 3 * rel_red


def test_thermal_cold_clouds_cool_shadows_landsat8() -> None:
    bands = landsat8_bands()
    rng = np.random.default_rng(8)
    x = clear_scene(bands, rng)
    r = simulate_clouds(
        x, bands, labels(), rng, cover=0.4, thin_fraction=0.0, cloud_height=2.0, sun_elevation=50
    )
    thick = only(r.possible, "thick_cloud")
    shadow = only(r.possible, "cloud_shadow")
    assert thick.any() and shadow.any()
    for i, b in enumerate(bands):
        if b.type != "brightness_temperature":
            continue
        drop = x[i][thick] - r.x[i][thick]
        assert 8.0 < drop.mean() < 20.0, b.name  # ~ 6.5 K/km * 2 km
        cool = x[i][shadow] - r.x[i][shadow]
        assert (cool > 0).all() and cool.max() < 5.0, b.name


def test_sar_and_dem_unchanged() -> None:
    bands = tuple(S2) + SAR_DEM
    rng = np.random.default_rng(9)
    x = clear_scene(bands, rng)
    r = simulate_clouds(x, bands, labels(), rng, cover=0.6)
    assert (r.alpha >= THICK_ALPHA).any()
    n = len(S2)
    assert np.array_equal(bits(r.x)[n:], bits(x)[n:])
    # SAR or DEM alone cannot show a cloud: nothing is rendered and no label is invented
    x2 = x[n:]
    x3, p3 = render_clouds(x2, SAR_DEM, labels(), np.random.default_rng(9), cover=0.6)
    assert np.array_equal(bits(x3), bits(x2)) and np.array_equal(p3, labels())


# --- geometry -----------------------------------------------------------------------------------


def _offset(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(rows, cols) roll that best maps mask a onto mask b (circular cross-correlation)."""
    corr = np.fft.irfft2(np.conj(np.fft.rfft2(a)) * np.fft.rfft2(b), s=a.shape)
    dy, dx = np.unravel_index(np.argmax(corr), corr.shape)
    h, w = a.shape
    return (dy + h // 2) % h - h // 2, (dx + w // 2) % w - w // 2


@pytest.mark.parametrize(
    "azimuth, sign",
    [(135.0, (-1, -1)), (225.0, (-1, 1)), (315.0, (1, 1)), (45.0, (1, -1)), (180.0, (-1, 0))],
)
def test_shadow_lies_away_from_the_sun(azimuth: float, sign: tuple[int, int]) -> None:
    # e.g. sun in the south-east (135) -> shadows north-west of the clouds (up and left)
    rng = np.random.default_rng(12)
    x = clear_scene(S2, rng, size=192)
    r = simulate_clouds(
        x,
        S2,
        labels(192),
        rng,
        sun_azimuth=azimuth,
        sun_elevation=45.0,
        cloud_height=1.2,
        pixel_size=30.0,
        cover=0.15,
        thin_fraction=0.0,
    )
    dist = 1200.0 / np.tan(np.radians(45.0)) / 30.0  # 40 px
    # measured from the labels alone: where do the shadows sit relative to the thick clouds?
    dy, dx = _offset(
        only(r.possible, "thick_cloud").astype(float),
        only(r.possible, "cloud_shadow").astype(float),
    )
    expect = np.array(sign, float)
    expect = expect / np.hypot(*expect) * dist
    assert abs(dy - expect[0]) <= 3 and abs(dx - expect[1]) <= 3, (dy, dx, expect)


def test_shadow_length_scales_with_pixel_size() -> None:
    rng = np.random.default_rng(0)
    x = clear_scene(S2, rng)
    kw = dict(sun_azimuth=90.0, sun_elevation=30.0, cloud_height=1.0, cover=0.2)
    r30 = simulate_clouds(x, S2, labels(), np.random.default_rng(1), pixel_size=30.0, **kw)
    r60 = simulate_clouds(x, S2, labels(), np.random.default_rng(1), pixel_size=60.0, **kw)
    # sun in the east -> shadow to the west, 1000 / tan(30) m long
    assert r30.shift_low == (0, -round(1000 / np.tan(np.radians(30)) / 30))
    assert r60.shift_low == (0, -round(1000 / np.tan(np.radians(30)) / 60))


# --- robustness ---------------------------------------------------------------------------------


def test_deterministic_for_a_seed() -> None:
    x = clear_scene(S2, np.random.default_rng(0))
    a = render_clouds(x, S2, labels(), np.random.default_rng(42))
    b = render_clouds(x, S2, labels(), np.random.default_rng(42))
    c = render_clouds(x, S2, labels(), np.random.default_rng(43))
    assert np.array_equal(bits(a[0]), bits(b[0])) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    # the clouds do not depend on which bands the sample has
    rgb = [band(S2, n) for n in ("B04", "B03", "B02")]
    d = render_clouds(x[rgb], [S2[i] for i in rgb], labels(), np.random.default_rng(42))
    assert np.array_equal(d[1], a[1]) and np.array_equal(bits(d[0]), bits(a[0][rgb]))
    assert np.array_equal(x, clear_scene(S2, np.random.default_rng(0)))  # input not modified


@pytest.mark.parametrize(
    "names", [("B04",), ("B04", "B03", "B02"), tuple(b.name for b in S2), ("landsat8",)]
)
def test_band_sets(names: tuple[str, ...]) -> None:
    if names == ("landsat8",):
        bands = landsat8_bands()
    else:
        bands = tuple(S2[band(S2, n)] for n in names)
    rng = np.random.default_rng(21)
    x = clear_scene(bands, rng, size=64)
    out, poss = render_clouds(x, bands, labels(64), rng, cover=0.5, thin_fraction=0.2)
    assert out.shape == x.shape and out.dtype == np.float32 and poss.shape == (7, 64, 64)
    thick = only(poss, "thick_cloud")
    assert thick.any()
    red = next(
        i
        for i, b in enumerate(bands)
        if b.type == "reflectance" and 620 < sum(b.wavelength) / 2 < 690
    )
    assert out[red][thick].mean() > 0.3 > x[red][thick].mean()


def test_input_checks() -> None:
    x = clear_scene(S2, np.random.default_rng(0), size=32)
    with pytest.raises(ValueError, match="len\\(bands\\)"):
        render_clouds(x[:3], S2, labels(32), np.random.default_rng(0))
    with pytest.raises(ValueError, match="possible"):
        render_clouds(x, S2, labels(16), np.random.default_rng(0))


# --- augmentation -------------------------------------------------------------------------------


def test_augmentation_from_config() -> None:
    aug = SyntheticClouds.from_config(
        {"p": 1.0, "cover": [0.3, 0.5], "thin_fraction": 0.2, "cloud_height": [1, 2]}
    )
    assert aug.cover == (0.3, 0.5) and aug.thin_fraction == (0.2, 0.2)
    rng = np.random.default_rng(0)
    x = clear_scene(S2, rng, size=64)
    out, poss = aug(x, S2, labels(64), np.random.default_rng(1))
    assert (poss[IDX["thick_cloud"]] | poss[IDX["thin_cloud"]]).mean() > 0.2
    out2, poss2 = aug(x, S2, labels(64), np.random.default_rng(1))
    assert np.array_equal(bits(out), bits(out2)) and np.array_equal(poss, poss2)

    never = SyntheticClouds.from_config({"p": 0})
    same_x, same_p = never(x, S2, labels(64), rng)
    assert same_x is x

    assert SyntheticClouds.from_config(None) == SyntheticClouds()
    with pytest.raises(ValueError, match="unknown key"):
        SyntheticClouds.from_config({"coverage": 0.3})
    with pytest.raises(ValueError, match="cover"):
        SyntheticClouds.from_config({"cover": [0.5, 0.2]})
    with pytest.raises(ValueError, match="p must be"):
        SyntheticClouds.from_config({"p": 2})


# --- real data ----------------------------------------------------------------------------------

BIOME = DATA / "labelled" / "landsat8-biome-patches" / "train"
BIOME_BANDS = BIOME_PATCH_BANDS  # the patches' band order, as the adapter reads them


def _biome_labels(mask: np.ndarray) -> np.ndarray:
    p = np.zeros((len(CLASSES), *mask.shape), bool)
    p[IDX["no_data"]] = mask == 0
    p[IDX["cloud_shadow"]] = mask == 64
    for c in CLEAR_PARTIAL:  # Biome "clear" may hide unannotated shadows
        p[IDX[c]] |= mask == 128
    p[IDX["thin_cloud"]] = mask == 192
    p[IDX["thick_cloud"]] = mask == 255
    return p


@pytest.mark.realdata
def test_real_biome_patch() -> None:
    rasterio = pytest.importorskip("rasterio")
    name = "Forest_03_0209"  # mostly clear forest with a real thin cloud
    image = require(BIOME / "Images" / f"{name}.tif")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the patches are not georeferenced
        with rasterio.open(image) as src:
            x = src.read().astype(np.float32)
        with rasterio.open(require(BIOME / "Masks" / f"{name}.tif")) as src:
            mask = src.read(1)
    x[:, mask == 0] = np.nan
    l8 = {b.name: b for b in landsat8_bands()}
    bands = [l8[n] for n in BIOME_BANDS]
    poss = _biome_labels(mask)
    real_cloud = (mask == 192) | (mask == 255)
    assert real_cloud.any()

    r = simulate_clouds(x, bands, poss, np.random.default_rng(2), cover=0.5, thin_fraction=0.3)
    thick = only(r.possible, "thick_cloud") & ~real_cloud
    thin = only(r.possible, "thin_cloud") & ~real_cloud & (r.alpha_low == 0)
    shadow = only(r.possible, "cloud_shadow") & (mask == 128)
    assert thick.sum() > 1000 and thin.sum() > 100 and shadow.sum() > 100
    assert (r.alpha[thick] >= THICK_ALPHA).all()

    red, swir2, cirrus, tir = (BIOME_BANDS.index(n) for n in ("B4", "B7", "B9", "B10"))
    assert r.x[red][thick].mean() > 0.35 > x[red][thick].mean()
    assert r.x[swir2][thick].mean() < r.x[red][thick].mean()
    assert r.x[tir][thick].mean() < x[tir][thick].mean() - 3.0
    assert r.x[cirrus][thin].mean() > 5 * x[cirrus][thin].mean()
    for b in range(7):  # some real SWIR pixels are exactly 0: they can only stay 0
        assert ((r.x[b] < x[b]) | (x[b] == 0))[shadow].all(), BIOME_BANDS[b]
    # the real cloud keeps its pixels and its label
    assert np.array_equal(bits(r.x)[:, real_cloud], bits(x)[:, real_cloud])
    assert np.array_equal(r.possible[:, real_cloud], poss[:, real_cloud])
    outside = (r.alpha == 0) & (r.shadow == 0)
    assert np.array_equal(bits(r.x)[:, outside], bits(x)[:, outside])
