"""Each dataset adapter on tiny generated samples in that dataset's own on-disk format."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from training_fixtures import l8_mtl, netcdf_classic, old_l7_mtl, tif

from cloudmask_cli.errors import InputError
from cloudmask_cli.training.adapters import convert, open_dataset
from cloudmask_cli.training.labels import classes_of, load_scheme
from cloudmask_cli.training.sample import load_stored

RNG = np.random.default_rng(0)


def names(sample) -> list[str]:
    return [b.name for b in sample.bands]


# -- the two local layouts --------------------------------------------------------------------
def make_biome_patches(root: Path) -> Path:
    for split, stems in (("train", ["Forest_01", "Water_02"]), ("val", ["Urban_03"])):
        for stem in stems:
            img = RNG.uniform(0.01, 0.5, (8, 32, 32)).astype(np.float32)
            img[7] = 280.0  # TIR1 in kelvin
            mask = np.full((32, 32), 128, np.uint8)
            mask[:8] = 255
            if stem != "Water_02":  # a patch from a scene without shadow annotation
                mask[8:12] = 64
            tif(root / split / "Images" / f"{stem}.tif", img, crs=None)
            tif(root / split / "Masks" / f"{stem}.tif", mask, crs=None)
    tif(root / "train" / "Masks" / "NoImage_09.tif", np.zeros((32, 32), np.uint8), crs=None)
    return root


def test_biome_patches(tmp_path: Path) -> None:
    root = make_biome_patches(tmp_path / "biome")
    train = open_dataset("biome-patches", root, "train")
    assert [s.id for s in train] == ["Forest_01", "Water_02"]  # masks without an image skipped
    assert names(train[0]) == ["B2", "B3", "B4", "B5", "B6", "B7", "B9", "B10"]
    x, label = train[0].read((0, 0, 16, 16), [0, 7])
    assert x.shape == (2, 16, 16) and np.allclose(x[1], 280.0)
    bits = load_scheme(train[0].scheme).bits(label)
    assert set(classes_of(int(bits[10, 0]))) == {"cloud_shadow"}
    # shadow marked in the patch: its scene was annotated, so its clear is never shadow
    assert set(classes_of(int(bits[14, 0]))) == {"land", "water", "snow"}
    assert [s.scheme for s in train] == ["biome_with_shadow", "biome"]
    partial = open_dataset("biome-patches", root, "train", {"shadow": "partial"})
    assert {s.scheme for s in partial} == {"biome"}
    annotated = open_dataset("biome-patches", root, "train", {"shadow": "annotated"})
    assert {s.scheme for s in annotated} == {"biome_with_shadow"}
    (root / "val" / "Masks" / "Urban_03.tif").write_bytes(b"not a tiff")
    with pytest.raises(InputError, match=r"Urban_03.tif: cannot be read"):
        open_dataset("biome-patches", root, "val")
    with pytest.raises(InputError, match="unknown option"):
        open_dataset("biome-patches", root, "val", {"shadows": "x"})


def test_oncloudn_hash_split(tmp_path: Path) -> None:
    root = tmp_path / "oncloudn"
    for i in range(12):
        chip = f"c{i:03d}"
        for b in ("B02", "B03", "B04", "B08"):
            data = RNG.integers(1, 10000, (1, 16, 16)).astype(np.uint16)
            data[0, 0, 0] = 0  # no data
            tif(root / "features" / chip / f"{b}.tif", data, res=10)
        tif(root / "labels" / f"{chip}.tif", (RNG.random((16, 16)) > 0.5).astype(np.uint8), res=10)
    train = open_dataset("oncloudn", root, "train", {"val_fraction": 0.25})
    val = open_dataset("oncloudn", root, "val", {"val_fraction": 0.25})
    assert len(train) + len(val) == 12 and not {s.id for s in train} & {s.id for s in val}
    x, _ = train[0].read()
    assert np.isnan(x[:, 0, 0]).all() and np.nanmax(x) <= 1.0 and names(train[0])[-1] == "B08"


# -- Sentinel-2 ------------------------------------------------------------------------------
S2_DESC = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]


def make_cloudsen12(root: Path) -> Path:
    rows = []
    for i, split in enumerate(["0", "0", "1", "2"]):
        folder = root / f"ROI_{i:04d}" / f"2020010{i}T000000_2020010{i}T000000_T18LTM"
        tif(
            folder / "S2L1C.tif",
            RNG.integers(1, 8000, (13, 20, 20)).astype(np.uint16),
            S2_DESC,
            res=10,
        )
        tif(
            folder / "S1.tif",
            RNG.normal(-12, 3, (3, 20, 20)).astype(np.float32),
            ["VV", "VH", "angle"],
            res=10,
        )
        tif(
            folder / "labels" / "manual_hq.tif",
            RNG.integers(0, 4, (20, 20)).astype(np.uint8),
            res=10,
        )
        rows.append(
            {
                "roi_id": folder.parent.name,
                "s2_id_gee": folder.name,
                "label_type": "high",
                "test": split,
            }
        )
    rows.append({"roi_id": "ROI_9999", "s2_id_gee": "x", "label_type": "scribble", "test": "0"})
    with (root / "cloudsen12_metadata.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root


def test_cloudsen12(tmp_path: Path) -> None:
    root = make_cloudsen12(tmp_path / "cs12")
    train = open_dataset("cloudsen12", root, "train")
    assert len(train) == 2 and len(open_dataset("cloudsen12", root, "test")) == 1
    assert names(train[0])[8] == "B8A" and len(train[0].bands) == 13
    x, label = train[0].read()
    assert 0 < np.nanmin(x) and np.nanmax(x) < 0.8 and label.max() <= 3
    with_sar = open_dataset("cloudsen12", root, "val", {"sar": True})
    assert names(with_sar[0])[-3:] == ["VV", "VH", "angle"]
    x, _ = with_sar[0].read(None, [13])
    assert -40 < np.nanmean(x) < 0  # dB
    written = convert("cloudsen12", root, tmp_path / "out", "val", {"sar": True})
    stored = load_stored(tmp_path / "out", "val")
    assert len(written) == 1 and names(stored[0]) == names(with_sar[0])
    np.testing.assert_allclose(stored[0].read()[0], with_sar[0].read()[0])


def test_convert_command_writes_the_training_format(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cloudmask_cli.cli import app

    root = make_cloudsen12(tmp_path / "cs12")
    res = CliRunner().invoke(app, ["convert", "cloudsen12", str(root), str(tmp_path / "out"),
                                   "--split", "val", "--option", "sar=true"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "1 samples written" in res.stdout
    stored = load_stored(tmp_path / "out", "val")
    assert names(stored[0]) == names(open_dataset("cloudsen12", root, "val", {"sar": True})[0])
    bad = CliRunner().invoke(app, ["convert", "cloudsen13", str(root), str(tmp_path / "o2")])
    assert bad.exit_code == 2 and bad.stderr.strip().count("\n") == 0
    assert "cloudsen13" in bad.stderr and "cloudsen12" in bad.stderr  # names the known kinds
    assert not (tmp_path / "o2").exists()


def test_cmc(tmp_path: Path) -> None:
    root = tmp_path / "cmc"
    (root / "subscenes").mkdir(parents=True)
    (root / "masks").mkdir()
    scenes = ["S2A_MSIL1C_20180101_A", "S2B_MSIL1C_20190101_B"]
    for s in scenes:
        np.save(root / "subscenes" / f"{s}.npy", RNG.uniform(0, 1, (24, 24, 13)).astype(np.float32))
        onehot = np.zeros((24, 24, 3), bool)
        onehot[:, :10, 0] = True
        onehot[:, 10:20, 1] = True
        onehot[:, 20:22, 2] = True  # columns 22, 23 unlabelled
        np.save(root / "masks" / f"{s}.npy", onehot)
    with (root / "classification_tags.csv").open("w") as f:
        f.write(f"scene,shadows_marked\n{scenes[0]},1\n{scenes[1]},0\n")
    samples = open_dataset("cmc", root, "all")
    assert [s.scheme for s in samples] == ["cmc", "cmc_no_shadow"]
    x, label = samples[0].read((2, 5, 8, 19), [1, 2, 3])
    assert x.shape == (3, 8, 19)
    assert list(label[0, [0, 5, 15, 17, 18]]) == [0, 1, 2, 255, 255]


def test_kappaset_netcdf(tmp_path: Path) -> None:
    root = tmp_path / "kappa"
    root.mkdir()
    b02 = RNG.uniform(0.005, 0.1, (16, 16)).astype(np.float32)  # DN / 65535
    label = np.where(b02 > 0.05, 4, 1).astype(np.int16)
    netcdf_classic(root / "T35VLF_tile_2_3.nc", {"B02": b02, "B8A": b02 * 2, "Label": label})
    (sample,) = open_dataset("kappaset", root, "all")
    assert names(sample) == ["B02", "B8A"]
    x, lab = sample.read()
    assert set(np.unique(lab)) == {1, 4}
    np.testing.assert_array_equal(lab == 4, x[0] > 0.05 * 6.5535)  # bands and label stay aligned
    assert np.nanmax(x[0]) == pytest.approx(float(b02.max()) * 6.5535, rel=1e-5)


def test_scl_from_a_l2a_safe(tmp_path: Path) -> None:
    from cloudmask_cli.demo.sentinel2 import write_sentinel2

    safe = write_sentinel2(tmp_path / "s2", level="L2A", size_10m=120)
    samples = open_dataset("scl", safe.parent, None, {"resolution": 60, "patch": 16})
    assert len(samples) == 4 and samples[0].scheme == "scl" and "B10" not in names(samples[0])
    x, label = samples[0].read()
    assert x.shape == (len(samples[0].bands), 16, 16) and 0 < np.nanmean(x) < 1
    assert set(np.unique(label)) <= set(range(12))
    load_scheme("scl").bits(label)


# -- Landsat ---------------------------------------------------------------------------------
def test_biome_full_scene(tmp_path: Path) -> None:
    from cloudmask_cli.demo.landsat import write_landsat

    product = write_landsat(tmp_path / "BC", spacecraft="LC08", collection=1, size=60)
    mask = np.full((60, 60), 128, np.uint8)
    mask[:5] = 0
    mask[30:] = 255
    mask[40:45] = 64
    tif(product / f"{product.name}_fixedmask.img", mask, crs=None, driver="ENVI")
    samples = open_dataset("biome", tmp_path / "BC", None, {"patch": 32})
    assert len(samples) == 4 and {s.scheme for s in samples} == {"biome_with_shadow"}  # auto
    assert names(samples[0]) == ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B9", "B10", "B11"]
    x, label = samples[-1].read()  # the bottom-right tile starts at row 28
    assert 150 < np.nanmean(x[-1]) < 350  # brightness temperature in kelvin
    assert label[0, 0] == 128 and label[2, 0] == 255
    partial = open_dataset("biome", tmp_path / "BC", None, {"patch": 32, "shadow": "partial"})
    assert partial[0].scheme == "biome"


def test_l7irish_pre_collection(tmp_path: Path) -> None:
    scene = tmp_path / "Irish" / "Boreal" / "p14_r21"
    stem = "L71014021_02120010811"
    for suffix in ("B10", "B20", "B30", "B40", "B50", "B61", "B62", "B70"):
        dn = RNG.integers(1, 255, (40, 40)).astype(np.uint8)
        dn[0, 0] = 0
        tif(scene / f"{stem}_{suffix}.TIF", dn)
    tif(scene / f"{stem}_B80.TIF", RNG.integers(1, 255, (80, 80)).astype(np.uint8))  # pan: skipped
    (scene / f"{stem}_MTL.txt").write_text(old_l7_mtl())
    tif(scene / f"{stem}_mask2019.TIF", np.full((40, 40), 128, np.uint8))
    samples = open_dataset("l7irish", tmp_path / "Irish", None, {"patch": 32})
    assert len(samples) == 4 and names(samples[0])[5:7] == ["B6_VCID_1", "B6_VCID_2"]
    x, label = samples[0].read()
    assert np.isnan(x[:, 0, 0]).all()
    assert 0 < np.nanmean(x[:5]) < 1.2 and 150 < np.nanmean(x[5]) < 350
    assert (label == 128).all() and samples[0].scheme == "l7irish"


def test_sparcs(tmp_path: Path) -> None:
    root = tmp_path / "sparcs"
    sid = "LC80010812013365LGN00_18"
    dn = RNG.integers(5000, 30000, (10, 30, 30)).astype(np.uint16)
    tif(root / f"{sid}_data.tif", dn)
    tif(root / f"{sid}_labels.tif", RNG.integers(0, 7, (30, 30)).astype(np.uint8))
    (root / f"{sid}_mtl.txt").write_text(l8_mtl(sun_elevation=30.0))
    (sample,) = open_dataset("sparcs", root, "all")
    x, label = sample.read()
    expected = (dn[0].astype(np.float32) * 2e-5 - 0.1) / np.sin(np.radians(30.0))
    np.testing.assert_allclose(x[0], expected, rtol=1e-5)
    assert 150 < np.nanmean(x[8]) < 350 and names(sample)[7:] == ["B9", "B10", "B11"]
    assert set(np.unique(label)) <= set(range(7))


def test_cloud38(tmp_path: Path) -> None:
    root = tmp_path / "38-Cloud_training"
    rest = "patch_1_1_by_1_LC08_L1TP_064015_20160420_20170223_01_T1.TIF"
    for colour in ("red", "green", "blue", "nir"):
        tif(
            root / f"train_{colour}" / f"{colour}_{rest}",
            RNG.integers(6000, 20000, (12, 12)).astype(np.uint16),
        )
    tif(
        root / "train_gt" / f"gt_{rest}",
        np.where(RNG.random((12, 12)) > 0.5, 255, 0).astype(np.uint8),
    )
    tif(
        tmp_path / "38-Cloud_test" / "test_red" / f"red_{rest}", np.ones((12, 12), np.uint16)
    )  # no gt
    (sample,) = open_dataset("cloud38", tmp_path, "all")
    assert names(sample) == ["B4", "B3", "B2", "B5"] and sample.scheme == "cloud38"
    x, label = sample.read()
    assert 0 < np.nanmin(x) and np.nanmax(x) < 0.35 and set(np.unique(label)) <= {0, 255}


def test_cloudperu2(tmp_path: Path) -> None:
    root = tmp_path / "CloudPeru2"
    tif(
        root / "images" / "tile_001.tif",
        RNG.integers(1, 4000, (4, 16, 16)).astype(np.uint16),
        res=2.8,
    )
    tif(root / "masks" / "tile_001.png", np.where(RNG.random((16, 16)) > 0.5, 255, 0).astype(np.uint8),
        crs=None, driver="PNG")  # fmt: skip
    with pytest.raises(InputError, match="scale"):
        open_dataset("cloudperu2", root, "all")
    (sample,) = open_dataset("cloudperu2", root, "all", {"scale": 1e-4})
    x, label = sample.read()
    assert names(sample) == ["red", "green", "blue", "nir"] and set(np.unique(label)) <= {0, 1}
    assert np.nanmax(x) < 0.41


def test_unknown_kind_and_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown dataset kind"):
        open_dataset("landsat-magic", tmp_path)
    with pytest.raises(InputError, match="no such dataset folder"):
        open_dataset("sparcs", tmp_path / "absent")


# -- the real data beside the repository -------------------------------------------------------
@pytest.mark.realdata
def test_real_biome_patches_and_oncloudn(shared_data: Path) -> None:
    from conftest import require

    biome = open_dataset(
        "biome-patches", require(shared_data / "labelled/landsat8-biome-patches"), "train"
    )
    assert len(biome) == 16
    x, label = biome[0].read()
    assert x.shape == (8, 256, 256) and 200 < np.nanmean(x[7]) < 330
    load_scheme("biome").bits(label)
    chips = open_dataset("oncloudn", require(shared_data / "labelled/sentinel2-oncloudn"), "all")
    assert len(chips) == 32
    x, label = chips[0].read()
    assert x.shape == (4, 512, 512) and set(np.unique(label)) <= {0, 1}


@pytest.mark.realdata
def test_real_biome_patch_bands_are_named_by_what_they_measure(shared_data: Path) -> None:
    # The catalogue lists the patches' first three bands as red, green, blue; the pixels say
    # blue, green, red: over clear open water the top-of-atmosphere blue (Rayleigh) is ~3x the
    # red, and over arid shrubland and barren ground the red is the brighter.
    from conftest import require

    root = require(shared_data / "labelled/landsat8-biome-patches")
    samples = open_dataset("biome-patches", root, "train") + open_dataset(
        "biome-patches", root, "val"
    )
    named = [b.name for b in samples[0].bands]
    blue, red, nir, cirrus = (named.index(n) for n in ("B2", "B4", "B5", "B9"))
    water_scenes = 0
    for s in samples:
        x, label = s.read()
        water = (label == 128) & (x[nir] < 0.05)
        if water.sum() >= 1000:
            water_scenes += 1
            assert np.median(x[blue][water] / x[red][water]) > 1.8, s.id
            assert np.median(x[cirrus][water]) < 0.02, s.id  # a clear sky's cirrus band is dark
        assert 200 < np.nanmean(x[named.index("B10")]) < 330, s.id
    assert water_scenes >= 5
    arid = [s for s in samples if s.id.startswith(("Shrubland_01", "Barren_05"))]
    for s in arid:
        x, label = s.read()
        assert np.median(x[red][label == 128]) > np.median(x[blue][label == 128]), s.id


@pytest.mark.realdata
def test_real_scl_tile(shared_data: Path) -> None:
    from conftest import require

    safe = require(
        shared_data
        / "products/sentinel2/S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE"
    )
    samples = open_dataset("scl", safe, None, {"resolution": 60, "patch": 512})
    # 1830 px at 60 m in 512 px tiles, the last ones clamped: 16 tiles, of which the 4 in the
    # no-data swath edge (SCL all 0) are left out
    assert len(samples) == 12
    x, label = samples[5].read((0, 0, 64, 64))
    bits = load_scheme("scl").bits(label)
    assert x.shape[1:] == (64, 64) and bits.any()


@pytest.mark.realdata
def test_a_window_of_a_whole_real_sample_is_the_window_read(shared_data: Path) -> None:
    # what lets training crop from samples held in memory (datasets.SampleCache): the same
    # values and labels as reading the crop from the files, bit for bit, on every labelled set
    from conftest import require

    from cloudmask_cli.training.datasets import SampleCache

    safe = "products/sentinel2/S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE"
    sets = [
        open_dataset("biome-patches", require(shared_data / "labelled/landsat8-biome-patches"),
                     "all")[:4],
        open_dataset("oncloudn", require(shared_data / "labelled/sentinel2-oncloudn"), "all")[:3],
        open_dataset("scl", require(shared_data / safe), None, {"resolution": 60, "patch": 256})[
            :4
        ],
    ]  # fmt: skip
    rng = np.random.default_rng(0)
    for samples in sets:
        cache = SampleCache()
        for key, s in enumerate(samples):
            h, w = s.shape
            for _ in range(3):
                size = int(rng.integers(16, 200))
                r, c = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
                idx = sorted(rng.choice(len(s.bands), max(1, len(s.bands) // 2), replace=False))
                box = (r, c, size, size)
                x, bits = cache.window(key, s, box, [int(i) for i in idx])
                want, label = s.read(box, [int(i) for i in idx])
                assert np.array_equal(x, want, equal_nan=True), (s.id, box)
                assert np.array_equal(bits, load_scheme(s.scheme).bits(label)), (s.id, box)
        assert all(v is not None for v in cache._held.values())


def test_scl_val_block_is_a_spatial_hold_out(tmp_path: Path) -> None:
    from cloudmask_cli.demo.sentinel2 import write_sentinel2

    safe = write_sentinel2(tmp_path / "s2", level="L2A", size_10m=240)  # 40 x 40 px at 60 m
    opts = {"resolution": 60, "patch": 10, "val_block": [20, 20, 40, 40]}
    train = [s.origin for s in open_dataset("scl", safe, "train", opts)]
    val = [s.origin for s in open_dataset("scl", safe, "val", opts)]
    assert sorted(val) == [(20, 20), (20, 30), (30, 20), (30, 30)]
    assert train and all(r + 10 <= 20 or c + 10 <= 20 for r, c in train)
    # a block whose edge cuts through tiles: those tiles are in neither split
    opts["val_block"] = [15, 15, 40, 40]
    val = [s.origin for s in open_dataset("scl", safe, "val", opts)]
    train = [s.origin for s in open_dataset("scl", safe, "train", opts)]
    assert sorted(val) == [(20, 20), (20, 30), (30, 20), (30, 30)]
    assert (10, 10) not in train and (10, 20) not in train


@pytest.mark.realdata
@pytest.mark.parametrize("config", ["train-bundled.yaml", "train-bundled-stage2.yaml"])
def test_bundled_configs_exclude_real_chips_from_every_split(
    shared_data: Path, config: str
) -> None:
    from conftest import require

    from cloudmask_cli.training.config import load_config
    from cloudmask_cli.training.loop import load_splits

    cfg = load_config(Path(__file__).resolve().parents[1] / "examples" / config)
    for spec in cfg.datasets:
        require(Path(spec.path))  # the configs point at ../shared beside the repository
    train, val, select = load_splits(cfg)  # raises on an excluded id the data lacks
    (ocn,) = [s for s in cfg.datasets if s.kind == "oncloudn"]
    assert len(ocn.exclude) == 11
    used = {s.id for g in train for s in g} | {s.id for _, g in val + select for s in g}
    assert not used & set(ocn.exclude)
    assert len([s for n, g in val for s in g if n == ocn.name]) == 5
    # how the held-out labels are read: the open-sea chips and the clear Biome patch cannot
    # hide a shadow; the Biome patches with shadow marked come from annotated scenes
    schemes = {s.id: s.scheme for _, g in val for s in g}
    assert schemes["kguj"] == schemes["khec"] == "oncloudn+cloud_free"
    assert schemes["Shrubland_01_0508"] == "biome+cloud_free"
    assert schemes["Forest_00_1008"] == schemes["GrassCrops_01_0413"] == "biome_with_shadow"
    assert schemes["Urban_03_0619"] == "biome"
    if config == "train-bundled.yaml":  # what `cloudmask evaluate` on the config reports
        from cloudmask_cli.training.evaluate import evaluate

        report = evaluate(Path(cfg.path), baseline=0.3)
        assert report["cloud_free"] == {
            "biome": ["Shrubland_01_0508"],
            "oncloudn": ["kguj", "khec"],
        }


def test_shadow_needs_cloud_tightens_only_cloud_free_samples(tmp_path: Path) -> None:
    from cloudmask_cli.training.config import DatasetSpec

    root = make_biome_patches(tmp_path / "biome")
    tif(root / "train" / "Masks" / "Water_02.tif", np.full((32, 32), 128, np.uint8), crs=None)
    found = open_dataset("biome-patches", root, "train")
    assert [s.scheme for s in found] == ["biome_with_shadow", "biome"]
    plain = DatasetSpec(str(root), "biome-patches").prepare(found)
    assert [s.scheme for s in plain] == ["biome_with_shadow", "biome"]
    spec = DatasetSpec(str(root), "biome-patches", shadow_needs_cloud=True)
    cloudy, clear = spec.prepare(found)
    assert cloudy.scheme == "biome_with_shadow"  # it has clouds: as its labels say
    assert clear.scheme == "biome+cloud_free" and found[1].scheme == "biome"  # a copy
    bits = load_scheme(clear.scheme).bits(clear.read()[1])
    assert set(classes_of(int(bits[0, 0]))) == {"land", "water", "snow"}
    scheme = load_scheme("biome+cloud_free")
    assert classes_of(scheme.codes[64][1]) == ("cloud_shadow",)  # a marked shadow stays one
    assert classes_of(scheme.codes[255][1]) == ("thick_cloud",)


# -- Sen1Floods11 ----------------------------------------------------------------------------
S1F11_DESC = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]


def make_sen1floods11(root: Path, chip: str = "Spain_0001") -> Path:
    dn = RNG.integers(100, 3000, (13, 16, 16)).astype(np.int16)
    dn[:, 0, 0] = 0  # no data
    tif(root / "S2" / f"{chip}_S2Hand.tif", dn, S1F11_DESC, crs="EPSG:4326", res=1e-4)
    sar = RNG.uniform(-25, -5, (2, 16, 16)).astype(np.float32)
    sar[:, 0, 1] = np.nan
    tif(root / "S1" / f"{chip}_S1Hand.tif", sar, ["VV", "VH"], crs="EPSG:4326", res=1e-4)
    label = np.zeros((16, 16), np.int16)
    label[8:] = 1
    label[0, :4] = -1
    tif(root / "Labels" / f"{chip}_LabelHand.tif", label, crs="EPSG:4326", res=1e-4)
    return root


def test_sen1floods11(tmp_path: Path) -> None:
    root = make_sen1floods11(tmp_path / "s1f11")
    (s,) = open_dataset("sen1floods11", root, None)
    assert names(s) == [*(f"B{i:02d}" for i in range(1, 9)), "B8A", "B09", "B10", "B11", "B12",
                        "VV", "VH"]  # fmt: skip
    assert s.scheme == "sen1floods11" and s.bands[13].type == "sar_vv"
    x, label = s.read()
    assert x.shape == (15, 16, 16) and np.isnan(x[:13, 0, 0]).all() and np.isnan(x[13:, 0, 1]).all()
    assert np.nanmax(x[:13]) < 0.3 and np.nanmin(x[13:]) >= -25  # DN / 1e4; dB as they are
    bits = load_scheme(s.scheme).bits(label, s.id)
    assert set(classes_of(int(bits[8, 0]))) == {"water"}
    assert set(classes_of(int(bits[4, 0]))) == {"land", "snow", "thin_cloud", "thick_cloud",
                                                "cloud_shadow"}  # fmt: skip
    assert bits[0, 0] == 0  # -1: unlabelled
    x, label = s.read((8, 0, 4, 4), [1, 14])  # a band subset of a window
    assert x.shape == (2, 4, 4) and (label == 1).all()
    assert {len(open_dataset("sen1floods11", root, sp, {"val_fraction": 0.0})) for sp in
            ("train", "all")} == {1}  # fmt: skip
    with pytest.raises(InputError, match="no Sen1Floods11 chips"):
        open_dataset("sen1floods11", root, "val", {"val_fraction": 0.0})
    (root / "S1" / "Spain_0001_S1Hand.tif").unlink()
    with pytest.raises(InputError, match="has no S1/Spain_0001_S1Hand.tif"):
        open_dataset("sen1floods11", root, None)


@pytest.mark.realdata
def test_real_sen1floods11_chip(shared_data: Path) -> None:
    from conftest import require

    from cloudmask_cli.training.labels import bits_of

    root = require(shared_data / "products/sen1floods11")
    (s,) = open_dataset("sen1floods11", root, "train")  # the one chip hashes into train
    assert s.id == "Spain_7370579" and s.shape == (512, 512) and len(s.bands) == 15
    x, label = s.read()
    b2 = x[1]
    assert np.isfinite(b2).all() and 0 < b2.min() and b2.max() < 1 and 0.05 < b2.mean() < 0.3
    assert np.nanmax(x[10]) < 0.01  # B10 cirrus: dark, the chip is cloud-free
    assert -50 < np.nanmean(x[13]) < 0 and -50 < np.nanmean(x[14]) < np.nanmean(x[13])  # VH < VV
    bits = load_scheme(s.scheme).bits(label, s.id)
    water = bits == bits_of(["water"])
    assert abs(water.mean() - 70035 / 512**2) < 1e-6 and (bits == 0).sum() == 99
    with pytest.raises(InputError, match="no Sen1Floods11 chips"):
        open_dataset("sen1floods11", root, "val")
