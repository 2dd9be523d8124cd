"""``petspect ac apply`` on DICOM: NAC PET series in, a synthetic CT series out that overlays it; refusals."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.io.dicom_write import write_dicom_series
from petspect.io.nifti import read_nifti, write_nifti
from petspect.volume import Volume

RP = {"total_dose_bq": 3.7e8, "half_life_s": 6586.2, "start_datetime": "20260101080000", "scan_datetime":
      "20260101090000", "name": "FDG", "decay_correction": "START"}


def _run(args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _model(tmp, task: str, in_channels: int):
    """A small network of ``task`` (one training epoch on random slices: the geometry, not the accuracy, is tested)."""
    from petspect.ac.networks import UTE_SCALE_PER_MS, save_model, train_translation

    norm = ({"t1": "99th percentile", "ute_scale_per_ms": UTE_SCALE_PER_MS, "ute_clip": 10.0} if task == "mr_sct"
            else {"nac": "99th percentile"})  # as petspect.ac.study records it
    g = torch.Generator().manual_seed(3)
    x = torch.rand(4, in_channels, 16, 16, generator=g)
    y = torch.rand(4, 1, 16, 16, generator=g) - 0.5
    model, _ = train_translation(task, x, y, x, y, target_scale=1000.0, epochs=1, seed=1,
                                 trained_on={"region": "torso"}, input_norm=norm)
    return save_model(model, tmp / f"model_{task}")


def _nac_volume(direction=None):
    d = torch.zeros(3, 16, 16)
    d[:, 4:12, 3:13] = 5000.0
    d[1, 6:9, 6:9] = 20000.0
    kw = {} if direction is None else {"direction": direction}
    return Volume(d, (4.0, 4.0, 4.0), (-30.0, -32.0, 100.0), unit="Bq/mL", modality="PT", **kw)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("apply")
    pet_dir = tmp / "nac_dicom"
    write_dicom_series(_nac_volume(), pet_dir, radiopharmaceutical=RP, series_description="NAC PET")
    return {"tmp": tmp, "pet": pet_dir, "nac_model": _model(tmp, "nac_sct", 1), "mr_model": _model(tmp, "mr_sct", 2),
            "direct_model": _model(tmp, "direct", 1)}


def _snapshot(folder):
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_ct_series_overlays_the_pet(setup, tmp_path):
    """The CT series has the PET's frame of reference, study and geometry, a new series UID, integer HU with slope 1
    and intercept 0, and the same values as the NIfTI; the input series is left as it was."""
    import pydicom

    from petspect.io import load

    before = _snapshot(setup["pet"])
    out = tmp_path / "out"
    res = _run(["ac", "apply", "--model", setup["nac_model"], "--input", setup["pet"], "--out", out])
    assert res.exit_code == 0, res.output
    assert _snapshot(setup["pet"]) == before
    src = pydicom.dcmread(sorted(setup["pet"].glob("*.dcm"))[0])
    files = sorted((out / "synthetic_ct_dicom").glob("*.dcm"))
    assert len(files) == 3
    for f in files:
        ds = pydicom.dcmread(f)
        assert ds.Modality == "CT" and ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
        assert ds.FrameOfReferenceUID == src.FrameOfReferenceUID and ds.StudyInstanceUID == src.StudyInstanceUID
        assert ds.SeriesInstanceUID != src.SeriesInstanceUID and ds.PatientID == src.PatientID
        assert float(ds.RescaleSlope) == 1.0 and float(ds.RescaleIntercept) == 0.0
    ct = load(out / "synthetic_ct_dicom")
    pet = load(setup["pet"])
    assert ct.unit == "HU" and ct.shape == pet.shape
    np.testing.assert_allclose(ct.spacing_mm, pet.spacing_mm)
    np.testing.assert_allclose(ct.origin_mm, pet.origin_mm, atol=1e-4)
    np.testing.assert_allclose(np.asarray(ct.direction), np.asarray(pet.direction), atol=1e-6)
    nii = read_nifti(out / "synthetic_ct.nii.gz")
    np.testing.assert_array_equal(ct.data.numpy().astype(np.float64), nii.data.numpy().astype(np.float64))
    assert float(nii.data.min()) >= -1000 and float(nii.data.max()) <= 3000
    mu = read_nifti(out / "mu_511.nii.gz")
    assert mu.unit == "1/mm" and 0.0 <= float(mu.data.min()) and float(mu.data.max()) <= 0.03


def test_prediction_follows_the_input_orientation(setup, tmp_path):
    """A NAC image stored with a flipped x axis gives the same synthetic CT, flipped back onto its own grid."""
    from petspect.ac.apply import apply_sct, read_sct_inputs
    from petspect.ac.networks import load_model

    m = load_model(setup["nac_model"])
    axial = _nac_volume()
    flipped_dir = ((0.0, 0.0, -1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0))  # columns: LPS of axes z, y, x
    far = axial.voxel_to_world((0, 0, axial.shape[2] - 1))
    flipped = Volume(torch.flip(axial.data, [2]), axial.spacing_mm, tuple(far), flipped_dir, unit="Bq/mL",
                     modality="PT")
    a = write_nifti(axial, tmp_path / "a.nii.gz")
    b = write_nifti(flipped, tmp_path / "b.nii.gz")
    ct_a, _ = apply_sct(m, read_sct_inputs(m, a))
    ct_b, _ = apply_sct(m, read_sct_inputs(m, b))
    np.testing.assert_array_equal(ct_b.data.numpy(), torch.flip(ct_a.data, [2]).numpy())
    np.testing.assert_allclose(np.asarray(ct_b.direction), np.asarray(flipped_dir))


def test_inputs_are_normalised_as_the_study_trains(setup):
    """The apply path feeds the networks exactly what :mod:`petspect.ac.study` trained them on."""
    from types import SimpleNamespace

    from petspect.ac.apply import sct_network_inputs
    from petspect.ac.networks import load_model
    from petspect.ac.study import _inputs

    g = torch.Generator().manual_seed(0)
    nac, t1, ute = (torch.rand(3, 12, 12, generator=g) * s for s in (900.0, 2.0, 3.0))
    case = SimpleNamespace(mr_t1=t1, ute=ute)
    for key, task in (("nac_model", "nac_sct"), ("mr_model", "mr_sct")):
        m = load_model(setup[key])
        torch.testing.assert_close(sct_network_inputs(m, nac, t1, ute), _inputs(case, nac, task))


@pytest.mark.parametrize("case", ["ct_input", "nac_model_with_mr", "mr_model_without_mr", "direct_model",
                                  "attenuation_corrected", "out_is_input", "mr_other_frame"])
def test_refusals_write_nothing(setup, tmp_path, case):
    tmp = setup["tmp"]
    args = {"model": setup["nac_model"], "input": setup["pet"]}
    extra: list = []
    if case == "ct_input":
        ct = Volume(torch.zeros(3, 16, 16), (4.0, 4.0, 4.0), (0.0, 0.0, 0.0), unit="HU", modality="CT")
        args["input"] = write_dicom_series(ct, tmp_path / "ct")[0].parent
        expect = "not PET"
    elif case == "nac_model_with_mr":
        extra = ["--mr", setup["pet"]]
        expect = "takes no MR"
    elif case == "mr_model_without_mr":
        args["model"] = setup["mr_model"]
        expect = "--mr"
    elif case == "direct_model":
        args["model"] = setup["direct_model"]
        expect = "no synthetic CT"
    elif case == "attenuation_corrected":
        vol = _nac_volume()
        vol.meta["corrected_image"] = ["DECY", "ATTN", "SCAT"]
        args["input"] = write_nifti(vol, tmp_path / "ac.nii.gz")
        expect = "attenuation corrected"
    elif case == "out_is_input":
        out = setup["pet"]
        expect = "input"
    else:  # an MR series of another frame of reference than the PET's
        args["model"] = setup["mr_model"]
        mr = Volume(torch.rand(3, 16, 16), (4.0, 4.0, 4.0), (-30.0, -32.0, 100.0), unit="a.u.", modality="MR")
        mr_dir = write_dicom_series(mr, tmp_path / "mr")[0].parent
        ute = write_nifti(Volume(torch.rand(3, 16, 16), (4.0, 4.0, 4.0), (-30.0, -32.0, 100.0), unit="1/ms"),
                          tmp_path / "ute.nii.gz")
        extra = ["--mr", mr_dir, "--ute", ute]
        expect = "FrameOfReferenceUID"
    if case != "out_is_input":
        out = tmp_path / "out"
    before = _snapshot(setup["pet"])
    res = _run(["ac", "apply", "--model", args["model"], "--input", args["input"], "--out", out, *extra])
    assert res.exit_code == 2, res.output
    assert expect in res.output and "Traceback" not in res.output
    assert _snapshot(setup["pet"]) == before
    if case != "out_is_input":
        assert not out.exists()
    del tmp


def test_mr_model_on_dicom_mr_in_the_pet_frame(setup, tmp_path):
    """An MR model reads a DICOM MR series of the PET's frame of reference (resampled onto the PET grid)."""
    import pydicom

    src = pydicom.dcmread(sorted(setup["pet"].glob("*.dcm"))[0])
    mr = Volume(torch.rand(6, 32, 32, generator=torch.Generator().manual_seed(1)), (2.0, 2.0, 2.0),
                (-31.0, -33.0, 99.0), unit="a.u.", modality="MR")
    mr_dir = write_dicom_series(mr, tmp_path / "mr", source=setup["pet"])[0].parent
    assert pydicom.dcmread(sorted(mr_dir.glob("*.dcm"))[0]).FrameOfReferenceUID == src.FrameOfReferenceUID
    ute = write_nifti(Volume(torch.full((3, 16, 16), 0.3), (4.0, 4.0, 4.0), (-30.0, -32.0, 100.0), unit="1/ms"),
                      tmp_path / "ute.nii.gz")
    out = tmp_path / "out"
    res = _run(["ac", "apply", "--model", setup["mr_model"], "--input", setup["pet"], "--mr", mr_dir, "--ute", ute,
                "--out", out])
    assert res.exit_code == 0, res.output
    ds = pydicom.dcmread(sorted((out / "synthetic_ct_dicom").glob("*.dcm"))[0])
    assert "MR" in ds.SeriesDescription and ds.FrameOfReferenceUID == src.FrameOfReferenceUID
    assert read_nifti(out / "synthetic_ct.nii.gz").shape == (3, 16, 16)
    assert os.path.isfile(out / "mu_511.nii.gz")


