"""`cloudmask train`: the training loop (paper III-B, IV-B).

Ambiguous cross-entropy on partial labels plus the band-recovery MSE, AdamW with warm-up and
plateau steps, AMP on CUDA, validation on each dataset's held-out split every epoch, checkpoints
(``last`` every epoch; ``best`` on the best loss or pooled F1 (``select_on``) of the selection
samples, or of the held-out splits when ``selection_fraction`` is 0, or simply the final
epoch (``select_on: last``); with ``ema``, the weight average is what is validated and saved
as ``best``) with a training state for ``--resume``, a JSONL metrics log, and
DistributedDataParallel under ``torchrun`` (one process per GPU; each rank draws its share of
every epoch's samples).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from cloudmask_cli.errors import InputError
from cloudmask_cli.model.checkpoint import load_checkpoint, save_checkpoint
from cloudmask_cli.model.losses import ambiguous_cross_entropy, recovery_loss
from cloudmask_cli.model.network import (
    TRAINING_ONLY,
    CloudMaskNet,
    ModelConfig,
    build_model,
    has_data,
    normalise,
)
from cloudmask_cli.training.adapters import open_dataset
from cloudmask_cli.training.adapters.common import in_split
from cloudmask_cli.training.average import WeightAverage
from cloudmask_cli.training.config import TrainConfig
from cloudmask_cli.training.datasets import (
    MixedSampler,
    TrainingDataset,
    ValidationDataset,
    collate,
)
from cloudmask_cli.training.labels import bits_from_possible
from cloudmask_cli.training.metrics import Scores
from cloudmask_cli.training.sample import RawSample
from cloudmask_cli.training.schedule import PlateauSchedule
from cloudmask_cli.training.state import load_state, restore, save_state

# what `select_on` names -> the key of `validate`'s result that picks `best` and the plateaus
SELECT_ON = {"loss": "loss", "f1": "f1_error"}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class TrainingModule(nn.Module):
    """The network plus its recovery head in one forward, so DDP sees every parameter used.

    The recovery head is per-pixel (1x1 layers), so its MSE is estimated on a regular grid of
    about ``recovery_pixels`` pixels per sample (random offset each step) instead of every pixel:
    at 256 px the full-resolution head costs more than the whole SegFormer on a CPU.
    """

    def __init__(
        self, net: CloudMaskNet, recovery: bool, recovery_pixels: int | None = None
    ) -> None:
        super().__init__()
        self.net = net
        self.recovery = recovery
        self.recovery_pixels = recovery_pixels

    def forward(
        self, x: Tensor, descriptors: Tensor, band_mask: Tensor
    ) -> tuple[Tensor, Tensor | None, Tensor]:
        """(logits, recovered bands or None, the input pixels they recover)."""
        emb = self.net.embed(x, descriptors, band_mask)
        logits = self.net.segment(emb, has_data(x, band_mask))
        if not self.recovery:
            return logits, None, x
        h, w = x.shape[-2:]
        stride = 1
        if self.recovery_pixels:
            stride = max(1, int(math.sqrt(h * w / self.recovery_pixels)))
        if stride > 1:
            oy, ox = (int(v) for v in torch.randint(0, stride, (2,)))
            emb, x = emb[:, :, oy::stride, ox::stride], x[:, :, oy::stride, ox::stride]
        return logits, self.net.recover(emb, descriptors), x


@dataclass
class Dist:
    """This process's place in a (possibly) distributed run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return torch.distributed.is_available() and torch.distributed.is_initialized()


@dataclass
class TrainResult:
    out: Path
    steps: int
    epochs: int
    history: list[dict[str, Any]] = field(default_factory=list)

    def last(self, kind: str) -> dict[str, Any] | None:
        rows = [r for r in self.history if r.get("type") == kind]
        return rows[-1] if rows else None


def select_device(spec: str, dist: Dist) -> torch.device:
    from cloudmask_cli.inference.engine import select_device as pick

    if dist.world > 1 and torch.cuda.is_available() and spec in ("auto", "cuda"):
        return torch.device("cuda", dist.local_rank)
    return pick(spec)[0]


