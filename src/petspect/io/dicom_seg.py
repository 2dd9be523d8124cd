"""Segmentations written back to DICOM as a SEG object (highdicom), and read back onto a grid.

:func:`write_dicom_seg` takes binary masks on the grid of a source image series (the series a
:class:`~petspect.volume.Volume` was read from with :func:`petspect.io.load`) and writes one DICOM
Segmentation instance (BINARY, one segment per mask) with highdicom:

* it references every source instance (ReferencedSeriesSequence, per-frame DerivationImageSequence) and
  copies the patient, study and FrameOfReferenceUID, so a viewer overlays it on the source series;
* frame ``k`` of a segment lies on source slice ``k``: its PlanePositionSequence is that slice's
  ImagePositionPatient and the orientation and pixel spacing are the source's; empty frames are omitted.

:func:`read_dicom_seg` reads any DICOM SEG (BINARY or FRACTIONAL; fractional frames are cut at half
their maximum) onto a reference grid from each frame's plane position, without highdicom, so the round
trip checks the writer against an independent reader.

Only single-frame source series (PET, CT, MR slice stacks) are supported; a multi-frame source (NM
RECON TOMO) is refused with a clear error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from petspect.errors import FormatError, GeometryError, InputError
from petspect.volume import Volume

__all__ = ["SEG_KIND", "source_slices", "write_dicom_seg", "read_dicom_seg", "property_codes"]

SEG_KIND = "dicom-seg"
SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"

#: Algorithm families (DICOM CID 7162) of the methods petspect writes.
_FAMILIES = {"threshold": "HistogramAnalysis", "gradient": "EdgeDetection", "network": "ArtificialIntelligence",
             "manual": "ManualProcessing"}
_ORGAN_CODES = {"liver": "Liver", "kidney": "Kidney", "kidneys": "Kidney", "spleen": "Spleen", "lung": "Lung",
                "lungs": "Lung", "salivary_glands": "SalivaryGland", "bladder": "Bladder"}


def property_codes(label: str) -> tuple[Any, Any]:
    """(category, type) codes of a segment: organs by name (SNOMED CT), anything else a lesion."""
    from pydicom.sr.codedict import codes

    key = label.strip().lower().replace(" ", "_")
    if key in _ORGAN_CODES:
        try:
            return codes.SCT.Organ, getattr(codes.SCT, _ORGAN_CODES[key])
        except AttributeError:
            return codes.SCT.Organ, codes.SCT.Tissue
    return codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Lesion


def source_slices(source: str | os.PathLike | list[Any]) -> tuple[list[Any], Volume]:
    """The source series' instances in slice order (slice ``k`` of its Volume first) and the Volume's grid.

    Raises
    ------
    InputError
        A multi-frame source (one instance holding many slices).
    """
    from petspect.io.dicom_files import read_datasets
    from petspect.io.dicom_read import _frame_count, _single_frame_image, _stack_geometry, images_to_volume

    datasets = read_datasets(source) if isinstance(source, (str, os.PathLike)) else list(source)
    if not datasets:
        raise InputError("the source series holds no instances")
    if any(_frame_count(d) > 1 or getattr(d, "PerFrameFunctionalGroupsSequence", None) for d in datasets):
        raise InputError("DICOM SEG/RTSTRUCT writing supports single-frame source series (PET, CT, MR slices); "
                         "this source is multi-frame", path=source if not isinstance(source, list) else None)
    images, *_ = _stack_geometry([_single_frame_image(d) for d in datasets], source)
    return [im.ds for im in images], images_to_volume(datasets, source)


def _as_masks(segments: Mapping[str, Any], grid: Volume) -> list[tuple[str, np.ndarray]]:
    if not segments:
        raise InputError("no segment to write")
    out = []
    for name, m in segments.items():
        if isinstance(m, Volume):
            if not m.same_grid(grid, atol_mm=1e-2):
                raise GeometryError(f"segment {name!r} is not on the source series' grid ({m!r} vs {grid!r}); "
                                    "resample it to the source first (nearest neighbour)")
            arr = m.numpy()
        else:
            arr = np.asarray(m.detach().cpu().numpy() if hasattr(m, "detach") else m)
            if arr.shape != grid.shape:
                raise GeometryError(f"segment {name!r} has shape {arr.shape}, the source series {grid.shape}")
        out.append((str(name), arr != 0))
    return out


#: Type 2 attributes of the Patient and General Study modules that a SEG must carry (empty when the source
#: lacks them, as research series often do).
_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
          "ReferringPhysicianName", "StudyID", "AccessionNumber")


def _with_type2(slices: list[Any]) -> list[Any]:
    import copy

    out = []
    for d in slices:
        d = copy.deepcopy(d)
        for kw in _TYPE2:
            if kw not in d:
                setattr(d, kw, "")
        out.append(d)
    return out


def write_dicom_seg(segments: Mapping[str, Any], source: str | os.PathLike | list[Any], out: str | os.PathLike, *,
                    algorithm: str = "petspect", algorithm_family: str = "threshold", algorithm_version: str = "",
                    series_description: str = "petspect segmentation", overwrite: bool = False) -> Path:
    """Write masks as one DICOM SEG instance referencing the source series.

    Parameters
    ----------
    segments : mapping name -> Volume or array (nz, ny, nx)
        Binary masks (non-zero inside) on the source series' grid, in its slice order.
    source : path or list of pydicom.Dataset
        The image series the masks were made on.
    out : path
        The ``.dcm`` file to write (refused if it exists unless ``overwrite``).
    algorithm : str
        Name of the segmentation method (e.g. ``suv41``, ``dynunet``).
    algorithm_family : {"threshold", "gradient", "network", "manual"}
    algorithm_version : str
    series_description : str

    Returns
    -------
    pathlib.Path
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    import petspect
    from petspect._fileio import atomic_path, check_output_path

    if algorithm_family not in _FAMILIES:
        raise InputError(f"algorithm_family must be one of {sorted(_FAMILIES)}, got {algorithm_family!r}")
    inputs = [source] if isinstance(source, (str, os.PathLike)) else []
    out_p = check_output_path(out, overwrite=overwrite, inputs=inputs)
    slices, grid = source_slices(source)
    masks = _as_masks(segments, grid)
    labels = np.zeros(grid.shape, dtype=np.uint8 if len(masks) < 256 else np.uint16)
    family = getattr(codes.cid7162, _FAMILIES[algorithm_family])
    descriptions = []
    for i, (name, m) in enumerate(masks, start=1):
        if (labels[m] != 0).any():
            raise InputError(f"segment {name!r} overlaps an earlier segment; write overlapping masks as separate "
                             "SEG files")
        labels[m] = i
        category, kind = property_codes(name)
        manual = algorithm_family == "manual"
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=i, segment_label=name[:64], segmented_property_category=category,
            segmented_property_type=kind,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL if manual
            else hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=None if manual else hd.AlgorithmIdentificationSequence(
                name=algorithm[:64], family=family, version=(algorithm_version or petspect.__version__)[:64])))
    slices = _with_type2(slices)
    src0 = slices[0]
    seg = hd.seg.Segmentation(
        source_images=slices, pixel_array=labels, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=generate_uid(),
        series_number=int(getattr(src0, "SeriesNumber", 0) or 0) + 1000, sop_instance_uid=generate_uid(),
        instance_number=1, manufacturer="petspect", manufacturer_model_name="petspect",
        software_versions=petspect.__version__, device_serial_number="none",
        series_description=series_description[:64])
    with atomic_path(out_p) as tmp:
        seg.save_as(tmp, enforce_file_format=True)
    return out_p


