"""`cloudmask evaluate`: a model (or existing masks) against reference labels, paper section V.

``data`` is a training-format folder (or one of its splits), a dataset in its own layout
(``kind``), or a training config (each dataset's validation split). Predictions are scored
pixel-wise over the whole set with `metrics.Scores` (the masks `cloudmask run` would write,
in each style), respecting partial labels.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioError

from cloudmask_cli.classes import CLASSES, STYLES
from cloudmask_cli.errors import InputError, first_line
from cloudmask_cli.records import EvaluationReport
from cloudmask_cli.sensors import Band
from cloudmask_cli.training.adapters import open_dataset
from cloudmask_cli.training.labels import CLOUD_FREE, NO_DATA_BITS, load_scheme
from cloudmask_cli.training.metrics import Scores, style_lut
from cloudmask_cli.training.sample import RawSample

# Band roles for --bands RGB / RGBN: the reflectance band whose centre is nearest (within 60 nm).
ROLE_CENTRES = {"red": 665.0, "green": 560.0, "blue": 490.0, "nir": 842.0}
BAND_SETS = {"RGB": ("red", "green", "blue"), "RGBN": ("red", "green", "blue", "nir")}


def select_bands(bands: Sequence[Band], spec: str, where: str = "") -> list[int]:
    """Indices of ``bands`` for ``all``, ``RGB``, ``RGBN`` or a comma-separated list of names."""
    if spec.lower() == "all":
        return list(range(len(bands)))
    if spec.upper() in BAND_SETS:
        out = []
        for role in BAND_SETS[spec.upper()]:
            best, dist = None, 60.0
            for i, b in enumerate(bands):
                if b.type != "reflectance" or b.wavelength is None or b.panchromatic:
                    continue
                d = abs(sum(b.wavelength) / 2 - ROLE_CENTRES[role])
                if d < dist and b.wavelength[1] - b.wavelength[0] < 200:
                    best, dist = i, d
            if best is None:
                raise InputError(where or None, f"no {role} band for --bands {spec}")
            out.append(best)
        return out
    names = [n.strip() for n in spec.split(",") if n.strip()]
    have = [b.name for b in bands]
    missing = [n for n in names if n not in have]
    if missing:
        raise InputError(where or None, f"--bands: no band(s) {missing} (has {have})")
    return [have.index(n) for n in names]


def load_eval_sets(
    data: str | Path,
    kind: str = "training",
    split: str | None = None,
    options: dict[str, Any] | None = None,
) -> list[tuple[str, list[RawSample]]]:
    """(name, samples) to evaluate: a config's validation splits, or one dataset."""
    path = Path(data)
    if path.is_file() and path.suffix in (".yaml", ".yml") and kind == "training":
        from cloudmask_cli.training.config import load_config

        try:
            cfg = load_config(path)
        except InputError:
            cfg = None  # a single training-sample YAML rather than a config
        if cfg is not None:
            sets = []
            for spec in cfg.datasets:
                if spec.val is not None:
                    sets.append(
                        (
                            spec.name,
                            spec.prepare(
                                open_dataset(spec.kind, spec.path, split or spec.val, spec.options),
                                narrow=False,  # the real labels: rules and teacher train only
                            ),
                        )
                    )
            if not sets:
                raise InputError(path, "no dataset in the config has a val split to evaluate")
            return sets
    return [(path.name, open_dataset(kind, path, split, options))]


def _model_predict(
    weights: str | Path | None, device_spec: str, spectral: bool = True, flips: bool = False
) -> Callable[[np.ndarray, np.ndarray, Sequence[Band]], np.ndarray]:
    """Probabilities ``(7, h, w)`` of a window, from the masker `cloudmask run` uses, with its
    water and snow tests (``spectral``, `inference.refine`) on the bands fed; ``flips``:
    test-time mirror images averaged in. The model runs in eager PyTorch (``runtime="torch"``)."""
    from cloudmask_cli.inference.refine import refine
    from cloudmask_cli.masker import CloudMasker

    # eager PyTorch whatever else is installed: scores reproduce exactly on every machine
    engine = CloudMasker(
        weights, device=device_spec, batch_size=1, flips=flips, runtime="torch"
    ).engine

    def predict(x: np.ndarray, desc: np.ndarray, bands: Sequence[Band]) -> np.ndarray:
        band_mask = np.isfinite(x).reshape(x.shape[0], -1).any(axis=1)
        p = engine.predict(x[None], desc, band_mask[None])[0]
        if spectral:
            refine(p, x, bands)
        return p

    return predict