def _init_distributed(distributed: bool | None, device_spec: str) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if distributed is None:
        distributed = world > 1
    if not distributed:
        return Dist()
    if not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and device_spec != "cpu" else "gloo"
        torch.distributed.init_process_group(backend=backend)
    return Dist(
        rank=torch.distributed.get_rank(),
        world=torch.distributed.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def model_config(cfg: TrainConfig) -> ModelConfig:
    """The architecture from the config's ``model`` section (``preset: tiny`` for tests)."""
    spec = dict(cfg.model)
    preset = spec.pop("preset", None)
    try:
        if preset == "tiny":
            return ModelConfig.tiny(**spec)
        if preset is not None:
            raise ValueError(f"unknown model preset {preset!r} (tiny)")
        return ModelConfig.from_dict(spec)
    except (TypeError, ValueError) as exc:
        raise InputError(cfg.path or None, f"model: {exc}") from None


Named = list[tuple[str, list[RawSample]]]


def in_selection(sample_id: str, fraction: float) -> bool:
    """Whether a training sample is kept out for checkpoint selection: the adapters' hash
    split on a salted id, so it is independent of the datasets' own val hashes."""
    return in_split(f"selection:{sample_id}", "val", fraction)


Splits = tuple[list[list[RawSample]], Named, Named]


def load_splits(cfg: TrainConfig) -> Splits:
    """Training samples per dataset; (name, samples) of the held-out `val` splits; and of the
    selection samples taken out of the training ones (`selection_fraction`)."""
    found, held = [], []
    for spec in cfg.datasets:
        train = open_dataset(spec.kind, spec.path, spec.train, spec.options)
        val = open_dataset(spec.kind, spec.path, spec.val, spec.options) if spec.val else []
        unknown = sorted(set(spec.exclude) - {s.id for s in train + val})
        if unknown:
            raise InputError(spec.path, f"exclude names sample(s) not in {spec.name}: {unknown}")
        found.append(spec.prepare(train))
        # validation scores the real labels, as evaluation does (no rules, no teacher)
        held.append(spec.prepare(val, narrow=False) if spec.val is not None else None)
    return split_prepared(cfg, found, held)


def split_prepared(
    cfg: TrainConfig, found: list[list[RawSample]], held: list[list[RawSample] | None]
) -> Splits:
    """`load_splits` from samples already read and prepared, one list per dataset of ``cfg``
    (``held`` None: that dataset is not validated): the selection samples are taken out of
    ``found`` here. Cross-validation (training/crossval.py) makes its folds this way."""
    train, val, select = [], [], []
    for spec, samples, held_out in zip(cfg.datasets, found, held, strict=True):
        if cfg.selection_fraction > 0:
            chosen = [s for s in samples if in_selection(s.id, cfg.selection_fraction)]
            samples = [s for s in samples if not in_selection(s.id, cfg.selection_fraction)]
            if chosen:
                select.append((spec.name, chosen))
            if not samples:
                raise InputError(spec.path, "selection_fraction leaves no training sample")
        train.append(samples)
        if held_out is not None:
            val.append((spec.name, held_out))
    if cfg.selection_fraction > 0 and not select:
        raise InputError(cfg.path or None, "selection_fraction picked no sample: raise it")
    return train, val, select


class _Log:
    """Appends JSON lines to ``metrics.jsonl`` (rank 0 only) and keeps them in memory."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled
        self.rows: list[dict[str, Any]] = []

    def write(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if self.enabled:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row, default=float) + "\n")


def _autocast(device: torch.device, amp: bool) -> tuple[Any, torch.amp.GradScaler | None]:
    if device.type != "cuda" or not amp:
        return contextlib.nullcontext, None
    if torch.cuda.is_bf16_supported():
        return (lambda: torch.autocast("cuda", dtype=torch.bfloat16)), None
    return (lambda: torch.autocast("cuda", dtype=torch.float16)), torch.amp.GradScaler("cuda")


def _losses(
    net: CloudMaskNet,
    logits: Tensor,
    rec: Tensor | None,
    x: Tensor,
    batch: dict[str, Tensor],
    cfg: TrainConfig,
) -> tuple[Tensor, Tensor, Tensor]:
    """(weighted total, ambiguous cross-entropy, recovery MSE of ``rec`` against ``x``)."""
    weights = cfg.loss.class_weight_vector
    ce = ambiguous_cross_entropy(
        logits, batch["possible"], class_weights=None if weights is None else torch.tensor(weights)
    )
    if rec is None:
        rl = torch.zeros((), device=logits.device)
    else:
        target = normalise(x, batch["descriptors"], net.config)
        valid = batch["band_mask"][:, :, None, None].expand_as(target)
        rl = recovery_loss(rec, target, valid)
    return cfg.loss.cross_entropy * ce + cfg.loss.recovery * rl, ce, rl


@torch.no_grad()
def validate(
    module: nn.Module,
    net: CloudMaskNet,
    sets: list[tuple[str, DataLoader]],
    device: torch.device,
    cfg: TrainConfig,
    autocast: Callable[[], Any],
    dist: Dist,
) -> dict[str, Any]:
    """Mean ambiguous CE (labelled-pixel weighted) and the paper's metrics per dataset."""
    module.eval()
    out: dict[str, Any] = {"datasets": {}}
    total_loss = total_px = 0.0
    pooled = Scores()
    for name, loader in sets:
        scores = Scores()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        px = torch.zeros((), dtype=torch.float64, device=device)
        for i, batch in enumerate(loader):
            if cfg.val_max_batches is not None and i >= cfg.val_max_batches:
                break
            batch = {k: v.to(device) for k, v in batch.items()}
            with autocast():
                logits, _, _ = module(batch["x"], batch["descriptors"], batch["band_mask"])
            logits = logits.float()
            loss_sum += ambiguous_cross_entropy(logits, batch["possible"], reduction="sum").double()
            px += batch["possible"].any(dim=1).sum().double()
            # scored as `cloudmask run` masks: probabilities folded per style, no data where
            # no band has a value
            probs = torch.softmax(logits, dim=1).cpu().numpy().swapaxes(0, 1)
            valid = torch.isfinite(batch["x"]) & batch["band_mask"].bool()[:, :, None, None]
            scores.update_probs(probs, bits_from_possible(batch["possible"].cpu().numpy(), axis=1),
                                valid.any(dim=1).cpu().numpy())  # fmt: skip
        if dist.active:
            torch.distributed.all_reduce(loss_sum)
            torch.distributed.all_reduce(px)
            for conf in scores.masks.values():
                counts = torch.from_numpy(conf.counts).to(device)
                torch.distributed.all_reduce(counts)
                conf.counts = counts.cpu().numpy()
        report = scores.report()
        out["datasets"][name] = {
            "loss": float(loss_sum / px.clamp(min=1)),
            "pixels": report.pixels,
            "cloud_f1": report.cloud.f1,
            "cloud_iou": report.cloud.iou,
            "invalid_f1": report.invalid.f1,
            "invalid_balanced_accuracy": report.invalid.balanced_accuracy,
        }
        total_loss += float(loss_sum)
        total_px += float(px)
        pooled.merge(scores)
    out["loss"] = total_loss / total_px if total_px else math.nan
    report = pooled.report()
    out["cloud_f1"], out["invalid_f1"] = report.cloud.f1, report.invalid.f1
    # bounded: one confidently wrong sample cannot outweigh the rest as it can in the loss
    f1s = [v for v in (out["cloud_f1"], out["invalid_f1"]) if v is not None]
    out["f1_error"] = 1.0 - sum(f1s) / len(f1s) if f1s else math.nan
    module.train()
    return out


def _val_loaders(
    val: list[tuple[str, list[RawSample]]], cfg: TrainConfig, dist: Dist
) -> list[tuple[str, DataLoader]]:
    loaders = []
    for name, samples in val:
        ds = ValidationDataset(samples, cfg.crop)
        sampler: torch.utils.data.Sampler[int] | None = (
            torch.utils.data.distributed.DistributedSampler(
                ds, dist.world, dist.rank, shuffle=False
            )
            if dist.world > 1
            else None
        )
        loaders.append(
            (
                name,
                DataLoader(
                    ds,
                    batch_size=cfg.val_batch_size,
                    sampler=sampler,
                    collate_fn=collate,
                    num_workers=cfg.workers,
                ),
            )  # fmt: skip
        )
    return loaders


def _progress(enabled: bool, total: int) -> Any:
    if not enabled:
        return None
    from cloudmask_cli.progress import progress_bar

    bar = progress_bar("epoch {task.fields[epoch]}", "loss {task.fields[loss]} lr {task.fields[lr]}",
                       transient=False)  # fmt: skip
    bar.start()
    bar.add_task("train", total=total, epoch="-", loss="-", lr="-")
    return bar


def _save(
    out: Path,
    stem: str,
    net: CloudMaskNet,
    opt: torch.optim.Optimizer,
    cfg: TrainConfig,
    info: dict[str, Any],
    dtype: torch.dtype,
    with_state: bool,
    extra: dict[str, Tensor] | None = None,
) -> None:
    meta = {
        "training": {
            "config": cfg.to_dict(),
            "step": info["step"],
            "epoch": info["epoch"],
            "datasets": [{"name": d.name, "kind": d.kind, "path": d.path} for d in cfg.datasets],
            "torch": str(torch.__version__),
        },
        "metrics": {"validation": info.get("validation")},
    }
    path = out / f"{stem}.safetensors"
    save_checkpoint(net, net.config, path, metadata=meta, dtype=dtype)
    if with_state:
        save_state(path, opt, info, extra)


@dataclass
class Trainee:
    """What one run trains and scores: the network, its optimiser and rate, and where it is.

    ``module`` is what the step runs (the network and its recovery head, DDP-wrapped under
    torchrun); ``scored`` / ``scored_net`` are what is validated and saved as ``best``: the
    weight average when there is one."""

    net: CloudMaskNet
    module: nn.Module
    scored: nn.Module
    scored_net: CloudMaskNet
    average: WeightAverage | None
    opt: torch.optim.Optimizer
    schedule: PlateauSchedule
    autocast: Callable[[], Any]
    scaler: torch.amp.GradScaler | None
    epoch: int = 0
    step_in_epoch: int = 0
    skipped: int = 0  # updates skipped for non-finite gradients in this process: logged

    def info(self, cfg: TrainConfig, validation: dict[str, Any] | None = None) -> dict[str, Any]:
        """The training state saved beside ``last`` (and the metadata of every checkpoint)."""
        return {
            "step": self.schedule.step, "epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
            "schedule": self.schedule.state_dict(), "config": cfg.to_dict(), "validation": validation,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
        }  # fmt: skip

    def extra(self) -> dict[str, Tensor] | None:
        return self.average.tensors() if self.average is not None else None


@dataclass
class TrainData:
    """The training samples' dataset and sampler, and the validation loaders."""

    dataset: TrainingDataset
    sampler: MixedSampler
    val_loaders: list[tuple[str, DataLoader]]
    # what picks `best` and the rate plateaus: the selection samples when there are some,
    # else the held-out splits (the same list object)
    select_loaders: list[tuple[str, DataLoader]]


def set_up_model(
    cfg: TrainConfig,
    device: torch.device,
    dist: Dist,
    *,
    init: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | None = None,
    notice: Callable[[str], None] = lambda m: None,
) -> Trainee:
    """The network (new, from ``init`` weights, or as ``resume`` left it), its weight average,
    optimiser, rate schedule and mixed precision, placed on ``device``."""
    torch.manual_seed(cfg.seed)
    if init is not None:
        start, mcfg, _ = load_checkpoint(init, device="cpu")
        # the checkpoint fixes the architecture; the config may change how it trains
        tuning = {k: v for k, v in cfg.model.items() if k in TRAINING_ONLY}
        kept = {k: getattr(mcfg, k) for k in TRAINING_ONLY}
        if set(cfg.model) - set(tuning) and replace(model_config(cfg), **kept) != mcfg:
            notice(
                f"--init {init}: its architecture is used; the config's model section is "
                f"ignored except {', '.join(TRAINING_ONLY)}"
            )
        mcfg = replace(mcfg, **tuning)
        net = build_model(mcfg, seed=cfg.seed)
        net.load_state_dict(start.state_dict())
    else:
        mcfg = model_config(cfg)
        net = build_model(mcfg, seed=cfg.seed)
    state_tensors, state_info = (None, None)
    if resume is not None:
        state_tensors, state_info = load_state(resume)
        net, mcfg, _ = load_checkpoint(resume, device="cpu")
        if state_info.get("config") != cfg.to_dict():
            notice(f"--resume {resume}: the config differs from the one the run started with")
    net.to(device).train()  # in place
    module: nn.Module = TrainingModule(net, cfg.loss.recovery > 0, cfg.loss.recovery_pixels)
    average = WeightAverage(net, cfg.ema) if cfg.ema > 0 else None
    if average is not None and state_tensors is not None:
        average.load(state_tensors)
    scored_net = cast(CloudMaskNet, average.net) if average is not None else net
    scored: nn.Module = TrainingModule(scored_net, False) if average is not None else module
    if dist.active:
        ids = [device.index] if device.type == "cuda" else None
        module = nn.parallel.DistributedDataParallel(
            module, device_ids=ids, find_unused_parameters=cfg.loss.recovery <= 0
        )
    opt = torch.optim.AdamW(
        net.parameters(), lr=cfg.optimiser.warmup_start, weight_decay=cfg.optimiser.weight_decay
    )
    schedule = PlateauSchedule.from_config(cfg.optimiser, cfg.epochs * cfg.steps_per_epoch)
    autocast, scaler = _autocast(device, cfg.amp)
    t = Trainee(net, module, scored, scored_net, average, opt, schedule, autocast, scaler)
    if state_info is not None and state_tensors is not None:
        restore(opt, state_tensors, state_info)
        schedule.load_state_dict(state_info["schedule"])
        t.epoch, t.step_in_epoch = int(state_info["epoch"]), int(state_info["step_in_epoch"])
        if scaler is not None and state_info.get("scaler"):
            scaler.load_state_dict(state_info["scaler"])
    return t


def set_up_data(cfg: TrainConfig, dist: Dist, splits: Splits | None = None) -> TrainData:
    """The training dataset (crops, augmentation, synthetic clouds, ground, surfaces, other
    sensors) with its mixing sampler, and the validation and selection loaders (``splits`` as
    `load_splits` returns them; the config's datasets when None)."""
    train_sets, val_sets, select_sets = splits if splits is not None else load_splits(cfg)
    samples = [s for group in train_sets for s in group]
    dataset = TrainingDataset(samples, cfg.crop, cfg.bands, cfg.augment, cfg.seed,
                              cfg.synthetic_clouds, cfg.bright_ground, cfg.snow_and_water,
                              cfg.focus, cfg.other_sensors)  # fmt: skip
    draws = cfg.steps_per_epoch * cfg.batch_size * dist.world
    sampler = MixedSampler([len(g) for g in train_sets], [d.weight for d in cfg.datasets], draws,
                           cfg.seed, dist.rank, dist.world)  # fmt: skip
    val_loaders = _val_loaders(val_sets, cfg, dist)
    select_loaders = _val_loaders(select_sets, cfg, dist) if select_sets else val_loaders
    return TrainData(dataset, sampler, val_loaders, select_loaders)


def epoch_loader(t: Trainee, data: TrainData, cfg: TrainConfig, device: torch.device) -> DataLoader:
    """This epoch's batches, from where ``t`` stands in it (mid-epoch after a resume)."""
    data.sampler.set_epoch(t.epoch, start=t.step_in_epoch * cfg.batch_size)
    return DataLoader(
        data.dataset, batch_size=cfg.batch_size, sampler=data.sampler, collate_fn=collate,
        num_workers=cfg.workers, generator=torch.Generator().manual_seed(cfg.seed + t.epoch),
        pin_memory=device.type == "cuda", drop_last=True,
    )  # fmt: skip


@dataclass
class Step:
    """One optimiser step's figures: the losses and the rate it ran at."""

    loss: Tensor
    cross_entropy: Tensor
    recovery: Tensor
    lr: float
    applied: bool  # False: non-finite gradients, the update was skipped


def train_step(t: Trainee, batch: dict[str, Tensor], cfg: TrainConfig) -> Step:
    """Forward, loss, backward, clipped update (skipped when the gradients are not finite),
    weight average, rate schedule."""
    lr = t.schedule.rate()
    for group in t.opt.param_groups:
        group["lr"] = lr
    with t.autocast():
        logits, rec, xs = t.module(batch["x"], batch["descriptors"], batch["band_mask"])
    rec = None if rec is None else rec.float()
    loss, ce, rl = _losses(t.net, logits.float(), rec, xs, batch, cfg)
    t.opt.zero_grad(set_to_none=True)
    if t.scaler is not None:
        t.scaler.scale(loss).backward()
        t.scaler.unscale_(t.opt)
    else:
        loss.backward()
    clip = cfg.optimiser.grad_clip or float("inf")
    norm = nn.utils.clip_grad_norm_(t.net.parameters(), clip)
    applied = True
    if t.scaler is not None:
        t.scaler.step(t.opt)  # the scaler itself skips non-finite steps
        t.scaler.update()
    elif torch.isfinite(norm):
        t.opt.step()
    else:
        # one bad batch must not poison the weights with NaN: skip its update
        t.skipped += 1
        applied = False
    if t.average is not None:
        t.average.update(t.net)
    t.schedule.on_step()
    t.step_in_epoch += 1
    return Step(loss, ce, rl, lr, applied)


def end_of_epoch(
    t: Trainee, data: TrainData, cfg: TrainConfig, device: torch.device, dist: Dist
) -> tuple[dict[str, Any] | None, bool]:
    """(the held-out figures or None, whether this epoch's weights become ``best``):
    validation, plus the selection samples' when there are some; the plateaus step on the
    chosen figure. A fixed length (``select_on: last``): every epoch is ``best``."""
    validation, best = None, cfg.select_on == "last"
    if data.select_loaders:
        validation = validate(
            t.scored, t.scored_net, data.val_loaders, device, cfg, t.autocast, dist
        )
        if data.select_loaders is not data.val_loaders:
            validation["selection"] = validate(
                t.scored, t.scored_net, data.select_loaders, device, cfg, t.autocast, dist
            )
        chooser = validation.get("selection", validation)
        if cfg.select_on != "last":
            best = t.schedule.on_validation(chooser[SELECT_ON[cfg.select_on]])
    return validation, best


def save_last(
    out: Path, t: Trainee, cfg: TrainConfig, validation: dict[str, Any] | None = None
) -> None:
    """``last`` in float32 with its training state (``--resume`` continues from it exactly)."""
    _save(out, "last", t.net, t.opt, cfg, t.info(cfg, validation), torch.float32, True, t.extra())


def save_best(out: Path, t: Trainee, cfg: TrainConfig, validation: dict[str, Any] | None) -> None:
    """``best``: the scored weights (the average when there is one) in the config's dtype,
    saved as at the start of the next epoch."""
    info = {**t.info(cfg, validation), "epoch": t.epoch + 1, "step_in_epoch": 0}
    _save(
        out, "best", t.scored_net, t.opt, cfg, info, DTYPES[cfg.checkpoint_dtype], with_state=False
    )


def train(
    cfg: TrainConfig,
    *,
    out: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | None = None,
    init: str | os.PathLike[str] | None = None,
    progress: bool = False,
    distributed: bool | None = None,
    validate_first: bool = False,
    max_steps: int | None = None,
    notice: Callable[[str], None] | None = None,
    splits: Splits | None = None,
) -> TrainResult:
    """Train as ``cfg`` says; returns the metrics history. See the module docstring.

    ``max_steps`` stops after that many optimiser steps in all (counting those before a resume),
    saving ``last`` with its training state: ``--resume`` then continues mid-epoch exactly.
    ``splits``: the samples (as `load_splits` returns them) instead of reading the config's."""
    notice = notice or (lambda m: None)
    dist = _init_distributed(distributed, cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = select_device(cfg.device, dist)
    out_dir = Path(out or cfg.out)
    if dist.main:
        out_dir.mkdir(parents=True, exist_ok=True)
    t = set_up_model(cfg, device, dist, init=init, resume=resume, notice=notice)
    data = set_up_data(cfg, dist, splits)
    log = _Log(out_dir / "metrics.jsonl", dist.main)
    bar = _progress(progress and dist.main, cfg.epochs * cfg.steps_per_epoch)
    if bar is not None:
        bar.update(0, completed=t.epoch * cfg.steps_per_epoch + t.step_in_epoch)

    if validate_first and data.val_loaders:
        v = validate(t.scored, t.scored_net, data.val_loaders, device, cfg, t.autocast, dist)
        log.write({"type": "val", "epoch": t.epoch - 1, "step": t.schedule.step, **v})

    try:
        while t.epoch < cfg.epochs:
            t0 = time.perf_counter()
            for batch in _batches(epoch_loader(t, data, cfg, device), device):
                step = train_step(t, batch, cfg)
                if not step.applied:
                    notice(f"step {t.schedule.step - 1}: non-finite gradients, update skipped")
                elapsed = time.perf_counter() - t0
                t0 = time.perf_counter()
                if t.schedule.step % cfg.log_every == 0 or t.step_in_epoch == cfg.steps_per_epoch:
                    log.write({"type": "step", "epoch": t.epoch, "step": t.schedule.step,
                               "lr": step.lr, "loss": step.loss.item(),
                               "cross_entropy": step.cross_entropy.item(),
                               "recovery": step.recovery.item(), "seconds": round(elapsed, 4),
                               "skipped": t.skipped})  # fmt: skip
                if bar is not None:
                    bar.update(0, advance=1, epoch=f"{t.epoch + 1}/{cfg.epochs}",
                               loss=f"{step.loss.item():.4f}", lr=f"{step.lr:.2e}")  # fmt: skip
                stop = max_steps is not None and t.schedule.step >= max_steps
                periodic = cfg.checkpoint_every and t.schedule.step % cfg.checkpoint_every == 0
                if (stop or periodic) and t.step_in_epoch < cfg.steps_per_epoch and dist.main:
                    save_last(out_dir, t, cfg)
                if stop:
                    break
            if t.step_in_epoch < cfg.steps_per_epoch:  # stopped mid-epoch by max_steps
                break
            validation, best = end_of_epoch(t, data, cfg, device, dist)
            if validation is not None:
                log.write({"type": "val", "epoch": t.epoch, "step": t.schedule.step,
                           "lr": t.schedule.rate(), **validation})  # fmt: skip
            if best and dist.main:
                save_best(out_dir, t, cfg, validation)
            t.epoch, t.step_in_epoch = t.epoch + 1, 0
            if dist.main:
                save_last(out_dir, t, cfg, validation)
            if max_steps is not None and t.schedule.step >= max_steps:
                break
    finally:
        if bar is not None:
            bar.stop()
    return TrainResult(out_dir, t.schedule.step, t.epoch, log.rows)


def _batches(loader: DataLoader, device: torch.device) -> Iterator[dict[str, Tensor]]:
    for batch in loader:
        yield {k: v.to(device, non_blocking=True) for k, v in batch.items()}
