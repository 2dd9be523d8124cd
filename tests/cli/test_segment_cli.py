"""``petspect segment --method`` and ``petspect register`` end to end, with CliRunner."""

from __future__ import annotations

import csv
import json

import numpy as np
import pydicom
import pytest
import torch
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.io import load, save
from petspect.io.dicom_write import write_dicom_series
from petspect.volume import Volume

runner = CliRunner()
F18_HALF_LIFE_S = 6586.2


def _pet(tmp_path):
    z, y, x = np.indices((10, 32, 32))
    ball = (z - 5) ** 2 * 16 + (y - 12) ** 2 * 16 + (x - 20) ** 2 * 16 <= 10.0 ** 2  # r = 10 mm, 4 mm voxels
    data = np.where(ball, 30000.0, 3000.0).astype(np.float32)
    vol = Volume.centered(torch.from_numpy(data), (4.0, 4.0, 4.0), unit="Bq/mL", modality="PT")
    out = tmp_path / "pet"
    write_dicom_series(vol, out, patient={"weight_kg": 70.0, "sex": "F"},
                       radiopharmaceutical={"total_dose_bq": 3.7e8, "half_life_s": F18_HALF_LIFE_S,
                                            "start_datetime": "20240102090000", "scan_datetime": "20240102100000"})
    return out, ball


