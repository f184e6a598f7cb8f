import numpy as np
import pytest
from rasterio.windows import Window

from cloudmask_cli.classes import CLASSES, NODATA, STYLES, fold
from cloudmask_cli.inference.blender import StripBlender
from cloudmask_cli.inference.tiling import (
    blend_weights,
    keep_windows,
    offsets,
    plan_windows,
    tiles,
)


@pytest.mark.parametrize("length", [1, 100, 512, 513, 900, 1000, 1830, 10980])
def test_offsets_cover_and_clamp(length):
    starts = offsets(length, 512, 128)
    size = min(512, length)
    covered = np.zeros(length, bool)
    for s in starts:
        assert 0 <= s and s + size <= length
        covered[s : s + size] = True
    assert covered.all()
    assert starts == sorted(set(starts))


@pytest.mark.parametrize(
    ("shape", "size"),
    [((96, 80), 32), ((100, 37), 32), ((20, 300), 64), ((64, 64), 64), ((5, 7), 8)],
)
def test_training_tiles_are_the_run_windows_without_overlap(shape, size):
    # one tiler: training cuts its samples where `run` would cut windows with no overlap
    cut = tiles(shape, size)
    wins = plan_windows(shape, size, 0)
    assert cut == [(w.row_off, w.col_off, w.height, w.width) for w in wins]
    covered = np.zeros(shape, int)
    for r, c, h, w in cut:
        assert (h, w) == (min(size, shape[0]), min(size, shape[1]))
        covered[r : r + h, c : c + w] += 1
    assert covered.min() == 1 and covered.max() <= 4  # covered; only the clamped edges twice
    assert tiles(shape, None) == [(0, 0, *shape)]


def test_plan_windows_row_major_and_small_scene():
    wins = plan_windows((300, 200), 512, 128)
    assert wins == [Window(0, 0, 200, 300)]
    wins = plan_windows((1000, 1200), 512, 128)
    rows = [w.row_off for w in wins]
    assert rows == sorted(rows)
    assert {(w.width, w.height) for w in wins} == {(512, 512)}


def test_keep_windows_drops_windows_without_valid_pixels():
    wins = plan_windows((2048, 2048), 512, 128)
    coarse = np.zeros((64, 64), bool)
    coarse[0:10, 0:10] = True  # valid only in the top-left corner
    kept = keep_windows(wins, coarse, 32)
    assert Window(0, 0, 512, 512) in kept
    assert all(w.row_off < 512 and w.col_off < 512 for w in kept)


def test_blend_weights_smooth_and_positive():
    w = blend_weights(512, 512, 128)
    assert w.min() > 0 and w.max() == pytest.approx(1.0)
    assert np.all(w[256, 128:384] == 1.0)
    assert np.abs(np.diff(w[256])).max() < 0.02


def _run_blender(shape, window, overlap, fn):
    blender = StripBlender(shape, len(CLASSES), window, overlap)
    out = np.zeros((len(CLASSES), *shape), np.float32)
    wins = plan_windows(shape, window, overlap)
    for win in wins:
        for first, probs, _ in blender.finish(int(win.row_off)):
            out[:, first : first + probs.shape[1]] = probs
        r, c = int(win.row_off), int(win.col_off)
        p = fn(r, c, int(win.height), int(win.width))
        blender.add(win, p, np.ones(p.shape[1:], bool))
    for first, probs, _ in blender.finish(shape[0]):
        out[:, first : first + probs.shape[1]] = probs
    return out


def test_uniform_predictions_blend_without_seams():
    const = np.array([0.1, 0.1, 0.1, 0.2, 0.3, 0.15, 0.05], np.float32)[:, None, None]
    out = _run_blender((1000, 900), 256, 64, lambda r, c, h, w: np.broadcast_to(const, (7, h, w)))
    np.testing.assert_allclose(out, np.broadcast_to(const, out.shape), rtol=1e-5)


def test_blended_equals_single_window_where_predictions_agree():
    # A prediction that depends only on the absolute pixel position: blending must give it back.
    yy, xx = np.mgrid[0:700, 0:650].astype(np.float32)
    field = np.stack([np.sin(yy / 50) + 2, np.cos(xx / 40) + 2] + [np.ones_like(yy)] * 5)
    field /= field.sum(0)
    out = _run_blender((700, 650), 256, 96, lambda r, c, h, w: field[:, r : r + h, c : c + w])
    np.testing.assert_allclose(out, field, rtol=1e-5)


def test_blender_memory_is_one_window_high():
    b = StripBlender((20000, 300), 7, 512, 128)
    assert b.acc.shape == (7, 512, 300)


def test_skipped_window_rows_come_out_empty():
    b = StripBlender((2000, 100), 7, 512, 128)
    strips = b.finish(1500)  # nothing was added: rows come out as no-data
    assert sum(p.shape[1] for _, p, _ in strips) == 1500
    assert all(not p.any() for _, p, _ in strips)


