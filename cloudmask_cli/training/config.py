"""The training configuration (YAML): datasets and their weights, model, recipe, output.

Every section has defaults (the paper's recipe, IV-B); unknown keys are errors naming the file,
so a typo never silently falls back to a default. See ``examples/train-tiny.yaml``. Each section
is a schema (`cloudmask_cli.schema`): parsed once, into typed objects; ``to_dict`` is the
config as written into every checkpoint it trains.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from dataclasses import asdict, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import yaml
from pydantic import Field, StrictBool, field_validator

from cloudmask_cli.errors import InputError
from cloudmask_cli.schema import checked, parse, reads_on, schema
from cloudmask_cli.training.augment import Augmentation, BandSampling, CropFocus
from cloudmask_cli.training.labels import CLOUD_BITS, CLOUD_FREE, load_scheme
from cloudmask_cli.training.other_sensors import OtherSensors
from cloudmask_cli.training.rules import RULES, RuledSample
from cloudmask_cli.training.teacher import TaughtSample, Teacher

if TYPE_CHECKING:
    from cloudmask_cli.training.ground import BrightGround
    from cloudmask_cli.training.surfaces import SnowAndWater
    from cloudmask_cli.training.synthetic import SyntheticClouds


@schema
class DatasetSpec:
    """One dataset: where, in which layout (``kind``), its sampling weight and its splits."""

    path: str
    kind: str = "training"
    name: str = ""
    weight: float = 1.0
    train: str | None = "train"  # split used for training (None: the whole dataset)
    val: str | None = "val"  # held-out split validated each epoch (None: not validated)
    options: dict[str, Any] = field(default_factory=dict)
    # samples never used, in any split, each with the reason (``{id: reason}``): labels found
    # wrong on review. Training on them teaches the errors; scoring on them measures the labels.
    exclude: dict[str, str] = field(default_factory=dict)
    # A sample whose labels hold no cloud anywhere has no cloud shadow either (a shadow lies
    # within a few km of its cloud): its partial "clear" loses the shadow class. For datasets
    # whose clear allows shadow only because shadows were not marked (Biome, On Cloud N);
    # without it, nothing teaches that dark water or dark forest under a clear sky is not shadow.
    shadow_needs_cloud: StrictBool = False
    # label rules (`cloudmask_cli.training.rules.RULES`: water, snow) narrowing each sample's
    # partial labels where a published spectral test decides, e.g. clear -> water on a lake
    rules: tuple[str, ...] = ()
    # a peer model narrowing partial labels where it is confident and trusted
    # (`cloudmask_cli.training.teacher.Teacher`'s keys: peer, threshold, trust, over_cloud)
    teacher: dict[str, Any] | None = None

    @field_validator("exclude", mode="before")
    @classmethod
    def _reasons(cls, v: Any) -> dict[str, str]:
        if not isinstance(v, dict) or not all(isinstance(r, str) and r.strip() for r in v.values()):
            raise reads_on("must map each sample id to the reason it is left out")
        return {str(k): r for k, r in v.items()}

    @field_validator("rules", mode="before")
    @classmethod
    def _rules(cls, v: Any) -> tuple[str, ...]:
        if not isinstance(v, (list, tuple)) or not all(isinstance(r, str) for r in v):
            raise reads_on(f"must list rule names ({', '.join(RULES)})")
        unknown = [r for r in v if r not in RULES]
        if unknown:
            raise ValueError(f"unknown rule(s) {unknown} (known: {', '.join(RULES)})")
        return tuple(v)

    @field_validator("teacher", mode="before")
    @classmethod
    def _teacher(cls, v: Any) -> Any:
        if v is not None:
            Teacher.from_config(v)  # its ValueError names what is wrong
        return v

    def prepare(self, samples: list[Any], narrow: bool = True) -> list[Any]:
        """``samples`` without the excluded ones; with ``shadow_needs_cloud``, the cloud-free
        ones (their whole label read once) as copies read in their scheme's cloud-free form;
        then, unless ``narrow`` is false, `narrow`. Evaluation reads ``narrow=False``: a
        figure scores what the real labels say, not what the rules and teacher made of them."""
        kept = [s for s in samples if s.id not in self.exclude]
        if self.shadow_needs_cloud:
            kept = [_cloud_free(s) if _holds_no_cloud(s) else s for s in kept]
        return self.narrow(kept) if narrow else kept

    def narrow(self, samples: list[Any]) -> list[Any]:
        """With ``rules``, each sample wrapped in a `RuledSample`; with ``teacher``, lastly, in
        a `TaughtSample` (so a set a rule decided stays as it is; a sample the peer cannot run
        on is an `InputError` here). Training labels only."""
        kept = list(samples)
        if self.rules:
            kept = [RuledSample(s, tuple(self.rules)) for s in kept]
        if self.teacher is not None:
            teacher = Teacher.from_config(self.teacher)
            kept = [TaughtSample(s, teacher, self.name or self.path) for s in kept]
        return kept


def _teacher(raw: dict[str, Any], where: str, path: str) -> dict[str, Any]:
    """A dataset's ``teacher`` in full (as a plain mapping); its peer must be installed."""
    from cloudmask_cli.training.peers import PeerUnavailable, peer_predictor

    teacher = Teacher.from_config(raw)
    try:  # builds nothing heavy: the model loads on first use
        peer_predictor(teacher.peer, soft=True)
    except PeerUnavailable as exc:
        raise InputError(path, f"{where}: {exc.problem}") from None
    return teacher.to_dict()


