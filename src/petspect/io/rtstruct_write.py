"""Binary masks -> a DICOM RT Structure Set drawn on the source image series.

Each ROI's mask is contoured slice by slice with scikit-image's marching squares at level 0.5 on the
zero-padded slice: the contour runs half way between inside and outside pixel centres, so a pixel centre
lies inside the polygon exactly when the pixel is in the mask, and the even-odd fill of
:func:`petspect.io.rtstruct.read_rtstruct` gives the mask back (holes come out as inner contours).
Contour points are LPS mm (``ContourData``) on the slice's plane; every contour references its source
instance (ContourImageSequence), the structure set references the series and the frame of reference,
and the patient and study are the source's, so a planning system or viewer shows it on that series.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from petspect.errors import InputError

__all__ = ["RTSTRUCT_SOP_CLASS", "mask_contours", "write_rtstruct"]

RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
_COLOURS = [(255, 0, 0), (0, 200, 0), (0, 0, 255), (255, 200, 0), (255, 0, 255), (0, 200, 200)]
_COPY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge", "StudyInstanceUID",
         "StudyDate", "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName", "StudyDescription")


def mask_contours(slice_mask: np.ndarray) -> list[np.ndarray]:
    """Closed contours (each (n, 2) in fractional (row, col) indices) of a 2D binary mask.

    Marching squares at 0.5 on the mask padded by one pixel; the closing point is dropped.
    """
    from skimage import measure

    m = np.pad(np.asarray(slice_mask) != 0, 1).astype(np.float32)
    out = []
    for c in measure.find_contours(m, 0.5):
        c = c - 1.0
        if len(c) > 1 and np.allclose(c[0], c[-1]):
            c = c[:-1]
        if len(c) >= 3:
            out.append(c)
    return out


def write_rtstruct(rois: Mapping[str, Any], source: str | os.PathLike | list[Any], out: str | os.PathLike, *,
                   label: str = "petspect", interpreted_type: str = "GTV", algorithm: str = "petspect",
                   overwrite: bool = False) -> Path:
    """Write masks on the source series' grid as an RT Structure Set.

    Parameters
    ----------
    rois : mapping name -> Volume or array (nz, ny, nx)
        Binary masks on the source series' grid (slice order of :func:`petspect.io.load`).
    source : path or list of pydicom.Dataset
        The image series the masks were made on (single-frame slices).
    out : path
        The ``.dcm`` file to write.
    label : str
        StructureSetLabel.
    interpreted_type : str
        RTROIInterpretedType of every ROI ("GTV", "ORGAN", "CONTROL", ...).
    algorithm : str
        ROIGenerationDescription (the method that made the masks).
    overwrite : bool

    Returns
    -------
    pathlib.Path
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    import petspect
    from petspect._fileio import atomic_path, check_output_path
    from petspect.io.dicom_seg import _as_masks, source_slices

    inputs = [source] if isinstance(source, (str, os.PathLike)) else []
    out_p = check_output_path(out, overwrite=overwrite, inputs=inputs)
    slices, grid = source_slices(source)
    masks = _as_masks(rois, grid)
    src0 = slices[0]
    for_uid = getattr(src0, "FrameOfReferenceUID", None)
    if not for_uid:
        raise InputError("the source series has no FrameOfReferenceUID: an RTSTRUCT cannot be registered to it",
                         path=out_p)
    now = datetime.now(timezone.utc)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = RTSTRUCT_SOP_CLASS
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    for kw in _COPY:
        if kw in src0:
            setattr(ds, kw, getattr(src0, kw))
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = int(getattr(src0, "SeriesNumber", 0) or 0) + 2000
    ds.SeriesDescription = f"petspect {algorithm}"[:64]
    ds.Manufacturer, ds.ManufacturerModelName, ds.SoftwareVersions = "petspect", "petspect", petspect.__version__
    ds.InstanceNumber = 1
    ds.StructureSetLabel = label[:16]
    ds.StructureSetDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.StructureSetTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.FrameOfReferenceUID = for_uid

    def image_ref(d: Any) -> Dataset:
        item = Dataset()
        item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = d.SOPClassUID, d.SOPInstanceUID
        return item

    series = Dataset()
    series.SeriesInstanceUID = src0.SeriesInstanceUID
    series.ContourImageSequence = Sequence([image_ref(d) for d in slices])
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management (retired; as RT tools use)
    study.ReferencedSOPInstanceUID = src0.StudyInstanceUID
    study.RTReferencedSeriesSequence = Sequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = for_uid
    frame.RTReferencedStudySequence = Sequence([study])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame])

    rois_seq, contours_seq, obs_seq = [], [], []
    affine = grid.affine
    for i, (name, m) in enumerate(masks, start=1):
        roi = Dataset()
        roi.ROINumber, roi.ReferencedFrameOfReferenceUID, roi.ROIName = i, for_uid, name[:64]
        roi.ROIGenerationAlgorithm = "AUTOMATIC"
        roi.ROIGenerationDescription = algorithm[:64]
        rois_seq.append(roi)
        items = []
        for k in np.flatnonzero(m.reshape(m.shape[0], -1).any(axis=1)):
            for c in mask_contours(m[k]):
                idx = np.column_stack([np.full(len(c), float(k)), c])
                pts = idx @ affine[:3, :3].T + affine[:3, 3]
                item = Dataset()
                item.ContourImageSequence = Sequence([image_ref(slices[k])])
                item.ContourGeometricType = "CLOSED_PLANAR"
                item.NumberOfContourPoints = len(pts)
                item.ContourData = [f"{v:.4f}" for v in pts.reshape(-1)]
                items.append(item)
        rc = Dataset()
        rc.ReferencedROINumber = i
        rc.ROIDisplayColor = list(_COLOURS[(i - 1) % len(_COLOURS)])
        rc.ContourSequence = Sequence(items)
        contours_seq.append(rc)
        obs = Dataset()
        obs.ObservationNumber, obs.ReferencedROINumber = i, i
        obs.RTROIInterpretedType, obs.ROIInterpreter = interpreted_type, ""
        obs_seq.append(obs)
    ds.StructureSetROISequence = Sequence(rois_seq)
    ds.ROIContourSequence = Sequence(contours_seq)
    ds.RTROIObservationsSequence = Sequence(obs_seq)
    with atomic_path(out_p) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return out_p
