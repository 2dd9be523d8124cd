"""De-identification: PS3.15 basic profile, keyed pseudonyms and consistent UIDs (issue 14)."""

from __future__ import annotations

import copy
import hashlib
import stat

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from typer.testing import CliRunner

import dicom_factory as fac
from petspect.cli.main import app
from petspect.io.anonymise import AnonymisationKey, anonymise_dataset, anonymise_folder
from petspect.io.suv import suv_factor

IDENTIFIERS = ("Test^Patient", "PID-001", "19600101", "General Hospital", "Dr^Who", "ACC-77", "OTHER-9",
               "Main Street 1", "SCANNER-7", "Op^Erator", "wholebody of Test Patient")


def _study(tmp_path):
    """A PET and a CT series of one study, full of identifying attributes, in a folder named after the patient."""
    pet = fac.slice_stack(np.full((2, 3, 3), 1000.0), **fac.pet_attrs())
    ct = fac.slice_stack(np.zeros((2, 3, 3)), modality="CT")
    study, frame = pet[0].StudyInstanceUID, pet[0].FrameOfReferenceUID
    for ds in pet + ct:
        ds.StudyInstanceUID, ds.FrameOfReferenceUID = study, frame
        ds.InstitutionName, ds.ReferringPhysicianName, ds.AccessionNumber = "General Hospital", "Dr^Who", "ACC-77"
        ds.OtherPatientIDs, ds.PatientAddress, ds.DeviceSerialNumber = "OTHER-9", "Main Street 1", "SCANNER-7"
        ds.OperatorsName, ds.StudyDescription = "Op^Erator", "wholebody of Test Patient"
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = ds.SOPClassUID, pet[0].SOPInstanceUID
        ds.ReferencedImageSequence = Sequence([ref])
        ds.add_new(0x00091010, "LO", "private vendor note Test^Patient")
    fac.write(pet, tmp_path / "Test^Patient" / "pet")
    fac.write(ct, tmp_path / "Test^Patient" / "ct")
    return tmp_path / "Test^Patient", pet, ct


def _all_text(folder):
    return "\n".join(str(pydicom.dcmread(f)) for f in sorted(folder.rglob("*.dcm")))


def test_folder_anonymisation_removes_every_identifier(tmp_path):
    src, pet, ct = _study(tmp_path)
    key_file = tmp_path / "key"
    key_file.write_text("a" * 64)
    res = anonymise_folder(src, tmp_path / "anon", secret_file=key_file)
    assert res.n_files == 4
    text = _all_text(tmp_path / "anon")
    for value in IDENTIFIERS + tuple(ds.SOPInstanceUID for ds in pet + ct) + (pet[0].StudyInstanceUID,
                                                                           pet[0].SeriesInstanceUID):
        assert value not in text, value
    assert not any("Test" in p.name for p in (tmp_path / "anon").rglob("*"))  # file names re-made
    files = [pydicom.dcmread(f) for f in sorted((tmp_path / "anon").rglob("*.dcm"))]
    assert all(ds.PatientIdentityRemoved == "YES" for ds in files)
    assert not any(e.tag.is_private for ds in files for e in ds)


def test_uids_stay_consistent_within_the_study(tmp_path):
    src, pet, ct = _study(tmp_path)
    key_file = tmp_path / "key"
    key_file.write_text("b" * 64)
    anonymise_folder(src, tmp_path / "anon", secret_file=key_file)
    files = [pydicom.dcmread(f) for f in sorted((tmp_path / "anon").rglob("*.dcm"))]
    assert len({ds.StudyInstanceUID for ds in files}) == 1
    assert len({ds.FrameOfReferenceUID for ds in files}) == 1
    assert len({ds.SeriesInstanceUID for ds in files}) == 2
    first_pet = {ds.SOPInstanceUID for ds in files}
    # the reference to the first PET slice points at that slice's new UID
    assert all(ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID in first_pet for ds in files)
    assert all(ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID for ds in files)
    assert all(ds.SOPClassUID in (fac.PET_STORAGE, fac.CT_STORAGE) for ds in files)  # class UIDs kept
    assert all(len(ds.StudyInstanceUID) <= 64 and ds.StudyInstanceUID.startswith("2.25.") for ds in files)


