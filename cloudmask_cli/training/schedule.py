"""The paper's learning-rate recipe (IV-B): linear warm-up from ``warmup_start`` to ``lr``, then
``plateau_lrs`` in turn, each after ``patience`` validations without a better loss; or, with
``decay_to``, a half cosine from ``lr`` that reaches ``decay_to`` at step ``total_steps`` (one
step after the run's last)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from cloudmask_cli.training.config import Optimiser


@dataclass
class PlateauSchedule:
    lr: float
    warmup_start: float
    warmup_steps: int
    plateau_lrs: tuple[float, ...]
    patience: int
    decay_to: float | None = None
    total_steps: int = 0
    step: int = 0
    stage: int = 0  # 0: main rate; k: plateau_lrs[k - 1]
    best: float = math.inf
    bad_epochs: int = 0

    @classmethod
    def from_config(cls, opt: Optimiser, total_steps: int) -> PlateauSchedule:
        return cls(
            opt.lr, opt.warmup_start, opt.warmup_steps, tuple(opt.plateau_lrs), opt.patience,
            opt.decay_to, total_steps,
        )  # fmt: skip

    def rate(self) -> float:
        """The learning rate of the next optimiser step."""
        if self.stage > 0:
            return self.plateau_lrs[self.stage - 1]
        if self.step < self.warmup_steps:
            return self.warmup_start + (self.lr - self.warmup_start) * self.step / self.warmup_steps
        if self.decay_to is not None and self.total_steps > self.warmup_steps:
            done = min(
                1.0, (self.step - self.warmup_steps) / (self.total_steps - self.warmup_steps)
            )
            return self.decay_to + (self.lr - self.decay_to) * 0.5 * (1 + math.cos(math.pi * done))
        return self.lr

    def on_step(self) -> None:
        self.step += 1

    def on_validation(self, loss: float) -> bool:
        """Record a validation loss; returns whether it is the best so far."""
        if loss < self.best:
            self.best, self.bad_epochs = loss, 0
            return True
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience and self.stage < len(self.plateau_lrs):
            self.stage += 1
            self.bad_epochs = 0
        return False

    def state_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["plateau_lrs"] = list(self.plateau_lrs)
        d["best"] = None if math.isinf(self.best) else self.best
        return d

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.step, self.stage, self.bad_epochs = (
            int(d["step"]),
            int(d["stage"]),
            int(d["bad_epochs"]),
        )
        self.best = math.inf if d.get("best") is None else float(d["best"])
