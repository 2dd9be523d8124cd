"""``petspect phantom`` and ``petspect nema`` through the CLI runner."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.io import load



@pytest.fixture(scope="module")
def iec_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "iec"
    res = CliRunner().invoke(app, ["phantom", "nema-iec", "--out", str(out), "--voxel-mm", "4", "--seed", "1"])
    assert res.exit_code == 0, res.output
    return out


def test_phantom_writes_volumes_record_tables_and_montage(iec_dir):
    """Every volume as NIfTI, the record that rebuilds it, tables as JSON + CSV, a PNG montage."""
    for f in ("activity.nii.gz", "mu_511.nii.gz", "labels.nii.gz", "record.json", "label_names.json",
              "spheres.json", "spheres.csv", "compartments.csv", "montage.png"):
        assert (iec_dir / f).is_file(), f
    rec = json.loads((iec_dir / "record.json").read_text())
    assert rec["generator"] == "nema-iec" and rec["params"]["seed"] == 1
    from petspect.phantoms import rebuild

    act = load(iec_dir / "activity.nii.gz")
    assert torch.allclose(act.data.float(), rebuild(rec)["activity"].data, atol=1e-3)
    assert (iec_dir / "montage.png").read_bytes()[:4] == b"\x89PNG"


def test_phantom_refuses_non_empty_dir_unless_overwrite(iec_dir, tmp_path):
    r = CliRunner().invoke(app, ["phantom", "cylinder", "--out", str(iec_dir), "--voxel-mm", "8"])
    assert r.exit_code == 2 and "overwrite" in r.output
    assert (iec_dir / "spheres.json").exists()  # untouched
    r = CliRunner().invoke(app, ["phantom", "cylinder", "--out", str(tmp_path / "c"), "--voxel-mm", "8",
                                 "--param", "radius_mm=40", "--param", "length_mm=50"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "c" / "record.json").read_text())["params"]["radius_mm"] == 40
    r = CliRunner().invoke(app, ["phantom", "no-such", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2
    r = CliRunner().invoke(app, ["phantom", "cylinder", "--out", str(tmp_path / "y"), "--param", "bogus=1"])
    assert r.exit_code == 2 and not (tmp_path / "y").exists()


def test_nema_command_reports_and_writes_json(iec_dir, tmp_path):
    """The NIfTI written by ``petspect phantom`` analyses to Q_H ~ 100 % for the biggest sphere
    (4 mm voxels: partial-volume edge pixels cost several %)."""
    out = tmp_path / "q.json"
    r = CliRunner().invoke(app, ["nema", str(iec_dir / "activity.nii.gz"), "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "contrast" in r.output
    res = json.loads(out.read_text())
    assert res["activity_ratio"] == 4.0
    assert 80.0 < res["spheres"][0]["contrast_pct"] <= 100.5
    r = CliRunner().invoke(app, ["nema", str(iec_dir / "activity.nii.gz"), "--json", str(out)])
    assert r.exit_code == 2  # exists, no --overwrite


def test_nema_png_shows_rois(iec_dir, tmp_path):
    out = tmp_path / "rois.png"
    r = CliRunner().invoke(app, ["nema", str(iec_dir / "activity.nii.gz"), "--png", str(out), "--ratio", "4",
                                 "--refine-spheres", "2"])
    assert r.exit_code == 0, r.output
    assert out.read_bytes()[:4] == b"\x89PNG"