def test_same_secret_same_pseudonym_other_secret_other():
    ds = fac.slice_stack(np.ones((1, 2, 2)), **fac.pet_attrs())[0]
    k1, k2 = AnonymisationKey(b"1" * 32), AnonymisationKey(b"2" * 32)
    a = anonymise_dataset(copy.deepcopy(ds), k1)
    b = anonymise_dataset(copy.deepcopy(ds), k1)
    c = anonymise_dataset(copy.deepcopy(ds), k2)
    assert a.PatientID == b.PatientID and a.StudyInstanceUID == b.StudyInstanceUID
    assert a.PatientID != c.PatientID and a.StudyInstanceUID != c.StudyInstanceUID
    # never an unsalted hash: the pseudonym is not a hash of the ID alone
    assert hashlib.sha256(b"PID-001").hexdigest()[:12].upper() not in a.PatientID
    with pytest.raises(Exception):
        AnonymisationKey(b"short")


def test_suv_and_dates_are_kept():
    ds = fac.slice_stack(np.ones((1, 2, 2)), **fac.pet_attrs())[0]
    before = suv_factor(ds, "lbm_james")
    anon = anonymise_dataset(copy.deepcopy(ds), AnonymisationKey(b"k" * 32))
    assert suv_factor(anon, "lbm_james") == pytest.approx(before)
    assert anon.PatientBirthDate == "" and anon.SeriesDate == ds.SeriesDate


def test_generated_secret_is_stored_beside_the_output_owner_only(tmp_path):
    src, _, _ = _study(tmp_path)
    res = anonymise_folder(src, tmp_path / "out1")
    assert res.new_secret_file == tmp_path / "out1.petspect-anon-key"
    assert stat.S_IMODE(res.new_secret_file.stat().st_mode) == 0o600
    assert not any(p.name.endswith("anon-key") for p in (tmp_path / "out1").rglob("*"))  # not in what is shared
    ids1 = {pydicom.dcmread(f).PatientID for f in (tmp_path / "out1").rglob("*.dcm")}
    res2 = anonymise_folder(src, tmp_path / "out2", secret_file=res.new_secret_file)
    ids2 = {pydicom.dcmread(f).PatientID for f in (tmp_path / "out2").rglob("*.dcm")}
    assert ids1 == ids2 and len(ids1) == 1


def test_cli_anonymise_and_convert_anonymise(tmp_path):
    src, _, _ = _study(tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["anonymise", str(src), str(tmp_path / "anon")])
    assert res.exit_code == 0, res.output
    assert "pseudonym key" in res.output or "key" in res.output
    text = _all_text(tmp_path / "anon")
    assert not any(v in text for v in IDENTIFIERS)
    res = runner.invoke(app, ["convert", str(src / "pet"), str(tmp_path / "conv"), "--anonymise"])
    assert res.exit_code == 0, res.output
    text = _all_text(tmp_path / "conv")
    assert not any(v in text for v in IDENTIFIERS)
    assert (tmp_path / "conv.petspect-anon-key").is_file()
    # the output may not hold the input, and a folder petspect did not write is never replaced
    res = runner.invoke(app, ["anonymise", str(src), str(tmp_path), "--overwrite"])
    assert res.exit_code == 2 and "Traceback" not in res.output


def test_denoise_apply_anonymise(tmp_path):
    from petspect.testing import samples

    model = samples.model_folder(tmp_path)
    src = samples.dicom_pet(tmp_path)  # patient Doe^Jane, MRN-123456
    res = CliRunner().invoke(app, ["denoise", "apply", "--model", str(model), "--input", str(src), "--out",
                                   str(tmp_path / "den"), "--anonymise"])
    assert res.exit_code == 0, res.output
    text = _all_text(tmp_path / "den")
    assert "Doe^Jane" not in text and "MRN-123456" not in text and "19600101" not in text
    assert (tmp_path / "den.petspect-anon-key").is_file()
