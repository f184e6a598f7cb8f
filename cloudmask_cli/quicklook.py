"""Quicklooks: a product's true colour beside (or under) its mask, with a legend, as a PNG.

Everything is read small: the product through `Scene` on a coarse grid (GDAL decimates with
``out_shape``, using JPEG 2000 resolution levels and GeoTIFF overviews), the mask through its
COG overviews. Nothing is read again at full resolution, so a quicklook costs a fraction of a
second next to the run (benchmarks/quicklook.py). Drawing is Pillow's: it is all a quicklook
needs (paste, rectangles, text) at a fraction of matplotlib's import time and size.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.windows import Window

from cloudmask_cli.classes import NODATA
from cloudmask_cli.errors import InputError, first_line
from cloudmask_cli.scene import Scene

LAYOUTS = ("side", "overlay")
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
NODATA_RGB = (32, 32, 32)  # no data (transparent in the COG): a grey no class uses
BACKGROUND = (250, 250, 250)
INK = (20, 20, 20)
MARGIN = 8
TITLE_H = 44  # two text lines: product id and date; panel captions
SWATCH = 14
OVERLAY_ALPHA = 0.5
GAMMA = 0.6  # on the joint stretch of reflectances
# (colour, nominal centre nm, accepted centres nm) for picking true-colour bands
_RGB = (("red", 665, (620, 700)), ("green", 560, (520, 600)), ("blue", 490, (440, 520)))


Box = tuple[int, int, int, int]  # left, top, right, bottom (right/bottom exclusive)


@dataclass
class Layout:
    """Where things are in a quicklook (pixel boxes), for callers and tests."""

    size: tuple[int, int]
    image: Box | None = None  # the true-colour panel (side layout, or the image under overlay)
    mask: Box | None = None  # the mask panel (side layout); with overlay, the same as image
    scale: int = 1  # panel pixels per decimated pixel (small products are enlarged)
    decimated: tuple[int, int] = (0, 0)  # (height, width) of the coarse read
    bands: list[str] = field(default_factory=list)
    rendering: str = ""  # true colour | false colour | single band
    legend: list[tuple[int, str, Box]] = field(default_factory=list)  # (code, name, swatch)


def check_quicklook_path(path: Path) -> None:
    """Refuse an extension Pillow would not be asked to write (before any work)."""
    if Path(path).suffix.lower() not in FORMATS:
        raise InputError(path, f"a quicklook must be {', '.join(FORMATS)}")


def check_layout(layout: str, size: int) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown quicklook layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if not 128 <= size <= 8192:
        raise ValueError(f"--quicklook-size must be between 128 and 8192 px, got {size}")


# -- bands and stretch ------------------------------------------------------------------
def _centre(band: Any) -> float | None:
    if band.wavelength is None:
        return None
    return (band.wavelength[0] + band.wavelength[1]) / 2


def _nm(band: Any) -> float:
    """The centre of a band that has a wavelength range."""
    centre = _centre(band)
    assert centre is not None, band.name
    return centre


def pick_bands(scene: Scene) -> tuple[list[int], str]:
    """Band indices (red, green, blue) and how they render: true colour when the product has
    red, green and blue; else false colour from three optical bands (longest wavelength as
    red), else one band in grey (e.g. SAR)."""
    own = [i for i in scene.primary if not scene.bands[i].warp]
    optical = [
        i
        for i in own
        if scene.bands[i].band.type == "reflectance"
        and not scene.bands[i].band.panchromatic
        and _centre(scene.bands[i].band) is not None
    ]
    rgb = []
    for _, nominal, (lo, hi) in _RGB:
        fits = [i for i in optical if lo <= _nm(scene.bands[i].band) <= hi]
        if not fits:
            break
        rgb.append(min(fits, key=lambda i: abs(_nm(scene.bands[i].band) - nominal)))
    if len(rgb) == 3:
        return rgb, "true colour"
    thermal = [i for i in own if scene.bands[i].band.type == "brightness_temperature"]
    spectral = sorted(optical or thermal, key=lambda i: -_nm(scene.bands[i].band))
    if len(spectral) >= 3:  # longest, middle, shortest: e.g. SWIR / NIR / red
        return [spectral[0], spectral[len(spectral) // 2], spectral[-1]], "false colour"
    one = (spectral or own)[0]
    return [one, one, one], "single band"


def stretch(values: np.ndarray, joint: bool, low: float = 2, high: float = 98) -> np.ndarray:
    """uint8 RGB (h, w, 3) from (3, h, w) floats: a percentile stretch robust to outliers,
    one range for all bands when they share units (keeps white clouds white, with a gamma that
    lifts the ground out of the dark when clouds set the top of the range), NaN -> grey."""
    out = np.empty((*values.shape[1:], 3), dtype=np.uint8)
    finite = np.isfinite(values)
    ranges = []
    if joint and finite.any():
        lo, hi = np.percentile(values[finite], [low, high])
        ranges = [(lo, hi)] * 3
    else:
        for k in range(3):
            v = values[k][finite[k]]
            ranges.append(tuple(np.percentile(v, [low, high])) if v.size else (0.0, 1.0))
    for k, (lo, hi) in enumerate(ranges):
        scaled = np.clip((values[k] - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
        if joint:
            scaled **= GAMMA
        out[..., k] = np.clip(np.nan_to_num(scaled * 255, nan=0), 0, 255).astype(np.uint8)
    out[~finite.all(axis=0)] = NODATA_RGB
    return out


# -- reading small ------------------------------------------------------------------------
def coarse_scene(scene: Scene, max_w: int, max_h: int) -> Scene:
    """The scene on a grid no larger than ``max_w`` x ``max_h`` (the same grid if it fits)."""
    h, w = scene.shape
    factor = max(w / max_w, h / max_h)
    if factor <= 1:
        return scene
    return scene.with_resolution(scene.grid.resolution * factor)


def read_image(scene: Scene) -> tuple[np.ndarray, list[str], str]:
    """(RGB uint8 (h, w, 3), band names, rendering) of the whole (coarse) scene."""
    idx, rendering = pick_bands(scene)
    h, w = scene.shape
    unique = list(dict.fromkeys(idx))
    values = scene.read(Window(0, 0, w, h), bands=unique)
    values = values[[unique.index(i) for i in idx]]
    joint = len({scene.bands[i].band.type for i in idx}) == 1
    return stretch(values, joint), [scene.bands[i].band.name for i in unique], rendering


@dataclass
class MaskLook:
    codes: np.ndarray  # (h, w) uint8, decimated
    colours: dict[int, tuple[int, int, int]]
    names: dict[int, str]
    style: str


def read_mask(path: Path, shape: tuple[int, int]) -> MaskLook:
    """The mask COG at ``shape`` (nearest, from its ``mode`` overviews), its colour table and
    class names."""
    try:
        with rasterio.open(path) as ds:
            codes = ds.read(1, out_shape=shape, resampling=Resampling.nearest)
            table = ds.colormap(1)
            tags = ds.tags()
    except (RasterioError, ValueError) as exc:
        raise InputError(path, f"cannot read the mask ({first_line(exc)})") from None
    names = {int(k): v for k, v in json.loads(tags.get("CLOUDMASK_CLASSES", "{}")).items()}
    if not names:  # a mask from elsewhere: the codes it holds
        names = {int(c): str(c) for c in np.unique(codes)}
    colours = {c: tuple(table.get(c, (128, 128, 128, 255))[:3]) for c in names}
    colours[NODATA] = NODATA_RGB
    names.setdefault(NODATA, "no_data")
    return MaskLook(codes, colours, names, tags.get("CLOUDMASK_STYLE", ""))


def colourise(look: MaskLook) -> np.ndarray:
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[:] = NODATA_RGB
    for code, rgb in look.colours.items():
        lut[code] = rgb
    return lut[look.codes]


# -- drawing ------------------------------------------------------------------------------
def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType
    except (TypeError, OSError):
        return ImageFont.load_default()


def _fit(draw: Any, text: str, font: Any, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _legend_entries(
    look: MaskLook | None, fractions: dict[str, float] | None
) -> list[tuple[int, str, str]]:
    if look is None:
        return []
    counts = np.bincount(look.codes.ravel(), minlength=256)
    valid = counts.sum() - counts[NODATA]
    entries = []
    for code, name in look.names.items():
        if code == NODATA:
            share = counts[NODATA] / max(1, counts.sum())
            entries.append((code, f"no data {share:.0%}", name))
            continue
        if fractions is not None and name in fractions:
            share = fractions[name]  # exact, from the run
        else:
            share = counts[code] / valid if valid else 0.0
        entries.append((code, f"{name.replace('_', ' ')} {share:.1%}", name))
    return entries


def _legend_height(draw: Any, entries: list, font: Any, width: int) -> int:
    rows, x = 1, 0
    for _, text, _ in entries:
        w = SWATCH + 4 + int(draw.textlength(text, font=font)) + 14
        if x and x + w > width:
            rows, x = rows + 1, 0
        x += w
    return rows * (SWATCH + 8) + 4 if entries else 0


def render(
    scene: Scene,
    mask: Path | None = None,
    *,
    size: int = 1024,
    layout: str = "side",
    fractions: dict[str, float] | None = None,
    title: str | None = None,
    subtitle: str | None = None,
    chrome: bool = True,
) -> tuple[Any, Layout]:
    """The quicklook as a Pillow image (RGB) and where its parts are.

    ``size`` bounds the longest side of the picture; ``mask`` (a cloudmask COG on the scene's
    grid) is drawn beside the image (``side``) or over it (``overlay``); without a mask the
    image is drawn alone. ``fractions`` (the sidecar's ``class_fractions``) label the legend
    with the run's exact figures; else they are counted on the overview. Without ``chrome``
    only the panels are drawn (thumbnails: the report's row says the rest).
    """
    from PIL import Image, ImageDraw

    check_layout(layout, size)
    font, small = _font(14), _font(12)
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    panels = 2 if mask is not None and layout == "side" else 1
    inner_w = size - (panels + 1) * MARGIN
    title_h = TITLE_H if chrome else MARGIN
    legend_guess = 2 * (SWATCH + 8) + 4 if mask is not None and chrome else 0
    max_w = inner_w // panels
    max_h = size - title_h - legend_guess - 3 * MARGIN
    coarse = coarse_scene(scene, max_w, max_h)
    try:
        rgb, band_names, rendering = read_image(coarse)
    finally:
        if coarse is not scene:
            coarse.close()
    h, w = rgb.shape[:2]
    scale = max(1, math.floor(min(max_w / w, max_h / h)))  # small products: enlarge, exactly
    look = read_mask(mask, (h, w)) if mask is not None else None
    entries = _legend_entries(look, fractions) if chrome else []

    pw, ph = w * scale, h * scale
    canvas_w = panels * pw + (panels + 1) * MARGIN
    if chrome:
        canvas_w = max(canvas_w, min(320, size))  # room for the title and legend
    legend_h = _legend_height(scratch, entries, small, canvas_w - 2 * MARGIN)
    canvas_h = title_h + ph + (2 if chrome else 1) * MARGIN + legend_h
    img = Image.new("RGB", (canvas_w, canvas_h), BACKGROUND)
    draw = ImageDraw.Draw(img)
    out = Layout(size=(canvas_w, canvas_h), scale=scale, decimated=(h, w), bands=band_names,
                 rendering=rendering)  # fmt: skip
    top = title_h
    picture = Image.fromarray(rgb)
    if scale > 1:
        picture = picture.resize((pw, ph), Image.Resampling.NEAREST)
    left = MARGIN
    bands = "/".join(dict.fromkeys(band_names))
    if look is not None and layout == "overlay":
        colours = colourise(look)
        shown = (look.codes != 0) & (look.codes != NODATA)  # code 0 is each style's clear class
        blend = rgb.astype(np.float32)
        blend[shown] = (1 - OVERLAY_ALPHA) * blend[shown] + OVERLAY_ALPHA * colours[shown]
        picture = Image.fromarray(np.rint(blend).astype(np.uint8))
        if scale > 1:
            picture = picture.resize((pw, ph), Image.Resampling.NEAREST)
        img.paste(picture, (left, top))
        out.image = out.mask = (left, top, left + pw, top + ph)
        captions = [(left, f"{rendering} ({bands}), mask {look.style} over it")]
    else:
        img.paste(picture, (left, top))
        out.image = (left, top, left + pw, top + ph)
        captions = [(left, f"{rendering} ({bands})")]
        if look is not None:
            left2 = left + pw + MARGIN
            shown = Image.fromarray(colourise(look))
            if scale > 1:
                shown = shown.resize((pw, ph), Image.Resampling.NEAREST)
            img.paste(shown, (left2, top))
            out.mask = (left2, top, left2 + pw, top + ph)
            captions.append((left2, f"mask ({look.style})"))
    head = title if title is not None else str(scene.product)
    if chrome:
        draw.text((MARGIN, 4), _fit(draw, head, font, canvas_w - 2 * MARGIN), fill=INK, font=font)
    for x, text in captions if chrome else []:
        room = (pw if len(captions) > 1 else canvas_w - 2 * MARGIN) - 4
        line = text if subtitle is None or x != MARGIN else f"{subtitle} · {text}"
        draw.text((x, 24), _fit(draw, line, small, room), fill=INK, font=small)
    # the legend: a swatch in the mask's colour and the class's name and fraction
    x, y = MARGIN, top + ph + MARGIN
    for code, text, _name in entries:
        assert look is not None  # entries come from a mask
        w_entry = SWATCH + 4 + int(draw.textlength(text, font=small)) + 14
        if x > MARGIN and x + w_entry > canvas_w - MARGIN:
            x, y = MARGIN, y + SWATCH + 8
        box = (x, y, x + SWATCH, y + SWATCH)
        draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=look.colours[code],
                       outline=INK if code == 0 or look.colours[code] == (255, 255, 255) else None)  # fmt: skip
        out.legend.append((code, look.names[code], box))
        draw.text((x + SWATCH + 4, y), text, fill=INK, font=small)
        x += w_entry
    return img, out


def title_of(scene: Scene) -> tuple[str, str]:
    """(product id, "date · sensor") for the picture's title lines."""
    from cloudmask_cli.products import product_id

    when = scene.metadata.get("datetime")
    date = str(when)[:19].replace("T", " ") if when else "no acquisition time"
    return product_id(scene), f"{date} · {scene.sensor.name}"


def write_quicklook(
    path: Path,
    scene: Scene,
    mask: Path | None = None,
    *,
    size: int = 1024,
    layout: str = "side",
    fractions: dict[str, float] | None = None,
) -> Layout:
    """Render and write a quicklook (PNG or JPEG by the extension), atomically."""
    path = Path(path)
    check_quicklook_path(path)
    pid, when = title_of(scene)
    img, out = render(scene, mask, size=size, layout=layout, fractions=fractions, title=pid,
                      subtitle=when)  # fmt: skip
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        img.save(tmp, format=FORMATS[path.suffix.lower()], optimize=True)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(path, f"cannot write the quicklook ({exc.strerror or exc})") from None
    return out


def thumbnail_uri(
    scene: Scene, mask: Path | None, fractions: dict[str, float] | None = None, size: int = 320
) -> str:
    """A small side-by-side quicklook as a JPEG ``data:`` URI (for the HTML report)."""
    img, _ = render(scene, mask, size=size, fractions=fractions, chrome=False)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def look_before_masking(scene: Scene, path: Path, size: int = 1024) -> Layout:
    """`cloudmask info --quicklook`: the product alone (no mask yet). An existing file is
    replaced; one of the product's own files is refused."""
    from cloudmask_cli.inference.writer import check_outputs, input_files

    check_quicklook_path(Path(path))
    check_layout("side", size)
    check_outputs([Path(path)], overwrite=True, inputs=input_files(scene))
    return write_quicklook(Path(path), scene, None, size=size)
