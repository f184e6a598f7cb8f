"""The paper's metrics on a known confusion, with partial labels and coarse-style predictions."""

from __future__ import annotations

import numpy as np
import pytest

from cloudmask_cli.training.labels import bits_of
from cloudmask_cli.training.metrics import Confusion, Scores

B = {
    c: bits_of([c])
    for c in ("land", "water", "snow", "thin_cloud", "thick_cloud", "cloud_shadow", "no_data")
}
CLEAR_OR_SHADOW = bits_of(["land", "water", "snow", "cloud_shadow"])
CLOUD = bits_of(["thin_cloud", "thick_cloud"])


def pixels(*groups: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(count, prediction bits, label bits) groups -> flat arrays."""
    pred = np.concatenate([np.full(n, p, np.uint8) for n, p, _ in groups])
    lab = np.concatenate([np.full(n, lb, np.uint8) for n, _, lb in groups])
    return pred, lab


KNOWN = (
    (80, B["thick_cloud"], B["thick_cloud"]),  # right
    (10, B["thin_cloud"], B["thick_cloud"]),  # cloud right, class wrong
    (10, B["land"], B["thick_cloud"]),  # missed cloud
    (40, B["water"], CLEAR_OR_SHADOW),  # inside the partial set: correct
    (5, B["cloud_shadow"], CLEAR_OR_SHADOW),  # inside the partial set: correct
    (5, B["thick_cloud"], CLEAR_OR_SHADOW),  # false cloud
    (20, B["cloud_shadow"], B["cloud_shadow"]),
    (7, B["land"], 0),  # unlabelled: not scored
    (3, B["thick_cloud"], B["no_data"]),  # fill: not scored
)


@pytest.fixture()
def known() -> Confusion:
    pred, lab = pixels(*KNOWN)
    c = Confusion()
    c.update(pred[:100], lab[:100])
    c.update(pred[100:], lab[100:])  # accumulates over updates
    return c


def test_cloud_vs_non_cloud(known: Confusion) -> None:
    m = known.binary(["thin_cloud", "thick_cloud"])
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (90, 5, 10, 65)
    assert m["precision"] == pytest.approx(90 / 95)
    assert m["recall"] == pytest.approx(0.9)
    assert m["f1"] == pytest.approx(2 * (90 / 95) * 0.9 / (90 / 95 + 0.9))
    assert m["balanced_accuracy"] == pytest.approx((0.9 + 65 / 70) / 2)
    assert m["iou"] == pytest.approx(90 / 105)


def test_invalid_vs_valid(known: Confusion) -> None:
    m = known.binary(["thin_cloud", "thick_cloud", "cloud_shadow"])
    # shadow predicted on "clear or shadow" is right (TP); water there is right (TN)
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (90 + 5 + 5 + 20, 0, 10, 40)
    assert m["precision"] == 1.0 and m["recall"] == pytest.approx(120 / 130)


def test_per_class_and_report(known: Confusion) -> None:
    r = known.report()
    assert r["pixels"] == 170 and r["unscored_pixels"] == 10
    thick = r["per_class"]["thick_cloud"]
    assert (thick["tp"], thick["fp"], thick["fn"]) == (80, 5, 20)
    assert thick["precision"] == pytest.approx(80 / 85) and thick["recall"] == pytest.approx(0.8)
    thin = r["per_class"]["thin_cloud"]
    assert (thin["tp"], thin["fp"], thin["fn"]) == (0, 10, 0) and thin["recall"] is None
    shadow = r["per_class"]["cloud_shadow"]
    assert (shadow["tp"], shadow["fp"], shadow["fn"]) == (25, 0, 0)


def test_coarse_mask_predictions_and_undetermined() -> None:
    # a "cloud" style mask predicts {thin, thick}: enough for cloud/non-cloud, not for thin vs thick
    pred, lab = pixels(
        (10, CLOUD, B["thin_cloud"]),
        (5, bits_of(["land", "water", "snow", "cloud_shadow"]), B["land"]),
    )
    c = Confusion()
    c.update(pred, lab)
    cloud = c.binary(["thin_cloud", "thick_cloud"])
    assert (cloud["tp"], cloud["tn"], cloud["undetermined"]) == (10, 5, 0)
    thin = c.binary(["thin_cloud"])
    assert thin["undetermined"] == 10 and thin["tp"] == 0


def test_no_data_prediction_counts_as_negative() -> None:
    pred, lab = pixels((4, B["no_data"], B["thick_cloud"]))
    c = Confusion()
    c.update(pred, lab)
    assert c.binary(["thick_cloud"])["fn"] == 4
    assert c.report()["predicted_no_data"] == 4


def test_scores_read_groups_off_the_folded_masks() -> None:
    # land 0.35, thin 0.33, thick 0.32: the 7-class mask says land, the cloud mask says cloud
    # (0.65), as `cloudmask run --style cloud` would write it; shadow 0.4 + clouds 0.3 + 0.3
    # is invalid for the valid mask even though each cloud class alone is below land
    probs = np.zeros((7, 1, 3), np.float32)
    probs[[0, 3, 4], 0, 0] = 0.35, 0.33, 0.32
    probs[[0, 3, 4, 5], 0, 1] = 0.0, 0.3, 0.3, 0.4
    probs[0, 0, 2] = 1.0  # no input here: the masks say no data, whatever the model says
    labels = np.array([[B["thin_cloud"], B["cloud_shadow"], B["land"]]], np.uint8)
    scores = Scores()
    scores.update_probs(probs, labels, valid=np.array([[True, True, False]]))
    r = scores.report()
    assert (r["cloud"]["tp"], r["cloud"]["fn"], r["cloud"]["tn"]) == (1, 0, 1)
    assert (r["invalid"]["tp"], r["invalid"]["fn"]) == (2, 0)
    assert r["per_class"]["land"]["fp"] == 1  # the 7-class view: argmax land on the cloud pixel
    assert r["per_class"]["cloud_shadow"]["tp"] == 1
    assert r["predicted_no_data"] == 1 and r["pixels"] == 3


def test_scores_of_a_mask_are_its_confusion(known: Confusion) -> None:
    scores = Scores()
    scores.update_bits(*pixels(*KNOWN))
    assert scores.report() == known.report()


def test_decided_counts_only_labels_that_decide_the_class() -> None:
    # a partial "clear" label {land, water, snow} says nothing about water: a water call on it
    # is no true positive, a land call on it no true negative, when only decided pixels count
    c = Confusion()
    clear, water, land = bits_of(("land", "water", "snow")), bits_of(("water",)), bits_of(("land",))
    pred = np.array([water, water, land, land, water], dtype=np.uint8)
    label = np.array([clear, water, water, clear, land], dtype=np.uint8)
    c.update(pred, label)
    loose, decided = c.binary(("water",)), c.binary(("water",), decided=True)
    assert (loose["tp"], loose["fp"], loose["fn"], loose["tn"]) == (2, 1, 1, 1)
    assert (decided["tp"], decided["fp"], decided["fn"], decided["tn"]) == (1, 1, 1, 0)
    assert decided["recall"] == 0.5 and decided["precision"] == 0.5
    assert c.binary(("water",))["tp"] == 2  # the counts themselves are untouched
