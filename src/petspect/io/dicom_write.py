"""Writing a Volume as a derived DICOM series (PET, CT, MR as slices; NM as one multi-frame RECON TOMO).

The series gets new Series/SOP Instance UIDs, ImageType ``DERIVED\\SECONDARY``, stored integers with a
per-slice RescaleSlope (uint16 when a slice has no negative values, else int16; integer-valued CT is
kept exactly with slope 1). With a ``source`` series the patient, study, frame of reference and (PET)
radiopharmaceutical, weight, height, sex and decay facts are copied, and the series/acquisition times
are set to the source's SUV reference time, so a viewer shows the new series beside the original and
``suv_factor`` of the output equals that of the input values (for DecayCorrection NONE, whose
factors differ per slice, every output slice gets the earliest acquisition time). Without a source a new study is made with
clearly synthetic identifiers (PatientName ``SYNTHETIC^PETSPECT``) and the ``patient`` /
``radiopharmaceutical`` facts given.

Anonymisation (``anonymize=True``) applies :mod:`petspect.io.anonymise`: the DICOM PS3.15 Annex E Basic
Application Level Confidentiality Profile with the *Retain Patient Characteristics* and *Retain Longitudinal
Temporal Information with Full Dates* options (sex, age, weight, height and dates/times are what SUV needs),
PatientName/PatientID replaced by keyed (HMAC-SHA256) pseudonyms and the Study/Frame-of-Reference UIDs by
keyed UIDs, consistent for one secret.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from petspect._fileio import atomic_dir, check_output_path
from petspect.errors import InputError, UnitError
from petspect.io.anonymise import EMPTY, REMOVE, AnonymisationKey, anonymise_dataset
from petspect.volume import Volume

DICOM_KIND = "dicom-series"  # marker kind of the folders written here (petspect._fileio)
SOP_CLASS = {"PT": "1.2.840.10008.5.1.4.1.1.128", "CT": "1.2.840.10008.5.1.4.1.1.2",
             "MR": "1.2.840.10008.5.1.4.1.1.4", "NM": "1.2.840.10008.5.1.4.1.1.20"}
PET_UNITS = {"Bq/mL": "BQML", "SUVbw": "GML", "counts": "CNTS", "cps": "CPS", "a.u.": "PROPCNTS"}
#: NM units; an uncalibrated reconstruction (a.u.) is proportional to counts (DICOM defined term PROPCNTS)
NM_UNITS = {"Bq/mL": "BQML", "counts": "CNTS", "cps": "CPS", "a.u.": "PROPCNTS"}
SYNTHETIC_NAME = "SYNTHETIC^PETSPECT"
PATIENT_ATTRS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge", "PatientWeight",
                 "PatientSize", "IssuerOfPatientID", "EthnicGroup", "PatientIdentityRemoved",
                 "DeidentificationMethod")
STUDY_ATTRS = ("StudyInstanceUID", "StudyDate", "StudyTime", "StudyID", "AccessionNumber", "StudyDescription",
               "ReferringPhysicianName", "FrameOfReferenceUID", "PositionReferenceIndicator", "PatientPosition",
               "InstitutionName", "Manufacturer")
PET_ATTRS = ("RadiopharmaceuticalInformationSequence", "DecayCorrection", "CorrectedImage")
# the PS3.15 basic-profile lists (petspect.io.anonymise); the series description petspect writes is its own
ANONYMIZE_EMPTY = EMPTY
ANONYMIZE_REMOVE = tuple(kw for kw in REMOVE if kw != "SeriesDescription")


def _source_datasets(source: Any) -> list[Any] | None:
    """Datasets of the source series (a folder/file path or a list of datasets), or None."""
    if source is None:
        return None
    if isinstance(source, (str, os.PathLike)):
        from petspect.io.dicom_files import read_datasets

        datasets = read_datasets(source)
    else:
        datasets = list(source)
    if not datasets:
        raise InputError("source holds no datasets")
    return datasets


def _scan_reference(datasets: list[Any]) -> datetime | None:
    from petspect.io.suv import acquisition_datetime, scan_datetime

    acq = [a for a in (acquisition_datetime(d) for d in datasets) if a is not None]
    try:
        return scan_datetime(datasets[0], earliest_acquisition=min(acq) if acq else None)
    except Exception:  # no series time in the source: leave the times as they are
        return None


def _header(volume: Volume, modality: str, source: Any, *, description: str, anonymize: AnonymisationKey | None,
            patient: dict | None, radiopharmaceutical: dict | None) -> Any:
    """Dataset with the attributes shared by every instance of the new series."""
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    ds = Dataset()
    now = datetime.now(timezone.utc)
    ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = now.strftime("%Y%m%d")
    ds.SeriesTime = ds.ContentTime = ds.AcquisitionTime = now.strftime("%H%M%S")
    datasets = _source_datasets(source)
    if datasets is not None:
        src = datasets[0]
        for kw in PATIENT_ATTRS + STUDY_ATTRS + (PET_ATTRS if modality == "PT" else ()):
            if kw in src:
                setattr(ds, kw, getattr(src, kw))
        _reference_sources(ds, datasets, description)
        ref = _scan_reference(datasets) if modality == "PT" and getattr(src, "Modality", None) == "PT" else None
        if ref is not None:
            ds.SeriesDate = ds.AcquisitionDate = ref.strftime("%Y%m%d")
            ds.SeriesTime = ds.AcquisitionTime = ref.strftime("%H%M%S.%f")
    else:
        ds.PatientName = SYNTHETIC_NAME
        ds.PatientID = "PETSPECT-SYNTH-" + generate_uid().rsplit(".", 1)[-1][:10]
        ds.StudyInstanceUID, ds.FrameOfReferenceUID = generate_uid(), generate_uid()
        ds.StudyDate, ds.StudyTime = ds.SeriesDate, ds.SeriesTime
        ds.StudyDescription = "petspect synthetic study"
        ds.Manufacturer = "petspect"
        ds.PatientPosition = "HFS"
    _apply_patient(ds, patient)
    if modality == "PT":
        _apply_radiopharmaceutical(ds, volume, radiopharmaceutical)
    if anonymize is not None:
        anonymise_dataset(ds, anonymize)
    ds.Modality = modality
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 900 + int(now.timestamp()) % 100
    ds.SeriesDescription = description[:64]
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.SOPClassUID = SOP_CLASS[modality]
    ds.ManufacturerModelName = "petspect"
    ds.PositionReferenceIndicator = getattr(ds, "PositionReferenceIndicator", "") or ""
    return ds


def _reference_sources(ds: Any, datasets: list[Any], description: str) -> None:
    """SourceImageSequence (0008,2112) and ReferencedSeriesSequence (0008,1115): the instances and series the
    new series was derived from (a reconstruction references its projections, a conversion its slices)."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    items, series = [], {}
    for d in datasets:
        if "SOPInstanceUID" not in d or "SOPClassUID" not in d:
            continue
        item = Dataset()
        item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = d.SOPClassUID, d.SOPInstanceUID
        items.append(item)
        if "SeriesInstanceUID" in d:
            series.setdefault(str(d.SeriesInstanceUID), Dataset()).SeriesInstanceUID = d.SeriesInstanceUID
    if items:
        ds.SourceImageSequence = Sequence(items)
        ds.ReferencedSeriesSequence = Sequence(list(series.values()))
        ds.DerivationDescription = description[:1024]


