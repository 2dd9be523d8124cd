"""Bad inputs to ``petspect segment``: each was a silent wrong number or a refusal with no way out before it
was fixed."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.io import load, save
from petspect.io.dicom_write import write_dicom_series
from petspect.volume import Volume

runner = CliRunner()
F18_HALF_LIFE_S = 6586.2


def _ball_pet() -> tuple[Volume, np.ndarray]:
    z, y, x = np.indices((10, 32, 32))
    ball = (z - 5) ** 2 * 16 + (y - 12) ** 2 * 16 + (x - 20) ** 2 * 16 <= 10.0 ** 2  # r = 10 mm, 4 mm voxels
    data = np.where(ball, 30000.0, 3000.0).astype(np.float32)
    return Volume.centered(torch.from_numpy(data), (4.0, 4.0, 4.0), unit="Bq/mL", modality="PT"), ball


def _dicom_pet(tmp_path):
    vol, ball = _ball_pet()
    out = tmp_path / "pet"
    write_dicom_series(vol, out, patient={"weight_kg": 70.0, "sex": "F"},
                       radiopharmaceutical={"total_dose_bq": 3.7e8, "half_life_s": F18_HALF_LIFE_S,
                                            "start_datetime": "20240102090000", "scan_datetime": "20240102100000"})
    return out, ball


def _tlg(folder) -> float:
    return sum(float(r["tlg"]) for r in csv.DictReader((folder / "lesions.csv").open()))


def test_segment_uses_the_suv_factor_given_for_a_dicom_series(tmp_path):
    """--suv-factor was silently ignored for a DICOM input: MTV and TLG came from the header's factor."""
    pet_dir, ball = _dicom_pet(tmp_path)
    factor = 1e-4  # SUV 3 in the ball, 0.3 outside
    r = runner.invoke(app, ["segment", "--method", "suv25", "--input", str(pet_dir), "--suv-factor", str(factor),
                            "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    bq = load(pet_dir).numpy()
    assert _tlg(tmp_path / "o") == pytest.approx(float(bq[ball].sum()) * factor * 0.064, rel=1e-3)
    doc = json.loads((tmp_path / "o" / "segmentation.json").read_text())
    assert doc["suv_factor_given"] == pytest.approx(factor)
    assert (tmp_path / "o" / "seg.dcm").is_file()  # still referenced to the DICOM series


def test_segment_refuses_an_suv_factor_for_an_image_already_in_suv(tmp_path):
    """An image already in SUV kept its values and the factor was dropped without a word."""
    vol, _ = _ball_pet()
    save(vol.with_data(vol.data * 1e-4, unit="SUVbw"), tmp_path / "suv.nii.gz")
    r = runner.invoke(app, ["segment", "--method", "suv25", "--input", str(tmp_path / "suv.nii.gz"),
                            "--suv-factor", "2", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "already in SUV" in r.output, r.output
    assert not (tmp_path / "o").exists()


def test_segment_reads_a_nifti_from_another_tool_with_a_stated_unit(tmp_path):
    """A NIfTI written by another tool (dcm2niix, nibabel) loads in a.u.: --suv-factor was refused and no
    option could say the unit, so such a PET could not be segmented at all."""
    vol, ball = _ball_pet()
    save(vol, tmp_path / "ref.nii.gz")
    ref = nib.load(tmp_path / "ref.nii.gz")
    foreign = tmp_path / "foreign.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(ref.dataobj, dtype=np.float32), ref.affine), foreign)
    r = runner.invoke(app, ["segment", "--method", "suv25", "--input", str(foreign), "--suv-factor", "2e-4",
                            "--out", str(tmp_path / "a")])
    assert r.exit_code == 2 and "--unit" in r.output, r.output
    r = runner.invoke(app, ["segment", "--method", "suv25", "--input", str(foreign), "--suv-factor", "2e-4",
                            "--unit", "Bq/mL", "--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    assert np.array_equal(load(tmp_path / "b" / "lesions.nii.gz").numpy().astype(bool), ball)
    r = runner.invoke(app, ["segment", "--method", "suv25", "--input", str(tmp_path / "ref.nii.gz"), "--unit", "SUV",
                            "--out", str(tmp_path / "c")])
    assert r.exit_code == 2 and "relabel" in r.output  # a unit the file carries is never overridden


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Untrained small networks (the refusals, not the masks, are tested)."""
    from petspect.segmentation.networks import SegNetSpec, Segmenter, build_network, save_segmenter

    tmp = tmp_path_factory.mktemp("seg_models")
    torch.manual_seed(1)
    small = {"filters": (4, 8, 16), "z_strides": (1, 2), "patch_zyx": (8, 16, 16)}
    specs = {"pet": SegNetSpec(in_channels=1, **small), "petct": SegNetSpec(in_channels=2, **small),
             "organs": SegNetSpec(in_channels=1, inputs="ct", classes=("background", "liver"), **small)}
    return {k: save_segmenter(tmp / k, Segmenter(build_network(s).eval(), s, k)) for k, s in specs.items()}


def test_segment_model_refuses_a_ct_that_is_not_in_hu_and_a_ct_it_does_not_take(tmp_path, models):
    """A PET given as --ct was read as HU; --ct given to a PET-only or organ model was dropped without a word."""
    pet, _ = _ball_pet()
    save(pet, tmp_path / "pet.nii.gz")
    save(pet.with_data(torch.full(pet.shape, -1000.0), unit="HU", modality="CT"), tmp_path / "ct.nii.gz")
    base = ["segment", "--input", str(tmp_path / "pet.nii.gz"), "--suv-factor", "2e-4"]
    r = runner.invoke(app, [*base, "--model", str(models["petct"]), "--ct", str(tmp_path / "pet.nii.gz"),
                            "--out", str(tmp_path / "a")])
    assert r.exit_code == 2 and "HU" in r.output and "Bq/mL" in r.output, r.output
    for key, inp in (("pet", "pet.nii.gz"), ("organs", "ct.nii.gz")):
        r = runner.invoke(app, ["segment", "--input", str(tmp_path / inp), "--model", str(models[key]), "--ct",
                                str(tmp_path / "ct.nii.gz"), "--out", str(tmp_path / "b")])
        assert r.exit_code == 2 and "--ct" in r.output, (key, r.output)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    r = runner.invoke(app, [*base, "--model", str(models["petct"]), "--ct", str(tmp_path / "ct.nii.gz"),
                            "--out", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output


def test_segment_organ_model_takes_a_stated_unit_for_a_ct_from_another_tool(tmp_path, models):
    pet, _ = _ball_pet()
    save(pet.with_data(torch.full(pet.shape, -1000.0), unit="HU", modality="CT"), tmp_path / "ref.nii.gz")
    ref = nib.load(tmp_path / "ref.nii.gz")
    foreign = tmp_path / "foreign_ct.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(ref.dataobj, dtype=np.float32), ref.affine), foreign)
    r = runner.invoke(app, ["segment", "--input", str(foreign), "--model", str(models["organs"]),
                            "--out", str(tmp_path / "a")])
    assert r.exit_code == 2 and "--unit HU" in r.output, r.output
    r = runner.invoke(app, ["segment", "--input", str(foreign), "--model", str(models["organs"]), "--unit", "HU",
                            "--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "b" / "organs.csv").is_file()


@pytest.mark.parametrize("method, extra, named", [
    ("suv25", ["--seed-suv", "4"], "--seed-suv"),
    ("suv25", ["--margin-mm", "5"], "--margin-mm"),
    ("suv41", ["--liver-mask", "MASK"], "--liver-mask"),
    ("percist", ["--liver-mask", "MASK", "--seeds", "MASK"], "--seeds"),
    (None, ["--seeds", "MASK"], "--seeds"),
])
def test_segment_refuses_options_the_method_does_not_use(tmp_path, models, method, extra, named):
    """Options a method does not use were dropped without a word (suv25 --seed-suv 4 gave the SUV >= 2.5 mask)."""
    pet, _ = _ball_pet()
    save(pet, tmp_path / "pet.nii.gz")
    mask = tmp_path / "mask.nii.gz"
    save(pet.with_data(torch.ones(pet.shape), unit="label"), mask)
    how = ["--method", method] if method else ["--model", str(models["pet"])]
    r = runner.invoke(app, ["segment", *how, "--input", str(tmp_path / "pet.nii.gz"), "--suv-factor", "2e-4",
                            *[str(mask) if a == "MASK" else a for a in extra], "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and named in r.output and "not used" in r.output, r.output
    assert not (tmp_path / "o").exists()


def test_segment_seed_suv_and_margin_still_reach_the_seeded_methods(tmp_path):
    pet, ball = _ball_pet()
    save(pet, tmp_path / "pet.nii.gz")
    base = ["segment", "--method", "suv41", "--input", str(tmp_path / "pet.nii.gz"), "--suv-factor", "2e-4"]
    r = runner.invoke(app, [*base, "--out", str(tmp_path / "a")])
    assert r.exit_code == 0 and np.array_equal(load(tmp_path / "a" / "lesions.nii.gz").numpy().astype(bool), ball)
    r = runner.invoke(app, [*base, "--seed-suv", "7", "--out", str(tmp_path / "b")])  # ball is SUV 6: no seed
    assert r.exit_code == 0, r.output
    assert not load(tmp_path / "b" / "lesions.nii.gz").numpy().any()
    doc = json.loads((tmp_path / "b" / "segmentation.json").read_text())
    assert doc["params"]["seed_suv"] == 7.0 and doc["params"]["margin_mm"] == 15.0


def test_segment_organ_model_refuses_pet_options(tmp_path, models):
    pet, _ = _ball_pet()
    save(pet.with_data(torch.full(pet.shape, -1000.0), unit="HU", modality="CT"), tmp_path / "ct.nii.gz")
    r = runner.invoke(app, ["segment", "--model", str(models["organs"]), "--input", str(tmp_path / "ct.nii.gz"),
                            "--suv-factor", "2e-4", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--suv-factor" in r.output and "not used" in r.output, r.output
    assert not (tmp_path / "o").exists()


def test_segment_model_refuses_nan_in_the_pet_or_the_ct(tmp_path, models):
    """The threshold methods refused a NaN voxel; a model took it and wrote masks around it (exit 0)."""
    pet, _ = _ball_pet()
    d = pet.data.clone()
    d[5, 12, 20] = float("nan")
    save(pet.with_data(d), tmp_path / "pet_nan.nii.gz")
    save(pet, tmp_path / "pet.nii.gz")
    ct = torch.full(pet.shape, -1000.0)
    ct[0, 0, 0] = float("inf")
    save(pet.with_data(ct, unit="HU", modality="CT"), tmp_path / "ct_inf.nii.gz")
    r = runner.invoke(app, ["segment", "--model", str(models["pet"]), "--input", str(tmp_path / "pet_nan.nii.gz"),
                            "--suv-factor", "2e-4", "--out", str(tmp_path / "a")])
    assert r.exit_code == 2 and "NaN" in r.output, r.output
    for model, inp in (("petct", "pet.nii.gz"), ("organs", "ct_inf.nii.gz")):
        extra = ["--ct", str(tmp_path / "ct_inf.nii.gz"), "--suv-factor", "2e-4"] if model == "petct" else []
        r = runner.invoke(app, ["segment", "--model", str(models[model]), "--input", str(tmp_path / inp), *extra,
                                "--out", str(tmp_path / "b")])
        assert r.exit_code == 2 and "NaN or infinite" in r.output, (model, r.output)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
