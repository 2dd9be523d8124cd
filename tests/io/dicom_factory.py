"""Synthetic DICOM built with pydicom alone (independent of petspect's writer) for the reader tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

PET_STORAGE = "1.2.840.10008.5.1.4.1.1.128"
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
NM_STORAGE = "1.2.840.10008.5.1.4.1.1.20"
F18_HALF_LIFE_S = 6586.2  # 109.77 min (docs/REFERENCE.md, radioactivedecay)


def _base(sop_class: str, modality: str, series_uid: str, study_uid: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.StudyInstanceUID = study_uid
    ds.FrameOfReferenceUID = study_uid[:-2] + ".9"
    ds.PatientName = "Test^Patient"
    ds.PatientID = "PID-001"
    ds.PatientBirthDate = "19600101"
    ds.SeriesDate = ds.StudyDate = "20240102"
    ds.SeriesTime = ds.StudyTime = "100000"
    ds.Manufacturer = "SIEMENS"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    return ds


def set_pixels(ds: Dataset, stored: np.ndarray) -> None:
    stored = np.asarray(stored)
    ds.PixelRepresentation = 1 if stored.dtype == np.int16 else 0
    ds.Rows, ds.Columns = stored.shape[-2:]
    ds.PixelData = np.ascontiguousarray(stored).tobytes()


def slice_stack(values: np.ndarray, *, modality: str = "PT", spacing=(3.0, 2.0, 2.5),
                origin=(-10.0, 20.0, -30.0), row_dir=(1.0, 0.0, 0.0), col_dir=(0.0, 1.0, 0.0),
                **attrs) -> list[Dataset]:
    """Single-frame instances of ``values`` (nz, ny, nx): slice k at origin + k * spacing[0] * normal.

    Stored as uint16 with a per-slice RescaleSlope = max/60000 (PET) or int16 with intercept -1024 (CT).
    ``attrs`` are set on every instance (a callable value is called with the slice index).
    """
    sop = {"PT": PET_STORAGE, "CT": CT_STORAGE}.get(modality, PET_STORAGE)
    series_uid, study_uid = generate_uid(), generate_uid()
    r, c = np.asarray(row_dir, float), np.asarray(col_dir, float)
    n = np.cross(r, c)
    out = []
    for k, img in enumerate(np.asarray(values, dtype=np.float64)):
        ds = _base(sop, modality, series_uid, study_uid)
        ds.ImagePositionPatient = [float(v) for v in np.asarray(origin) + k * spacing[0] * n]
        ds.ImageOrientationPatient = [*map(float, r), *map(float, c)]
        ds.PixelSpacing = [spacing[1], spacing[2]]
        ds.SliceThickness = spacing[0]
        ds.InstanceNumber = k + 1
        if modality == "CT":
            ds.RescaleIntercept, ds.RescaleSlope = -1024.0, 1.0
            set_pixels(ds, np.round(img + 1024).astype(np.int16))
        else:
            slope = max(float(np.abs(img).max()), 1e-6) / 60000.0
            ds.RescaleSlope, ds.RescaleIntercept = f"{slope:.10g}", 0.0
            set_pixels(ds, np.round(img / float(ds.RescaleSlope)).astype(np.uint16))
        for key, value in attrs.items():
            setattr(ds, key, value(k) if callable(value) else value)
        out.append(ds)
    return out


def pet_attrs(*, units="BQML", decay="START", dose_bq=370e6, half_life_s=F18_HALF_LIFE_S,
              start_datetime="20240102090000", start_time=None, weight_kg=70.0, size_m=1.75, sex="M",
              acquisition_time="100000") -> dict:
    """PET Series / Patient / Radiopharmaceutical attributes."""
    rp = Dataset()
    rp.RadionuclideTotalDose = dose_bq
    rp.RadionuclideHalfLife = half_life_s
    if start_datetime is not None:
        rp.RadiopharmaceuticalStartDateTime = start_datetime
    if start_time is not None:
        rp.RadiopharmaceuticalStartTime = start_time
    attrs = dict(Units=units, DecayCorrection=decay, CorrectedImage=["ATTN", "DECY"],
                 RadiopharmaceuticalInformationSequence=Sequence([rp]), PatientWeight=weight_kg,
                 PatientSize=size_m, PatientSex=sex, AcquisitionDate="20240102")
    if acquisition_time is not None:
        attrs["AcquisitionTime"] = acquisition_time
    return attrs


def write(datasets: list[Dataset], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, ds in enumerate(datasets):
        ds.save_as(folder / f"im{i:04d}.dcm", enforce_file_format=True)
    return folder


def nm_tomo(*, n_views: int = 4, rows: int = 3, cols: int = 5, step_deg: float = 45.0,
            starts_deg=(0.0, 180.0), direction: str = "CW", radial=((250.0,), (251.0, 252.0, 253.0, 254.0)),
            windows=(("EM", 126.0, 154.0), ("SC", 110.0, 126.0)), slot_times_ms=None) -> Dataset:
    """A dual-head NM TOMO instance; the frame of (window w, detector d, view v) holds 100 w + 10 d + v.

    ``slot_times_ms`` (one TimeSlotTime per gate) makes it GATED TOMO: frames of time slot g (0-based) hold
    ``1000 g`` more, ordered window, detector, view, slot."""
    ds = _base(NM_STORAGE, "NM", generate_uid(), generate_uid())
    gated = slot_times_ms is not None
    ds.ImageType = ["ORIGINAL", "PRIMARY", "GATED TOMO" if gated else "TOMO", "EMISSION"]
    frames, ew, dv, rv, av, tv = [], [], [], [], [], []
    for w in range(len(windows)):
        for d in range(len(starts_deg)):
            for v in range(n_views):
                for g in range(len(slot_times_ms) if gated else 1):
                    frames.append(np.full((rows, cols), 100 * w + 10 * d + v + 1000 * g, dtype=np.uint16))
                    ew.append(w + 1)
                    dv.append(d + 1)
                    rv.append(1)
                    av.append(v + 1)
                    tv.append(g + 1)
    set_pixels(ds, np.stack(frames))
    ds.NumberOfFrames = len(frames)
    ds.FrameIncrementPointer = [0x00540010, 0x00540020, 0x00540050, 0x00540090]
    ds.EnergyWindowVector, ds.DetectorVector, ds.RotationVector, ds.AngularViewVector = ew, dv, rv, av
    if gated:
        ds.FrameIncrementPointer = [0x00540010, 0x00540020, 0x00540050, 0x00540090, 0x00540060, 0x00540070]
        ds.RRIntervalVector, ds.TimeSlotVector = [1] * len(frames), tv
        ds.NumberOfRRIntervals, ds.NumberOfTimeSlots = 1, len(slot_times_ms)
        slots = []
        for ms in slot_times_ms:
            item = Dataset()
            item.TimeSlotTime = ms
            slots.append(item)
        data = Dataset()
        data.TimeSlotInformationSequence = Sequence(slots)
        gate_info = Dataset()
        gate_info.DataInformationSequence = Sequence([data])
        ds.GatedInformationSequence = Sequence([gate_info])
    ds.NumberOfEnergyWindows, ds.NumberOfDetectors, ds.NumberOfRotations = len(windows), len(starts_deg), 1
    ds.PixelSpacing = [4.4, 4.2]
    items = []
    for name, lo, hi in windows:
        rng = Dataset()
        rng.EnergyWindowLowerLimit, rng.EnergyWindowUpperLimit = lo, hi
        item = Dataset()
        item.EnergyWindowName = name
        item.EnergyWindowRangeSequence = Sequence([rng])
        items.append(item)
    ds.EnergyWindowInformationSequence = Sequence(items)
    dets = []
    for start, rad in zip(starts_deg, radial):
        item = Dataset()
        item.StartAngle = start
        item.RadialPosition = list(rad) if len(rad) > 1 else rad[0]
        item.CollimatorGridName = "LEHR"
        dets.append(item)
    ds.DetectorInformationSequence = Sequence(dets)
    rot = Dataset()
    rot.StartAngle, rot.AngularStep, rot.RotationDirection = starts_deg[0], step_deg, direction
    rot.NumberOfFramesInRotation, rot.ActualFrameDuration, rot.ScanArc = n_views, 20000, 360
    ds.RotationInformationSequence = Sequence([rot])
    return ds


def rtstruct(rois: dict[str, list[np.ndarray]], *, geometric_type: str = "CLOSED_PLANAR") -> Dataset:
    """An RT Structure Set: ROI name -> list of contours, each an (n, 3) array of LPS points in mm."""
    ds = _base("1.2.840.10008.5.1.4.1.1.481.3", "RTSTRUCT", generate_uid(), generate_uid())
    roi_items, contour_items = [], []
    for number, (name, contours) in enumerate(rois.items(), start=1):
        roi = Dataset()
        roi.ROINumber, roi.ROIName = number, name
        roi_items.append(roi)
        cs = []
        for pts in contours:
            c = Dataset()
            c.ContourGeometricType = geometric_type
            c.NumberOfContourPoints = len(pts)
            c.ContourData = [float(v) for v in np.asarray(pts).reshape(-1)]
            cs.append(c)
        item = Dataset()
        item.ReferencedROINumber = number
        item.ContourSequence = Sequence(cs)
        contour_items.append(item)
    ds.StructureSetROISequence = Sequence(roi_items)
    ds.ROIContourSequence = Sequence(contour_items)
    return ds


def circle(centre_mm, radius_mm: float, n: int = 360) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([centre_mm[0] + radius_mm * np.cos(t), centre_mm[1] + radius_mm * np.sin(t),
                     np.full(n, float(centre_mm[2]))], axis=1)
