"""The model's faster CPU runtimes: the SegFormer on OpenVINO (inference/openvino.py) and
SEnSeI's pooling compiled (inference/compiled.py). The same masks as eager PyTorch, the
converted model cached, chosen by `--runtime` and by default where they apply."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from typer.testing import CliRunner

from cloudmask_cli.cli import app
from cloudmask_cli.inference import openvino as ov_runtime
from cloudmask_cli.inference.compiled import compiled_pool
from cloudmask_cli.inference.engine import Engine
from cloudmask_cli.model.network import ModelConfig, build_model
from cloudmask_cli.model.segformer import AllMLPDecoder, FoldedDecoder
from cloudmask_cli.sensors import get_sensor

pytest.importorskip("openvino", reason="the openvino extra is not installed")

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model():
    return build_model(ModelConfig.tiny(), seed=3)


def _inputs(shape: tuple[int, int], batch: int = 2, seed: int = 0):
    bands = get_sensor("sentinel2_msi").bands
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 0.6, (batch, len(bands), *shape)).astype(np.float32)
    x[:, :, : shape[0] // 4, : shape[1] // 3] = np.nan  # a no-data corner
    desc = np.stack([b.descriptor for b in bands])
    return x, desc, np.ones((batch, len(bands)), bool)


@pytest.mark.parametrize("shape", [(64, 64), (50, 83), (96, 40)])
def test_openvino_gives_the_torch_probabilities(model, shape):
    """Sizes that are and are not multiples of the output stride (padded as SegFormer pads)."""
    x, desc, mask = _inputs(shape)
    torch_engine = Engine(model, CPU, runtime="torch")
    ov_engine = Engine(model, CPU, runtime="openvino")
    assert (torch_engine.runtime, ov_engine.runtime) == ("torch", "openvino")
    a, b = torch_engine.predict(x, desc, mask), ov_engine.predict(x, desc, mask)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert (a.argmax(1) == b.argmax(1)).mean() >= 0.999
    # the model the caller holds is still the PyTorch one
    assert isinstance(model.segformer, torch.nn.Module)
    assert not isinstance(model.segformer, ov_runtime.OpenVinoSegFormer)


def test_a_window_without_data_keeps_its_no_data_logits(model):
    x, desc, mask = _inputs((64, 64))
    x[1] = np.nan
    a = Engine(model, CPU, runtime="torch").predict(x, desc, mask)
    b = Engine(model, CPU, runtime="openvino").predict(x, desc, mask)
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert (b[1].argmax(0) == model.config.classes.index("no_data")).all()


def test_the_converted_model_is_cached_and_a_damaged_entry_converted_again(model, tmp_path,
                                                                           monkeypatch):  # fmt: skip
    monkeypatch.setenv("CLOUDMASK_CACHE", str(tmp_path))
    x, desc, mask = _inputs((64, 64))
    first = Engine(model, CPU, runtime="openvino").predict(x, desc, mask)
    files = sorted((tmp_path / "openvino").glob("segformer-*"))
    assert [f.suffix for f in files] == [".bin", ".xml"]
    stamp = files[1].stat().st_mtime_ns
    again = Engine(model, CPU, runtime="openvino").predict(x, desc, mask)
    np.testing.assert_array_equal(first, again)
    assert files[1].stat().st_mtime_ns == stamp, "read from the cache, not converted again"
    files[1].write_text("not a model")
    third = Engine(model, CPU, runtime="openvino").predict(x, desc, mask)
    np.testing.assert_array_equal(first, third)
    # other weights, another entry
    Engine(build_model(ModelConfig.tiny(), seed=4), CPU, runtime="openvino")
    assert len(list((tmp_path / "openvino").glob("segformer-*.xml"))) == 2


@pytest.mark.parametrize("runtime", ["compiled", "openvino+compiled"])
def test_compiled_pooling_gives_the_torch_probabilities(model, runtime):
    if compiled_pool() is None:
        pytest.skip("torch.compile cannot build here (no C++ compiler)")
    for shape in [(64, 64), (50, 83)]:
        x, desc, mask = _inputs(shape, seed=1)
        a = Engine(model, CPU, runtime="torch").predict(x, desc, mask)
        engine = Engine(model, CPU, runtime=runtime)
        assert engine.runtime == runtime
        if runtime == "compiled":
            assert isinstance(engine.model.segformer.decoder, FoldedDecoder)
        b = engine.predict(x, desc, mask)
        np.testing.assert_allclose(a, b, atol=1e-4)
        assert (a.argmax(1) == b.argmax(1)).mean() >= 0.999
    assert model.sensei.pool is None, "the caller's model keeps the eager pooling"


def test_runtime_choice(model):
    # auto: the compiled pooling where it builds; OpenVINO only when asked for
    auto = Engine(model, CPU)
    assert auto.runtime == ("compiled" if compiled_pool() is not None else "folded")
    assert Engine(model, CPU, runtime="folded").runtime == "folded"
    # every runtime but eager PyTorch folds the decoder, with or without a C++ compiler
    assert isinstance(auto.model.segformer.decoder, FoldedDecoder)
    assert isinstance(Engine(model, CPU, runtime="torch").model.segformer.decoder, AllMLPDecoder)
    assert Engine(model, CPU, precision="bfloat16").runtime == "torch"  # auto: float32 only
    with pytest.raises(ValueError, match="--runtime must be one of"):
        Engine(model, CPU, runtime="onnx")
    with pytest.raises(ValueError, match="float32 model on the CPU only"):
        Engine(model, CPU, precision="bfloat16", runtime="openvino")


def test_cli_runtime_masks_agree_and_are_recorded(tmp_path, tiny_weights):
    from cloudmask_cli.demo.sentinel2 import write_sentinel2

    product = write_sentinel2(tmp_path, level="L1C", size_10m=240, seed=5)
    masks = {}
    runner = CliRunner()
    for runtime in ("torch", "openvino"):
        out = tmp_path / f"{runtime}.tif"
        res = runner.invoke(app, ["run", str(product), "-o", str(out), "--weights",
                                  str(tiny_weights), "--runtime", runtime, "-q"])  # fmt: skip
        assert res.exit_code == 0, res.output
        side = json.loads(Path(f"{out}.json").read_text())
        assert side["runtime"] == runtime
        with rasterio.open(out) as ds:
            masks[runtime] = ds.read(1)
    assert (masks["torch"] == masks["openvino"]).mean() >= 0.999
    res = runner.invoke(app, ["run", str(product), "-o", str(tmp_path / "x.tif"),
                              "--runtime", "tensorrt"])  # fmt: skip
    assert res.exit_code == 2 and "--runtime must be one of" in res.output
    assert not (tmp_path / "x.tif").exists()
