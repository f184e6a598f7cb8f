import numpy as np
import pytest

from cloudmask_cli import descriptors as d
from cloudmask_cli.sensors import bundled_sensors


def test_layout_length_and_flags():
    ms = d.descriptor("reflectance", [650, 680])
    th = d.descriptor("brightness_temperature", [10600, 11190])
    vv = d.descriptor("sar_vv")
    vh = d.descriptor("sar_vh")
    ang = d.descriptor("sar_angle")
    dem = d.descriptor("dem")
    for v in (ms, th, vv, vh, ang, dem):
        assert v.shape == (d.LENGTH,) and v.dtype == np.float32
        assert not v[68:74].any(), "spare flags stay zero"
    assert ms[d.FLAG_MULTISPECTRAL] == 1 and ms[d.FLAG_THERMAL] == 0 and ms[d.FLAG_SAR] == 0
    assert th[d.FLAG_MULTISPECTRAL] == 1 and th[d.FLAG_THERMAL] == 1
    for v in (vv, vh, ang):
        assert v[d.FLAG_SAR] == 1 and v[d.FLAG_MULTISPECTRAL] == 0 and v[d.FLAG_DEM] == 0
    assert dem[d.FLAG_DEM] == 1 and not dem[:64].any()
    # the three SAR kinds use disjoint parts of the first 64 entries
    assert (vv[:64] * vh[:64]).sum() == 0 and (vv[:64] * ang[:64]).sum() == 0
    assert (vh[:64] * ang[:64]).sum() == 0


def test_encoding_follows_paper_formula():
    lam = 865.0
    norm = np.log10(lam - 300) - 2
    i = np.arange(1, 33)
    omega = 10000.0 ** (-2 * i / 32)
    expected = np.where(i % 2 == 0, np.sin(omega * norm), np.cos(omega * norm))
    np.testing.assert_allclose(d.spectral_encoding(lam), expected, rtol=1e-6)
    v = d.descriptor("reflectance", [lam, 900])
    np.testing.assert_allclose(v[:32], expected, rtol=1e-6)


def test_encoding_varies_smoothly_with_wavelength():
    lams = np.linspace(400, 12000, 2000)
    enc = np.stack([d.spectral_encoding(x) for x in lams])
    steps = np.linalg.norm(np.diff(enc, axis=0), axis=1)
    assert steps.max() < 0.05, "no jumps between neighbouring wavelengths"
    far = np.linalg.norm(d.spectral_encoding(450) - d.spectral_encoding(2200))
    near = np.linalg.norm(d.spectral_encoding(450) - d.spectral_encoding(460))
    assert far > 20 * near


def test_same_range_same_vector_across_sensors():
    a = d.descriptor("reflectance", [649, 680])
    b = d.descriptor("reflectance", [649.0, 680.0])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, d.descriptor("reflectance", [649, 681]))


@pytest.mark.parametrize(
    "bad", [("reflectance", None), ("reflectance", [700, 600]), ("laser", None)]
)
def test_bad_descriptors_raise(bad):
    with pytest.raises(ValueError):
        d.descriptor(*bad)


def test_bundled_sensors_have_distinct_descriptors_per_band():
    for sensor in bundled_sensors().values():
        vecs = [b.descriptor for b in sensor.bands]
        for i in range(len(vecs)):
            for j in range(i + 1, len(vecs)):
                same_def = (sensor.bands[i].type, sensor.bands[i].wavelength) == (
                    sensor.bands[j].type,
                    sensor.bands[j].wavelength,
                )
                assert same_def == np.array_equal(vecs[i], vecs[j]), sensor.name
