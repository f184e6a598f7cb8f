"""A weak teacher: a peer cloud mask narrows partial labels where it is confident.

Most labels say "clear" without saying whether an unmarked cloud shadow hides in it (Biome
scenes without shadow annotation, On Cloud N's "not cloud"), so nothing teaches that dark water
or dark forest under a clear sky is not shadow. A teacher is a peer model
(`cloudmask_cli.training.peers`, ukis-csmask) run once on each whole sample; where its top call
(clear = land + water + snow, cloud, or shadow, summed probabilities) reaches ``threshold``
and is trusted, a pixel's label set becomes its intersection with that call's classes.
A teacher never widens a set and never overrules a label: an empty intersection, a decided
(single-class) label and an unchanged set are left as they are, and a set allowing cloud keeps
its cloud classes (``over_cloud`` lifts that). By default only "clear" is trusted, i.e. it only
removes cloud_shadow from a clear set: ukis-csmask calls ~22 % of a clear Sen1Floods11 flood
chip shadow, so its shadow call would teach that flood water is shadow.

Measure a teacher on real labels (per label code: the share narrowed and the share of each
confident call; where the labels decide shadow vs not, how often the calls are wrong):
``python benchmarks/quality/teacher_shares.py DATA --kind KIND [--peer P] [--threshold T]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from pydantic import StrictBool, field_validator

from cloudmask_cli.errors import InputError
from cloudmask_cli.schema import reads_on, schema, validated
from cloudmask_cli.sensors import Band
from cloudmask_cli.training.labels import (
    BIT,
    BITS_SCHEME,
    CLOUD_BITS,
    CLOUD_FREE,
    NO_DATA_BITS,
    bits_of,
    load_scheme,
)
from cloudmask_cli.training.peers import (
    PeerUnavailable,
    Predictor,
    peer_predictor,
    ukis_band_indexes,
)
from cloudmask_cli.training.sample import Box, RawSample

# A teacher's calls: the classes a confident call allows (its probability is theirs summed).
# no_data is in every call: the peer never sees it (it is fed 0 there), so it cannot rule it out.
CALLS: dict[str, int] = {
    "clear": bits_of(["land", "water", "snow"]),
    "cloud": CLOUD_BITS,
    "shadow": BIT["cloud_shadow"],
}
# peers that give per-pixel probabilities of all three calls (s2cloudless has no shadow class)
TEACHERS = ("ukis-csmask", "ukis-csmask-l2a")


@schema
class Teacher:
    """A teacher's settings (a dataset's ``teacher:`` in a training config)."""

    peer: str = "ukis-csmask"
    threshold: float = 0.9
    trust: tuple[str, ...] = ("clear",)
    over_cloud: StrictBool = False  # trusted clear / shadow calls may remove a set's cloud classes

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold(cls, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.5 < v <= 1:
            # above 0.5 the top call is the only one that can reach it
            raise reads_on(f"must be in (0.5, 1], got {v!r}")
        return v

    @field_validator("trust", mode="before")
    @classmethod
    def _trust(cls, v: Any) -> Any:
        if not isinstance(v, (list, tuple)) or not v:
            raise reads_on(f"must list some of {', '.join(CALLS)}, got {v!r}")
        return v

    def __post_init__(self) -> None:
        if self.peer not in TEACHERS:
            raise ValueError(f"unknown teacher peer {self.peer!r} (known: {', '.join(TEACHERS)})")
        if unknown := [n for n in self.trust if n not in CALLS]:
            raise ValueError(f"unknown trust name(s) {unknown} (known: {', '.join(CALLS)})")

    @classmethod
    def from_config(cls, raw: Any) -> Teacher:
        """Validate a ``teacher:`` mapping (ValueError saying what is wrong)."""
        if not isinstance(raw, dict):
            raise ValueError("must be a mapping, e.g. {peer: ukis-csmask, threshold: 0.9}")
        return validated(cls, raw)

    def to_dict(self) -> dict[str, Any]:
        return {
            "peer": self.peer,
            "threshold": float(self.threshold),
            "trust": list(self.trust),
            "over_cloud": self.over_cloud,
        }


def teacher_calls(
    probs: np.ndarray,
    threshold: float,
    trust: Sequence[str],
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """uint8 ``[h, w]``: the classes (7-bit set) of each pixel's confident, trusted call from
    class probabilities ``probs`` ``[7, h, w]``; 0 where there is none (below ``threshold``,
    not trusted, or not ``valid``)."""
    names = list(CALLS)
    member = [((CALLS[n] >> np.arange(len(probs))) & 1).astype(bool) for n in names]
    groups = np.stack([probs[m].sum(axis=0) for m in member])
    top, p = groups.argmax(axis=0), groups.max(axis=0)
    sure = p >= np.asarray(threshold, p.dtype)  # in the probabilities' precision: 0.9 is 0.9
    out = np.zeros(probs.shape[1:], np.uint8)
    for j, name in enumerate(names):
        if name in trust:
            out[(top == j) & sure] = CALLS[name] | NO_DATA_BITS
    if valid is not None:
        out[~valid] = 0
    return out


def apply_calls(bits: np.ndarray, calls: np.ndarray, over_cloud: bool = False) -> np.ndarray:
    """``bits`` (7-bit sets) narrowed to ``bits & calls`` where that is a non-empty, strictly
    smaller set, the set is not decided (one class) and, unless ``over_cloud``, it keeps the
    set's cloud classes (a clear call never rules out cloud). A new array."""
    new = bits & calls
    ok = (calls != 0) & (new != 0) & (new != bits) & ((bits & (bits - 1)) != 0)
    if not over_cloud:
        ok &= (new & CLOUD_BITS) == (bits & CLOUD_BITS)
    return np.where(ok, new, bits).astype(np.uint8)


