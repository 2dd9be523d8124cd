"""``petspect ac apply`` on bad images: a synthetic CT was made from nothing, or from NaN, and a failing --raw
left a half-written output folder."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.io.nifti import write_nifti
from petspect.volume import Volume


def _run(args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def nac_model(tmp_path_factory):
    """A small NAC -> CT network (one epoch on random slices: the refusals, not the accuracy, are tested)."""
    from petspect.ac.networks import save_model, train_translation

    g = torch.Generator().manual_seed(3)
    x = torch.rand(4, 1, 16, 16, generator=g)
    y = torch.rand(4, 1, 16, 16, generator=g) - 0.5
    model, _ = train_translation("nac_sct", x, y, x, y, target_scale=1000.0, epochs=1, seed=1,
                                 trained_on={"region": "torso"}, input_norm={"nac": "99th percentile"})
    return save_model(model, tmp_path_factory.mktemp("ac") / "model_nac_sct")


def _nac(values: torch.Tensor | None = None) -> Volume:
    d = torch.zeros(3, 16, 16)
    d[:, 4:12, 3:13] = 5000.0
    d[1, 6:9, 6:9] = 20000.0
    return Volume(d if values is None else values, (4.0, 4.0, 4.0), (-30.0, -32.0, 100.0), unit="Bq/mL",
                  modality="PT")


@pytest.mark.parametrize("case", ["nan", "zero", "negative"])
def test_apply_refuses_a_nac_pet_without_finite_positive_values(nac_model, tmp_path, case):
    """A NaN voxel gave an all-NaN synthetic CT and mu map; an all-zero or negative PET gave a 'CT' of soft
    tissue and air made from nothing; both with exit code 0."""
    d = _nac().data.clone()
    if case == "nan":
        d[1, 5, 5] = float("nan")
    elif case == "zero":
        d.zero_()
    else:
        d = -d
    nac = write_nifti(_nac(d), tmp_path / "nac.nii.gz")
    res = _run(["ac", "apply", "--model", nac_model, "--input", nac, "--out", tmp_path / "out"])
    assert res.exit_code == 2, res.output
    assert ("NaN" in res.output) if case == "nan" else ("no positive" in res.output), res.output
    assert not (tmp_path / "out").exists()


def test_apply_with_a_bad_raw_folder_writes_nothing(nac_model, tmp_path):
    """--raw was read only after the synthetic CT was written: the command failed with a half-filled folder
    that a rerun then refused as existing."""
    nac = write_nifti(_nac(), tmp_path / "nac.nii.gz")
    (tmp_path / "not_raw").mkdir()
    res = _run(["ac", "apply", "--model", nac_model, "--input", nac, "--raw", tmp_path / "not_raw", "--out",
                tmp_path / "out"])
    assert res.exit_code == 2 and "acquisition" in res.output, res.output
    assert not (tmp_path / "out").exists()
    ok = _run(["ac", "apply", "--model", nac_model, "--input", nac, "--out", tmp_path / "out"])
    assert ok.exit_code == 0, ok.output


def test_overwrite_removes_the_outputs_of_the_earlier_run(nac_model, tmp_path):
    """A rerun with --overwrite on a NIfTI kept the earlier run's synthetic_ct_dicom/ (made from another input)
    beside the new files as if it belonged to them."""
    from petspect.io.dicom_write import write_dicom_series

    RP = {"total_dose_bq": 3.7e8, "half_life_s": 6586.2, "start_datetime": "20260101080000",
          "scan_datetime": "20260101090000", "name": "FDG", "decay_correction": "START"}
    dicom = write_dicom_series(_nac(), tmp_path / "nac_dicom", radiopharmaceutical=RP)[0].parent
    nac = write_nifti(_nac(), tmp_path / "nac.nii.gz")
    out = tmp_path / "out"
    assert _run(["ac", "apply", "--model", nac_model, "--input", dicom, "--out", out]).exit_code == 0
    assert (out / "synthetic_ct_dicom").is_dir()
    res = _run(["ac", "apply", "--model", nac_model, "--input", nac, "--out", out, "--overwrite"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["mu_511.nii.gz",
                                                                                     "synthetic_ct.nii.gz"]