def read_dicom_seg(path: str | os.PathLike, reference: Volume) -> dict[str, Volume]:
    """Rasterise every segment of a DICOM SEG onto the grid of ``reference``.

    Each frame is placed by its PlanePositionSequence on the reference slice it lies on; frames off the
    reference grid (not on a slice centre, or shifted in-plane) raise :class:`GeometryError`.

    Returns
    -------
    dict str -> Volume
        SegmentLabel -> uint8 mask (unit "label", modality "SEG") with meta ``{"segment_number", ...}``.
    """
    import pydicom

    from petspect.io._paths import require_exists

    p = require_exists(path)
    try:
        ds = pydicom.dcmread(p)
    except (pydicom.errors.InvalidDicomError, OSError, ValueError) as e:
        raise FormatError(f"not a readable DICOM file: {e}", path=p) from None
    if str(getattr(ds, "SOPClassUID", "")) != SEG_SOP_CLASS:
        raise FormatError("not a DICOM Segmentation (SOPClassUID 1.2.840.10008.5.1.4.1.1.66.4)", path=p)
    nz, ny, nx = reference.shape
    if (int(ds.Rows), int(ds.Columns)) != (ny, nx):
        raise GeometryError(f"SEG frames are {ds.Rows} x {ds.Columns}, the reference slices {ny} x {nx}", path=p)
    names = {int(s.SegmentNumber): str(s.SegmentLabel) for s in ds.SegmentSequence}
    pix = ds.pixel_array.reshape(-1, ny, nx)
    fractional = str(getattr(ds, "SegmentationType", "BINARY")).upper() == "FRACTIONAL"
    cut = 0.5 * float(getattr(ds, "MaximumFractionalValue", 255)) if fractional else 0.5
    out = {n: np.zeros((nz, ny, nx), dtype=np.uint8) for n in names}
    shared = (getattr(ds, "SharedFunctionalGroupsSequence", None) or [None])[0]

    def group(fg: Any, seq: str) -> Any:  # a functional group item: per frame, else shared
        for g in (fg, shared):
            if g is not None and seq in g and len(g[seq].value):
                return g[seq][0]
        raise FormatError(f"{seq} is in neither the per-frame nor the shared functional groups", path=p)

    frames = ds.PerFrameFunctionalGroupsSequence
    if len(frames):
        ori = np.asarray([float(v) for v in group(frames[0], "PlaneOrientationSequence").ImageOrientationPatient])
        d = np.asarray(reference.direction)
        if not np.allclose(ori, np.concatenate([d[:, 2], d[:, 1]]), atol=1e-3):
            raise GeometryError(f"SEG orientation {ori.round(4).tolist()} differs from the reference grid's; "
                                "resample the reference to the SEG's source series", path=p)
    for i, fg in enumerate(frames):
        number = int(group(fg, "SegmentIdentificationSequence").ReferencedSegmentNumber)
        pos = np.asarray([float(v) for v in group(fg, "PlanePositionSequence").ImagePositionPatient])
        k = reference.world_to_voxel(pos)
        kz = int(np.round(k[0]))
        if np.max(np.abs(k - np.array([kz, 0.0, 0.0]))) > 1e-2 or not 0 <= kz < nz:
            raise GeometryError(f"frame {i + 1} at {pos.round(3).tolist()} mm is not on a slice of the reference "
                                f"grid (voxel {k.round(3).tolist()})", path=p)
        if number not in names:
            raise FormatError(f"frame {i + 1} references segment {number}, which SegmentSequence lacks", path=p)
        out[number][kz] |= (pix[i] > cut).astype(np.uint8)
    return {names[n]: reference.with_data(torch.from_numpy(m), unit="label", modality="SEG",
                                          meta={"segment_number": n, "segment_label": names[n]})
            for n, m in out.items()}