def brightness_baseline(threshold: float = 0.3) -> Callable[..., np.ndarray]:
    """The trivial baseline: thick cloud where the mean visible (400-700 nm) reflectance exceeds
    ``threshold``, land elsewhere (all reflectance bands when none is visible); as one-hot
    probabilities, so it is scored exactly as a model is."""
    index = {c: i for i, c in enumerate(CLASSES)}

    def predict(x: np.ndarray, desc: np.ndarray, bands: Sequence[Band]) -> np.ndarray:
        refl = [i for i, b in enumerate(bands) if b.type == "reflectance"]
        vis = [i for i in refl if b_in(bands[i], 400, 700)] or refl
        if not vis:
            raise InputError(None, "the brightness baseline needs reflectance bands")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels: no data anyway
            bright = np.nanmean(x[vis], axis=0) > threshold
        probs = np.zeros((len(CLASSES), *bright.shape), dtype=np.float32)
        probs[index["thick_cloud"]] = bright
        probs[index["land"]] = ~bright
        return probs

    return predict


def b_in(band: Band, lo: float, hi: float) -> bool:
    return band.wavelength is not None and lo <= band.wavelength[0] and band.wavelength[1] <= hi


def _mask_bits(path: Path, style: str | None) -> tuple[np.ndarray, str]:
    """Class sets of a mask raster's codes (from its style), and the codes themselves."""
    try:
        with rasterio.open(path) as ds:
            codes = ds.read(1)
            style = style or ds.tags().get("CLOUDMASK_STYLE")
    except RasterioError as exc:
        raise InputError(path, f"cannot read mask ({first_line(exc)})") from None
    if style not in STYLES:
        raise InputError(path, "mask style unknown: give --style (7class, 4class, cloud, valid)")
    return style_lut(style)[codes], style


def _mask_for(mask: Path, sample: RawSample, single: bool) -> Path:
    if mask.is_file():
        if not single:
            raise InputError(
                mask, "one mask file given for several samples: pass a folder of <id>.tif"
            )
        return mask
    path = mask / f"{sample.id}.tif"
    if not path.is_file():
        raise InputError(path, f"no mask for sample {sample.id}")
    return path


def evaluate(
    data: str | Path,
    *,
    weights: str | Path | None = None,
    mask: str | Path | None = None,
    kind: str = "training",
    split: str | None = None,
    options: dict[str, Any] | None = None,
    bands: str = "all",
    style: str | None = None,
    device: str = "auto",
    window: int = 512,
    baseline: float | None = None,
    peer: str | None = None,
    perturbation: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    spectral: bool = True,
) -> EvaluationReport:
    """Score a model (``weights``; the bundled one when None; with ``spectral``, its water and
    snow tests as `cloudmask run` applies them), the brightness ``baseline``, a
    ``peer`` (training/peers.py) or masks (``mask``: a raster, or a folder of ``<sample
    id>.tif``) on ``data``, optionally under a ``perturbation`` of the inputs
    (training/robustness.py); returns the report (see `metrics.Scores.report`)."""
    sets = load_eval_sets(data, kind, split, options)
    scored_on = None  # SHA-256 of the weights scored: a publisher checks it is the file shipped
    if perturbation is not None and mask is not None:
        raise InputError(mask, "a perturbation changes a model's inputs: it cannot apply to masks")
    if baseline is not None:
        predict = brightness_baseline(baseline)
    elif peer is not None:
        from cloudmask_cli.training.peers import peer_predictor

        predict = peer_predictor(peer)
    elif mask is None:
        from cloudmask_cli.model.checkpoint import weights_sha256
        from cloudmask_cli.weights import default_weights

        predict = _model_predict(weights, device, spectral)
        scored_on = weights_sha256(weights or default_weights())
    else:
        predict = None
    if predict is None:
        per_set, overall = _score_masks(sets, Path(mask), style, bands, progress)  # type: ignore[arg-type]
    else:
        per_set, overall = score_sets(sets, predict, bands=bands, window=window,
                                      perturbation=perturbation, progress=progress)  # fmt: skip
    total = sum(len(s) for _, s in sets)
    excluded = {}
    if Path(data).suffix in (".yaml", ".yml") and kind == "training":
        with contextlib.suppress(InputError):
            from cloudmask_cli.training.config import load_config

            excluded = {d.name: d.exclude for d in load_config(data).datasets if d.exclude}
    return EvaluationReport(
        data=str(data),
        weights=None
        if mask is not None or baseline is not None or peer is not None
        else str(weights or "bundled"),
        weights_sha256=scored_on,
        spectral_tests=spectral if scored_on is not None else None,
        baseline=None if baseline is None else f"brightness > {baseline}",
        peer=peer,
        mask=None if mask is None else str(mask),
        bands=bands,
        samples=total,
        excluded=excluded,  # labels found wrong on review
        # read with no shadow in their clear (`shadow_needs_cloud`)
        cloud_free={
            name: ids
            for name, samples in sets
            if (ids := [s.id for s in samples if s.scheme.endswith(CLOUD_FREE)])
        },
        perturbation=perturbation,
        datasets={name: scores.report() for name, scores in per_set.items()},
        overall=overall.report(),
    )


Predict = Callable[[np.ndarray, np.ndarray, Sequence[Band]], np.ndarray]


