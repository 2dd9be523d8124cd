"""The dosimetry workflow and the ``petspect dose`` commands (CliRunner)."""

import math

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.io import load, save
from petspect.volume import Volume

T_HALF_H = 6.647 * 24


def _phantom(tmp_path, unit="Bq/mL"):
    """A 4.8 mm cubic grid: water body with a hot 'kidney' block, 3 time points, mono-exponential washout."""
    shape = (12, 16, 16)
    hu = np.full(shape, -1000.0)
    hu[2:10, 3:13, 3:13] = 0.0
    lab = np.zeros(shape, np.int16)
    lab[5:8, 6:10, 6:10] = 1
    t_eff = 50.0
    paths = []
    for h in (4.0, 24.0, 96.0):
        act = np.where(hu > -500, 1e3, 0.0)
        act[lab == 1] = 1e5
        act = act * math.exp(-math.log(2) / t_eff * h)
        p = tmp_path / f"spect_{int(h)}h.nii.gz"
        save(Volume.centered(act.astype(np.float32), (4.8, 4.8, 4.8), unit=unit), p)
        paths.append(p)
    ctp = tmp_path / "ct.nii.gz"
    save(Volume.centered(hu.astype(np.float32), (4.8, 4.8, 4.8), unit="HU"), ctp)
    labp = tmp_path / "labels.nii.gz"
    save(Volume.centered(lab, (4.8, 4.8, 4.8), unit="label"), labp)
    return paths, ctp, labp, t_eff


def test_dose_run_writes_nifti_rtdose_and_table(tmp_path):
    """Region TIA of mono-exponential data within 1 %; RT Dose decodes to the NIfTI dose."""
    paths, ctp, labp, t_eff = _phantom(tmp_path)
    out = tmp_path / "out"
    args = ["dose", "run", "--out", str(out), "--ct", str(ctp), "--labels", str(labp), "--nuclide", "Lu-177",
            "--method", "kernel_density"]
    for p, h in zip(paths, (4, 24, 96)):
        args += ["--spect", str(p), "--hours", str(h)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    dose = load(out / "dose.nii.gz").numpy()
    ds = pydicom.dcmread(out / "rtdose.dcm")
    assert ds.Modality == "RTDOSE" and ds.DoseUnits == "GY"
    rt = ds.pixel_array.astype(float) * float(ds.DoseGridScaling)
    assert np.allclose(rt, dose, atol=float(ds.DoseGridScaling) * 2 + 1e-6 * dose.max())
    import json

    rec = json.loads((out / "dose.json").read_text())
    kid = rec["regions"][0]
    a0_mbq = 1e5 * 48 * 4.8 ** 3 * 1e-3 / 1e6  # Bq/mL x mL -> MBq at t=0
    assert kid["tia_mbq_h"] == pytest.approx(a0_mbq * t_eff / math.log(2), rel=0.01)
    assert kid["mean_gy"] > 0
    # rerun without --overwrite is refused
    res2 = CliRunner().invoke(app, args)
    assert res2.exit_code == 2


def test_counts_without_calibration_are_refused(tmp_path):
    paths, ctp, labp, _ = _phantom(tmp_path, unit="counts")
    args = ["dose", "run", "--out", str(tmp_path / "o"), "--spect", str(paths[0]), "--hours", "24"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2
    assert "calibration" in res.output
    res = CliRunner().invoke(app, args + ["--calibration-bq-per-count", "10"])
    assert res.exit_code == 0, res.output


def test_dose_kernel_command(tmp_path):
    out = tmp_path / "k.nii.gz"
    res = CliRunner().invoke(app, ["dose", "kernel", "--nuclide", "Lu-177", "--voxel-mm", "4.8", "--out", str(out),
                                   "--half-width", "2"])
    assert res.exit_code == 0, res.output
    vol = load(out)
    k = vol.numpy()
    assert k.shape == (5, 5, 5) and vol.unit == "mGy/(MBq s)"
    assert k[2, 2, 2] == k.max()
    assert vol.meta["dose_kernel"]["nuclide"] == "Lu-177"
    # the shipped point kernels it uses were built with energy-loss straggling, and the file says so
    assert vol.meta["dose_kernel"]["straggling"] is True
    assert vol.meta["dose_kernel"]["point_kernels"] == "shipped Lu-177_full.npz"
    bad = CliRunner().invoke(app, ["dose", "kernel", "--nuclide", "Tc-99m", "--voxel-mm", "4.8", "--out",
                                   str(tmp_path / "x.nii.gz")])
    assert bad.exit_code == 2


def test_dicom_nm_and_ct_in_rtdose_keeps_patient_and_frame(tmp_path):
    """DICOM NM (Bq/mL) + CT series in: the RT Dose carries the input's patient, study and frame of reference."""
    from petspect.io import write_dicom_series

    paths, ctp, labp, _ = _phantom(tmp_path)
    nm = load(paths[1])
    nm = Volume(nm.data, nm.spacing_mm, nm.origin_mm, nm.direction, unit="Bq/mL", modality="NM")
    nm_dir = tmp_path / "nm_dicom"
    write_dicom_series(nm, nm_dir, patient={"name": "Test^Dose", "id": "D001"})
    ct = load(ctp)
    ct_dir = tmp_path / "ct_dicom"
    write_dicom_series(Volume(ct.data, ct.spacing_mm, ct.origin_mm, ct.direction, unit="HU", modality="CT"), ct_dir)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["dose", "run", "--spect", str(nm_dir), "--hours", "24", "--ct", str(ct_dir),
                                   "--out", str(out), "--method", "local_deposition"])
    assert res.exit_code == 0, res.output
    src = pydicom.dcmread(sorted(nm_dir.rglob("*.dcm"))[0])
    rt = pydicom.dcmread(out / "rtdose.dcm")
    assert rt.PatientID == src.PatientID and rt.StudyInstanceUID == src.StudyInstanceUID
    assert rt.FrameOfReferenceUID == src.FrameOfReferenceUID
    assert load(out / "dose.nii.gz").numpy().max() > 0


def _dose_args(paths, hours, out, *extra):
    args = ["dose", "run", "--out", str(out), "--method", "local_deposition", *extra]
    for p, h in zip(paths, hours):
        args += ["--spect", str(p), "--hours", str(h)]
    return args


@pytest.mark.parametrize("bad, message", [
    ({"hours": (4, 4, 96)}, "same time twice"),
    ({"hours": (4, float("nan"), 96)}, "positive and finite"),
    ({"extra": ("--calibration-bq-per-count", "0")}, "positive number"),
    ({"extra": ("--calibration-bq-per-count", "-3")}, "positive number"),
    ({"extra": ("--calibration-bq-per-count", "2")}, "already in 'Bq/mL'"),
])
def test_dose_run_refuses_bad_times_and_calibration(tmp_path, bad, message):
    """Duplicated times, a zero/negative calibration or one given for Bq/mL images were silently used or ignored."""
    paths, _, _, _ = _phantom(tmp_path)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, _dose_args(paths, bad.get("hours", (4, 24, 96)), out, *bad.get("extra", ())))
    assert res.exit_code == 2 and message in res.output, res.output
    assert not out.exists()