def test_segment_method_writes_masks_table_seg_and_rtstruct(tmp_path):
    pet_dir, ball = _pet(tmp_path)
    res = runner.invoke(app, ["segment", "--method", "suv41", "--input", str(pet_dir), "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    o = tmp_path / "o"
    mask = load(o / "lesions.nii.gz")
    assert np.array_equal(mask.numpy().astype(bool), ball)
    rows = list(csv.DictReader((o / "lesions.csv").open()))
    assert len(rows) == 1 and float(rows[0]["mtv_ml"]) == pytest.approx(ball.sum() * 0.064, rel=1e-4)
    suv = load(pet_dir, suv="bw").numpy()
    assert float(rows[0]["tlg"]) == pytest.approx(suv[ball].sum() * 0.064, rel=1e-3)
    seg = pydicom.dcmread(o / "seg.dcm")
    src = pydicom.dcmread(next(pet_dir.glob("*.dcm")), stop_before_pixels=True)
    assert seg.FrameOfReferenceUID == src.FrameOfReferenceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == src.SeriesInstanceUID
    from petspect.io.dicom_seg import read_dicom_seg
    from petspect.io.rtstruct import read_rtstruct

    pet = load(pet_dir)
    assert np.array_equal(read_dicom_seg(o / "seg.dcm", pet)["lesion"].numpy().astype(bool), ball)
    assert np.array_equal(read_rtstruct(o / "rtstruct.dcm", pet)["lesion"].numpy().astype(bool), ball)
    doc = json.loads((o / "segmentation.json").read_text())
    assert doc["n_lesions"] == 1 and doc["method"] == "suv41"
    again = runner.invoke(app, ["segment", "--method", "suv41", "--input", str(pet_dir), "--out", str(o)])
    assert again.exit_code == 2 and "exists" in again.output


def test_segment_nifti_needs_an_suv_factor(tmp_path):
    pet_dir, ball = _pet(tmp_path)
    save(load(pet_dir).with_data(load(pet_dir).data, meta={}), tmp_path / "pet.nii.gz")
    bad = runner.invoke(app, ["segment", "--method", "suv25", "--input", str(tmp_path / "pet.nii.gz"),
                              "--out", str(tmp_path / "o1")])
    assert bad.exit_code == 2 and "SUV" in bad.output
    ok = runner.invoke(app, ["segment", "--method", "suv25", "--input", str(tmp_path / "pet.nii.gz"),
                             "--suv-factor", "2e-4", "--out", str(tmp_path / "o2")])
    assert ok.exit_code == 0, ok.output
    assert np.array_equal(load(tmp_path / "o2" / "lesions.nii.gz").numpy().astype(bool), ball)  # 6 vs 0.6 SUV
    doc = json.loads((tmp_path / "o2" / "segmentation.json").read_text())
    assert "seg" not in doc["files"] and doc["not_written"]


def test_segment_refuses_bad_choices(tmp_path):
    pet_dir, _ = _pet(tmp_path)
    r = runner.invoke(app, ["segment", "--method", "otsu", "--input", str(pet_dir), "--out", str(tmp_path / "a")])
    assert r.exit_code == 2 and "unknown --method" in r.output
    r = runner.invoke(app, ["segment", "--input", str(pet_dir), "--out", str(tmp_path / "b")])
    assert r.exit_code == 2
    r = runner.invoke(app, ["segment", "--method", "percist", "--input", str(pet_dir), "--out", str(tmp_path / "c")])
    assert r.exit_code == 2 and "liver" in r.output


def test_register_recovers_a_known_shift(tmp_path):
    from petspect.registration.rigid import read_transform
    from petspect.registration.simulate import move_rigidly, rigid_matrix

    z, y, x = np.indices((24, 40, 40)).astype(float)
    data = sum(a * np.exp(-((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2) / (2 * s ** 2))
               for a, cz, cy, cx, s in [(5, 10, 15, 15, 3), (3, 14, 26, 22, 4), (2, 8, 24, 12, 2.5),
                                        (4, 16, 12, 27, 3)])
    fixed = Volume.centered(torch.from_numpy(data.astype(np.float32)), (4.0, 4.0, 4.0), unit="a.u.", modality="MR")
    shift = rigid_matrix(translation_mm=(5.0, -3.0, 4.0))
    save(fixed, tmp_path / "fixed.nii.gz")
    save(move_rigidly(fixed, shift), tmp_path / "moving.nii.gz")
    r = runner.invoke(app, ["register", str(tmp_path / "moving.nii.gz"), str(tmp_path / "fixed.nii.gz"),
                            "--out", str(tmp_path / "reg"), "--transform", "translation"])
    assert r.exit_code == 0, r.output
    m = read_transform(tmp_path / "reg" / "transform.tfm")
    assert np.allclose(m[:3, 3], shift[:3, 3], atol=1.0)
    moved = load(tmp_path / "reg" / "moved.nii.gz")
    assert moved.same_grid(fixed)
    assert np.corrcoef(moved.numpy().ravel(), data.ravel())[0, 1] > 0.98
    r = runner.invoke(app, ["register", str(tmp_path / "moving.nii.gz"), str(tmp_path / "fixed.nii.gz"),
                            "--out", str(tmp_path / "reg2"), "--transform", "bspline"])
    assert r.exit_code == 2


def test_segment_refuses_an_all_zero_pet_and_says_what_it_did_not_write(tmp_path):
    """An all-zero PET gave a silent '0 lesions'; SEG/RTSTRUCT asked of a NIfTI were skipped without a word."""
    zero = tmp_path / "zero.nii.gz"
    save(Volume.centered(np.zeros((6, 8, 8), np.float32), (2.0,) * 3, unit="SUV"), zero)
    r = runner.invoke(app, ["segment", "--method", "suv41", "--input", str(zero), "--out", str(tmp_path / "a")])
    assert r.exit_code == 2 and "no positive SUV" in r.output and "zero.nii.gz" in r.output, r.output
    assert not (tmp_path / "a").exists()
    data = np.ones((6, 8, 8), np.float32)
    data[2:4, 3:5, 3:5] = 10.0
    pet = tmp_path / "pet.nii.gz"
    save(Volume.centered(data, (2.0,) * 3, unit="SUV"), pet)
    r = runner.invoke(app, ["segment", "--method", "suv41", "--input", str(pet), "--out", str(tmp_path / "b"),
                            "--formats", "nifti,seg"])
    assert r.exit_code == 0, r.output
    assert "not written: seg" in r.output
    assert float(next(csv.DictReader((tmp_path / "b" / "lesions.csv").open()))["mtv_ml"]) == pytest.approx(8 * 8e-3)


def test_segment_refuses_an_output_inside_the_dicom_input(tmp_path):
    pet_dir, _ = _pet(tmp_path)
    before = sorted(p.name for p in pet_dir.iterdir())
    r = runner.invoke(app, ["segment", "--method", "suv41", "--input", str(pet_dir), "--out", str(pet_dir / "o")])
    assert r.exit_code == 2 and "input" in r.output
    assert sorted(p.name for p in pet_dir.iterdir()) == before


def test_register_learned_writes_the_moved_image_and_an_itk_displacement_field(tmp_path):
    """`register --method learned --model M`: a moving image on another grid is resampled onto the fixed one,
    warped by the network's field, and the field is written in ITK's convention (read back by SimpleITK)."""
    import json

    import SimpleITK as sitk

    from petspect.registration.learned import make_pairs, save_learned_registration, train_learned_registration

    z, y, x = np.indices((12, 24, 24)).astype(float)
    body = ((y - 12) / 10) ** 2 + ((x - 12) / 11) ** 2 <= 1
    organ = body & (((y - 12) / 4) ** 2 + ((x - 9) / 4) ** 2 + ((z - 6) / 3) ** 2 <= 1)
    act = Volume.centered(torch.from_numpy((np.where(body, 1000.0, 0) + np.where(organ, 4000.0, 0)).astype(np.float32)),
                          (6.0,) * 3, unit="Bq/mL", modality="PT")
    ct = Volume.centered(torch.from_numpy((np.where(body, 40.0, -1000.0)).astype(np.float32)), (6.0,) * 3,
                         unit="HU", modality="CT")
    rng = np.random.default_rng(0)
    model = train_learned_registration(make_pairs(act, ct, 2, rng), make_pairs(act, ct, 1, rng), channels=(4, 8),
                                       epochs=1, batch_size=2)
    save_learned_registration(tmp_path / "model", model)
    save(act.resample_to(Volume.centered(torch.zeros(10, 20, 20), (7.0,) * 3)), tmp_path / "pet.nii.gz")
    save(ct, tmp_path / "ct.nii.gz")
    args = ["register", str(tmp_path / "pet.nii.gz"), str(tmp_path / "ct.nii.gz"), "--out", str(tmp_path / "r")]
    r = runner.invoke(app, args + ["--method", "learned", "--model", str(tmp_path / "model")])
    assert r.exit_code == 0, r.output
    moved = load(tmp_path / "r" / "moved.nii.gz")
    assert moved.same_grid(ct)
    d = sitk.ReadImage(str(tmp_path / "r" / "displacement.nii.gz"))
    assert d.GetNumberOfComponentsPerPixel() == 3 and d.GetSize() == (24, 24, 12)
    doc = json.loads((tmp_path / "r" / "registration.json").read_text())
    assert doc["fixed_kind"] == "ct" and doc["displacement_mm"]["max"] >= 0
    r = runner.invoke(app, args[:4] + [str(tmp_path / "r2"), "--method", "learned"])
    assert r.exit_code == 2 and "--model" in r.output
    r = runner.invoke(app, args[:4] + [str(tmp_path / "r3"), "--method", "elastix"])
    assert r.exit_code == 2