def score_sets(
    sets: Sequence[tuple[str, Sequence[RawSample]]],
    predict: Predict,
    *,
    bands: str = "all",
    window: int = 512,
    overlap: int = 128,
    perturbation: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, Scores], Scores]:
    """Scores per set and over all of them of ``predict`` (probabilities ``(7, h, w)`` of a
    window) on every pixel of every sample, in the windows `cloudmask run` plans (``window``
    px, ``overlap`` px shared) and blended as it blends them."""
    from cloudmask_cli.inference.blender import StripBlender
    from cloudmask_cli.inference.tiling import plan_windows
    from cloudmask_cli.training.robustness import get_perturbation

    try:
        perturb = get_perturbation(perturbation) if perturbation else None
    except ValueError as exc:
        raise InputError(None, str(exc)) from None

    def score(sample: RawSample, scores: Scores) -> None:
        idx = select_bands(sample.bands, bands, sample.id)
        x, label = sample.read(None, idx)
        ref = load_scheme(sample.scheme).bits(label, sample.id)
        # no data where the unperturbed input has none: a perturbation scores the same pixels
        has_data = np.isfinite(x).any(axis=0)
        ref[~has_data] = NO_DATA_BITS
        fed = [sample.bands[i] for i in idx]
        if perturb is not None:
            x, fed = perturb(x, fed, sample.id)
        desc = np.stack([b.descriptor for b in fed]).astype(np.float32)
        blender = StripBlender(ref.shape, len(CLASSES), window, overlap)

        def score_rows(row: int) -> None:  # rows above `row` are final: scored, then dropped
            for r, probs, valid in blender.finish(row):
                n = probs.shape[1]
                scores.update_probs(probs.numpy(), ref[r : r + n], valid.numpy())

        for win in plan_windows(ref.shape, window, overlap):
            if win.row_off > blender.base:
                score_rows(int(win.row_off))
            rows, cols = win.toslices()
            # as in `cloudmask run`: no probability where the input has no data
            probs = predict(x[:, rows, cols], desc, fed) * has_data[rows, cols]
            blender.add(win, probs, has_data[rows, cols])
        score_rows(ref.shape[0])

    return _score_each(sets, score, progress)


def _score_each(
    sets: Sequence[tuple[str, Sequence[RawSample]]],
    score: Callable[[RawSample, Scores], None],
    progress: Callable[[int, int], None] | None,
) -> tuple[dict[str, Scores], Scores]:
    """``score(sample, scores)`` on every sample: the scores per set and over all of them."""
    total, done = sum(len(s) for _, s in sets), 0
    overall, per_set = Scores(), {}
    for name, samples in sets:
        scores = Scores()
        for sample in samples:
            score(sample, scores)
            done += 1
            if progress:
                progress(done, total)
        per_set[name] = scores
        overall.merge(scores)
    return per_set, overall


def _score_masks(
    sets: Sequence[tuple[str, Sequence[RawSample]]],
    mask: Path,
    style: str | None,
    bands: str,
    progress: Callable[[int, int], None] | None,
) -> tuple[dict[str, Scores], Scores]:
    """Scores of existing mask rasters (one per sample) against the samples' labels."""
    single = sum(len(s) for _, s in sets) == 1

    def score(sample: RawSample, scores: Scores) -> None:
        nonlocal style  # read off the first mask when not given: it holds for the others
        x, label = sample.read(None, select_bands(sample.bands, bands, sample.id))
        ref = load_scheme(sample.scheme).bits(label, sample.id)
        ref[~np.isfinite(x).any(axis=0)] = NO_DATA_BITS
        pred, style = _mask_bits(_mask_for(mask, sample, single), style)
        if pred.shape != ref.shape:
            raise InputError(mask, f"mask {pred.shape} and labels {ref.shape} differ in size")
        scores.update_bits(pred, ref)

    return _score_each(sets, score, progress)


def write_json(report: EvaluationReport, path: str | os.PathLike[str]) -> None:
    """``cloudmask evaluate --json``: the report as its JSON (`EvaluationReport.write`)."""
    report.write(path)


def tables(report: EvaluationReport) -> list[Any]:
    """Rich tables of a report's overall scores: per class P/R; cloud and invalid groups."""
    from rich.table import Table

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.2f}"

    r = report.overall
    per = Table(title=f"per class ({r.pixels:,} pixels)")
    for col in ("class", "P", "R", "pixels (TP+FN)"):
        per.add_column(col, justify="right" if col != "class" else "left")
    for name, m in r.per_class.items():
        per.add_row(name, pct(m.precision), pct(m.recall), f"{m.tp + m.fn:,}")
    groups = Table(title="super-classes (positive: cloud / invalid = cloud or shadow)")
    for col in ("", "P", "R", "F1", "BA", "IoU"):
        groups.add_column(col, justify="right" if col else "left")
    for name, m in (("cloud / non-cloud", r.cloud), ("invalid / valid", r.invalid)):
        groups.add_row(
            name, *(pct(v) for v in (m.precision, m.recall, m.f1, m.balanced_accuracy, m.iou))
        )
    return [per, groups]
