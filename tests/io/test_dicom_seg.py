"""DICOM SEG and RTSTRUCT written back onto a PET series: references, frame of reference, frames on the
source slices, and the same voxels read back as the NIfTI mask holds.

No vendor PET series ships with the repository, so the source is a PET series built with pydicom alone
(``dicom_factory.slice_stack``, the reader tests' independent writer) in a non-standard orientation
(rows running Posterior, columns running Left, slices shuffled on disk) and one written by petspect.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import torch
from dicom_factory import pet_attrs, slice_stack, write

from petspect.errors import GeometryError, InputError, OutputExistsError
from petspect.io import load, save
from petspect.io.dicom_seg import read_dicom_seg, write_dicom_seg
from petspect.io.rtstruct import read_rtstruct
from petspect.io.rtstruct_write import write_rtstruct


def _masks(shape):
    z, y, x = np.indices(shape)
    lesion = ((z - 3) ** 2 / 4 + (y - 8) ** 2 / 16 + (x - 10) ** 2 / 25) <= 1
    ring = ((y - 14) ** 2 + (x - 5) ** 2 <= 12) & ((y - 14) ** 2 + (x - 5) ** 2 >= 3) & (z >= 1) & (z <= 5)  # hole
    return {"lesion": lesion, "liver": ring}


@pytest.fixture()
def pet_series(tmp_path):
    rng = np.random.default_rng(1)
    values = rng.uniform(100, 5000, (7, 20, 18))
    ds = slice_stack(values, row_dir=(0.0, 1.0, 0.0), col_dir=(1.0, 0.0, 0.0), origin=(-40.0, 25.0, 300.0),
                     spacing=(3.27, 2.5, 2.0), **pet_attrs())
    ds = [ds[i] for i in (3, 0, 6, 1, 5, 2, 4)]  # order on disk says nothing
    return write(ds, tmp_path / "pet")


def test_seg_references_source_and_reads_back_the_nifti_voxels(pet_series, tmp_path):
    pet = load(pet_series)
    masks = _masks(pet.shape)
    vols = {k: pet.with_data(torch.from_numpy(v.astype(np.uint8)), unit="label", modality="SEG")
            for k, v in masks.items()}
    for k, v in vols.items():
        save(v, tmp_path / f"{k}.nii.gz")
    out = write_dicom_seg(vols, pet_series, tmp_path / "seg.dcm", algorithm="suv41")
    seg = pydicom.dcmread(out)
    src = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(pet_series.iterdir())]
    assert seg.Modality == "SEG"
    assert seg.FrameOfReferenceUID == src[0].FrameOfReferenceUID
    assert seg.StudyInstanceUID == src[0].StudyInstanceUID and seg.PatientID == src[0].PatientID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == src[0].SeriesInstanceUID
    src_pos = {tuple(np.round(np.asarray(d.ImagePositionPatient, float), 3)): d.SOPInstanceUID for d in src}
    for fg in seg.PerFrameFunctionalGroupsSequence:  # every frame lies on a source slice and names it
        pos = tuple(np.round(np.asarray(fg.PlanePositionSequence[0].ImagePositionPatient, float), 3))
        assert pos in src_pos
        ref = fg.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        assert ref == src_pos[pos]
    back = read_dicom_seg(out, pet)
    for k in masks:
        nifti = load(tmp_path / f"{k}.nii.gz").numpy()
        assert np.array_equal(back[k].numpy(), nifti)
        assert nifti.sum() == masks[k].sum() > 0
    # highdicom, an independent reader, agrees on the voxels of one frame
    import highdicom as hd

    hseg = hd.seg.segread(out)
    k = 3
    pix = hseg.get_pixels_by_source_instance([src_pos[tuple(np.round(pet.voxel_to_world((k, 0, 0)), 3))]],
                                             segment_numbers=[1])
    assert np.array_equal(pix[0, :, :, 0] > 0, masks["lesion"][k])


def test_rtstruct_round_trip_through_the_reader(pet_series, tmp_path):
    pet = load(pet_series)
    masks = _masks(pet.shape)
    out = write_rtstruct(masks, pet_series, tmp_path / "rt.dcm", algorithm="suv41")
    ds = pydicom.dcmread(out)
    src = pydicom.dcmread(next(pet_series.iterdir()), stop_before_pixels=True)
    assert ds.FrameOfReferenceUID == src.FrameOfReferenceUID
    ref_series = ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert ref_series.SeriesInstanceUID == src.SeriesInstanceUID
    back = read_rtstruct(out, pet)
    for k, m in masks.items():
        assert np.array_equal(back[k].numpy().astype(bool), m), k
    assert back["liver"].meta["n_contours"] >= 2 * 5  # outer and hole contour on each slice


def test_petspect_written_series_and_refusals(tmp_path):
    from petspect.testing.samples import dicom_pet

    src = dicom_pet(tmp_path)
    pet = load(src)
    m = np.zeros(pet.shape, bool)
    m[1, 2:4, 1:3] = True
    out = write_dicom_seg({"lesion": m}, src, tmp_path / "s.dcm")
    assert np.array_equal(read_dicom_seg(out, pet)["lesion"].numpy().astype(bool), m)
    with pytest.raises(OutputExistsError):
        write_dicom_seg({"lesion": m}, src, out)
    with pytest.raises(GeometryError):
        write_dicom_seg({"lesion": m[:-1]}, src, tmp_path / "s2.dcm")
    with pytest.raises(InputError, match="overlaps"):
        write_dicom_seg({"a": m, "b": m}, src, tmp_path / "s3.dcm")
    with pytest.raises(InputError):
        write_dicom_seg({}, src, tmp_path / "s4.dcm")
    shifted = pet.with_data(pet.data)
    shifted.origin_mm = (pet.origin_mm[0], pet.origin_mm[1], pet.origin_mm[2] + 1.0)
    with pytest.raises(GeometryError):
        read_dicom_seg(out, shifted)
