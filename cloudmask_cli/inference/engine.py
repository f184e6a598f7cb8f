"""Run the model on batches of windows: device choice, pinned memory, autocast, OOM back-off."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

log = logging.getLogger("cloudmask")


def select_device(spec: str = "auto") -> tuple[torch.device, str | None]:
    """The torch device for ``auto | cpu | cuda | cuda:N`` and a notice when auto falls back."""
    spec = spec.lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda"), None
        return torch.device("cpu"), "no CUDA device found: running on the CPU"
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"--device {spec}: CUDA is not available on this machine")
        dev = torch.device(spec)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s)")
        return dev, None
    if spec == "cpu":
        return torch.device("cpu"), None
    raise ValueError(f"--device must be auto, cpu, cuda or cuda:N, got {spec!r}")


def default_batch_size(device: torch.device) -> int:
    """Windows per model call when the user gives none.

    On a CPU a batch of 2 is as fast per window as 4 or 8 (the cores are busy either way) and
    holds half the activations (~0.25 GB per 512 px window for B0); a GPU wants more windows
    in flight, and out-of-memory halves the batch anyway.
    """
    return 16 if device.type == "cuda" else 2


@dataclass
class Engine:
    """Class probabilities for batches of windows."""

    model: torch.nn.Module
    device: torch.device
    batch_size: int | None = None  # None: `default_batch_size` of the device
    amp: bool = True
    oom_events: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.batch_size is None:
            self.batch_size = default_batch_size(self.device)
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be at least 1, got {self.batch_size}")
        self.model = self.model.to(self.device).eval()
        self._desc_cache: dict[bytes, torch.Tensor] = {}

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def _descriptors(self, desc: np.ndarray) -> torch.Tensor:
        key = desc.tobytes()
        if key not in self._desc_cache:
            self._desc_cache[key] = torch.from_numpy(desc).to(self.device)
        return self._desc_cache[key]

    def _forward(self, x: np.ndarray, desc: torch.Tensor, band_mask: np.ndarray) -> np.ndarray:
        xt = torch.from_numpy(x)
        mt = torch.from_numpy(band_mask)
        if self.cuda:
            xt = xt.pin_memory().to(self.device, non_blocking=True)
            mt = mt.to(self.device, non_blocking=True)
        d = desc.unsqueeze(0).expand(x.shape[0], -1, -1)
        with torch.inference_mode():
            if self.cuda and self.amp:
                dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
                with torch.autocast("cuda", dtype=dtype):
                    logits = self.model(xt, d, band_mask=mt)
            else:
                logits = self.model(xt, d, band_mask=mt)
            probs = torch.softmax(logits.float(), dim=1)
        return probs.cpu().numpy()

    def predict(self, x: np.ndarray, desc: np.ndarray, band_mask: np.ndarray) -> np.ndarray:
        """Probabilities ``(B, C, h, w)`` for windows ``x`` ``(B, N, h, w)`` (NaN = invalid).

        On CUDA out-of-memory the batch is halved for the rest of the run, down to one window.
        """
        d = self._descriptors(desc)
        out = []
        i = 0
        while i < len(x):
            n = self.batch_size
            try:
                out.append(self._forward(x[i : i + n], d, band_mask[i : i + n]))
                i += n
            except torch.OutOfMemoryError:
                if n == 1:
                    raise
                torch.cuda.empty_cache()
                self.batch_size = max(1, n // 2)
                self.oom_events += 1
                log.warning("CUDA out of memory: batch size lowered to %d", self.batch_size)
        return np.concatenate(out, axis=0)
