"""DICOM series reading and writing: geometry, values, units, SUV preservation and bad inputs."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pydicom
import pytest
import torch

import dicom_factory as fac
from petspect.errors import (FormatError, GeometryError, MissingTagError, MixedSeriesError, OutputExistsError,
                             UnitError, UnsupportedTransferSyntaxError)
from petspect.io import load, save
from petspect.io.dicom_write import ANONYMIZE_EMPTY, ANONYMIZE_REMOVE, encode_values, write_dicom_series
from petspect.volume import Volume


def _oblique_dirs():
    t = np.deg2rad(20.0)
    row = (np.cos(t), np.sin(t), 0.0)
    col = (-np.sin(t) * np.cos(0.3), np.cos(t) * np.cos(0.3), np.sin(0.3))
    return row, col


def test_reader_geometry_and_shuffled_slices(tmp_path):
    """Slices written in random order, oblique orientation: voxel (k, j, i) of the Volume sits at
    IPP_k + j * dy * col + i * dx * row, with k sorted along row x col."""
    row, col = _oblique_dirs()
    vals = np.arange(4 * 5 * 6, dtype=np.float64).reshape(4, 5, 6) + 10
    series = fac.slice_stack(vals, spacing=(3.0, 2.0, 1.5), origin=(5.0, -7.0, 11.0), row_dir=row, col_dir=col,
                             **fac.pet_attrs())
    rng = np.random.default_rng(0)
    fac.write([series[i] for i in rng.permutation(4)], tmp_path / "s")
    vol = load(tmp_path / "s")
    assert vol.shape == (4, 5, 6) and vol.spacing_mm == pytest.approx((3.0, 2.0, 1.5))
    np.testing.assert_allclose(vol.numpy(), vals, atol=vals.max() / 60000)  # half a stored step
    k, j, i = 2, 3, 4
    ipp = np.asarray(series[k].ImagePositionPatient, dtype=float)
    expect = ipp + j * 2.0 * np.asarray(col) + i * 1.5 * np.asarray(row)
    np.testing.assert_allclose(vol.voxel_to_world((k, j, i)), expect, atol=1e-6)


def test_ct_hounsfield_units(tmp_path):
    hu = np.array([[[-1000, 0], [40, 1500]]] * 3, dtype=np.float64)
    fac.write(fac.slice_stack(hu, modality="CT"), tmp_path / "ct")
    vol = load(tmp_path / "ct")
    assert vol.unit == "HU" and vol.modality == "CT"
    np.testing.assert_array_equal(vol.numpy(), hu)
    with pytest.raises(UnitError, match="PET"):
        load(tmp_path / "ct", suv="bw")


@pytest.mark.parametrize("oblique", [False, True])
def test_pet_round_trip_with_source_keeps_position_and_suv(tmp_path, oblique):
    row, col = _oblique_dirs() if oblique else ((1.0, 0, 0), (0, 1.0, 0))
    vals = np.random.default_rng(1).random((5, 6, 7)) * 20000
    fac.write(fac.slice_stack(vals, row_dir=row, col_dir=col,
                              **fac.pet_attrs(start_datetime=None, start_time="091500", acquisition_time="100000"),
                              SeriesTime="101500"), tmp_path / "src")
    vol = load(tmp_path / "src")
    mark = (3, 2, 5)
    data = torch.zeros_like(vol.data)
    data[mark] = 1000.0
    files = write_dicom_series(vol.with_data(data), tmp_path / "out", source=tmp_path / "src",
                               series_description="marked")
    assert len(files) == 5 and all(f.exists() for f in files)
    back = load(tmp_path / "out")
    idx = tuple(int(v) for v in torch.nonzero(back.data == back.data.max())[0])
    np.testing.assert_allclose(back.voxel_to_world(idx), vol.voxel_to_world(mark), atol=0.01)
    for kind in ("bw", "bsa", "lbm_james", "lbm_janmahasatian", "ibw"):
        assert back.meta["suv_factors"][kind] == pytest.approx(vol.meta["suv_factors"][kind], rel=1e-9)
    out0 = pydicom.dcmread(files[0])
    src0 = pydicom.dcmread(next((tmp_path / "src").iterdir()))
    assert out0.StudyInstanceUID == src0.StudyInstanceUID and out0.PatientID == src0.PatientID
    assert out0.SeriesInstanceUID != src0.SeriesInstanceUID and out0.SOPInstanceUID != src0.SOPInstanceUID
    assert list(out0.ImageType) == ["DERIVED", "SECONDARY"] and out0.Units == "BQML"
    with pytest.raises(OutputExistsError):
        write_dicom_series(vol, tmp_path / "out", source=tmp_path / "src")
    with pytest.raises(OutputExistsError, match="input"):
        write_dicom_series(vol, tmp_path / "src" / "sub", source=tmp_path / "src", overwrite=True)


def test_synthetic_series_with_radiopharmaceutical(tmp_path):
    """No source: a synthetic study whose SUVbw factor follows from the given facts (1 h after
    injection of 200 MBq F-18 to 80 kg: 80000 / (200e6 * 0.5 ** (3600 / 6586.2)))."""
    vol = Volume.centered(torch.full((3, 4, 5), 1234.5), (2.0, 2.0, 2.0), unit="Bq/mL", modality="PT")
    files = write_dicom_series(vol, tmp_path / "syn", patient={"weight_kg": 80, "size_m": 1.8, "sex": "F"},
                               radiopharmaceutical={"total_dose_bq": 200e6, "half_life_s": fac.F18_HALF_LIFE_S,
                                                    "start_datetime": datetime(2025, 3, 4, 8, 0, 0),
                                                    "scan_datetime": "20250304090000", "name": "FDG"})
    ds = pydicom.dcmread(files[0])
    assert str(ds.PatientName) == "SYNTHETIC^PETSPECT" and ds.PatientID.startswith("PETSPECT-SYNTH-")
    back = load(tmp_path / "syn", suv="bw")
    expect = 1234.5 * 80000 / (200e6 * 0.5 ** (3600 / fac.F18_HALF_LIFE_S))
    np.testing.assert_allclose(back.numpy(), expect, rtol=1e-4)
    assert back.unit == "SUVbw"
    # a start DT given with a UTC offset keeps it in the DT; the TM (which has none) gets the bare time
    files = write_dicom_series(vol, tmp_path / "syn_tz", radiopharmaceutical={
        "total_dose_bq": 200e6, "half_life_s": fac.F18_HALF_LIFE_S, "start_datetime": "20250304080000-0500",
        "scan_datetime": "20250304090000"})
    item = pydicom.dcmread(files[0]).RadiopharmaceuticalInformationSequence[0]
    assert item.RadiopharmaceuticalStartDateTime == "20250304080000-0500"
    assert item.RadiopharmaceuticalStartTime == "080000"


def test_anonymize_removes_identifiers(tmp_path):
    vals = np.ones((2, 3, 3)) * 100
    src = fac.slice_stack(vals, InstitutionName="General Hospital", ReferringPhysicianName="Dr^Who",
                          AccessionNumber="ACC1", OtherPatientIDs="X1", **fac.pet_attrs())
    vol = load(fac.write(src, tmp_path / "src"))
    files = write_dicom_series(vol, tmp_path / "anon", source=src, anonymize=True)
    ds = pydicom.dcmread(files[0])
    assert not any(kw in ds for kw in ANONYMIZE_REMOVE)
    assert all(ds[kw].value in ("", None) for kw in ANONYMIZE_EMPTY)
    text = str(ds)
    for secret in ("Test^Patient", "PID-001", "General Hospital", "Dr^Who", "19600101", "ACC1"):
        assert secret not in text
    assert ds.StudyInstanceUID != src[0].StudyInstanceUID and ds.PatientIdentityRemoved == "YES"
    assert load(tmp_path / "anon").meta["suv_factors"]["bw"] == pytest.approx(vol.meta["suv_factors"]["bw"])


@pytest.mark.parametrize("modality,unit", [("CT", "HU"), ("NM", "Bq/mL"), ("MR", "a.u.")])
def test_other_modalities_round_trip(tmp_path, modality, unit):
    """CT keeps integer HU exactly; NM is written as one multi-frame RECON TOMO; a mirror-image grid
    (x running to the patient's right) comes back slice-flipped with the same voxel positions."""
    vals = np.random.default_rng(2).integers(-1000, 2000, (4, 5, 6)).astype(np.float32)
    if modality != "CT":
        vals = np.abs(vals) + 0.25
    d = np.array([[0, 0, -1.0], [0, 1.0, 0], [1.0, 0, 0]])  # columns (z, y, x): x axis along -L
    vol = Volume(torch.from_numpy(vals), (2.5, 1.5, 1.0), (3.0, 4.0, 5.0), d, unit=unit, modality=modality)
    files = save(vol, tmp_path / "series")
    assert files.is_dir()
    back = load(tmp_path / "series")
    assert back.modality == modality and back.unit == unit
    flipped = back.numpy()[::-1]
    tol = 0 if modality == "CT" else 2200 / 65535
    np.testing.assert_allclose(flipped, vals, atol=tol)
    np.testing.assert_allclose(back.voxel_to_world((3, 1, 2)), vol.voxel_to_world((0, 1, 2)), atol=1e-6)


def test_encode_values_exact_and_bounded():
    stored, slope = encode_values(np.array([[0.0, 3.0], [65535.0, 7.0]]))
    assert slope == "1" and stored.dtype == np.uint16
    v = np.array([[-5.5, 0.0], [1.25, 1000.0]])
    stored, slope = encode_values(v)
    assert stored.dtype == np.int16
    assert np.max(np.abs(stored * float(slope) - v)) <= 0.5 * float(slope) + 1e-12


def test_nm_recon_per_frame_functional_groups(tmp_path):
    """Multi-frame with per-frame PlanePositionSequence (frames stored in reverse) and shared geometry."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = fac.slice_stack(np.zeros((1, 4, 4)), modality="PT")[0]
    ds.Modality, ds.ImageType = "NM", ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
    frames = np.stack([np.full((4, 4), 10 * (k + 1), dtype=np.uint16) for k in range(3)])
    fac.set_pixels(ds, frames)
    ds.NumberOfFrames = 3
    for kw in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "RescaleSlope"):
        delattr(ds, kw)
    shared = Dataset()
    shared.PlaneOrientationSequence = Sequence([Dataset()])
    shared.PlaneOrientationSequence[0].ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    shared.PixelMeasuresSequence = Sequence([Dataset()])
    shared.PixelMeasuresSequence[0].PixelSpacing = [4.0, 4.0]
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per = []
    for k in range(3):
        item = Dataset()
        item.PlanePositionSequence = Sequence([Dataset()])
        item.PlanePositionSequence[0].ImagePositionPatient = [0.0, 0.0, 10.0 - 5.0 * k]
        per.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    fac.write([ds], tmp_path / "nm")
    vol = load(tmp_path / "nm" / "im0000.dcm")
    assert vol.unit == "counts" and vol.spacing_mm == pytest.approx((5.0, 4.0, 4.0))
    assert vol.numpy()[:, 0, 0].tolist() == [30.0, 20.0, 10.0]  # sorted inferior -> superior
    assert vol.origin_mm == pytest.approx((0.0, 0.0, 0.0))


def test_bad_inputs(tmp_path):
    series = fac.slice_stack(np.ones((4, 3, 3)), **fac.pet_attrs())
    # inconsistent spacing: drop slice 2
    fac.write([s for i, s in enumerate(series) if i != 2], tmp_path / "gap")
    with pytest.raises(GeometryError, match="slice spacing"):
        load(tmp_path / "gap")
    # two images at one position (a dynamic series), and a tilted stack
    dup = fac.slice_stack(np.ones((3, 3, 3)), **fac.pet_attrs())
    dup[2].ImagePositionPatient = dup[1].ImagePositionPatient
    fac.write(dup, tmp_path / "dup2")
    with pytest.raises(GeometryError, match="same slice position"):
        load(tmp_path / "dup2")
    tilt = fac.slice_stack(np.ones((3, 3, 3)), **fac.pet_attrs())
    for k, ds in enumerate(tilt):
        ds.ImagePositionPatient = [-10.0, 20.0 + 1.5 * k, -30.0 + 3.0 * k]
    fac.write(tilt, tmp_path / "tilt")
    with pytest.raises(GeometryError, match="gantry tilt"):
        load(tmp_path / "tilt")
    nounits = fac.slice_stack(np.ones((2, 3, 3)), **fac.pet_attrs())
    for ds in nounits:
        del ds.Units
    fac.write(nounits, tmp_path / "nounits")
    with pytest.warns(UserWarning, match="without Units"):  # loads in a.u. (ratios hold), never as SUV
        assert load(tmp_path / "nounits").unit == "a.u."
    with pytest.warns(UserWarning), pytest.raises(UnitError, match="Units"):
        load(tmp_path / "nounits", suv="bw")
    # mixed series
    other = fac.slice_stack(np.ones((2, 3, 3)), modality="CT")
    fac.write(series, tmp_path / "mixed" / "a")
    fac.write(other, tmp_path / "mixed" / "b")
    with pytest.raises(MixedSeriesError) as err:
        load(tmp_path / "mixed")
    assert series[0].SeriesInstanceUID in str(err.value) and other[0].SeriesInstanceUID in str(err.value)
    # missing tag
    bad = fac.slice_stack(np.ones((2, 3, 3)), **fac.pet_attrs())
    del bad[1].ImagePositionPatient
    fac.write(bad, tmp_path / "missing")
    with pytest.raises(MissingTagError, match="ImagePositionPatient.*\\(0020,0032\\)"):
        load(tmp_path / "missing")
    # compressed pixel data that cannot be decoded here (JPEG Lossless, no plugin installed)
    from pydicom.encaps import encapsulate

    comp = fac.slice_stack(np.ones((1, 3, 3)), **fac.pet_attrs())[0]
    comp.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.70"
    comp.PixelData = encapsulate([b"\xff\xd8\xff\xc3" + b"\x00" * 16])
    comp["PixelData"].VR = "OB"
    fac.write([comp], tmp_path / "jpeg")
    with pytest.raises(UnsupportedTransferSyntaxError, match="JPEG Lossless"):
        load(tmp_path / "jpeg")
    # a folder without DICOM
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(FormatError, match="no DICOM files"):
        load(tmp_path / "empty")
    # a CT that is not in HU, a PET in a unit DICOM PET cannot say
    with pytest.raises(UnitError, match="HU"):
        write_dicom_series(Volume(torch.zeros(2, 2, 2), unit="Bq/mL", modality="CT"), tmp_path / "x")
    with pytest.raises(UnitError, match="SUVlbm"):
        write_dicom_series(Volume(torch.zeros(2, 2, 2), unit="SUVlbm", modality="PT"), tmp_path / "y")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
