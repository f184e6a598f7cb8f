"""Torch datasets over `RawSample` lists: random training crops, tiled validation, padding collate.

Items are dicts: ``x`` float32 ``[k, crop, crop]`` (physical values, NaN invalid),
``descriptors`` ``[k, 74]``, ``possible`` bool ``[7, crop, crop]`` (partial labels; all False =
unlabelled, e.g. padding). Pixels where every fed band is invalid are labelled ``no_data``.
`collate` pads the band axis to the batch's largest ``k`` and adds ``band_mask``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from cloudmask_cli.classes import CLASSES
from cloudmask_cli.descriptors import LENGTH
from cloudmask_cli.inference.tiling import tiles
from cloudmask_cli.sensors import Band
from cloudmask_cli.training.augment import (
    Augmentation,
    BandSampling,
    CropFocus,
    augment,
    choose_bands,
    draw_scale,
    jitter_radiometry,
    resample,
)
from cloudmask_cli.training.ground import BrightGround
from cloudmask_cli.training.labels import (
    NO_DATA_BITS,
    bits_from_possible,
    load_scheme,
    possible_from_bits,
)
from cloudmask_cli.training.other_sensors import OtherSensors, as_sensor
from cloudmask_cli.training.sample import Box, RawSample
from cloudmask_cli.training.surfaces import SnowAndWater
from cloudmask_cli.training.synthetic import SyntheticClouds

MAX_CROP_DRAWS = 20
FOCUS_POSITIONS = 4096  # pixels kept per sample and class to centre focused crops on
Key = tuple[int, int]  # (draw number, sample index): the draw seeds the randomness
SAMPLE_CACHE_BYTES = 1 << 30  # whole samples kept in memory by a training dataset (per worker)


def decided_positions(sample: RawSample, classes: Sequence[str]) -> dict[int, np.ndarray]:
    """Flat pixel indices (at most `FOCUS_POSITIONS`, evenly spread) where the sample's label
    allows only that class, per class code in ``classes`` the sample holds."""
    _, label = sample.read()
    possible = possible_from_bits(load_scheme(sample.scheme).bits(label, sample.id))
    alone = possible.sum(axis=0) == 1
    out = {}
    for name in classes:
        code = CLASSES.index(name)
        flat = np.flatnonzero(possible[code] & alone)
        if flat.size:
            step = max(flat.size // FOCUS_POSITIONS, 1)
            out[code] = flat[::step].astype(np.int64)
    return out


class SampleCache:
    """Whole samples (physical values, label bits) kept in memory up to ``budget`` bytes.

    A run draws thousands of crops from a few dozen samples, and decoding each crop from its
    files was a large share of a CPU training step (benchmarks/train_speed.py). A window of a
    whole read is the window read (checked on every labelled set: test_training_adapters), so
    the crops are the same; a sample that does not fit in what is left of the budget is read
    per crop as before."""

    def __init__(self, budget: int | None = None) -> None:
        self.budget = SAMPLE_CACHE_BYTES if budget is None else budget
        self._held: dict[int, tuple[np.ndarray, np.ndarray] | None] = {}

    def window(
        self, key: int, sample: RawSample, box: Box, band_idx: list[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(float32 ``[k, h, w]``, uint8 label bits ``[h, w]``) of ``box``, both new arrays."""
        if key not in self._held:
            h, w = sample.shape
            size = h * w * (4 * len(sample.bands) + 1)
            whole = None
            if size <= self.budget:
                x, label = sample.read()
                whole = (x, load_scheme(sample.scheme).bits(label, sample.id))
                self.budget -= size
            self._held[key] = whole
        whole = self._held[key]
        if whole is None:
            x, label = sample.read(box, band_idx)
            return x, load_scheme(sample.scheme).bits(label, sample.id)
        r, c, h, w = box
        return whole[0][band_idx, r : r + h, c : c + w], whole[1][r : r + h, c : c + w].copy()