class _Identity(torch.nn.Module):
    def forward(self, x):
        return x[:, :1]


def test_input_resampled_to_the_training_voxel_size(tmp_path):
    """A model trained at 8 mm sees 8 mm slices of a 4 mm input; the HU come back on the input's 4 mm grid."""
    from petspect.ac.apply import SctInputs, apply_sct
    from petspect.ac.networks import AcModel

    d = torch.zeros(2, 40, 40)
    d[:, 8:32, 6:34] = 1.0
    nac = Volume(d, (4.0, 4.0, 4.0), (-78.0, -78.0, 0.0), unit="Bq/mL", modality="PT")
    ident = AcModel("nac_sct", 1, {"in_channels": 1}, 1000.0, {"voxel_mm": 8.0}, _Identity())
    ct, mu = apply_sct(ident, SctInputs(nac))
    assert ct.shape == nac.shape and ct.spacing_mm == nac.spacing_mm and ct.origin_mm == nac.origin_mm
    assert ct.meta["network_voxel_mm"] == 8.0
    inner = ct.data[:, 12:28, 10:30]
    assert float(inner.min()) == 1000.0 and float(inner.max()) == 1000.0  # a uniform interior stays uniform
    assert float(ct.data[:, :4].max()) == 0.0  # nothing dense outside the body (the grid's edge is filled with air)
    same = AcModel("nac_sct", 1, {"in_channels": 1}, 1000.0, {"voxel_mm": 4.0}, _Identity())
    direct, _ = apply_sct(same, SctInputs(nac))
    assert direct.meta["network_voxel_mm"] is None
    torch.testing.assert_close(direct.data, (d * 1000.0).round())
