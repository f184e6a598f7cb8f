"""The model's 7 classes and the output styles folded from their probabilities (DESIGN.md)."""

from __future__ import annotations

from typing import Any

import numpy as np

CLASSES = ("land", "water", "snow", "thin_cloud", "thick_cloud", "cloud_shadow", "no_data")
NODATA = 255

# Each style: its codes as (code, name, member classes); the model's "no_data" class always
# folds to 255. Styles are folded from summed probabilities, never from the 7-class argmax.
STYLES: dict[str, tuple[tuple[int, str, tuple[str, ...]], ...]] = {
    "7class": tuple((i, c, (c,)) for i, c in enumerate(CLASSES[:-1])),
    "4class": (
        (0, "clear", ("land", "water", "snow")),
        (1, "thick_cloud", ("thick_cloud",)),
        (2, "thin_cloud", ("thin_cloud",)),
        (3, "cloud_shadow", ("cloud_shadow",)),
    ),
    "cloud": (
        (0, "not_cloud", ("land", "water", "snow", "cloud_shadow")),
        (1, "cloud", ("thin_cloud", "thick_cloud")),
    ),
    "valid": (
        (0, "valid", ("land", "water", "snow")),
        (1, "invalid", ("thin_cloud", "thick_cloud", "cloud_shadow")),
    ),
}

# Colours of the 7-class codes; other styles reuse the colour of their first member class.
COLOURS = {
    "land": (60, 160, 60),
    "water": (40, 90, 200),
    "snow": (0, 230, 230),
    "thin_cloud": (200, 200, 200),
    "thick_cloud": (255, 255, 255),
    "cloud_shadow": (70, 50, 30),
    "clear": (60, 160, 60),
    "not_cloud": (60, 160, 60),
    "cloud": (255, 255, 255),
    "valid": (60, 160, 60),
    "invalid": (255, 255, 255),
}


def style_names(style: str) -> dict[int, str]:
    """Code -> class name of a style (255 -> no_data)."""
    check_style(style)
    return {code: name for code, name, _ in STYLES[style]} | {NODATA: "no_data"}


CLOUDS = ("thin_cloud", "thick_cloud")


def cloud_fraction(style: str, fractions: dict[str, float]) -> float | None:
    """The cloud share of a mask of ``style`` from its class fractions (keyed by output name,
    as the sidecar's ``class_fractions``); None where a code of the style mixes cloud with
    other classes (``valid``: cloud and shadow are one code)."""
    groups = STYLES.get(style, ())
    if any(set(m) & set(CLOUDS) and not set(m) <= set(CLOUDS) for _, _, m in groups):
        return None
    names = [name for _, name, members in groups if set(members) <= set(CLOUDS)]
    return round(sum(fractions.get(n, 0.0) for n in names), 6) if names else None


def colormap(style: str) -> dict[int, tuple[int, int, int, int]]:
    """A GDAL colour table for a style (no data transparent)."""
    cmap = {code: (*COLOURS[name], 255) for code, name, _ in STYLES[style]}
    cmap[NODATA] = (0, 0, 0, 0)
    return cmap


def check_style(style: str) -> None:
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; choose one of {', '.join(STYLES)}")


def first_argmax(scores: Any) -> Any:
    """Index of the largest of ``scores`` along axis 0 (the first on ties, as numpy).

    A running maximum: torch's argmax over the leading axis of a (G, n, W) strip is ~20 times
    slower on the CPU (0.5 s for a Landsat strip); on a GPU these are a few element-wise kernels.
    """
    import torch

    best = scores[0].clone()
    index = torch.zeros(best.shape, dtype=torch.long, device=best.device)
    for k in range(1, scores.shape[0]):
        better = scores[k] > best
        index.masked_fill_(better, k)
        torch.maximum(best, scores[k], out=best)
    return index


def fold(probs: Any, style: str, valid: Any = None) -> Any:
    """Class codes (uint8) from 7-class probabilities ``(7, ...)``.

    ``probs`` and ``valid`` are numpy arrays or torch tensors (on any device: `cloudmask run`
    folds on the GPU and moves only the codes); the codes come back as the same kind.
    The input decides what is no data, not the model: a pixel is 255 where ``valid`` is False
    or where no probability was computed (all zero); every other pixel gets the style's group
    with the largest summed probability (the model's own "no_data" class takes no part).
    """
    import torch  # not at module level: `cloudmask info` starts without torch

    check_style(style)
    as_numpy = isinstance(probs, np.ndarray)
    p = torch.from_numpy(np.ascontiguousarray(probs)) if as_numpy else probs
    index = {c: i for i, c in enumerate(CLASSES)}
    groups = STYLES[style]
    if all(len(members) == 1 for _, _, members in groups):  # 7class: a view, no sums
        rows = [index[members[0]] for _, _, members in groups]
        contiguous = rows == list(range(rows[0], rows[-1] + 1))
        summed = p[rows[0] : rows[-1] + 1] if contiguous else p[rows]
    else:
        summed = torch.stack(
            [p[[index[c] for c in members]].sum(dim=0) for _, _, members in groups]
        )
    lut = torch.tensor([code for code, _, _ in groups], dtype=torch.uint8, device=p.device)
    codes = lut[first_argmax(summed)]
    codes[p.amax(dim=0) <= 0] = NODATA
    if valid is not None:
        if isinstance(valid, np.ndarray):
            valid = torch.from_numpy(np.ascontiguousarray(valid))
        codes[~valid.to(p.device, torch.bool)] = NODATA
    return codes.numpy() if as_numpy else codes