def _item(
    sample: RawSample,
    box: Box,
    band_idx: list[int],
    crop: int,
    cache: tuple[SampleCache, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read a window (from ``cache``: (cache, sample key) when given), turn labels into class
    bits, pad to ``crop`` (NaN, unlabelled)."""
    if cache is None:
        x, label = sample.read(box, band_idx)
        bits = load_scheme(sample.scheme).bits(label, sample.id)
    else:
        x, bits = cache[0].window(cache[1], sample, box, band_idx)
    bits[~np.isfinite(x).any(axis=0)] = NO_DATA_BITS
    h, w = bits.shape
    if (h, w) != (crop, crop):
        xp = np.full((x.shape[0], crop, crop), np.nan, dtype=np.float32)
        bp = np.zeros((crop, crop), dtype=np.uint8)
        xp[:, :h, :w], bp[:h, :w] = x, bits
        x, bits = xp, bp
    return x, bits


def _pack(fed: Sequence[Band], x: np.ndarray, bits: np.ndarray) -> dict:
    desc = np.stack([b.descriptor for b in fed]).astype(np.float32)
    return {
        "x": torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
        "descriptors": torch.from_numpy(desc),
        "possible": torch.from_numpy(possible_from_bits(bits)),
    }


class TrainingDataset(Dataset):
    """Random crops of samples with random band subsets and augmentation.

    Indexed by ``(draw, sample_index)`` keys (see `MixedSampler`): the generator seeded with
    ``(seed, draw)`` decides the crop, the bands and the augmentation.
    """

    def __init__(
        self,
        samples: Sequence[RawSample],
        crop: int,
        bands: BandSampling = BandSampling(),
        aug: Augmentation = Augmentation(),
        seed: int = 0,
        synthetic: SyntheticClouds | None = None,
        ground: BrightGround | None = None,
        surfaces: SnowAndWater | None = None,
        focus: CropFocus = CropFocus(),
        other_sensors: OtherSensors = OtherSensors(),
    ) -> None:
        self.samples = list(samples)
        self.crop = crop
        self.bands = bands
        self.aug = aug
        self.seed = seed
        self.synthetic = synthetic
        self.ground = ground
        self.surfaces = surfaces
        self.focus = focus
        self.other_sensors = other_sensors
        self._positions: dict[int, dict[int, np.ndarray]] = {}  # per sample, read once
        self.cache = SampleCache()

    def _focused(self, index: int, rng: np.random.Generator) -> tuple[int, int] | None:
        """The (row, col) a focused crop is centred on, or None for a uniform crop."""
        if rng.random() >= self.focus.p:
            return None
        if index not in self._positions:
            self._positions[index] = decided_positions(self.samples[index], self.focus.classes)
        held = self._positions[index]
        if not held:
            return None
        codes = sorted(held)
        flat = held[codes[int(rng.integers(len(codes)))]]
        return divmod(int(flat[int(rng.integers(flat.size))]), self.samples[index].shape[1])

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: Key) -> dict:
        draw, index = key
        rng = np.random.default_rng([self.seed, 0x5EED, draw])
        sample = self.samples[index]
        h, w = sample.shape
        # fed as another sensor: every band read, the subset drawn from the bands made of them
        # (no draw when off, so earlier runs keep their stream)
        target = self.other_sensors.draw(rng)
        band_idx = (list(range(len(sample.bands))) if target is not None
                    else choose_bands(sample.bands, rng, self.bands))  # fmt: skip
        # no draw at all when off: the runs made before focusing keep their crops
        centre = self._focused(index, rng) if self.focus.p > 0 else None
        # the crop's footprint in sample pixels: `crop` unless the ground sampling distance is
        # augmented (then resampled to `crop` below); no draw when off
        factor = draw_scale(rng, self.aug)
        size = self.crop if factor == 1.0 else max(8, min(round(self.crop * factor), max(h, w)))
        # A crop with no valid pixel teaches nothing (inference skips such windows): draw
        # another crop.
        for _ in range(MAX_CROP_DRAWS):
            if centre is not None:
                r = min(max(centre[0] - size // 2, 0), max(h - size, 0))
                c = min(max(centre[1] - size // 2, 0), max(w - size, 0))
                centre = None  # one try: its centre pixel is labelled, so valid but for NaN bands
            else:
                r = int(rng.integers(0, max(h - size, 0) + 1))
                c = int(rng.integers(0, max(w - size, 0) + 1))
            box = (r, c, min(size, h), min(size, w))
            x, bits = _item(sample, box, band_idx, size, (self.cache, index))
            if np.isfinite(x).any():
                break
        if size != self.crop:
            x, bits = resample(x, bits, self.crop)
        fed = [sample.bands[i] for i in band_idx]
        x, bits = augment(x, bits, fed, rng, self.aug)
        if self.ground is not None:
            # clear land rewritten as bright ground before any cloud is drawn over it
            x, possible = self.ground(x, fed, possible_from_bits(bits), rng)
            bits = bits_from_possible(possible)
        if self.surfaces is not None:
            # snow fields and lakes, also before the clouds (training/surfaces.py)
            x, possible = self.surfaces(x, fed, possible_from_bits(bits), rng)
            bits = bits_from_possible(possible)
        if self.synthetic is not None:
            # clouds rendered over the real pixels, labelled exactly (training/synthetic.py)
            pixel = getattr(sample, "resolution", None) or getattr(sample, "pixel_size", None)
            if pixel is not None or size != self.crop:
                pixel = (pixel or self.synthetic.pixel_size) * size / self.crop  # resampled
            x, possible = self.synthetic(x, fed, possible_from_bits(bits), rng, pixel_size=pixel)
            bits = bits_from_possible(possible)
        if target is not None:
            x, fed = as_sensor(x, fed, target, self.other_sensors.min_cover)
            keep = choose_bands(fed, rng, self.bands)
            x, fed = x[keep], [fed[i] for i in keep]
        x = jitter_radiometry(x, fed, rng, self.aug)
        return _pack(fed, x, bits)


class MixedSampler(Sampler[Key]):
    """Draws ``draws_per_epoch`` keys per epoch: a dataset with probability proportional to its
    weight, then a sample of it uniformly. Deterministic in ``(seed, epoch)``; with several
    processes (DDP) each rank takes every ``world``-th draw; ``start`` skips this rank's first
    draws (mid-epoch resume)."""

    def __init__(
        self,
        sizes: Sequence[int],
        weights: Sequence[float],
        draws_per_epoch: int,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        if len(sizes) != len(weights) or not sizes:
            raise ValueError("one weight per dataset is needed")
        if any(n <= 0 for n in sizes):
            raise ValueError("every dataset needs at least one sample")
        w = np.asarray(weights, dtype=np.float64)
        if (w < 0).any() or w.sum() <= 0:
            raise ValueError("dataset weights must be >= 0 with a positive sum")
        self.sizes = list(sizes)
        self.p = w / w.sum()
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.draws = draws_per_epoch
        self.seed, self.rank, self.world = seed, rank, world
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def keys(self, epoch: int) -> list[Key]:
        rng = np.random.default_rng([self.seed, 0xD1CE, epoch])
        which = rng.choice(len(self.sizes), size=self.draws, p=self.p)
        local = np.floor(rng.random(self.draws) * np.asarray(self.sizes)[which]).astype(np.int64)
        index = self.offsets[which] + local
        base = epoch * self.draws
        return [(base + i, int(index[i])) for i in range(self.draws)][self.rank :: self.world]

    def __iter__(self) -> Iterator[Key]:
        return iter(self.keys(self.epoch)[self.start :])

    def __len__(self) -> int:
        return len(self.keys(self.epoch)) - self.start


class ValidationDataset(Dataset):
    """Every sample tiled into ``crop``-pixel windows (last ones clamped), all bands, no
    augmentation: the whole held-out set is scored."""

    def __init__(self, samples: Sequence[RawSample], crop: int) -> None:
        self.samples = list(samples)
        self.crop = crop
        self.items = [(i, box) for i, s in enumerate(self.samples) for box in tiles(s.shape, crop)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        i, box = self.items[index]
        sample = self.samples[i]
        band_idx = list(range(len(sample.bands)))
        x, bits = _item(sample, box, band_idx, self.crop)
        return _pack(sample.bands, x, bits)


def collate(items: Sequence[dict]) -> dict[str, torch.Tensor]:
    """Stack items, padding the band axis (x NaN, descriptors 0) and marking real bands."""
    n = max(it["x"].shape[0] for it in items)
    b = len(items)
    h, w = items[0]["x"].shape[1:]
    x = torch.full((b, n, h, w), float("nan"), dtype=torch.float32)
    desc = torch.zeros((b, n, LENGTH), dtype=torch.float32)
    mask = torch.zeros((b, n), dtype=torch.bool)
    for j, it in enumerate(items):
        k = it["x"].shape[0]
        x[j, :k] = it["x"]
        desc[j, :k] = it["descriptors"]
        mask[j, :k] = True
    possible = torch.stack([it["possible"] for it in items])
    return {"x": x, "descriptors": desc, "band_mask": mask, "possible": possible}
