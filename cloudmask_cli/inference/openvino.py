"""The SegFormer half of the network on OpenVINO, for CPU runs (the `openvino` extra).

On a CPU the SegFormer is about half of the model's time, and OpenVINO's CPU plugin runs it
faster than eager PyTorch (benchmarks/results.md). SEnSeI stays in PyTorch: its per-window
statistics and band sorting do not trace, and its pooling has its own faster path
(inference/compiled.py). The converted graph is cached on disk (`cache_dir`), keyed by the
weights and the library versions, so a run pays the conversion (seconds) once per model, not
once per run.

The graph is traced for sizes that are multiples of the SegFormer's output stride, with the
batch and size left dynamic; padding and cropping happen here, as `SegFormer.forward` does
them, so any window size gives the eager result up to float rounding.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cloudmask_cli import __version__
from cloudmask_cli.model.segformer import OUTPUT_STRIDE, SegFormer, pad_to_stride

log = logging.getLogger("cloudmask")


def available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def cache_dir() -> Path:
    """``$CLOUDMASK_CACHE``, else ``$XDG_CACHE_HOME/cloudmask``, else ``~/.cache/cloudmask``."""
    if os.environ.get("CLOUDMASK_CACHE"):
        return Path(os.environ["CLOUDMASK_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cloudmask"


class _Core(nn.Module):
    """What is traced: the SegFormer on an input already padded to the output stride."""

    def __init__(self, segformer: SegFormer) -> None:
        super().__init__()
        self.segformer = segformer

    def forward(self, x: Tensor) -> Tensor:
        logits = self.segformer.decoder(self.segformer.encoder(x))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def _key(segformer: SegFormer) -> str:
    import openvino

    h = hashlib.sha256()
    for name, t in segformer.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().to(torch.float32).contiguous().numpy().tobytes())
    # the traced code too: a cached graph from another version of this package is not reused
    h.update(f"{openvino.__version__} {torch.__version__} {__version__}".encode())
    return h.hexdigest()[:24]


def _convert(segformer: SegFormer, channels: int) -> Any:
    """The OpenVINO model, from the cache or converted now (and cached when possible)."""
    import openvino as ov

    path = cache_dir() / "openvino" / f"segformer-{_key(segformer)}.xml"
    if path.is_file() and path.with_suffix(".bin").is_file():
        try:
            return ov.Core().read_model(path)
        except RuntimeError as exc:  # a damaged cache entry: convert again
            log.debug("cannot read the cached model %s (%s): converting again", path, exc)
    example = torch.zeros(1, channels, 4 * OUTPUT_STRIDE, 4 * OUTPUT_STRIDE)
    # the tracer's warnings (shape tests taken as constants) hold for every size that is a
    # multiple of the output stride, which is all this graph is given
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ov.convert_model(
            _Core(segformer).eval(),
            example_input=example,
            input=[ov.PartialShape([-1, channels, -1, -1])],
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # written under a temporary name and renamed: concurrent runs never read a half file
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            part = Path(tmp) / path.name
            ov.save_model(model, part, compress_to_fp16=False)
            part.with_suffix(".bin").replace(path.with_suffix(".bin"))
            part.replace(path)
    except OSError as exc:
        log.debug("cannot cache the converted model in %s (%s)", path.parent, exc)
    return model


class OpenVinoSegFormer(nn.Module):
    """Drop-in for a `SegFormer` in inference: same input, same logits (float32, CPU)."""

    def __init__(self, segformer: SegFormer, channels: int, threads: int | None = None) -> None:
        super().__init__()
        import openvino as ov

        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": "f32",
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": threads or torch.get_num_threads(),
        }
        # fed channels-last (NHWC), as SEnSeI's tabled pooling writes it: OpenVINO reorders
        # inside the graph instead of torch copying to NCHW first
        ppp = ov.preprocess.PrePostProcessor(_convert(segformer, channels))
        ppp.input().tensor().set_layout(ov.Layout("NHWC"))
        ppp.input().model().set_layout(ov.Layout("NCHW"))
        self.compiled = ov.Core().compile_model(ppp.build(), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self._lock = threading.Lock()  # one request: callers on other threads take turns

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        x = pad_to_stride(x)
        with self._lock:
            nhwc = x.detach().float().permute(0, 2, 3, 1).contiguous()  # no copy if CL
            out = self.request.infer({0: nhwc.numpy()}, share_inputs=True)
            logits = torch.from_numpy(out[0].copy())
        return logits[..., :h, :w]
