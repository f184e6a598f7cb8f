"""Typed results (cloudmask_cli.records): one JSON form, read back, read like the old dicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import a_sidecar

from cloudmask_cli.errors import InputError
from cloudmask_cli.records import EvaluationReport, Sidecar, Timings, Windows


def sidecar() -> Sidecar:
    return a_sidecar(
        aoi=None,
        windows=Windows(size=512, overlap=128, planned=4, run=3, empty=1),
        timings=Timings(total_s=1.0, read_s_summed_over_threads=0.5, model_s=0.4),
    )


def test_a_sidecar_writes_what_it_holds_and_reads_back(tmp_path: Path) -> None:
    s = sidecar()
    d = json.loads(s.to_json())
    # unset optional fields are written as null, but a quicklook only when there is one
    assert d["aoi"] is None and "quicklook" not in d and "quicklook_s" not in d["timings"]
    s.quicklook = "q.png"
    assert s.timings is not None
    s.timings.quicklook_s = 0.25
    d = json.loads(s.to_json())
    assert d["quicklook"] == "q.png" and d["timings"]["quicklook_s"] == 0.25
    s.write(tmp_path / "m.tif.json")
    back = Sidecar.read(tmp_path / "m.tif.json")
    assert back == s and back.to_json() == s.to_json()
    # read like the JSON it writes, as the dicts of earlier versions
    assert back["class_fractions"]["thin_cloud"] == 0.1 and back["windows"]["run"] == 3
    assert "style" in back and dict(back) == d


def test_cloud_fraction_follows_the_style() -> None:
    assert sidecar().cloud_fraction == pytest.approx(0.3)  # thick + thin, not the shadow


def test_a_file_that_is_not_a_sidecar_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "m.tif.json"
    bad.write_text(json.dumps({"product": "x", "style": "7class"}))
    with pytest.raises(InputError, match=r"m.tif.json: not a cloudmask run sidecar: .*missing"):
        Sidecar.read(bad)
    bad.write_text("{")
    with pytest.raises(InputError, match="m.tif.json: not a cloudmask run sidecar"):
        Sidecar.read(bad)
    with pytest.raises(InputError, match="cannot read"):
        EvaluationReport.read(tmp_path / "none.json")


def test_keys_of_a_later_version_are_ignored(tmp_path: Path) -> None:
    d = sidecar().to_dict() | {"added_later": 1}
    (tmp_path / "s.json").write_text(json.dumps(d))
    assert "added_later" not in Sidecar.read(tmp_path / "s.json").to_dict()
