"""``petspect radiomics`` and ``petspect radiomics-ibsi-check`` through the CLI."""

from __future__ import annotations

import csv

import torch
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.io import save
from petspect.radiomics.reference import digital_phantom, digital_phantom_reference
from petspect.volume import Volume

runner = CliRunner()


def _write_phantom(tmp_path, spacing=(2.0, 2.0, 2.0)):
    img, mask, sp = digital_phantom()
    ip, mp = tmp_path / "phantom.nii.gz", tmp_path / "mask.nii.gz"
    save(Volume(torch.tensor(img, dtype=torch.float32), sp, unit="counts"), ip)
    save(Volume(torch.tensor(mask.astype("int16")), spacing, unit="label"), mp)
    return ip, mp


def test_radiomics_cli_writes_tag_value_csv_that_matches_the_ibsi(tmp_path):
    ip, mp = _write_phantom(tmp_path)
    out = tmp_path / "features.csv"
    res = runner.invoke(app, ["radiomics", str(ip), "--mask", str(mp), "--settings", "ibsi-digital-phantom",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["tag", "value"] and len(rows) >= 150
    ref = digital_phantom_reference()
    got = {r["tag"]: float(r["value"]) for r in rows}
    ok = sum(ref[t].matches(v) for t, v in got.items() if t in ref)
    assert ok / len(ref) >= 0.95
    again = runner.invoke(app, ["radiomics", str(ip), "--mask", str(mp), "--out", str(out)])
    assert again.exit_code == 2 and "exists" in again.output  # never overwritten silently


def test_radiomics_cli_refuses_a_mask_on_another_grid_and_an_empty_label(tmp_path):
    ip, _ = _write_phantom(tmp_path)
    img, mask, sp = digital_phantom()
    other = tmp_path / "other.nii.gz"
    save(Volume(torch.tensor(mask.astype("int16")), (3.0, 2.0, 2.0), unit="label"), other)
    res = runner.invoke(app, ["radiomics", str(ip), "--mask", str(other), "--out", str(tmp_path / "f.csv")])
    assert res.exit_code == 2 and "differs" in res.output and "Traceback" not in res.output
    good = tmp_path / "mask.nii.gz"
    res = runner.invoke(app, ["radiomics", str(ip), "--mask", str(good), "--label", "7", "--out", str(tmp_path / "f.csv")])
    assert res.exit_code == 2 and "label 7" in res.output
    res = runner.invoke(app, ["radiomics", str(ip), "--mask", str(good), "--settings", "pet-suv-fbs0.25", "--out",
                              str(tmp_path / "f.csv")])
    assert res.exit_code == 2 and "--suv" in res.output  # an image in counts is not binned as SUV
    res = runner.invoke(app, ["radiomics", str(ip), "--mask", str(good), "--settings", "nope", "--out",
                              str(tmp_path / "f.csv")])
    assert res.exit_code == 2 and "ibsi-digital-phantom" in res.output


def test_ibsi_check_command(tmp_path):
    out = tmp_path / "check.csv"
    res = runner.invoke(app, ["radiomics-ibsi-check", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "482 within tolerance" in res.output or "within tolerance (100.0 %)" in res.output
    rows = list(csv.DictReader(out.open()))
    assert sum(r["match"] == "yes" for r in rows) >= 0.95 * len(rows)
