"""Checkpoints: safetensors + YAML; save -> load gives the same network; bad files are rejected."""

from __future__ import annotations

import pickle

import pytest
import safetensors.torch
import torch
import yaml

from cloudmask_cli import descriptors as D
from cloudmask_cli.errors import InputError
from cloudmask_cli.model import (
    CLASSES,
    ModelConfig,
    build_model,
    load_checkpoint,
    model_hash,
    save_checkpoint,
)
from cloudmask_cli.model.checkpoint import FORMAT_VERSION, sha256_file
from cloudmask_cli.sensors import get_sensor

pytestmark = pytest.mark.usefixtures("one_torch_thread")


DESC = torch.from_numpy(D.descriptor_matrix(get_sensor("sentinel2_msi").bands))
META = {
    "provenance": {"trained_by": "tests", "datasets": ["synthetic"]},
    "training": {"steps": 0},
    "metrics": {"accuracy": 0.5},
}


def _x(h=40, w=48):
    return torch.rand(1, 13, h, w, generator=torch.Generator().manual_seed(0)) * 0.5


@pytest.fixture
def saved(tmp_path):
    cfg = ModelConfig.tiny()
    model = build_model(cfg, seed=1)
    path = tmp_path / "net.safetensors"
    save_checkpoint(model, cfg, path, metadata=META)
    return model, cfg, path


def test_save_load_identical_outputs(saved):
    model, cfg, path = saved
    loaded, cfg2, meta = load_checkpoint(path)
    assert cfg2 == cfg and not loaded.training
    x = _x()
    with torch.inference_mode():
        assert torch.equal(model(x, DESC), loaded(x, DESC))
    assert meta["classes"] == list(CLASSES)
    assert meta["architecture"] == cfg.to_dict()
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["metrics"] == META["metrics"] and meta["provenance"] == META["provenance"]
    assert meta["weights"]["sha256"] == sha256_file(path)
    assert model_hash(path) == sha256_file(path)[:12]
    assert "units" in meta["input"]
    # Loading through the YAML's path works too.
    loaded_again, _, _ = load_checkpoint(path.with_suffix(".yaml"))
    with torch.inference_mode():
        assert torch.equal(model(x, DESC), loaded_again(x, DESC))


def test_weighted_pooling_survives_save_and_load(tmp_path):
    cfg = ModelConfig.tiny(sensei_pooling="weighted")
    model = build_model(cfg, seed=1)
    with torch.no_grad():
        model.sensei.gate[-1].bias.fill_(0.7)  # a gate away from its start
        model.sensei.gate[-1].weight.normal_(generator=torch.Generator().manual_seed(2))
    path = tmp_path / "net.safetensors"
    save_checkpoint(model, cfg, path, metadata=META)
    loaded, cfg2, meta = load_checkpoint(path)
    assert cfg2.sensei_pooling == "weighted" == meta["architecture"]["sensei_pooling"]
    x = _x()
    with torch.inference_mode():
        assert torch.equal(model(x, DESC), loaded(x, DESC))


def test_float16_weights_load_as_float32(tmp_path):
    cfg = ModelConfig.tiny()
    model = build_model(cfg, seed=2)
    path = tmp_path / "half.safetensors"
    save_checkpoint(model, cfg, path, metadata=META, dtype=torch.float16)
    stored = safetensors.torch.load_file(str(path))
    assert all(t.dtype == torch.float16 for t in stored.values() if t.is_floating_point())
    loaded, _, meta = load_checkpoint(path)
    assert meta["weights"]["dtype"] == "float16"
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = _x()
    with torch.inference_mode():
        ref, out = model(x, DESC), loaded(x, DESC)
    assert (out - ref).abs().max() < 0.05 * max(1.0, ref.abs().max().item())


def test_tampered_weights_rejected(saved):
    _, _, path = saved
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="SHA-256") as e:
        load_checkpoint(path)
    assert str(path) in str(e.value)


def test_missing_yaml_rejected(saved):
    _, _, path = saved
    path.with_suffix(".yaml").unlink()
    with pytest.raises(InputError, match="missing"):
        load_checkpoint(path)


def test_missing_weights_rejected(saved):
    _, _, path = saved
    path.unlink()
    with pytest.raises(InputError, match="missing"):
        load_checkpoint(path)


def _edit_yaml(path, change):
    ypath = path.with_suffix(".yaml")
    doc = yaml.safe_load(ypath.read_text())
    change(doc)
    ypath.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_unknown_format_version_rejected(saved):
    _, _, path = saved
    _edit_yaml(path, lambda d: d.update(format_version=99))
    with pytest.raises(InputError, match="format version 99"):
        load_checkpoint(path)


def test_mismatched_architecture_rejected(saved):
    _, _, path = saved
    _edit_yaml(path, lambda d: d["architecture"].update(embed_channels=24))
    with pytest.raises(InputError, match="mis-shaped tensors: sensei"):
        load_checkpoint(path)


def test_bad_architecture_rejected(saved):
    _, _, path = saved
    _edit_yaml(path, lambda d: d["architecture"].update(segformer="b7", extra_key=1))
    with pytest.raises(InputError, match="bad architecture"):
        load_checkpoint(path)


def test_missing_and_unexpected_tensors_rejected(saved):
    _, _, path = saved
    tensors = safetensors.torch.load_file(str(path))
    tensors.pop("segformer.decoder.classify.weight")
    tensors["extra.weight"] = torch.zeros(3)
    safetensors.torch.save_file(tensors, str(path))
    _edit_yaml(path, lambda d: d["weights"].update(sha256=sha256_file(path)))
    with pytest.raises(InputError) as e:
        load_checkpoint(path)
    msg = str(e.value)
    assert "missing tensors: segformer.decoder.classify.weight" in msg
    assert "unexpected tensors: extra.weight" in msg


def test_pickle_is_never_loaded(saved):
    _, _, path = saved

    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))

    path.write_bytes(pickle.dumps({"x": Boom()}))
    _edit_yaml(path, lambda d: d["weights"].update(sha256=sha256_file(path)))
    with pytest.raises(InputError, match="safetensors"):
        load_checkpoint(path)


def test_reserved_metadata_keys_rejected(tmp_path):
    cfg = ModelConfig.tiny()
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(build_model(cfg), cfg, tmp_path / "m.safetensors", metadata={"classes": []})
    assert not list(tmp_path.iterdir())
