"""The paper's metrics (section V), pixel-wise over a whole set, with partial labels.

Predictions and references are both held as 7-bit class sets (`labels.bits_of`): a model's
prediction is one class; a mask in a coarser style (e.g. ``cloud``) is a set; a reference label is
the set its dataset allows. Counts go into one joint histogram (prediction set x label set), and
every metric is read off it for a binary grouping (positive classes vs the rest):

- the prediction is positive if all its classes are positive, negative if none is (a mask whose
  style does not resolve the grouping is counted as ``undetermined`` and left out);
- it is correct if the label set holds a class of the same polarity ("a prediction inside the
  possible set is correct"), otherwise it is an error of the polarity the label forces.

Pixels whose label is empty (unlabelled) or only "no data" are not scored. A prediction of only
"no data" on a scored pixel counts as negative (a mask user would not treat it as cloud) and is
reported as ``predicted_no_data``.

A model is scored on the masks users get from it (`Scores`): the per-class figures on the
``7class`` mask, cloud/non-cloud on the ``cloud`` mask and invalid/valid on the ``valid`` mask,
each folded from the probabilities as `cloudmask run --style` folds them (summed per group).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from cloudmask_cli.classes import CLASSES, NODATA, STYLES, fold
from cloudmask_cli.records import Binary, ScoreReport
from cloudmask_cli.training.labels import ALL_BITS, NO_DATA_BITS, bits_of

N = 1 << len(CLASSES)  # 128 possible class sets
REAL = ALL_BITS & ~NO_DATA_BITS

# The groupings reported (paper Tables II-IV): per class, then the two super-classes.
PER_CLASS: dict[str, tuple[str, ...]] = {
    "land": ("land",),
    "water": ("water",),
    "snow": ("snow",),
    "clear": ("land", "water", "snow"),
    "thin_cloud": ("thin_cloud",),
    "thick_cloud": ("thick_cloud",),
    "cloud_shadow": ("cloud_shadow",),
}
CLOUD = ("thin_cloud", "thick_cloud")
INVALID = ("thin_cloud", "thick_cloud", "cloud_shadow")


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


class Confusion:
    """Joint counts of (prediction set, label set) over any number of updates."""

    def __init__(self) -> None:
        self.counts = np.zeros((N, N), dtype=np.int64)

    def update(
        self, pred_bits: np.ndarray, label_bits: np.ndarray, valid: np.ndarray | None = None
    ) -> None:
        """Add pixels: prediction and label class sets (uint8 bits), optionally only ``valid``."""
        p = np.asarray(pred_bits, dtype=np.int64).ravel()
        lab = np.asarray(label_bits, dtype=np.int64).ravel()
        if valid is not None:
            keep = np.asarray(valid, dtype=bool).ravel()
            p, lab = p[keep], lab[keep]
        self.counts += np.bincount(p * N + lab, minlength=N * N).reshape(N, N)

    def merge(self, other: Confusion) -> Confusion:
        self.counts += other.counts
        return self

    @property
    def scored(self) -> np.ndarray:
        """Counts of the pixels that are scored (label has a real class)."""
        out = self.counts.copy()
        labels = np.arange(N)
        out[:, (labels & REAL) == 0] = 0
        return out

    def binary(self, positive: Iterable[str], decided: bool = False) -> Binary:
        """TP/FP/FN/TN and P, R, F1, balanced accuracy, IoU for positive classes vs the rest.

        ``decided``: only pixels whose label decides the grouping (its set all positive or all
        negative). A partial "clear" {land, water, snow} then says nothing about water, where
        otherwise every water call on it is a true positive and water recall means little."""
        g = bits_of(tuple(positive))
        sets = np.arange(N)
        p_pos = (sets & g) != 0
        p_neg = (sets & REAL & ~g) != 0
        pred_positive = p_pos & ~p_neg
        pred_negative = ~p_pos  # includes "no data" only
        undetermined = p_pos & p_neg
        l_pos = (sets & g) != 0
        l_neg = (sets & REAL & ~g) != 0
        c = self.scored
        if decided:
            c[:, l_pos & l_neg] = 0
        tp = int(c[np.ix_(pred_positive, l_pos)].sum())
        fp = int(c[np.ix_(pred_positive, ~l_pos)].sum())
        tn = int(c[np.ix_(pred_negative, l_neg)].sum())
        fn = int(c[np.ix_(pred_negative, ~l_neg)].sum())
        precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        specificity = _ratio(tn, tn + fp)
        f1 = (
            2 * precision * recall / (precision + recall)
            if precision is not None and recall is not None and precision + recall > 0
            else None
        )
        ba = (recall + specificity) / 2 if recall is not None and specificity is not None else None
        return Binary(
            tp=tp, fp=fp, fn=fn, tn=tn,
            precision=precision, recall=recall, f1=f1,
            balanced_accuracy=ba, iou=_ratio(tp, tp + fp + fn),
            undetermined=int(c[undetermined].sum()),
        )  # fmt: skip

    def report(self) -> ScoreReport:
        """Everything `cloudmask evaluate` prints and writes."""
        c = self.scored
        return ScoreReport(
            pixels=int(c.sum()),
            unscored_pixels=int(self.counts.sum() - c.sum()),
            predicted_no_data=int(c[NO_DATA_BITS].sum()),
            per_class={name: self.binary(members) for name, members in PER_CLASS.items()},
            cloud=self.binary(CLOUD),
            invalid=self.binary(INVALID),
        )


def style_lut(style: str) -> np.ndarray:
    """Code -> class set (uint8 bits) of a mask style; 255 is "no data"."""
    lut = np.zeros(256, dtype=np.uint8)
    for code, _, members in STYLES[style]:
        lut[code] = bits_of(members)
    lut[NODATA] = NO_DATA_BITS
    return lut


class Scores:
    """The three confusions a model's probabilities are scored on (see the module docstring).

    Folding matters: a pixel at land 0.35, thin cloud 0.33, thick cloud 0.32 is land in the
    7-class mask but cloud in the ``cloud`` mask, which is the one a cloud figure describes.
    """

    MASKS = ("7class", "cloud", "valid")  # the styles scored

    def __init__(self) -> None:
        self.masks = {style: Confusion() for style in self.MASKS}

    def update_probs(
        self, probs: np.ndarray, label_bits: np.ndarray, valid: np.ndarray | None = None
    ) -> None:
        """Add pixels from class probabilities ``(7, ...)``; ``valid``: where the input has data."""
        for style, conf in self.masks.items():
            conf.update(style_lut(style)[fold(probs, style, valid)], label_bits)

    def update_bits(self, pred_bits: np.ndarray, label_bits: np.ndarray) -> None:
        """Add pixels from one mask's class sets (a mask file or a rule): the same for all three."""
        for conf in self.masks.values():
            conf.update(pred_bits, label_bits)

    def merge(self, other: Scores) -> Scores:
        for style, conf in self.masks.items():
            conf.merge(other.masks[style])
        return self

    def report(self) -> ScoreReport:
        """`Confusion.report` of the 7-class mask, cloud and invalid read off their own masks."""
        return (
            self.masks["7class"]
            .report()
            .model_copy(
                update={
                    "cloud": self.masks["cloud"].binary(CLOUD),
                    "invalid": self.masks["valid"].binary(INVALID),
                }
            )
        )