def _holds_no_cloud(sample: Any) -> bool:
    _, label = sample.read(None, [])
    return not (load_scheme(sample.scheme).bits(label, sample.id) & CLOUD_BITS).any()


def _cloud_free(sample: Any) -> Any:
    out = copy.copy(sample)
    out.scheme = f"{sample.scheme}{CLOUD_FREE}"
    return out


@schema
class Optimiser:
    """AdamW with a linear warm-up, then lower rates on validation plateaus (paper IV-B)."""

    lr: float = 1e-4
    warmup_start: float = 5e-6
    warmup_steps: int = 1000
    weight_decay: float = 1e-4
    plateau_lrs: tuple[float, ...] = (2e-5, 5e-6)
    patience: int = 2  # epochs without a better validation loss before the next rate
    grad_clip: float | None = 1.0
    # after the warm-up, a half cosine from ``lr`` down towards this rate, reached as the run
    # ends (step epochs × steps_per_epoch), instead of plateaus: a fixed-length run then ends on small steps, so its
    # last weights do not hang on where the last few large steps happened to land
    decay_to: float | None = None

    def __post_init__(self) -> None:
        if self.decay_to is not None:
            if not 0 <= self.decay_to <= self.lr:
                raise ValueError(f"decay_to must be in [0, lr], got {self.decay_to!r}")
            if self.plateau_lrs:
                raise ValueError("decay_to replaces plateau_lrs: set plateau_lrs: []")


@schema
class LossWeights:
    cross_entropy: float = 1.0  # ambiguous cross-entropy (paper eq. 6)
    recovery: float = 1.0  # band-recovery MSE (paper IV-B)
    recovery_pixels: int | None = 4096  # per sample, on a regular grid (None: every pixel)
    # cross-entropy weight per class (others 1), e.g. {water: 3, snow: 3}: a pixel weighs as
    # the lightest class its label allows, so rare decided classes are not drowned out
    classes: dict[str, float] | None = None

    def __post_init__(self) -> None:
        if self.classes is None:
            return
        from cloudmask_cli.classes import CLASSES

        for name, w in self.classes.items():
            if name not in CLASSES[:-1]:
                raise ValueError(f"unknown class {name!r} in classes (known: {CLASSES[:-1]})")
            if not w > 0:
                raise ValueError(f"classes: the weight of {name} must be > 0, got {w!r}")

    @functools.cached_property  # read every training step
    def class_weight_vector(self) -> list[float] | None:
        """The weights in class-code order (no data 1), or None when unweighted."""
        from cloudmask_cli.classes import CLASSES

        if not self.classes:
            return None
        return [float(self.classes.get(c, 1.0)) for c in CLASSES]


PositiveInt = Annotated[int, Field(strict=True, ge=1)]