def _apply_patient(ds: Any, patient: dict | None) -> None:
    keys = {"name": "PatientName", "id": "PatientID", "sex": "PatientSex", "weight_kg": "PatientWeight",
            "size_m": "PatientSize", "birth_date": "PatientBirthDate", "age": "PatientAge"}
    for k, v in (patient or {}).items():
        if k not in keys:
            raise InputError(f"unknown patient key {k!r}; use {sorted(keys)}")
        setattr(ds, keys[k], v)
    for kw in ("PatientBirthDate", "PatientSex"):
        if kw not in ds:
            setattr(ds, kw, "")


def _apply_radiopharmaceutical(ds: Any, volume: Volume, rp: dict | None) -> None:
    """PET isotope facts: from ``rp`` (overriding a source's), else kept from the source."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from petspect.io.suv import parse_dt

    if rp:
        allowed = {"total_dose_bq", "half_life_s", "start_datetime", "scan_datetime", "name", "decay_correction"}
        unknown = set(rp) - allowed
        if unknown:
            raise InputError(f"unknown radiopharmaceutical keys {sorted(unknown)}; use {sorted(allowed)}")
        item = Dataset()
        item.RadionuclideTotalDose = float(rp["total_dose_bq"])
        item.RadionuclideHalfLife = float(rp["half_life_s"])
        start = rp.get("start_datetime")
        if start is not None:
            item.RadiopharmaceuticalStartDateTime = (start.strftime("%Y%m%d%H%M%S.%f")
                                                     if isinstance(start, datetime) else str(start))
            dt_text = str(item.RadiopharmaceuticalStartDateTime)  # TM has no UTC offset: cut a DT's '&ZZXX'
            item.RadiopharmaceuticalStartTime = dt_text[8:].split("+")[0].split("-")[0]
        if rp.get("name"):
            item.Radiopharmaceutical = str(rp["name"])
        scan = rp.get("scan_datetime")
        if scan is not None:
            scan = scan if isinstance(scan, datetime) else parse_dt(scan)
            ds.SeriesDate = ds.AcquisitionDate = scan.strftime("%Y%m%d")
            ds.SeriesTime = ds.AcquisitionTime = scan.strftime("%H%M%S.%f")
        ds.RadiopharmaceuticalInformationSequence = Sequence([item])
        ds.DecayCorrection = rp.get("decay_correction", "START")
    if "RadiopharmaceuticalInformationSequence" not in ds:
        ds.RadiopharmaceuticalInformationSequence = Sequence([])
    ds.DecayCorrection = getattr(ds, "DecayCorrection", None) or "START"
    if "CorrectedImage" not in ds:
        from petspect.io._meta import multi_valued

        ds.CorrectedImage = multi_valued(volume.meta.get("corrected_image")) or ["DECY"]
    unit = PET_UNITS.get(volume.unit)
    if unit is None:
        raise UnitError(f"a PET series stores {sorted(PET_UNITS)}; this volume is in {volume.unit!r} "
                        "(convert SUVlbm/SUVbsa/SUVibw back to Bq/mL first)")
    ds.Units = unit
    ds.SeriesType = ["STATIC", "IMAGE"]
    ds.CountsSource = "EMISSION"


def encode_values(values: np.ndarray) -> tuple[np.ndarray, str]:
    """Stored integers and the RescaleSlope (DS text) of float values; intercept 0.

    Integer values that fit int16/uint16 are kept exactly (slope 1). Otherwise uint16 when no value
    is negative, else int16, with ``slope = max|v| / max integer`` so the error is at most half a
    step (``max|v| / 131070`` for uint16).
    """
    from pydicom.valuerep import format_number_as_ds

    v = np.asarray(values, dtype=np.float64)
    lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 0.0)
    dtype = np.uint16 if lo >= 0 else np.int16
    info = np.iinfo(dtype)
    if np.all(v == np.round(v)) and lo >= info.min and hi <= info.max:
        return v.astype(dtype), "1"
    peak = max(abs(lo), abs(hi))
    slope_s = format_number_as_ds(peak / info.max if peak > 0 else 1.0)
    stored = np.clip(np.round(v / float(slope_s)), info.min, info.max)
    return stored.astype(dtype), slope_s


def _dicom_handed(volume: Volume) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(data (nz, ny, nx) float64, origin (3,), direction (3, 3)) with the slice axis along
    row x column (``r x c``), as DICOM stacking assumes: a mirror-image grid gets its slice order flipped."""
    data = volume.numpy().astype(np.float64)
    d = np.asarray(volume.direction)
    origin = np.asarray(volume.origin_mm)
    if d[:, 0] @ np.cross(d[:, 2], d[:, 1]) < 0:
        origin = volume.voxel_to_world((volume.shape[0] - 1, 0, 0))
        d = d * np.array([-1.0, 1.0, 1.0])[None, :]
        data = data[::-1]
    return np.ascontiguousarray(data), origin, d