@pytest.mark.parametrize("fill, message", [(float("nan"), "non-finite"), (0.0, "no positive activity"),
                                           (-5.0, "no positive activity")])
def test_dose_run_refuses_nan_or_empty_activity_naming_the_file(tmp_path, fill, message):
    """A NaN image failed late without the file name and left a marked folder; an all-zero or all-negative image
    gave a silent zero dose."""
    p = tmp_path / "bad.nii.gz"
    save(Volume.centered(np.full((6, 8, 8), fill, np.float32), (4.8,) * 3, unit="Bq/mL"), p)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, _dose_args([p], [24], out))
    assert res.exit_code == 2 and message in res.output and "bad.nii.gz" in res.output, res.output
    assert not out.exists()


def test_dose_run_single_time_point_region_tia_matches_the_dose(tmp_path):
    """With one image the voxel TIA used Hanscheid's formula but the region table a trapezoid (3.5x larger)."""
    import json

    paths, _, labp, t_eff = _phantom(tmp_path)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, _dose_args(paths[2:], [96], out, "--labels", str(labp)))
    assert res.exit_code == 0, res.output
    rec = json.loads((out / "dose.json").read_text())
    kid = rec["regions"][0]
    assert kid["tac_model"] == "hanscheid"
    assert kid["tia_mbq_h"] == pytest.approx(kid["activity_mbq"][0] * 2 * 96 / math.log(2), rel=1e-9)
    assert any("Hanscheid" in n for n in rec["notes"])


@pytest.mark.parametrize("kind, message", [("far", "does not overlap"), ("empty", "no labelled voxel"),
                                           ("activity", "not a label image")])
def test_dose_run_refuses_labels_that_give_no_or_wrong_regions(tmp_path, kind, message):
    """Labels off the SPECT or all zero gave a silent empty table; an activity image given as labels was rounded
    into thousands of 'regions'."""
    paths, _, labp, _ = _phantom(tmp_path)
    lab = load(labp).numpy()
    bad = tmp_path / "bad_labels.nii.gz"
    if kind == "far":
        save(Volume(lab, (4.8,) * 3, (900.0, 900.0, 900.0), unit="label"), bad)
    elif kind == "empty":
        save(Volume.centered(np.zeros_like(lab), (4.8,) * 3, unit="label"), bad)
    else:
        bad = paths[0]
    out = tmp_path / "out"
    res = CliRunner().invoke(app, _dose_args(paths[:1], [4], out, "--labels", str(bad)))
    assert res.exit_code == 2 and message in res.output and bad.name in res.output, res.output
    assert not out.exists()