def narrow_by_teacher(
    bits: np.ndarray,
    probs: np.ndarray,
    threshold: float = 0.9,
    trust: Sequence[str] = ("clear",),
    over_cloud: bool = False,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """``bits`` ``[h, w]`` narrowed by a teacher's probabilities ``probs`` ``[7, h, w]``
    (`teacher_calls`, then `apply_calls`)."""
    return apply_calls(bits, teacher_calls(probs, threshold, trust, valid), over_cloud)


@lru_cache(maxsize=4)
def _predictor(peer: str) -> Predictor:
    # one per process: its onnxruntime sessions load lazily, once
    return peer_predictor(peer, soft=True)


def teach(sample: RawSample, peer: str) -> tuple[np.ndarray, np.ndarray]:
    """The peer's probabilities ``[7, h, w]`` on the whole ``sample`` (all its bands: the peer
    needs the context a crop lacks) and where they are valid (every band it reads finite)."""
    idx = ukis_band_indexes(sample.bands)
    image, _ = sample.read(None, None)
    probs = _predictor(peer)(image, np.empty((0,), np.float32), sample.bands)
    return probs, np.isfinite(image[idx]).all(axis=0)


# per process: (dataset, sample id, teacher) -> its calls on the whole sample (uint8 [h, w])
_CALLS: dict[tuple[str, str, Teacher], np.ndarray] = {}


@dataclass
class TaughtSample(RawSample):
    """``sample`` whose labels ``teacher`` narrows, read in the `BITS_SCHEME` scheme (with
    ``+cloud_free`` kept, as `RuledSample`). The teacher runs on the first read, on the whole
    sample, and its calls are kept in memory (per process); each read slices its box from them.
    ``dataset`` names the sample's dataset in errors. Raises `InputError` at once when the
    peer cannot run on the sample's bands."""

    sample: RawSample
    teacher: Teacher
    dataset: str = ""
    id: str = field(init=False)
    bands: tuple[Band, ...] = field(init=False)
    scheme: str = field(init=False)

    def __post_init__(self) -> None:
        self.id, self.bands = self.sample.id, self.sample.bands
        self.scheme = BITS_SCHEME + (CLOUD_FREE if self.sample.scheme.endswith(CLOUD_FREE) else "")
        try:  # a missing band is found here, before any training, not mid-epoch
            ukis_band_indexes(self.bands)
        except PeerUnavailable as exc:
            raise self._error(exc) from None

    def _error(self, exc: InputError) -> InputError:
        where = f"dataset {self.dataset}, sample {self.id}" if self.dataset else self.id
        return InputError(where, f"teacher {self.teacher.peer} cannot run: {exc.problem}")

    @property
    def shape(self) -> tuple[int, int]:
        return self.sample.shape

    def __getattr__(self, name: str) -> Any:
        # only reached for attributes not found normally; guard copy/pickle's probes
        if name.startswith("__") or name == "sample":
            raise AttributeError(name)
        return getattr(self.sample, name)

    def calls(self) -> np.ndarray:
        """The teacher's confident, trusted calls on the whole sample (`teacher_calls`)."""
        key = (self.dataset, self.id, self.teacher)
        if key not in _CALLS:
            try:
                probs, valid = teach(self.sample, self.teacher.peer)
            except PeerUnavailable as exc:  # e.g. not installed in this environment
                raise self._error(exc) from None
            _CALLS[key] = teacher_calls(probs, self.teacher.threshold, self.teacher.trust, valid)
        return _CALLS[key]

    def _read(self, box: Box, bands: list[int]) -> tuple[np.ndarray, np.ndarray]:
        image, label = self.sample.read(box, bands)
        bits = load_scheme(self.sample.scheme).bits(label, self.id)
        calls = _window(self.calls(), box)
        if calls.shape != bits.shape:  # a reader that clips at the edge (.npz) as numpy does
            r, c, h, w = box
            calls = self.calls()[r : r + h, c : c + w]
        return image, apply_calls(bits, calls, self.teacher.over_cloud)


def _window(a: np.ndarray, box: Box) -> np.ndarray:
    """``a[r:r+h, c:c+w]``, 0 (no call) where the box runs past ``a`` (a boundless read)."""
    r, c, h, w = box
    out = np.zeros((h, w), a.dtype)
    r0, c0 = max(r, 0), max(c, 0)
    r1, c1 = min(r + h, a.shape[0]), min(c + w, a.shape[1])
    if r1 > r0 and c1 > c0:
        out[r0 - r : r1 - r, c0 - c : c1 - c] = a[r0:r1, c0:c1]
    return out


# -- measuring a teacher on real labels ------------------------------------------------------
# (scheme, code, code name) -> [pixels, narrowed, called clear, called cloud, called shadow]
Counts = dict[tuple[str, int, str], np.ndarray]


def measure(samples: Sequence[RawSample], teacher: Teacher) -> Counts:
    """Per label code: pixels, how many ``teacher`` narrows, and how many get each confident
    call (trusted or not)."""
    out: Counts = {}
    for s in samples:
        scheme = load_scheme(s.scheme)
        _, label = s.read(None, [])
        bits = scheme.bits(label, s.id)
        try:
            probs, valid = teach(s, teacher.peer)
        except PeerUnavailable as exc:
            raise InputError(s.id, f"teacher {teacher.peer} cannot run: {exc.problem}") from None
        every = teacher_calls(probs, teacher.threshold, tuple(CALLS), valid)
        trusted = teacher_calls(probs, teacher.threshold, teacher.trust, valid)
        narrowed = apply_calls(bits, trusted, teacher.over_cloud) != bits
        called = [every == (c | NO_DATA_BITS) for c in CALLS.values()]
        for code in np.unique(label):
            at = label == code
            key = (s.scheme, int(code), scheme.codes[int(code)][0])
            row = [at.sum(), (narrowed & at).sum()] + [(c & at).sum() for c in called]
            out[key] = out.get(key, 0) + np.array(row, dtype=np.int64)
    return out


def decided(bits: int) -> str | None:
    """``shadow`` for a set that is cloud shadow alone, ``clear`` for a clear set that rules
    shadow out (no cloud either), else None (the label does not decide shadow vs not)."""
    if bits == BIT["cloud_shadow"]:
        return "shadow"
    if bits & ~NO_DATA_BITS and not bits & (BIT["cloud_shadow"] | CLOUD_BITS):
        return "clear"
    return None


def report(title: str, counts: Counts, teacher: Teacher) -> None:
    print(f"\n{title}: {teacher.peer}, threshold {teacher.threshold}, trust {list(teacher.trust)}")
    head = f"  {'scheme':<22} {'code':>4} {'name':<24} {'pixels':>10} {'narrowed %':>11}"
    print(head + "".join(f" {'call ' + n + ' %':>14}" for n in CALLS))
    for (scheme, code, name), row in sorted(counts.items()):
        shares = "".join(f" {100 * v / max(row[0], 1):14.3f}" for v in row[2:])
        print(
            f"  {scheme:<22} {code:>4} {name:<24} {row[0]:>10} "
            f"{100 * row[1] / max(row[0], 1):11.3f}{shares}"
        )
    truth: dict[str, np.ndarray] = {"clear": np.zeros(5, np.int64), "shadow": np.zeros(5, np.int64)}
    for (scheme, code, _), row in counts.items():
        kind = decided(load_scheme(scheme).codes[code][1])
        if kind:
            truth[kind] += row
    clear, shadow = truth["clear"], truth["shadow"]
    if not clear[0] or not shadow[0]:
        print("  no labels here decide shadow vs not shadow (both): no error rates")
        return
    # columns: 2 clear call, 4 shadow call
    for call, col, right, wrong in (("not shadow", 2, clear, shadow), ("shadow", 4, shadow, clear)):
        made = right[col] + wrong[col]
        print(
            f"  '{call}' calls on pixels the labels decide ({clear[0]} clear, {shadow[0]} "
            f"shadow): {made}, wrong {wrong[col]} ({100 * wrong[col] / max(made, 1):.2f} %); "
            f"{100 * wrong[col] / wrong[0]:.2f} % of the "
            f"{'shadow' if call == 'not shadow' else 'clear'} pixels get it"
        )