def _set_pixels(ds: Any, stored: np.ndarray, slope: str) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if stored.dtype == np.int16 else 0
    ds.Rows, ds.Columns = stored.shape[-2:]
    ds.RescaleSlope, ds.RescaleIntercept = slope, "0"
    ds.PixelData = np.ascontiguousarray(stored).tobytes()


def _instance(header: Any, sop_uid: str) -> Any:
    import copy

    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    ds = copy.deepcopy(header)
    ds.SOPInstanceUID = sop_uid
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    return ds


def _nm_instance(header: Any, data: np.ndarray, origin: np.ndarray, d: np.ndarray, spacing: tuple) -> Any:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.uid import generate_uid

    ds = _instance(header, generate_uid())
    ds.ImageType = ["DERIVED", "SECONDARY", "RECON TOMO", "EMISSION"]
    ds.NumberOfFrames = data.shape[0]
    ds.FrameIncrementPointer = 0x00540080  # SliceVector
    ds.SliceVector = list(range(1, data.shape[0] + 1))
    ds.NumberOfSlices = data.shape[0]
    det = Dataset()
    det.ImagePositionPatient = [float(v) for v in origin]
    det.ImageOrientationPatient = [float(v) for v in (*d[:, 2], *d[:, 1])]
    ds.DetectorInformationSequence = Sequence([det])
    ds.PixelSpacing = [float(spacing[1]), float(spacing[2])]
    ds.SliceThickness = ds.SpacingBetweenSlices = float(spacing[0])
    ds.InstanceNumber = 1
    stored, slope = encode_values(data)
    _set_pixels(ds, stored, slope)
    return ds


