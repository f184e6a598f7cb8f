"""Write full-size products with real structure for the benchmarks (not run by CI).

    python benchmarks/make_product.py sentinel2 /tmp/bench     # ~11 GB of pixels, a few minutes
    python benchmarks/make_product.py landsat8 /tmp/bench
    python benchmarks/make_product.py stack /tmp/bench --rows 2745 5490 10980
    python benchmarks/make_product.py stack /tmp/bench --width 2048 --rows 2048 4096 8192

- sentinel2: the real T18LTM L1C SAFE from ../shared (metadata, quality masks, the real 60 m
  B01/B09/B10) with every 1-byte placeholder band replaced by a generated full-size band:
  10980 x 10980 at 10 m, 5490 x 5490 at 20 m, lossless JPEG 2000 with 1024-px tiles and 5
  resolution levels, as ESA writes them. DN follow the product's own RADIO_ADD_OFFSET.
- landsat8: the real LC08_L1TP_090084 MTL (its real 7xxx-line grid) with generated
  Cloud Optimized GeoTIFF bands of that size, QA_PIXEL included, as USGS ships Collection 2.
- stack: 4-band uint16 GeoTIFFs ``--width`` px wide and ``--rows`` high, for the memory-vs-size
  curve (same width, growing height: peak memory must not follow).

Content: fields and forests from multi-octave noise, a lake, clouds with shadows, and a no-data
wedge in one corner, so every window is realistic work for the decoder and the model.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
import torch
import torch.nn.functional as F
from affine import Affine
from rasterio.io import MemoryFile

# ../shared beside the repository, or where CLOUDMASK_SHARED says (as for the tests)
SHARED = Path(os.environ.get("CLOUDMASK_SHARED", Path(__file__).resolve().parents[2] / "shared"))
SHARED = SHARED / "data" / "products"
T18LTM = SHARED / "sentinel2" / "S2A_MSIL1C_20220125T151701_N0400_R125_T18LTM_20220125T190036.SAFE"
LC08 = SHARED / "landsat" / "LC08_L1TP_090084_20160121_20200907_02_T1"

# Reflectance of land / water / cloud by band centre (nm), and how much a shadow darkens it.
LAND = [(440, 0.08), (490, 0.07), (560, 0.09), (665, 0.08), (705, 0.13), (740, 0.25),
        (783, 0.30), (842, 0.32), (865, 0.33), (945, 0.30), (1375, 0.005), (1610, 0.22),
        (2190, 0.12)]  # fmt: skip


def _interp(table: list[tuple[float, float]], nm: float) -> float:
    xs, ys = zip(*table, strict=True)
    return float(np.interp(nm, xs, ys))


def noise(
    shape: tuple[int, int], rng: np.random.Generator, cell: int, octaves: int = 4
) -> np.ndarray:
    """Smooth multi-octave noise in [0, 1] at ``shape``, built from coarse grids (cheap)."""
    h, w = shape
    out = torch.zeros(1, 1, h, w)
    for o in range(octaves):
        c = max(2, cell >> o)
        grid = torch.from_numpy(rng.random((1, 1, h // c + 2, w // c + 2), dtype=np.float32))
        out += F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False) / 2**o
    a = out[0, 0].numpy()
    return (a - a.min()) / (np.ptp(a) + 1e-6)


def scene_fields(shape: tuple[int, int], seed: int) -> dict[str, np.ndarray]:
    """Cloud opacity, shadow, water and texture fields on one grid (shared by all bands)."""
    rng = np.random.default_rng(seed)
    cloud = np.clip((noise(shape, rng, max(8, shape[0] // 12)) - 0.55) * 4, 0, 1)
    shift = max(1, shape[0] // 60)
    shadow = np.roll(np.roll(cloud, shift, axis=0), shift, axis=1) * (cloud < 0.2)
    water = noise(shape, rng, max(8, shape[0] // 8)) < 0.18
    texture = noise(shape, rng, max(4, shape[0] // 200))
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    nodata = (xx / shape[1] + (shape[0] - yy) / shape[0]) < 0.35  # wedge in the top-left corner
    return {"cloud": cloud, "shadow": shadow, "water": water, "texture": texture, "nodata": nodata}


def reflectance(fields: dict[str, np.ndarray], nm: float) -> np.ndarray:
    land = _interp(LAND, nm) * (0.6 + 0.8 * fields["texture"])
    surface = np.where(fields["water"], 0.03 if nm < 700 else 0.01, land)
    surface = surface * (1 - 0.6 * fields["shadow"])
    cloud_r = 0.65 if nm < 1000 else (0.45 if nm < 1700 else 0.3)
    if 1350 < nm < 1400:
        surface = surface * 0.05
    return ((1 - fields["cloud"]) * surface + fields["cloud"] * cloud_r).astype(np.float32)


def upsample(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    t = torch.from_numpy(a.astype(np.float32))[None, None]
    return F.interpolate(t, size=shape, mode="bilinear", align_corners=False)[0, 0].numpy()


def write_jp2(path: Path, dn: np.ndarray, crs: object, transform: Affine, tile: int) -> None:
    profile = dict(driver="GTiff", width=dn.shape[1], height=dn.shape[0], count=1,
                   dtype="uint16", crs=crs, transform=transform)  # fmt: skip
    with MemoryFile() as mem:
        with mem.open(**profile) as ds:
            ds.write(dn, 1)
        path.unlink(missing_ok=True)
        rasterio.shutil.copy(mem.name, path, driver="JP2OpenJPEG", QUALITY=100, REVERSIBLE=True,
                             RESOLUTIONS=5, BLOCKXSIZE=tile, BLOCKYSIZE=tile, NUM_THREADS="ALL_CPUS")  # fmt: skip


def make_sentinel2(out: Path, seed: int = 0) -> Path:
    if not T18LTM.is_dir():
        raise SystemExit(f"{T18LTM} is absent: the benchmark product copies its real metadata")
    safe = out / T18LTM.name
    if safe.exists():
        shutil.rmtree(safe)
    shutil.copytree(T18LTM, safe)
    mtd = (safe / "MTD_MSIL1C.xml").read_text()
    offset = int(re.search(r'RADIO_ADD_OFFSET band_id="1">(-?\d+)', mtd).group(1))
    quant = float(re.search(r"QUANTIFICATION_VALUE[^>]*>([\d.]+)<", mtd).group(1))
    ref = next(safe.glob("GRANULE/*/IMG_DATA/*_B01.jp2"))
    with rasterio.open(ref) as ds:
        crs, t60 = ds.crs, ds.transform
    fields60 = scene_fields((1830, 1830), seed)
    centres = {"B02": 490, "B03": 560, "B04": 665, "B05": 705, "B06": 740, "B07": 783,
               "B08": 842, "B8A": 865, "B11": 1610, "B12": 2190, "TCI": None}  # fmt: skip
    for jp2 in sorted(safe.glob("GRANULE/*/IMG_DATA/*.jp2")):
        band = jp2.stem.rsplit("_", 1)[-1]
        if jp2.stat().st_size > 1 or band not in centres or centres[band] is None:
            continue  # real bands stay; TCI is not read by cloudmask
        res = 10 if band in ("B02", "B03", "B04", "B08") else 20
        size = 10980 if res == 10 else 5490
        fields = {k: upsample(v.astype(np.float32), (size, size)) for k, v in fields60.items()}
        refl = reflectance({**fields, "water": fields["water"] > 0.5}, centres[band])
        dn = np.clip(refl * quant - offset, 1, 65535).astype(np.uint16)
        dn[fields["nodata"] > 0.5] = 0
        transform = Affine(res, 0, t60.c, 0, -res, t60.f)
        print(f"writing {jp2.name} ({size} x {size})", flush=True)
        write_jp2(jp2, dn, crs, transform, 1024)
    return safe


def make_landsat8(out: Path, seed: int = 0) -> Path:
    if not LC08.is_dir():
        raise SystemExit(f"{LC08} is absent: the benchmark product copies its real MTL")
    product = out / LC08.name
    product.mkdir(parents=True, exist_ok=True)
    mtl = next(LC08.glob("*_MTL.txt"))
    shutil.copy(mtl, product / mtl.name)
    text = mtl.read_text()
    lines = int(re.search(r"REFLECTIVE_LINES = (\d+)", text).group(1))
    samples = int(re.search(r"REFLECTIVE_SAMPLES = (\d+)", text).group(1))
    with rasterio.open(next(LC08.glob("*_B1.TIF"))) as ds:
        crs, bounds = ds.crs, ds.bounds
    transform = Affine(30, 0, bounds.left, 0, -30, bounds.top)
    fields = scene_fields((lines, samples), seed)
    centres = {1: 443, 2: 482, 3: 561, 4: 655, 5: 865, 6: 1609, 7: 2201, 9: 1373}
    profile = dict(driver="GTiff", width=samples, height=lines, count=1, crs=crs,
                   transform=transform)  # fmt: skip
    for n in range(1, 12):
        name = product / f"{LC08.name}_B{n}.TIF"
        print(f"writing {name.name}", flush=True)
        if n == 8:  # pan at 15 m
            pan = upsample(reflectance(fields, 600), (2 * lines, 2 * samples))
            dn = np.clip((pan + 0.1) / 2e-5, 1, 65535).astype(np.uint16)
            _cog(name, dn, {**profile, "width": 2 * samples, "height": 2 * lines,
                            "transform": Affine(15, 0, bounds.left, 0, -15, bounds.top)})  # fmt: skip
            continue
        if n in (10, 11):  # thermal: cold clouds
            bt = 295 - 45 * fields["cloud"]
            rad = 774.8853 / (np.exp(1321.0789 / bt) - 1)
            dn = np.clip((rad - 0.1) / 3.342e-4, 1, 65535).astype(np.uint16)
        else:
            dn = np.clip((reflectance(fields, centres[n]) + 0.1) / 2e-5, 1, 65535).astype(np.uint16)
        dn[fields["nodata"]] = 0
        _cog(name, dn, profile)
    qa = np.where(fields["nodata"], 1, 21824).astype(np.uint16)
    _cog(product / f"{LC08.name}_QA_PIXEL.TIF", qa, profile)
    return product


def _cog(path: Path, data: np.ndarray, profile: dict) -> None:
    with MemoryFile() as mem:
        with mem.open(**profile, dtype=str(data.dtype)) as ds:
            ds.write(data, 1)
        rasterio.shutil.copy(mem.name, path, driver="COG", COMPRESS="DEFLATE", PREDICTOR=2,
                             BLOCKSIZE=256, NUM_THREADS="ALL_CPUS")  # fmt: skip


def make_stack(out: Path, rows: int, width: int = 10980, seed: int = 0) -> Path:
    path = out / f"stack_{width}x{rows}.tif"
    fields = scene_fields((rows, width), seed)
    profile = dict(driver="GTiff", width=width, height=rows, count=4, dtype="uint16",
                   crs="EPSG:32633", transform=Affine(10, 0, 300000, 0, -10, 5000000), nodata=0,
                   tiled=True, blockxsize=512, blockysize=512, compress="DEFLATE", predictor=2)  # fmt: skip
    with rasterio.open(path, "w", **profile) as ds:
        for i, nm in enumerate((490, 560, 665, 842), start=1):
            dn = np.clip(reflectance(fields, nm) * 10000, 1, 65535).astype(np.uint16)
            dn[fields["nodata"]] = 0
            ds.write(dn, i)
    (out / "stack.yaml").write_text(
        "name: rgbn-stack\nnodata: 0\nbands:\n"
        "  - {name: blue, type: reflectance, wavelength: [459, 525], scale: 0.0001}\n"
        "  - {name: green, type: reflectance, wavelength: [542, 578], scale: 0.0001}\n"
        "  - {name: red, type: reflectance, wavelength: [649, 680], scale: 0.0001}\n"
        "  - {name: nir, type: reflectance, wavelength: [780, 886], scale: 0.0001}\n"
    )
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("kind", choices=["sentinel2", "landsat8", "stack"])
    ap.add_argument("out", type=Path)
    ap.add_argument("--rows", type=int, nargs="+", default=[2745, 5490, 10980])
    ap.add_argument("--width", type=int, default=10980, help="stack width (px)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.kind == "sentinel2":
        print(make_sentinel2(args.out, args.seed))
    elif args.kind == "landsat8":
        print(make_landsat8(args.out, args.seed))
    else:
        for rows in args.rows:
            print(make_stack(args.out, rows, width=args.width, seed=args.seed))


if __name__ == "__main__":
    main()
