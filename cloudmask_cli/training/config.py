"""The training configuration (YAML): datasets and their weights, model, recipe, output.

Every section has defaults (the paper's recipe, IV-B); unknown keys are errors naming the file,
so a typo never silently falls back to a default. See ``examples/train-tiny.yaml``.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from cloudmask_cli.errors import InputError
from cloudmask_cli.training.augment import Augmentation, BandSampling, CropFocus
from cloudmask_cli.training.labels import CLOUD_BITS, CLOUD_FREE, load_scheme
from cloudmask_cli.training.rules import RULES, RuledSample
from cloudmask_cli.training.teacher import TaughtSample, Teacher


@dataclass(frozen=True)
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
    shadow_needs_cloud: bool = False
    # label rules (`cloudmask_cli.training.rules.RULES`: water, snow) narrowing each sample's
    # partial labels where a published spectral test decides, e.g. clear -> water on a lake
    rules: tuple[str, ...] = ()
    # a peer model narrowing partial labels where it is confident and trusted
    # (`cloudmask_cli.training.teacher.Teacher`'s keys: peer, threshold, trust, over_cloud)
    teacher: dict[str, Any] | None = None

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


def _teacher(raw: Any, where: str, path: str) -> dict[str, Any]:
    """A dataset's validated ``teacher`` (as a plain mapping); its peer must be installed."""
    from cloudmask_cli.training.peers import PeerUnavailable, peer_predictor

    try:
        teacher = Teacher.from_config(raw)
    except (TypeError, ValueError) as exc:
        raise InputError(path, f"{where}: {exc}") from None
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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

        if not isinstance(self.classes, dict):
            raise ValueError("classes must map class names to weights")
        for name, w in self.classes.items():
            if name not in CLASSES[:-1]:
                raise ValueError(f"unknown class {name!r} in classes (known: {CLASSES[:-1]})")
            if not isinstance(w, (int, float)) or isinstance(w, bool) or not w > 0:
                raise ValueError(f"classes: the weight of {name} must be > 0, got {w!r}")

    @functools.cached_property  # read every training step
    def class_weight_vector(self) -> list[float] | None:
        """The weights in class-code order (no data 1), or None when unweighted."""
        from cloudmask_cli.classes import CLASSES

        if not self.classes:
            return None
        return [float(self.classes.get(c, 1.0)) for c in CLASSES]


@dataclass(frozen=True)
class TrainConfig:
    datasets: tuple[DatasetSpec, ...]
    model: dict[str, Any] = field(default_factory=lambda: {"segformer": "b0"})
    crop: int = 256
    batch_size: int = 8
    epochs: int = 50
    steps_per_epoch: int = 1000
    val_batch_size: int = 8
    val_max_batches: int | None = None
    # Share of each dataset's training samples (by a hash of the sample id) kept out of
    # training to choose the best checkpoint and drive the rate plateaus. 0: the `val` splits
    # do that, and the figures reported on them are then optimistic (selection bias).
    selection_fraction: float = 0.0
    # what picks `best` and the rate plateaus: "loss" (mean ambiguous cross entropy), "f1"
    # (1 - mean of the pooled cloud and invalid F1; bounded, so one confidently wrong sample
    # cannot outweigh the others) or "last" (no choice: a fixed length, `best` is the final
    # weights or their average; for a short fine-tune whose selection samples cannot judge it)
    select_on: str = "loss"
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
    checkpoint_dtype: str = "float32"
    bands: BandSampling = BandSampling()
    augment: Augmentation = Augmentation()
    loss: LossWeights = LossWeights()
    optimiser: Optimiser = Optimiser()
    focus: CropFocus = CropFocus()  # crops centred on rare decided classes (training.datasets)
    synthetic: dict[str, Any] | None = None  # SyntheticClouds settings; None: no synthetic clouds
    ground: dict[str, Any] | None = None  # BrightGround settings; None: no synthetic bright ground
    surfaces: dict[str, Any] | None = None  # SnowAndWater settings; None: no synthetic snow/water
    path: str = ""  # the YAML it came from

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("path")
        return json.loads(json.dumps(d))  # plain lists and dicts, as YAML and JSON store them


def _build(cls: type, raw: Any, where: str, path: str) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise InputError(path, f"{where} must be a mapping")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InputError(path, f"unknown key(s) {unknown} in {where} (known: {sorted(known)})")
    kwargs = dict(raw)
    if cls is Optimiser and "plateau_lrs" in kwargs:
        kwargs["plateau_lrs"] = tuple(float(v) for v in kwargs["plateau_lrs"])
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise InputError(path, f"{where}: {exc}") from None


