"""Writers of tiny samples in the public cloud datasets' own formats (for the adapter tests)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

UTM = "EPSG:32633"


def tif(path: Path, data: np.ndarray, descriptions: list[str] | None = None, crs: str | None = UTM,
        res: float = 30.0, driver: str = "GTiff") -> Path:  # fmt: skip
    """Write ``[bands, h, w]`` (or ``[h, w]``) as a raster."""
    data = data[None] if data.ndim == 2 else data
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": driver, "count": data.shape[0], "height": data.shape[1], "width": data.shape[2],
               "dtype": data.dtype.name}  # fmt: skip
    if crs:
        profile.update(crs=crs, transform=from_origin(500000, 4000000, res, res))
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
        for i, d in enumerate(descriptions or [], start=1):
            ds.set_band_description(i, d)
    return path


def netcdf_classic(path: Path, variables: dict[str, np.ndarray]) -> Path:
    """A NetCDF classic (CDF-1) file with 2-D variables on dims (y, x): float32 or int16."""

    def name(s: str) -> bytes:
        b = s.encode()
        return struct.pack(">i", len(b)) + b + b"\0" * (-len(b) % 4)

    h, w = next(iter(variables.values())).shape
    header = b"CDF\x01" + struct.pack(">i", 0)
    header += (
        struct.pack(">ii", 0x0A, 2)
        + name("y")
        + struct.pack(">i", h)
        + name("x")
        + struct.pack(">i", w)
    )
    header += b"\0" * 8  # no global attributes
    blobs, entries = [], []
    for var, arr in variables.items():
        kind, dtype = (5, ">f4") if arr.dtype.kind == "f" else (3, ">i2")
        blob = np.ascontiguousarray(arr.astype(dtype)).tobytes()
        blob += b"\0" * (-len(blob) % 4)
        blobs.append(blob)
        entries.append((var, kind, len(blob)))
    var_list = struct.pack(">ii", 0x0B, len(entries))
    size = len(header) + len(var_list) + sum(len(name(v)) + 4 + 8 + 8 + 12 for v, _, _ in entries)
    offset = size
    for var, kind, n in entries:
        var_list += (
            name(var)
            + struct.pack(">iii", 2, 0, 1)
            + b"\0" * 8
            + struct.pack(">iii", kind, n, offset)
        )
        offset += n
    path.write_bytes(header + var_list + b"".join(blobs))
    return path


def old_l7_mtl(sun_elevation: float = 45.0) -> str:
    """A pre-collection (LPGS 2001) Landsat 7 MTL with LMAX/LMIN/QCALMAX/QCALMIN keys."""
    lines = ["GROUP = L1_METADATA_FILE", "GROUP = PRODUCT_METADATA", "SPACECRAFT_ID = \"Landsat7\"",
             "ACQUISITION_DATE = 2001-08-11", "END_GROUP = PRODUCT_METADATA",
             "GROUP = MIN_MAX_RADIANCE"]  # fmt: skip
    for b in ("1", "2", "3", "4", "5", "61", "62", "7"):
        lmax, lmin = (17.04, 0.0) if b.startswith("6") else (191.6, -6.2)
        lines += [f"LMAX_BAND{b} = {lmax}", f"LMIN_BAND{b} = {lmin}"]
    lines += ["END_GROUP = MIN_MAX_RADIANCE", "GROUP = MIN_MAX_PIXEL_VALUE"]
    for b in ("1", "2", "3", "4", "5", "61", "62", "7"):
        lines += [f"QCALMAX_BAND{b} = 255.0", f"QCALMIN_BAND{b} = 1.0"]
    lines += ["END_GROUP = MIN_MAX_PIXEL_VALUE", "GROUP = PRODUCT_PARAMETERS",
              f"SUN_ELEVATION = {sun_elevation}", "END_GROUP = PRODUCT_PARAMETERS",
              "END_GROUP = L1_METADATA_FILE", "END"]  # fmt: skip
    return "\n".join(lines) + "\n"


def l8_mtl(sun_elevation: float = 50.0) -> str:
    """A Collection 1 style Landsat 8 MTL with the rescaling and thermal constants."""
    lines = ["GROUP = L1_METADATA_FILE", "GROUP = PRODUCT_METADATA", "SPACECRAFT_ID = \"LANDSAT_8\"",
             "DATE_ACQUIRED = 2014-05-01", "END_GROUP = PRODUCT_METADATA",
             "GROUP = IMAGE_ATTRIBUTES", f"SUN_ELEVATION = {sun_elevation}",
             "END_GROUP = IMAGE_ATTRIBUTES", "GROUP = RADIOMETRIC_RESCALING"]  # fmt: skip
    for b in range(1, 12):
        lines += [f"RADIANCE_MULT_BAND_{b} = 3.3420E-04", f"RADIANCE_ADD_BAND_{b} = 0.10000"]
    for b in range(1, 10):
        lines += [
            f"REFLECTANCE_MULT_BAND_{b} = 2.0000E-05",
            f"REFLECTANCE_ADD_BAND_{b} = -0.100000",
        ]
    lines += ["END_GROUP = RADIOMETRIC_RESCALING", "GROUP = TIRS_THERMAL_CONSTANTS",
              "K1_CONSTANT_BAND_10 = 774.8853", "K2_CONSTANT_BAND_10 = 1321.0789",
              "K1_CONSTANT_BAND_11 = 480.8883", "K2_CONSTANT_BAND_11 = 1201.1442",
              "END_GROUP = TIRS_THERMAL_CONSTANTS", "END_GROUP = L1_METADATA_FILE", "END"]  # fmt: skip
    return "\n".join(lines) + "\n"


def training_set(
    root: Path, n_train: int = 4, n_val: int = 2, size: int = 32, seed: int = 0
) -> Path:
    """A tiny training-format dataset: 4 Sentinel-2 bands, bright = thick cloud (CloudSEN12 codes)."""
    from cloudmask_cli.training.sample import write_sample

    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            cloud = rng.random((size, size)) > 0.6
            refl = np.where(cloud, 0.6, 0.08) + rng.normal(0, 0.02, (4, size, size))
            dn = np.clip(refl * 10000, 1, 65535).astype(np.uint16)
            label = np.where(cloud, 1, 0).astype(np.uint8)
            write_sample(root / split, f"{split}{i:02d}", dn, label, sensor="sentinel2_msi",
                         bands=["B02", "B03", "B04", "B08"], scheme="cloudsen12", fmt="npz" if i % 2 else "tif",
                         scale=[1e-4] * 4, nodata=0)  # fmt: skip
    return root
