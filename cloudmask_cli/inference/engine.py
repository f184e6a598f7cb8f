"""Run the model on batches of windows: device choice, pinned memory, precision, OOM back-off."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from cloudmask_cli.model.segformer import SegFormer

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


def default_read_threads(device: torch.device) -> int:
    """Threads decoding windows ahead when the user gives none.

    Beside a CPU model 2 (the model wants the cores); beside a GPU the cores are free, and
    decoding is the bottleneck: up to 8, leaving two cores for the main thread and the driver
    (S2 at 20 m on an H200 host: decode 30.9 s with 2 threads, 23.8 s with 8).
    """
    if device.type == "cuda":
        return max(2, min(8, (os.cpu_count() or 2) - 2))
    return 2


# float16 keeps 10 mantissa bits to bfloat16's 7: on the demo products fp16 masks match the fp32
# ones on 99.8-99.96 % of pixels, bf16 masks on 97.1-99.6 % (benchmarks/results.md, first GPU
# session).
PRECISIONS = {"float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}
# the model's runtimes on the CPU (float32): "torch" is eager PyTorch, the network as trained;
# every other one folds the SegFormer's decoder into one convolution per stage
# (`segformer.FoldedDecoder`; "folded" does only that); "openvino" runs the SegFormer on
# OpenVINO (inference/openvino.py, the `openvino` extra); "compiled" runs SEnSeI's band pooling
# compiled by torch.compile (inference/compiled.py); "auto" is "compiled" where a C++ compiler
# lets torch.compile build it, else "folded" (OpenVINO is asked for by name: it holds more
# memory at the peak). Their masks equal eager PyTorch's on >= 99.9 % of pixels
# (benchmarks/results.md).
RUNTIMES = ("auto", "torch", "folded", "openvino", "compiled", "openvino+compiled")
# the mirror images of test-time augmentation, as torch.flip dims of (B, C, H, W)
FLIPS = ((3,), (2,), (2, 3))


def default_precision(device: torch.device) -> str:
    """float16 autocast on CUDA (tensor cores); float32 on the CPU, where half is no faster."""
    return "float16" if device.type == "cuda" else "float32"


@dataclass
class Engine:
    """Class probabilities for batches of windows."""

    model: torch.nn.Module
    device: torch.device
    batch_size: int | None = None  # None: `default_batch_size` of the device
    precision: str | None = None  # None: `default_precision` of the device
    flips: bool = False  # average over the mirror images too (4 passes per window)
    runtime: str = "auto"  # see RUNTIMES
    oom_events: int = field(default=0, init=False)
    float32_retries: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.batch_size is None:
            self.batch_size = default_batch_size(self.device)
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.precision is None:
            self.precision = default_precision(self.device)
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        self.model = self.model.to(self.device).eval()
        self.runtime = self._runtime()
        self._desc_cache: dict[bytes, torch.Tensor] = {}

    def _runtime(self) -> str:
        """Apply ``runtime`` (see `RUNTIMES`); the parts in use, e.g. "openvino+compiled"."""
        from cloudmask_cli.inference.compiled import compiled_pool
        from cloudmask_cli.model.network import CloudMaskNet

        if self.runtime not in RUNTIMES:
            raise ValueError(
                f"--runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}"
            )
        if self.runtime == "torch":
            return "torch"
        fits = self.device.type == "cpu" and self.precision == "float32"
        fits = fits and isinstance(self.model, CloudMaskNet)
        auto = self.runtime == "auto"
        if not fits:
            if auto:
                return "torch"
            raise ValueError(f"--runtime {self.runtime} runs a float32 model on the CPU only")
        assert isinstance(self.model, CloudMaskNet)
        parts, pool = [], None
        folded = self.model.segformer.folded()
        seg: torch.nn.Module = folded
        if "openvino" in self.runtime:
            converted = self._openvino_segformer(folded)
            if converted is not None:
                seg = converted
                parts.append("openvino")
        if "compiled" in self.runtime or auto:
            pool = compiled_pool()
            if pool is not None:
                parts.append("compiled")
            elif not auto:
                raise ValueError(
                    "--runtime compiled: torch.compile cannot build the pooling here "
                    "(it needs a C++ compiler)"
                )
        self.model = self.model.for_inference(segformer=seg, pool=pool)
        return "+".join(parts) if parts else "folded"

    def _openvino_segformer(self, segformer: SegFormer) -> torch.nn.Module | None:
        from cloudmask_cli.inference import openvino
        from cloudmask_cli.model.network import CloudMaskNet

        assert isinstance(self.model, CloudMaskNet)
        if not openvino.available():
            raise ValueError(
                "--runtime openvino: OpenVINO is not installed (pip install 'cloudmask[openvino]')"
            )
        try:
            return openvino.OpenVinoSegFormer(segformer, self.model.config.embed_channels)
        except Exception as exc:  # noqa: BLE001 - any conversion failure: auto falls back
            if self.runtime != "auto":
                raise ValueError(f"--runtime openvino: cannot convert the model ({exc})") from None
            log.warning("OpenVINO cannot run this model (%s): its SegFormer runs in PyTorch", exc)
            return None

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def _descriptors(self, desc: np.ndarray) -> torch.Tensor:
        key = desc.tobytes()
        if key not in self._desc_cache:
            self._desc_cache[key] = torch.from_numpy(desc).to(self.device)
        return self._desc_cache[key]

    def host_batch(self, shape: tuple[int, ...]) -> torch.Tensor:
        """An empty float32 batch to fill on the host; pinned on CUDA, so it is copied once."""
        return torch.empty(shape, dtype=torch.float32, pin_memory=self.cuda)

    def _probs(self, x: torch.Tensor, d: torch.Tensor, band_mask: torch.Tensor) -> torch.Tensor:
        dtype = PRECISIONS[str(self.precision)]
        if dtype is not None:
            with torch.autocast(self.device.type, dtype=dtype):
                logits = self.model(x, d, band_mask=band_mask)
            # half precision overflows past 65504: redo such a batch in float32 rather
            # than write NaN probabilities
            if not bool(torch.isfinite(logits).all()):
                self.float32_retries += 1
                logits = self.model(x, d, band_mask=band_mask)
        else:
            logits = self.model(x, d, band_mask=band_mask)
        return torch.softmax(logits.float(), dim=1)

    def _forward(
        self, x: torch.Tensor, desc: torch.Tensor, band_mask: torch.Tensor
    ) -> torch.Tensor:
        if self.cuda:
            x = (x if x.is_pinned() else x.pin_memory()).to(self.device, non_blocking=True)
            band_mask = band_mask.to(self.device, non_blocking=True)
        d = desc.unsqueeze(0).expand(x.shape[0], -1, -1)
        with torch.no_grad():  # not inference_mode: the pipeline masks the result in place
            p = self._probs(x, d, band_mask)
            if self.flips:
                # test-time augmentation: the mean over the window and its three mirror
                # images, each mapped back (the network is not exactly mirror-symmetric)
                for dims in FLIPS:
                    p += torch.flip(self._probs(torch.flip(x, dims), d, band_mask), dims)
                p /= 1 + len(FLIPS)
            return p

    def predict_tensor(
        self, x: np.ndarray | torch.Tensor, desc: np.ndarray, band_mask: np.ndarray
    ) -> torch.Tensor:
        """Probabilities ``(B, C, h, w)``, on the engine's device, for windows ``x``
        ``(B, N, h, w)`` (NaN = invalid; a `host_batch` avoids a copy on CUDA).

        On CUDA out-of-memory the batch is halved for the rest of the run, down to one window.
        """
        xt = torch.from_numpy(x) if isinstance(x, np.ndarray) else x
        mt = torch.from_numpy(band_mask)
        d = self._descriptors(desc)
        out = []
        i = 0
        while i < len(xt):
            n = self.batch_size or 1  # set in __post_init__
            try:
                out.append(self._forward(xt[i : i + n], d, mt[i : i + n]))
                i += n
            except torch.OutOfMemoryError:
                if n == 1:
                    raise
                torch.cuda.empty_cache()
                self.batch_size = max(1, n // 2)
                self.oom_events += 1
                log.warning("CUDA out of memory: batch size lowered to %d", self.batch_size)
        return out[0] if len(out) == 1 else torch.cat(out)

    def predict(self, x: np.ndarray, desc: np.ndarray, band_mask: np.ndarray) -> np.ndarray:
        """`predict_tensor` as a numpy array on the host."""
        return self.predict_tensor(x, desc, band_mask).cpu().numpy()
