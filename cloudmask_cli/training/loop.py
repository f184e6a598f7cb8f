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
from typing import Any

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
from cloudmask_cli.training.ground import BrightGround
from cloudmask_cli.training.labels import bits_from_possible
from cloudmask_cli.training.metrics import Scores
from cloudmask_cli.training.sample import RawSample
from cloudmask_cli.training.schedule import PlateauSchedule
from cloudmask_cli.training.state import load_state, restore, save_state
from cloudmask_cli.training.surfaces import SnowAndWater
from cloudmask_cli.training.synthetic import SyntheticClouds

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
            "pixels": report["pixels"],
            "cloud_f1": report["cloud"]["f1"],
            "cloud_iou": report["cloud"]["iou"],
            "invalid_f1": report["invalid"]["f1"],
            "invalid_balanced_accuracy": report["invalid"]["balanced_accuracy"],
        }
        total_loss += float(loss_sum)
        total_px += float(px)
        pooled.merge(scores)
    out["loss"] = total_loss / total_px if total_px else math.nan
    report = pooled.report()
    out["cloud_f1"], out["invalid_f1"] = report["cloud"]["f1"], report["invalid"]["f1"]
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
        sampler = (
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
    torch.manual_seed(cfg.seed)

    # -- model ---------------------------------------------------------------------------
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
    net = net.to(device).train()
    module: nn.Module = TrainingModule(net, cfg.loss.recovery > 0, cfg.loss.recovery_pixels)
    average = WeightAverage(net, cfg.ema) if cfg.ema > 0 else None
    if average is not None and state_tensors is not None:
        average.load(state_tensors)
    # what is validated and saved as `best`: the weight average when there is one
    scored_net = average.net if average is not None else net
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
    epoch, step_in_epoch = 0, 0
    if state_info is not None and state_tensors is not None:
        restore(opt, state_tensors, state_info)
        schedule.load_state_dict(state_info["schedule"])
        epoch, step_in_epoch = int(state_info["epoch"]), int(state_info["step_in_epoch"])
        if scaler is not None and state_info.get("scaler"):
            scaler.load_state_dict(state_info["scaler"])

    # -- data ----------------------------------------------------------------------------
    train_sets, val_sets, select_sets = splits if splits is not None else load_splits(cfg)
    samples = [s for group in train_sets for s in group]
    synthetic = SyntheticClouds.from_config(cfg.synthetic) if cfg.synthetic is not None else None
    ground = BrightGround.from_config(cfg.ground) if cfg.ground is not None else None
    surfaces = SnowAndWater.from_config(cfg.surfaces) if cfg.surfaces is not None else None
    dataset = TrainingDataset(samples, cfg.crop, cfg.bands, cfg.augment, cfg.seed,
                              synthetic, ground, surfaces, cfg.focus)  # fmt: skip
    draws = cfg.steps_per_epoch * cfg.batch_size * dist.world
    sampler = MixedSampler([len(g) for g in train_sets], [d.weight for d in cfg.datasets], draws,
                           cfg.seed, dist.rank, dist.world)  # fmt: skip
    val_loaders = _val_loaders(val_sets, cfg, dist)
    # what picks the best checkpoint and the rate plateaus: the selection samples when there
    # are some, else the held-out splits
    select_loaders = _val_loaders(select_sets, cfg, dist) if select_sets else val_loaders

    log = _Log(out_dir / "metrics.jsonl", dist.main)
    bar = _progress(progress and dist.main, cfg.epochs * cfg.steps_per_epoch)
    if bar is not None:
        bar.update(0, completed=epoch * cfg.steps_per_epoch + step_in_epoch)
    dtype = DTYPES[cfg.checkpoint_dtype]

    def info(validation: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "step": schedule.step, "epoch": epoch, "step_in_epoch": step_in_epoch,
            "schedule": schedule.state_dict(), "config": cfg.to_dict(), "validation": validation,
            "scaler": scaler.state_dict() if scaler is not None else None,
        }  # fmt: skip

    def extra() -> dict[str, Tensor] | None:
        return average.tensors() if average is not None else None

    if validate_first and val_loaders:
        v = validate(scored, scored_net, val_loaders, device, cfg, autocast, dist)
        log.write({"type": "val", "epoch": epoch - 1, "step": schedule.step, **v})

    skipped = 0  # updates skipped for non-finite gradients in this process: logged, to be seen
    try:
        while epoch < cfg.epochs:
            sampler.set_epoch(epoch, start=step_in_epoch * cfg.batch_size)
            loader = DataLoader(
                dataset, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate,
                num_workers=cfg.workers, generator=torch.Generator().manual_seed(cfg.seed + epoch),
                pin_memory=device.type == "cuda", drop_last=True,
            )  # fmt: skip
            t0 = time.perf_counter()
            for batch in _batches(loader, device):
                for group in opt.param_groups:
                    group["lr"] = schedule.rate()
                with autocast():
                    logits, rec, xs = module(batch["x"], batch["descriptors"], batch["band_mask"])
                rec = None if rec is None else rec.float()
                loss, ce, rl = _losses(net, logits.float(), rec, xs, batch, cfg)
                opt.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(opt)
                else:
                    loss.backward()
                clip = cfg.optimiser.grad_clip or float("inf")
                norm = nn.utils.clip_grad_norm_(net.parameters(), clip)
                if scaler is not None:
                    scaler.step(opt)  # the scaler itself skips non-finite steps
                    scaler.update()
                elif torch.isfinite(norm):
                    opt.step()
                else:
                    # one bad batch must not poison the weights with NaN: skip its update
                    skipped += 1
                    notice(f"step {schedule.step}: non-finite gradients, update skipped")
                if average is not None:
                    average.update(net)
                lr = schedule.rate()
                schedule.on_step()
                step_in_epoch += 1
                elapsed = time.perf_counter() - t0
                t0 = time.perf_counter()
                if schedule.step % cfg.log_every == 0 or step_in_epoch == cfg.steps_per_epoch:
                    log.write({"type": "step", "epoch": epoch, "step": schedule.step, "lr": lr,
                               "loss": loss.item(), "cross_entropy": ce.item(), "recovery": rl.item(),
                               "seconds": round(elapsed, 4), "skipped": skipped})  # fmt: skip
                if bar is not None:
                    bar.update(
                        0,
                        advance=1,
                        epoch=f"{epoch + 1}/{cfg.epochs}",
                        loss=f"{loss.item():.4f}",
                        lr=f"{lr:.2e}",
                    )
                stop = max_steps is not None and schedule.step >= max_steps
                periodic = cfg.checkpoint_every and schedule.step % cfg.checkpoint_every == 0
                if (stop or periodic) and step_in_epoch < cfg.steps_per_epoch and dist.main:
                    _save(out_dir, "last", net, opt, cfg, info(), torch.float32, True, extra())
                if stop:
                    break
            if step_in_epoch < cfg.steps_per_epoch:  # stopped mid-epoch by max_steps
                break
            # a fixed length (select_on: last): every epoch replaces `best`, validated or not
            validation, best = None, cfg.select_on == "last"
            if select_loaders:
                validation = validate(scored, scored_net, val_loaders, device, cfg, autocast, dist)
                if select_loaders is not val_loaders:
                    selection = validate(
                        scored, scored_net, select_loaders, device, cfg, autocast, dist
                    )
                    validation["selection"] = selection
                chooser = validation.get("selection", validation)
                if cfg.select_on != "last":
                    best = schedule.on_validation(chooser[SELECT_ON[cfg.select_on]])
                log.write(
                    {
                        "type": "val",
                        "epoch": epoch,
                        "step": schedule.step,
                        "lr": schedule.rate(),
                        **validation,
                    }
                )
            if best and dist.main:
                _save(out_dir, "best", scored_net, opt, cfg, {**info(validation), "epoch": epoch + 1,
                                                       "step_in_epoch": 0}, dtype, with_state=False)  # fmt: skip
            epoch, step_in_epoch = epoch + 1, 0
            if dist.main:
                _save(
                    out_dir, "last", net, opt, cfg, info(validation), torch.float32, True, extra()
                )
            if max_steps is not None and schedule.step >= max_steps:
                break
    finally:
        if bar is not None:
            bar.stop()
    return TrainResult(out_dir, schedule.step, epoch, log.rows)


def _batches(loader: DataLoader, device: torch.device) -> Iterator[dict[str, Tensor]]:
    for batch in loader:
        yield {k: v.to(device, non_blocking=True) for k, v in batch.items()}