@schema
class TrainConfig:
    datasets: tuple[DatasetSpec, ...]
    model: dict[str, Any] = field(default_factory=lambda: {"segformer": "b0"})
    crop: PositiveInt = 256
    batch_size: PositiveInt = 8
    epochs: PositiveInt = 50
    steps_per_epoch: PositiveInt = 1000
    val_batch_size: PositiveInt = 8
    val_max_batches: int | None = None
    # Share of each dataset's training samples (by a hash of the sample id) kept out of
    # training to choose the best checkpoint and drive the rate plateaus. 0: the `val` splits
    # do that, and the figures reported on them are then optimistic (selection bias).
    selection_fraction: float = 0.0
    # what picks `best` and the rate plateaus: "loss" (mean ambiguous cross entropy), "f1"
    # (1 - mean of the pooled cloud and invalid F1; bounded, so one confidently wrong sample
    # cannot outweigh the others) or "last" (no choice: a fixed length, `best` is the final
    # weights or their average; for a short fine-tune whose selection samples cannot judge it)
    select_on: Literal["loss", "f1", "last"] = "loss"
    # Decay of an exponential moving average of the weights (e.g. 0.99: about the last 100
    # steps); the average is what is validated and saved as `best`. 0: no average.
    ema: float = 0.0
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # bf16/fp16 autocast on CUDA only
    workers: int = 0
    threads: int | None = None  # torch CPU threads (None: torch's default)
    out: str = "runs/cloudmask"
    log_every: int = 10
    checkpoint_every: int | None = None  # also save the training state every N steps
    checkpoint_dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    bands: BandSampling = BandSampling()
    augment: Augmentation = Augmentation()
    loss: LossWeights = LossWeights()
    optimiser: Optimiser = Optimiser()
    focus: CropFocus = CropFocus()  # crops centred on rare decided classes (training.datasets)
    # crops fed as sensors no labelled sample comes from (training.other_sensors)
    other_sensors: OtherSensors = OtherSensors()
    synthetic: dict[str, Any] | None = None  # SyntheticClouds settings; None: no synthetic clouds
    ground: dict[str, Any] | None = None  # BrightGround settings; None: no synthetic bright ground
    surfaces: dict[str, Any] | None = None  # SnowAndWater settings; None: no synthetic snow/water
    path: str = ""  # the YAML it came from
    # the synthetic / ground / surfaces objects, built once per instance in __post_init__
    _built: ClassVar[dict[str, Any]]

    def __post_init__(self) -> None:
        if not self.datasets:
            raise ValueError("'datasets' must list at least one dataset")
        if not 0 <= self.selection_fraction < 1:
            raise ValueError(
                f"selection_fraction must be in [0, 1), got {self.selection_fraction!r}"
            )
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema must be in [0, 1), got {self.ema!r}")
        if self.select_on == "last" and self.optimiser.plateau_lrs:
            # no score drives the rate either: say so rather than silently never lowering it
            raise ValueError(
                "select_on: last has no score to lower the rate on: set plateau_lrs: []"
            )
        if self.select_on == "last" and self.selection_fraction > 0:
            # samples kept out of training to pick nothing
            raise ValueError("select_on: last picks no checkpoint: set selection_fraction: 0")
        total = self.epochs * self.steps_per_epoch
        if self.optimiser.decay_to is not None and self.optimiser.warmup_steps >= total:
            raise ValueError(f"optimiser.decay_to: warmup_steps {self.optimiser.warmup_steps} "
                             f"leaves none of the {total} steps to decay over")  # fmt: skip
        # the sections kept as written (a checkpoint records them so), built once here
        from cloudmask_cli.training.ground import BrightGround
        from cloudmask_cli.training.surfaces import SnowAndWater
        from cloudmask_cli.training.synthetic import SyntheticClouds

        built: dict[str, Any] = {}
        for key, cls in (("synthetic", SyntheticClouds), ("ground", BrightGround),
                         ("surfaces", SnowAndWater)):  # fmt: skip
            raw = getattr(self, key)
            try:
                built[key] = cls.from_config(raw) if raw is not None else None
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{key}: {exc}") from None
        object.__setattr__(self, "_built", built)

    @property
    def synthetic_clouds(self) -> SyntheticClouds | None:
        """The `SyntheticClouds` the ``synthetic`` section describes (None: none)."""
        return self._built["synthetic"]

    @property
    def bright_ground(self) -> BrightGround | None:
        """The `BrightGround` the ``ground`` section describes (None: none)."""
        return self._built["ground"]

    @property
    def snow_and_water(self) -> SnowAndWater | None:
        """The `SnowAndWater` the ``surfaces`` section describes (None: none)."""
        return self._built["surfaces"]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("path")
        if self.other_sensors == OtherSensors():  # configs from before it record what they did
            d.pop("other_sensors")
        return json.loads(json.dumps(d))  # plain lists and dicts, as YAML and JSON store them


def parse_config(data: Any, path: str = "<config>", base: Path | None = None) -> TrainConfig:
    """Validate a parsed YAML training config; dataset paths are relative to ``base``."""
    if not isinstance(data, dict):
        raise InputError(path, "a training config is a mapping (see examples/train-tiny.yaml)")
    raw_sets = data.get("datasets")
    if not isinstance(raw_sets, list) or not raw_sets:
        raise InputError(path, "'datasets' must list at least one dataset")
    if "model" in data and not isinstance(data["model"], dict):
        raise InputError(path, "model must be a mapping of architecture keys (e.g. segformer: b0)")
    if "path" in data:  # set from the file's name, never written
        raise InputError(path, "unknown key(s) ['path'] (the config's own path is not a key)")
    # a section left empty (every line commented out: YAML null) takes its defaults
    sections = ("bands", "augment", "loss", "optimiser", "focus", "other_sensors")
    data = {k: v for k, v in data.items() if not (k in sections and v is None)}
    cfg = parse(TrainConfig, data, path)
    sets = []
    for i, spec in enumerate(cfg.datasets):
        if spec.teacher is not None:
            spec = replace(spec, teacher=_teacher(spec.teacher, f"datasets[{i}].teacher", path))
        p = Path(spec.path).expanduser()
        if base is not None and not p.is_absolute():
            p = base / p
        sets.append(replace(spec, path=str(p), name=spec.name or f"{spec.kind}{i}"))
    return checked(lambda: replace(cfg, datasets=tuple(sets), path=path), path, TrainConfig)


def load_config(path: str | os.PathLike[str]) -> TrainConfig:
    """Read and validate a training config YAML."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "training config not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        raise InputError(path, "not valid YAML") from None
    return parse_config(data, str(path), path.parent)
