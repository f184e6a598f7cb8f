"""The wheel ships the sensor definitions (sensors/) and the bundled weights (weights/), kept
at the top of the repository: built, installed into a fresh virtual environment (the
dependencies reached from this one, the package only from the wheel), `cloudmask sensors`
lists every bundled sensor and a demo product is masked with the bundled model."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=600, check=False, **kw)  # type: ignore[call-overload]


@pytest.mark.skipif(
    importlib.util.find_spec("setuptools") is None, reason="needs setuptools to build"
)
def test_the_wheel_carries_sensors_and_weights_and_masks(tmp_path: Path) -> None:
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                  "-q", "-w", str(tmp_path / "dist"), str(REPO)])  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("cloudmask-*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]
        ).stdout.strip()
    )
    # the dependencies from this environment; its .pth files (the editable install) are not read
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    inst = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                 "--no-index", "-q", str(wheel)])  # fmt: skip
    assert inst.returncode == 0, inst.stderr
    where = _run(
        [str(python), "-c", "import cloudmask_cli; print(cloudmask_cli.__file__)"], cwd=tmp_path
    )
    assert Path(where.stdout.strip()).is_relative_to(env_dir), where.stdout + where.stderr
    cli = str(env_dir / "bin" / "cloudmask")
    listed = _run([cli, "sensors"], cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    for yaml_file in (REPO / "sensors").glob("*.yaml"):
        assert yaml_file.stem in listed.stdout
    assert _run([cli, "demo", "demo"], cwd=tmp_path).returncode == 0
    (safe,) = (tmp_path / "demo").glob("S2*.SAFE")
    ran = _run([cli, "run", str(safe), "-o", "mask.tif"], cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    sidecar = json.loads((tmp_path / "mask.tif.json").read_text())
    assert sidecar["model"]["name"] == "cloudmask-b0"


def test_every_subpackage_is_listed_for_the_wheel() -> None:
    """pyproject.toml lists the packages by hand (two of them are mapped from outside the
    package): a new subpackage missing from the list would be missing from the wheel."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11+")
    listed = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(p.parent.relative_to(REPO).parts)
        for p in (REPO / "cloudmask_cli").rglob("__init__.py")
    }
    assert found <= listed, f"not in pyproject.toml's packages: {sorted(found - listed)}"
    assert {"cloudmask_cli.sensor_files", "cloudmask_cli.weight_files"} <= listed