def parse_config(data: Any, path: str = "<config>", base: Path | None = None) -> TrainConfig:
    """Validate a parsed YAML training config; dataset paths are relative to ``base``."""
    if not isinstance(data, dict):
        raise InputError(path, "a training config is a mapping (see examples/train-tiny.yaml)")
    raw_sets = data.get("datasets")
    if not isinstance(raw_sets, list) or not raw_sets:
        raise InputError(path, "'datasets' must list at least one dataset")
    sets = []
    for i, raw in enumerate(raw_sets):
        spec = _build(DatasetSpec, raw, f"datasets[{i}]", path)
        reasons = spec.exclude
        if not isinstance(reasons, dict) or not all(
            isinstance(v, str) and v.strip() for v in reasons.values()
        ):
            raise InputError(
                path, f"datasets[{i}].exclude must map each sample id to the reason it is left out"
            )
        spec = replace(spec, exclude={str(k): v for k, v in reasons.items()})
        if not isinstance(spec.shadow_needs_cloud, bool):
            raise InputError(path, f"datasets[{i}].shadow_needs_cloud must be true or false")
        rules = spec.rules
        if not isinstance(rules, (list, tuple)) or not all(isinstance(r, str) for r in rules):
            raise InputError(path, f"datasets[{i}].rules must list rule names ({', '.join(RULES)})")
        unknown = [r for r in rules if r not in RULES]
        if unknown:
            raise InputError(
                path, f"datasets[{i}].rules: unknown rule(s) {unknown} (known: {', '.join(RULES)})"
            )
        spec = replace(spec, rules=tuple(rules))
        if spec.teacher is not None:
            spec = replace(spec, teacher=_teacher(spec.teacher, f"datasets[{i}].teacher", path))
        p = Path(spec.path).expanduser()
        if base is not None and not p.is_absolute():
            p = base / p
        sets.append(
            DatasetSpec(**{**asdict(spec), "path": str(p), "name": spec.name or f"{spec.kind}{i}"})
        )
    nested = {
        "bands": BandSampling,
        "augment": Augmentation,
        "loss": LossWeights,
        "optimiser": Optimiser,
        "focus": CropFocus,
    }
    top = {f.name for f in fields(TrainConfig)} - {"path", "datasets"}
    unknown = sorted(set(data) - top - {"datasets"})
    if unknown:
        raise InputError(path, f"unknown key(s) {unknown} (known: {sorted(top | {'datasets'})})")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key == "datasets":
            continue
        kwargs[key] = _build(nested[key], value, key, path) if key in nested else value
    if "model" in kwargs and not isinstance(kwargs["model"], dict):
        raise InputError(path, "model must be a mapping of architecture keys (e.g. segformer: b0)")
    try:
        cfg = TrainConfig(datasets=tuple(sets), path=path, **kwargs)
    except TypeError as exc:
        raise InputError(path, str(exc)) from None
    for name in ("crop", "batch_size", "epochs", "steps_per_epoch", "val_batch_size"):
        value = getattr(cfg, name)
        if not isinstance(value, int) or value < 1:
            raise InputError(path, f"{name} must be a positive integer, got {value!r}")
    if cfg.synthetic is not None:
        from cloudmask_cli.training.synthetic import SyntheticClouds

        try:
            SyntheticClouds.from_config(cfg.synthetic)
        except (TypeError, ValueError) as exc:
            raise InputError(path, f"synthetic: {exc}") from None
    if cfg.ground is not None:
        from cloudmask_cli.training.ground import BrightGround

        try:
            BrightGround.from_config(cfg.ground)
        except (TypeError, ValueError) as exc:
            raise InputError(path, f"ground: {exc}") from None
    if cfg.surfaces is not None:
        from cloudmask_cli.training.surfaces import SnowAndWater

        try:
            SnowAndWater.from_config(cfg.surfaces)
        except (TypeError, ValueError) as exc:
            raise InputError(path, f"surfaces: {exc}") from None
    if not (isinstance(cfg.selection_fraction, (int, float)) and 0 <= cfg.selection_fraction < 1):
        raise InputError(
            path, f"selection_fraction must be in [0, 1), got {cfg.selection_fraction!r}"
        )
    if cfg.select_on not in ("loss", "f1", "last"):
        raise InputError(path, f"select_on must be loss, f1 or last, got {cfg.select_on!r}")
    if cfg.select_on == "last" and cfg.optimiser.plateau_lrs:
        # no score drives the rate either: say so rather than silently never lowering it
        raise InputError(
            path, "select_on: last has no score to lower the rate on: set plateau_lrs: []"
        )
    decay_to = cfg.optimiser.decay_to
    if decay_to is not None:
        if not (isinstance(decay_to, (int, float)) and 0 <= decay_to <= cfg.optimiser.lr):
            raise InputError(path, f"optimiser.decay_to must be in [0, lr], got {decay_to!r}")
        if cfg.optimiser.plateau_lrs:
            raise InputError(path, "optimiser.decay_to replaces plateau_lrs: set plateau_lrs: []")
        total = cfg.epochs * cfg.steps_per_epoch
        if cfg.optimiser.warmup_steps >= total:
            raise InputError(path, f"optimiser.decay_to: warmup_steps {cfg.optimiser.warmup_steps} "
                             f"leaves none of the {total} steps to decay over")  # fmt: skip
    if cfg.select_on == "last" and cfg.selection_fraction > 0:
        # samples kept out of training to pick nothing
        raise InputError(path, "select_on: last picks no checkpoint: set selection_fraction: 0")
    if not (isinstance(cfg.ema, (int, float)) and 0 <= cfg.ema < 1):
        raise InputError(path, f"ema must be in [0, 1), got {cfg.ema!r}")
    if cfg.checkpoint_dtype not in ("float32", "float16", "bfloat16"):
        raise InputError(path, "checkpoint_dtype must be float32, float16 or bfloat16")
    return cfg


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a training config YAML."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "training config not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        raise InputError(path, "not valid YAML") from None
    return parse_config(data, str(path), path.parent)