def _probs(*weights):
    p = np.zeros((7, 1, len(weights)), np.float32)
    for i, w in enumerate(weights):
        p[:, 0, i] = w
    return p


def test_fold_styles_sum_member_probabilities():
    # land 0.3, water 0.3 vs thick 0.4: 7-class argmax says thick, but "clear" wins in 4class.
    p = _probs([0.3, 0.3, 0, 0, 0.4, 0, 0])
    assert fold(p, "7class")[0, 0] == 4
    assert fold(p, "4class")[0, 0] == 0
    assert fold(p, "cloud")[0, 0] == 0
    assert fold(p, "valid")[0, 0] == 0
    p = _probs([0.05, 0, 0, 0.3, 0.3, 0.35, 0])
    assert fold(p, "7class")[0, 0] == 5
    assert fold(p, "4class")[0, 0] == 3
    assert fold(p, "cloud")[0, 0] == 1
    assert fold(p, "valid")[0, 0] == 1


def test_fold_every_code_and_nodata():
    for style, groups in STYLES.items():
        for code, _, members in groups:
            p = np.zeros((7, 1, 1), np.float32)
            p[CLASSES.index(members[0])] = 1
            assert fold(p, style)[0, 0] == code
        p = np.zeros((7, 1, 2), np.float32)
        p[0] = 1
        assert list(fold(p, style, valid=np.array([[True, False]]))[0]) == [0, NODATA]
        # the model's "no_data" class never turns a valid input pixel into 255
        nod = np.full((7, 1, 1), 0.01, np.float32)
        nod[6] = 0.9
        nod[CLASSES.index(members[0])] = 0.05
        assert fold(nod, style)[0, 0] == code
        assert fold(np.zeros((7, 1, 1), np.float32), style)[0, 0] == NODATA


def test_fold_sums_group_probabilities_per_style():
    probs = np.zeros((7, 1, 4), dtype=np.float32)
    c = {name: i for i, name in enumerate(CLASSES)}
    probs[c["land"], 0, 0], probs[c["thin_cloud"], 0, 0], probs[c["thick_cloud"], 0, 0] = (
        0.4,
        0.3,
        0.3,
    )
    probs[c["water"], 0, 1], probs[c["cloud_shadow"], 0, 1] = 0.45, 0.55
    probs[c["snow"], 0, 3] = 1.0  # pixel 2 has no probabilities: no data
    valid = np.array([[True, True, True, False]])
    assert fold(probs, "7class", valid).tolist() == [[0, 5, NODATA, NODATA]]
    assert fold(probs, "cloud", valid).tolist() == [[1, 0, NODATA, NODATA]]
    assert fold(probs, "4class", valid).tolist() == [[0, 3, NODATA, NODATA]]
    assert fold(probs, "valid", valid).tolist() == [[1, 1, NODATA, NODATA]]
    assert fold(probs, "7class").tolist() == [[0, 5, NODATA, 2]]


def _numpy_fold(probs, style, valid):
    """The fold written plainly with numpy (the reference for the torch one)."""
    groups = STYLES[style]
    summed = np.stack([probs[[CLASSES.index(c) for c in m]].sum(0) for _, _, m in groups])
    codes = np.array([code for code, _, _ in groups], np.uint8)[summed.argmax(0)]
    codes[(probs.max(0) <= 0) | ~valid] = NODATA
    return codes


@pytest.mark.parametrize("style", list(STYLES))
def test_fold_matches_numpy_on_arrays_and_tensors(style):
    import torch

    rng = np.random.default_rng(3)
    # coarse values make exact ties common: the first group must win them, as numpy's argmax
    probs = rng.integers(0, 4, (7, 60, 70)).astype(np.float32) / 8
    probs[:, 0, :5] = 0  # no probability at all: no data
    valid = rng.random((60, 70)) > 0.1
    expected = _numpy_fold(probs, style, valid)
    np.testing.assert_array_equal(fold(probs, style, valid), expected)
    got = fold(torch.from_numpy(probs), style, torch.from_numpy(valid))
    assert isinstance(got, torch.Tensor) and got.dtype == torch.uint8
    np.testing.assert_array_equal(got.numpy(), expected)


def test_blender_takes_tensors_and_hands_out_tensors():
    import torch

    b = StripBlender((300, 200), 7, 256, 64)
    p = torch.full((7, 256, 200), 1 / 7)
    b.add(Window(0, 0, 200, 256), p, torch.ones(256, 200, dtype=torch.bool))
    first, probs, valid = b.finish(192)[0]
    assert first == 0 and isinstance(probs, torch.Tensor) and probs.shape == (7, 192, 200)
    torch.testing.assert_close(probs, torch.full_like(probs, 1 / 7))
    assert bool(valid.all())
