"""Shared fixtures. Real data lives in ../shared/data beside the repository and is read in place."""

from __future__ import annotations

import os
import types
from pathlib import Path

import pytest

SHARED = Path(
    os.environ.get("CLOUDMASK_SHARED", Path(__file__).resolve().parents[1].parent / "shared")
)
DATA = SHARED / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests that need it are skipped with a reason when it is absent."""
    if not DATA.is_dir():
        pytest.skip(f"real data not available: {DATA} is absent (tier 2 tests need ../shared/data)")
    return DATA


def require(path: Path) -> Path:
    """Skip the calling test with a reason when one real file or folder is absent."""
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent")
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small tensors: one torch thread is as fast, and robust when the machine is busy."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """An untrained tiny model saved as a checkpoint: runs end to end in seconds."""
    import torch

    from cloudmask_cli.model.checkpoint import save_checkpoint
    from cloudmask_cli.model.network import ModelConfig, build_model

    config = ModelConfig.tiny()
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    save_checkpoint(build_model(config, seed=0), config, path, metadata={"name": "tiny-test"},
                    dtype=torch.float32)  # fmt: skip
    return path


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Converted models (inference/openvino.py) go to a cache of this session, not ~/.cache."""
    old = os.environ.get("CLOUDMASK_CACHE")
    os.environ["CLOUDMASK_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("CLOUDMASK_CACHE", None)
    else:
        os.environ["CLOUDMASK_CACHE"] = old


def benchmark_script(name: str) -> types.ModuleType:
    """A script of benchmarks/ (``quality/rule_shares``) as a module: the maintainers' tools
    live outside the package."""
    import importlib.util

    path = Path(__file__).parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def a_sidecar(**fields: object):
    """A `Sidecar` with its required fields filled in (a 4-class run), for tests that write
    or read one without running the model; ``fields`` override."""
    from cloudmask_cli.records import Sidecar

    base: dict = dict(
        cloudmask_version="0.1.0", product="/data/S2.SAFE", product_id="S2", style="4class",
        class_fractions={"clear": 0.5, "thick_cloud": 0.2, "thin_cloud": 0.1, "cloud_shadow": 0.2},
        valid_fraction=0.9,
    )  # fmt: skip
    return Sidecar(**(base | fields))
