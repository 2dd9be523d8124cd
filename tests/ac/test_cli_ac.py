"""``petspect study ac --preset tiny`` and ``petspect ac apply|seg|sss`` through the Typer app."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.io.nifti import read_nifti, write_nifti
from petspect.volume import Volume


def _run(args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("ac") / "study"
    res = _run(["study", "ac", "--preset", "tiny", "--out", out])
    assert res.exit_code == 0, res.output
    return out


def test_study_writes_every_method_with_intervals(study):
    metrics = json.loads((study / "metrics.json").read_text())
    for m in ("ct_ac", "nac", "seg_ac", "seg_ac_bone", "seg_ac_nac", "mlaa", "dl_nac_sct", "dl_mr_sct", "dl_direct",
              "dl_tof_acf", "dl_scatter"):
        assert "suv_bias_pct_max_abs" in metrics[m] and len(metrics[m]["suv_bias_pct_max_abs_ci95"]) == 2
    assert metrics["ct_ac"]["suv_bias_pct_max_abs"] == pytest.approx(0.0, abs=1e-6)  # the reference against itself
    assert metrics["nac"]["suv_bias_pct_max_abs"] > 5.0  # no attenuation correction is far off
    for m in ("dl_nac_sct", "dl_mr_sct"):
        assert "hu_mae" in metrics[m] and 0 <= metrics[m]["bone_dice"] <= 1
    summary = json.loads((study / "summary.json").read_text())
    assert summary["inverse_crime"] is False and summary["test_scored"] == 1
    assert any("dl_nac_sct" in c["check"] for c in summary["checks"])
    assert (study / "report" / "index.html").stat().st_size > 1000
    assert (study / "models" / "torso_nac_sct" / "model.json").is_file()
    assert "scatter_nrmse_pct" in metrics["ct_ac"] and "scatter_nrmse_pct" in metrics["dl_scatter"]


def test_apply_writes_synthetic_ct_and_refuses_bad_inputs(study, tmp_path):
    nac = torch.zeros(2, 24, 24)
    nac[:, 6:18, 4:20] = 1.0
    vol = Volume(nac, (16.0, 16.0, 16.0), (0.0, 0.0, 0.0), unit="Bq/mL", modality="PT")
    src = write_nifti(vol, tmp_path / "nac.nii.gz")
    out = tmp_path / "out"
    res = _run(["ac", "apply", "--model", study / "models" / "torso_nac_sct", "--input", src, "--out", out])
    assert res.exit_code == 0, res.output
    sct = read_nifti(out / "synthetic_ct.nii.gz")
    assert sct.shape == (2, 24, 24) and float(sct.data.min()) >= -1000 and sct.unit == "HU"
    mu = read_nifti(out / "mu_511.nii.gz").data
    assert float(mu.max()) < 0.03
    again = _run(["ac", "apply", "--model", study / "models" / "torso_nac_sct", "--input", src, "--out", out])
    assert again.exit_code != 0  # no silent overwrite
    no_mr = _run(["ac", "apply", "--model", study / "models" / "torso_mr_sct", "--input", src,
                  "--out", tmp_path / "o2"])
    assert no_mr.exit_code == 2 and "--mr" in no_mr.output
    bad = _run(["ac", "apply", "--model", tmp_path, "--input", src, "--out", tmp_path / "o3"])
    assert bad.exit_code == 2


def test_seg_command_and_unknown_preset(tmp_path):
    img = np.zeros((2, 32, 32), np.float32)
    img[:, 6:26, 4:28] = 0.8
    src = write_nifti(Volume(torch.from_numpy(img), (8.0, 8.0, 8.0), (0.0, 0.0, 0.0), unit="a.u.", modality="MR"),
                      tmp_path / "t1.nii.gz")
    res = _run(["ac", "seg", src, "--out", tmp_path / "mu.nii.gz"])
    assert res.exit_code == 0, res.output
    mu = read_nifti(tmp_path / "mu.nii.gz")
    assert mu.unit == "1/mm" and float(mu.data.max()) == pytest.approx(0.0100)
    res = _run(["study", "ac", "--preset", "huge", "--out", tmp_path / "s"])
    assert res.exit_code == 2


def test_sss_command_on_a_saved_acquisition(tmp_path):
    """``petspect ac sss``: a saved TOF acquisition and a CT mu map -> corrected PET near the truth."""
    from petspect.ac.data import make_case
    from petspect.systems.acquisition import save_acquisition

    c = make_case("torso", "fdg", 9, voxel_mm=16.0, shape=(2, 24, 24), scan_s=1200.0)
    acq = save_acquisition(c.data, tmp_path / "acq")
    mu = write_nifti(c.data.grid.volume(c.mu_ct, unit="1/mm"), tmp_path / "mu.nii.gz")
    res = _run(["ac", "sss", acq, "--mu", mu, "--out", tmp_path / "pet.nii.gz"])
    assert res.exit_code == 0, res.output
    pet = read_nifti(tmp_path / "pet.nii.gz").data
    body = c.mu_ct > 0.008
    ratio = float(pet[body].mean() / c.activity_true[body].mean())
    assert 0.8 < ratio < 1.2, ratio  # coarse 16 mm grid, 5 mm detector blur of the truth: mean within 20 %
    bad = _run(["ac", "sss", acq, "--mu", mu, "--out", tmp_path / "pet.nii.gz"])
    assert bad.exit_code != 0  # refuses to overwrite


@pytest.mark.parametrize("args", [["ac", "--help"], ["ac", "seg", "--help"], ["ac", "apply", "--help"],
                                  ["ac", "sss", "--help"], ["study", "ac", "--help"]])
def test_help_pages(args):
    res = _run(args)
    assert res.exit_code == 0, res.output


def test_apply_with_raw_data_reconstructs_the_pet(study, tmp_path):
    """``ac apply --raw``: the PET reconstructed again from the raw data with the synthetic CT's mu map."""
    from petspect.ac.correct import reconstruct_nac
    from petspect.ac.data import make_case
    from petspect.systems.acquisition import save_acquisition

    c = make_case("torso", "fdg", 11, voxel_mm=16.0, shape=(2, 24, 24), scan_s=1200.0)
    acq = save_acquisition(c.data, tmp_path / "acq")
    nac = write_nifti(c.data.grid.volume(reconstruct_nac(c.data), unit="Bq/mL", modality="PT"), tmp_path / "nac.nii.gz")
    out = tmp_path / "out"
    res = _run(["ac", "apply", "--model", study / "models" / "torso_nac_sct", "--input", nac, "--raw", acq,
                "--out", out])
    assert res.exit_code == 0, res.output
    pet = read_nifti(out / "pet_ac.nii.gz")
    assert pet.shape == c.data.grid.shape and float(pet.data.min()) >= 0 and float(pet.data.sum()) > 0
    small = write_nifti(c.data.grid.volume(torch.ones(2, 20, 20), unit="Bq/mL"), tmp_path / "small.nii.gz")
    res = _run(["ac", "apply", "--model", study / "models" / "torso_nac_sct", "--input", small, "--raw", acq,
                "--out", tmp_path / "o4"])
    assert res.exit_code == 2 and "grid" in res.output