def write_dicom_series(volume: Volume, out_dir: str | os.PathLike, *, source: Any = None,
                       series_description: str = "petspect derived", anonymize: bool = False,
                       overwrite: bool = False, patient: dict | None = None,
                       radiopharmaceutical: dict | None = None, secret_file: str | os.PathLike | None = None,
                       anonymisation_key: AnonymisationKey | None = None) -> list[Path]:
    """Write ``volume`` as a new DICOM series in the folder ``out_dir`` (see the module docstring).

    Parameters
    ----------
    volume : Volume
        Modality "PT" (unit Bq/mL, SUVbw, counts or cps), "CT" (HU), "NM" or "MR" (None: "PT" if the
        unit is Bq/mL or SUVbw, "CT" if HU, else "MR").
    out_dir : str or PathLike
        Output folder; must not exist unless ``overwrite``; written atomically (a temporary folder
        renamed into place). May not be (inside) the source folder.
    source : path or list of pydicom.Dataset, optional
        Series whose patient, study and PET facts are copied.
    series_description : str
        SeriesDescription (64 characters at most).
    anonymize : bool
        De-identify (DICOM PS3.15 basic profile, :mod:`petspect.io.anonymise`) with keyed pseudonyms; the
        key is ``anonymisation_key``, else read from ``secret_file``, else the one stored beside ``out_dir``
        (``<out_dir>.petspect-anon-key``), else a new one written there (mode 0600).
    overwrite : bool
        Replace an existing ``out_dir``.
    patient : dict, optional
        Overrides: name, id, sex ("M"/"F"), weight_kg, size_m, birth_date, age.
    radiopharmaceutical : dict, optional
        PET facts: total_dose_bq, half_life_s, start_datetime (injection; datetime or DICOM DT),
        scan_datetime (series start; default now, or the source's), name, decay_correction
        ("START", "ADMIN" or "NONE").

    Returns
    -------
    list of pathlib.Path
        The files written, in slice order (one file for NM).
    """
    if not isinstance(volume, Volume):
        raise InputError(f"write_dicom_series takes a Volume, got {type(volume).__name__}")
    modality = volume.modality or {"Bq/mL": "PT", "SUVbw": "PT", "HU": "CT"}.get(volume.unit, "MR")
    if modality not in SOP_CLASS:
        raise InputError(f"cannot write modality {modality!r} as DICOM images; use one of {sorted(SOP_CLASS)}")
    if modality == "CT" and volume.unit != "HU":
        raise UnitError(f"a CT series stores HU; this volume is in {volume.unit!r}")
    if volume.data.is_floating_point() and not bool(volume.data.isfinite().all()):
        n = int((~volume.data.isfinite()).sum())
        raise InputError(f"the volume holds {n} NaN or infinite voxels, which DICOM's stored integers cannot "
                         "hold (NaN would be written as 0); replace them first or write NIfTI")
    inputs = [source] if isinstance(source, (str, os.PathLike)) else []
    out = check_output_path(out_dir, overwrite=overwrite, inputs=inputs, kind=DICOM_KIND)
    key = None
    if anonymize:
        from petspect.io.anonymise import secret_for_output

        key = anonymisation_key or secret_for_output(out, secret_file)[0]
    header = _header(volume, modality, source, description=series_description, anonymize=key,
                     patient=patient, radiopharmaceutical=radiopharmaceutical)
    if modality == "NM":
        if volume.unit not in NM_UNITS:
            raise UnitError(f"an NM series stores {sorted(NM_UNITS)}; this volume is in {volume.unit!r}")
        header.Units = NM_UNITS[volume.unit]
    data, origin, d = _dicom_handed(volume)
    with atomic_dir(out, kind=DICOM_KIND) as tmp:
        names = []
        if modality == "NM":
            _nm_instance(header, data, origin, d, volume.spacing_mm).save_as(tmp / "nm_recon.dcm",
                                                                             enforce_file_format=True)
            names.append("nm_recon.dcm")
        else:
            names = _write_slices(header, data, origin, d, volume.spacing_mm, tmp)
    return [out / n for n in names]


def _write_slices(header: Any, data: np.ndarray, origin: np.ndarray, d: np.ndarray, spacing: tuple,
                  folder: Path) -> list[str]:
    from pydicom.uid import generate_uid

    names = []
    for k, img in enumerate(data):
        ds = _instance(header, generate_uid())
        pos = origin + k * spacing[0] * d[:, 0]
        ds.ImagePositionPatient = [float(v) for v in pos]
        ds.ImageOrientationPatient = [float(v) for v in (*d[:, 2], *d[:, 1])]
        ds.PixelSpacing = [float(spacing[1]), float(spacing[2])]
        ds.SliceThickness = ds.SpacingBetweenSlices = float(spacing[0])
        ds.SliceLocation = float(pos @ d[:, 0])
        ds.InstanceNumber = k + 1
        if ds.Modality == "PT":
            ds.ImageIndex, ds.NumberOfSlices = k + 1, data.shape[0]
        stored, slope = encode_values(img)
        _set_pixels(ds, stored, slope)
        name = f"{k + 1:04d}.dcm"
        ds.save_as(folder / name, enforce_file_format=True)
        names.append(name)
    return names
