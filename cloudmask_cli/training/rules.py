"""Physically based label rules: narrow a partial label where a published spectral test decides.

Most labels say "clear" (land, water or snow) without saying which, so nothing teaches the model
that a lake is not cloud shadow or that clear snow is not cloud. A rule is a conservative,
published per-pixel test on the sample's own physical bands (found by wavelength, whatever the
sensor); a pixel passing it whose label set allows the rule's class becomes that class alone.
A rule never widens a set, never touches a set without its class, and never decides a set that
allows cloud (the tests do not tell thin cloud over water or snow from water or snow). A rule
needing a band the sample lacks labels nothing, or uses the weaker form its docstring gives.

Measure a rule on real labels (the share of each code's pixels passing it):
``python benchmarks/quality/rule_shares.py DATA [--kind KIND] [--split S] [--option k=v]``
(``DATA`` a dataset folder, or a training config: its datasets).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cloudmask_cli.sensors import Band
from cloudmask_cli.spectral import snow, vegetation, water
from cloudmask_cli.training.labels import (
    BIT,
    BITS_SCHEME,
    CLOUD_BITS,
    CLOUD_FREE,
    NO_DATA_BITS,
    bits_of,
    load_scheme,
)
from cloudmask_cli.training.sample import Box, RawSample


@dataclass(frozen=True)
class Rule:
    test: Callable[[np.ndarray, Sequence[Band]], np.ndarray]
    cls: str  # the class a passing pixel must allow (and, by default, becomes)
    # the classes a passing pixel's set is cut down to (default: ``cls`` alone)
    keep: tuple[str, ...] = ()

    @property
    def keep_bits(self) -> int:
        return bits_of(self.keep or (self.cls,))


RULES: dict[str, Rule] = {
    "water": Rule(water, "water"),
    "snow": Rule(snow, "snow"),
    # nothing in Biome's or On Cloud N's clear decides land: with water decided on lakes alone,
    # a model called clear land water (benchmarks/quality/README.md, recipe B)
    "vegetation": Rule(vegetation, "land", ("land", "cloud_shadow")),
}


def narrow(
    bits: np.ndarray, image: np.ndarray, bands: Sequence[Band], rules: Sequence[str]
) -> np.ndarray:
    """``bits`` (7-bit sets ``[h, w]``) narrowed by ``rules`` on ``image`` (all of the sample's
    ``bands``, physical): a passing pixel whose set allows the rule's class and no cloud is cut
    down to the rule's ``keep`` classes (by default that class alone); every other pixel keeps
    its set."""
    out = bits.copy()
    for name in rules:
        rule = RULES[name]
        cls, keep = BIT[rule.cls], np.uint8(rule.keep_bits)
        open_ = ((out & cls) != 0) & ((out & CLOUD_BITS) == 0) & ((out & ~keep) != 0)
        if open_.any():
            hit = open_ & rule.test(image, bands)
            out[hit] &= keep
    return out


@dataclass
class RuledSample(RawSample):
    """``sample`` whose labels ``rules`` narrow, read in the `BITS_SCHEME` scheme (with
    ``+cloud_free`` kept when the wrapped sample had it, so reports still list it). Every read
    reads all of the wrapped sample's bands (the rules need them, whatever subset is fed).
    Other attributes (``resolution``, ``origin``, ...) are the wrapped sample's."""

    sample: RawSample
    rules: tuple[str, ...]
    id: str = field(init=False)
    bands: tuple[Band, ...] = field(init=False)
    scheme: str = field(init=False)

    def __post_init__(self) -> None:
        unknown = [r for r in self.rules if r not in RULES]
        if unknown:
            raise ValueError(f"unknown label rule(s) {unknown} (known: {', '.join(RULES)})")
        self.rules = tuple(self.rules)
        self.id, self.bands = self.sample.id, self.sample.bands
        self.scheme = BITS_SCHEME + (CLOUD_FREE if self.sample.scheme.endswith(CLOUD_FREE) else "")

    @property
    def shape(self) -> tuple[int, int]:
        return self.sample.shape

    def __getattr__(self, name: str) -> Any:
        # only reached for attributes not found normally; guard copy/pickle's probes
        if name.startswith("__") or name == "sample":
            raise AttributeError(name)
        return getattr(self.sample, name)

    def _read(self, box: Box, bands: list[int]) -> tuple[np.ndarray, np.ndarray]:
        image, label = self.sample.read(box, None)
        bits = load_scheme(self.sample.scheme).bits(label, self.id)
        return image[bands], narrow(bits, image, self.sample.bands, self.rules)


# -- measuring the rules on real labels ------------------------------------------------------
Counts = dict[tuple[int, str], np.ndarray]  # (code, code name) -> [pixels, passing each rule]


def measure(samples: Sequence[RawSample], rules: Sequence[str], keep: Sequence[str] = ()) -> Counts:
    """Per label code: pixel count and how many pass each rule (on the bands named in ``keep``
    only, when given: e.g. a sensor's RGB+NIR subset)."""
    out: Counts = {}
    for s in samples:
        idx = [i for i, b in enumerate(s.bands) if not keep or b.name in keep]
        image, label = s.read(None, idx)
        bands = [s.bands[i] for i in idx]
        scheme = load_scheme(s.scheme)
        scheme.bits(label, s.id)  # codes the scheme lacks: an error naming the sample
        passed = [RULES[r].test(image, bands) for r in rules]
        for code in np.unique(label):
            at = label == code
            key = (int(code), scheme.codes[int(code)][0])
            row = np.array([at.sum()] + [(p & at).sum() for p in passed], dtype=np.int64)
            out[key] = out.get(key, 0) + row
    return out


def report(title: str, counts: Counts, rules: Sequence[str], scheme_bits: dict[int, int]) -> None:
    print(f"\n{title}")
    print(f"  {'code':>4} {'name':<26} {'pixels':>10} " + " ".join(f"{r + ' %':>9}" for r in rules))
    for (code, name), row in sorted(counts.items()):
        shares = " ".join(f"{100 * v / max(row[0], 1):9.3f}" for v in row[1:])
        print(f"  {code:>4} {name:<26} {row[0]:>10} {shares}")
    for j, r in enumerate(rules, 1):
        cls = BIT[RULES[r].cls]
        exact = [k for k in counts if scheme_bits.get(k[0]) == cls]
        if not exact:
            continue
        scored = [k for k in counts if scheme_bits.get(k[0], 0) & ~NO_DATA_BITS]
        tp = sum(counts[k][j] for k in exact)
        fired = sum(counts[k][j] for k in scored)
        truth = sum(counts[k][0] for k in exact)
        print(
            f"  {r} vs codes {sorted(k[0] for k in exact)} ({RULES[r].cls} only): precision "
            f"{tp / max(fired, 1):.3f}, recall {tp / max(truth, 1):.3f} ({fired} px fire)"
        )


def _reordered(sample: Any, names: Sequence[str]) -> Any:
    """A dataclass sample with its bands replaced by its sensor's bands ``names``."""
    import dataclasses

    from cloudmask_cli.sensors import bundled_sensors

    for sensor in bundled_sensors().values():
        if all(b in sensor.bands for b in sample.bands):
            bands = tuple(sensor.band(n) for n in names)
            if len(bands) != len(sample.bands):
                raise ValueError(
                    f"--band-order names {len(bands)} bands, {sample.id} has {len(sample.bands)}"
                )
            return dataclasses.replace(sample, bands=bands)
    raise ValueError(f"{sample.id}: its bands are not one bundled sensor's")
