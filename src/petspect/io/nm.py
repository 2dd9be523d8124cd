"""SPECT projection data from DICOM NM multi-frame TOMO instances -> :class:`SpectProjections`.

A TOMO instance stores its frames in the order given by FrameIncrementPointer, each frame labelled
by the vectors it points to: EnergyWindowVector (0054,0010), DetectorVector (0054,0020),
RotationVector (0054,0050) and AngularViewVector (0054,0090) (1-based indices). The frames are
gathered into ``counts[window, view, row, col]`` with views ordered by (detector, rotation, view).

Angles: DICOM (PS3.3 C.8.4.12) measures the detector angle from the patient's back, increasing
counter-clockwise seen from the feet; for detector ``d`` and view ``k`` of rotation ``r`` it is
``start + k * step`` for RotationDirection ``CC`` and ``start - k * step`` for ``CW``, with ``start``
the detector's StartAngle (DetectorInformationSequence, else the rotation's) and ``step`` the
rotation's AngularStep. The reader returns petspect's angles (0 = detector anterior, clockwise seen
from the feet: ``180 - DICOM angle``, :func:`petspect.geometry.spect.angles_from_dicom`).
Radius: the detector's RadialPosition (one value per view of the
rotation, or one for a circular orbit), in mm. Energy windows: EnergyWindowInformationSequence
(name, lower and upper limits in keV). The photopeak is the window whose name contains "PEAK",
"EM" or "PHOTO", else the one with the most counts. Frame duration: ActualFrameDuration (ms) of
the first rotation.

Gated TOMO (ImageType ``GATED TOMO``; frames also indexed by RRIntervalVector (0054,0060) and
TimeSlotVector (0054,0070), one RR-interval window): ``gate=None`` sums the time slots into the ungated
projections (frame duration: the whole view); ``gate=k`` keeps time slot ``k`` (1-based), whose frame
duration is the view's times the slot's share of the cardiac cycle (TimeSlotTime (0054,0073) over their
sum, else ``1 / n_slots``); :func:`read_nm_gates` returns every slot. Dynamic TOMO is refused.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from petspect.errors import FormatError, InputError, MissingTagError
from petspect.geometry.spect import angles_from_dicom
from petspect.geometry.spect_data import EnergyWindow, SpectProjections
from petspect.io._guard import guarded
from petspect.io._meta import multi_valued
from petspect.io._paths import is_dicom_file, require_exists
from petspect.io.dicom_files import number, numbers, pixel_array, read_datasets, require, where

ENERGY_WINDOW_VECTOR = 0x00540010
DETECTOR_VECTOR = 0x00540020
ROTATION_VECTOR = 0x00540050
ANGULAR_VIEW_VECTOR = 0x00540090
RR_INTERVAL_VECTOR = 0x00540060
TIME_SLOT_VECTOR = 0x00540070
PROJECTION_TYPES = ("TOMO", "GATED TOMO")  # ImageType value 3 of projection (not RECON) data
MS_PER_S = 1000.0


def _as_list(value: Any) -> list[Any]:
    """A DICOM value of multiplicity 1 or more as a list (pydicom returns a scalar for VM 1)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        return [value]
    return list(value)


def _frame_labels(ds: Any) -> dict[int, np.ndarray]:
    """0-based label per frame for each vector named in FrameIncrementPointer (absent ones: all 0)."""
    n = int(number(ds, "NumberOfFrames", positive=True))
    try:
        pointers = [int(p) for p in _as_list(require(ds, "FrameIncrementPointer"))]
    except (TypeError, ValueError):
        raise FormatError("FrameIncrementPointer (0028,0009) does not hold tags", path=where(ds)) from None
    labels = {}
    for tag in (ENERGY_WINDOW_VECTOR, DETECTOR_VECTOR, ROTATION_VECTOR, ANGULAR_VIEW_VECTOR, RR_INTERVAL_VECTOR,
                TIME_SLOT_VECTOR):
        if tag in pointers:
            if tag not in ds:
                raise MissingTagError(f"FrameIncrementPointer names ({tag >> 16:04X},{tag & 0xFFFF:04X}) "
                                      "but the vector is absent", path=where(ds))
            try:
                vec = np.asarray([int(v) for v in _as_list(ds[tag].value)], dtype=np.int64) - 1
            except (TypeError, ValueError, OverflowError):
                raise FormatError(f"vector ({tag >> 16:04X},{tag & 0xFFFF:04X}) does not hold frame indices",
                                  path=where(ds)) from None
            if vec.size != n:
                raise FormatError(f"vector ({tag >> 16:04X},{tag & 0xFFFF:04X}) has {vec.size} values for "
                                  f"{n} frames", path=where(ds))
            if vec.size and vec.min() < 0:
                raise FormatError(f"vector ({tag >> 16:04X},{tag & 0xFFFF:04X}) holds an index below 1 "
                                  "(DICOM frame vectors are 1-based)", path=where(ds))
            labels[tag] = vec
        else:
            labels[tag] = np.zeros(n, dtype=int)
    unknown = [p for p in pointers if p not in labels]
    if unknown:
        names = ", ".join(f"({p >> 16:04X},{p & 0xFFFF:04X})" for p in unknown)
        raise FormatError(f"frames are also indexed by {names} (dynamic TOMO is not supported)", path=where(ds))
    if len(np.unique(labels[RR_INTERVAL_VECTOR])) > 1:
        raise FormatError("gated TOMO with more than one RR-interval window (RRIntervalVector) is not supported",
                          path=where(ds))
    return labels


def _energy_windows(ds: Any) -> list[EnergyWindow]:
    out = []
    for i, item in enumerate(require(ds, "EnergyWindowInformationSequence")):
        rng = require(item, "EnergyWindowRangeSequence", path=where(ds))[0]
        name = str(getattr(item, "EnergyWindowName", "") or f"window{i + 1}")
        out.append(EnergyWindow(name, number(rng, "EnergyWindowLowerLimit", path=where(ds)),
                                number(rng, "EnergyWindowUpperLimit", path=where(ds))))
    return unique_window_names(out)


def unique_window_names(windows: list[EnergyWindow]) -> list[EnergyWindow]:
    """Windows whose names are unique: a name shared by several windows becomes ``NAME#k`` (k: 1-based index).

    Cameras may give two windows one name (a GE Lu-177 study has two ``Lu177_EM`` photopeaks, 113 and
    208 keV); keyed by name alone they would collapse into one.
    """
    names = [w.name for w in windows]
    return [w if names.count(w.name) == 1 else EnergyWindow(f"{w.name}#{i + 1}", w.lower_kev, w.upper_kev)
            for i, w in enumerate(windows)]


def _view_geometry(ds: Any, det: int, rot: int, view: int) -> tuple[float, float]:
    """(angle in degrees, radius in mm) of one view."""
    rotations = require(ds, "RotationInformationSequence")
    detectors = require(ds, "DetectorInformationSequence")
    if rot >= len(rotations) or det >= len(detectors):
        raise FormatError(f"frame refers to rotation {rot + 1} / detector {det + 1} beyond the sequences",
                          path=where(ds))
    r, d = rotations[rot], detectors[det]
    start = (number(d, "StartAngle", path=where(ds)) if getattr(d, "StartAngle", None) is not None
             else number(r, "StartAngle", path=where(ds)))
    step = number(r, "AngularStep", path=where(ds))
    direction = str(require(r, "RotationDirection", path=where(ds))).upper()
    if direction not in ("CW", "CC"):
        raise FormatError(f"RotationDirection must be CW or CC, got {direction!r}", path=where(ds))
    angle = float(angles_from_dicom(start, step, direction, view + 1)[view])
    holder = d if getattr(d, "RadialPosition", None) is not None else r
    if getattr(holder, "RadialPosition", None) is None:
        raise MissingTagError(f"missing RadialPosition (0018,1142) for detector {det + 1}", path=where(ds))
    radii = numbers(holder, "RadialPosition", path=where(ds))
    if len(radii) > 1 and view >= len(radii):
        raise FormatError(f"RadialPosition (0018,1142) has {len(radii)} values, view {view + 1} needs one",
                          path=where(ds))
    return angle, radii[view] if len(radii) > 1 else radii[0]


def _photopeak(windows: list[EnergyWindow], counts: torch.Tensor) -> int:
    for i, w in enumerate(windows):
        name = w.name.upper()
        if "PEAK" in name or name.startswith("EM") or "PHOTO" in name:
            return i
    return int(torch.argmax(counts.sum(dim=(1, 2, 3))))


def _gather_frames(ds: Any, labels: dict[int, np.ndarray], frames: np.ndarray,
                   n_windows: int) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """counts (windows, views, rows, cols) float32 and the (detector, rotation, view) key of each view.

    ``labels`` and ``frames`` are those of one time slot (all frames of ungated data)."""
    win, det, rot, view = (labels[t] for t in (ENERGY_WINDOW_VECTOR, DETECTOR_VECTOR, ROTATION_VECTOR,
                                                ANGULAR_VIEW_VECTOR))
    if win.max(initial=0) >= n_windows:
        raise FormatError(f"EnergyWindowVector refers to window {win.max() + 1} of {n_windows}", path=where(ds))
    view_keys = sorted(set(zip(det.tolist(), rot.tolist(), view.tolist())))
    index = {k: i for i, k in enumerate(view_keys)}
    counts = np.zeros((n_windows, len(view_keys), *frames.shape[1:]), dtype=np.float32)
    slope = number(ds, "RescaleSlope", 1.0)
    if slope == 0.0:
        raise FormatError("RescaleSlope (0028,1053) is 0: every count would read as 0", path=where(ds))
    filled = np.zeros(counts.shape[:2], dtype=bool)
    for f in range(frames.shape[0]):
        key = (int(win[f]), index[(det[f], rot[f], view[f])])
        if filled[key]:
            raise FormatError(f"frames do not cover every (energy window, view) pair exactly once: frame {f + 1} "
                              "repeats one", path=where(ds))
        filled[key] = True
        counts[key] = frames[f] * slope
    if not filled.all():
        raise FormatError("frames do not cover every (energy window, view) pair exactly once", path=where(ds))
    return counts, view_keys


def _slot_fractions(ds: Any, n_slots: int) -> np.ndarray:
    """Share of the cardiac cycle of each time slot: TimeSlotTime over their sum, else equal shares."""
    try:
        items = ds.GatedInformationSequence[0].DataInformationSequence[0].TimeSlotInformationSequence
        times = np.asarray([float(item.TimeSlotTime) for item in items])
    except (AttributeError, IndexError, TypeError, ValueError):
        return np.full(n_slots, 1.0 / n_slots)
    if len(times) != n_slots or np.any(times <= 0):
        return np.full(n_slots, 1.0 / n_slots)
    return times / times.sum()


def _tomo_files(root: Any) -> list[Any]:
    """The files under folder ``root`` that hold an NM TOMO (projection) instance, sorted by name."""
    import pydicom

    files = []
    for f in sorted(p for p in root.rglob("*") if p.is_file() and is_dicom_file(p)):
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except (pydicom.errors.InvalidDicomError, OSError, EOFError, ValueError) as exc:
            raise FormatError(f"cannot parse DICOM file ({exc})", path=f) from exc
        image_type = [v.upper() for v in multi_valued(getattr(ds, "ImageType", None))]
        if getattr(ds, "Modality", None) == "NM" and any(v in PROJECTION_TYPES for v in image_type):
            files.append(f)
    return files


def _tomo_instance(path: str | os.PathLike) -> Any:
    root = require_exists(path)
    if root.is_dir():  # a folder may also hold the study's CT slices: pick the TOMO instance among them
        files = _tomo_files(root)
        if len(files) > 1:
            raise FormatError(f"the folder holds {len(files)} NM TOMO instances (bed positions?): "
                              f"{[f.name for f in files]}; read them with read_nm_beds or give one file", path=path)
        if files:
            path = files[0]
    datasets = read_datasets(path)
    tomo = [ds for ds in datasets if getattr(ds, "Modality", None) == "NM"
            and any(v.upper() in PROJECTION_TYPES for v in multi_valued(getattr(ds, "ImageType", None)))]
    if len(tomo) != 1:
        kinds = sorted({"/".join(multi_valued(getattr(ds, "ImageType", None))) for ds in datasets})
        raise FormatError(f"expected one NM TOMO or GATED TOMO instance, found {len(tomo)} among "
                          f"ImageTypes {kinds}", path=path)
    return tomo[0]


@guarded("DICOM NM file")
def read_nm_projections(path: str | os.PathLike, *, gate: int | None = None) -> SpectProjections:
    """Read a DICOM NM TOMO acquisition (one multi-frame instance, file or folder) into SpectProjections.

    Parameters
    ----------
    path : str or PathLike
        The NM file, or a folder holding exactly one NM TOMO (or GATED TOMO) instance.
    gate : int, optional
        Gated data: the time slot to keep (1-based); ``None`` sums the slots (ungated projections).

    Returns
    -------
    SpectProjections
        counts (windows, views, rows, cols) as float32 counts (RescaleSlope applied when present),
        angles, radius, pixel spacing (PixelSpacing rows, cols in mm), energy windows, frame duration
        (s per view; for one gate, its share of it). ``meta["n_gates"]`` and ``meta["gate"]`` say which.

    Raises
    ------
    FormatError
        Not NM TOMO projection data, inconsistent frame vectors, dynamic data, several RR windows.
    InputError
        ``gate`` outside ``1 .. n_gates``.
    MissingTagError, UnsupportedTransferSyntaxError, MixedSeriesError
    """
    return _projections(*_parse(path), gate)


def _parse(path: str | os.PathLike) -> tuple[Any, dict[int, np.ndarray], np.ndarray]:
    """The TOMO instance, its frame labels and its frames (read and decoded once)."""
    ds = _tomo_instance(path)
    frames = pixel_array(ds)
    rows, cols = int(number(ds, "Rows", positive=True)), int(number(ds, "Columns", positive=True))
    if frames.size % (rows * cols):
        raise FormatError(f"pixel data of {frames.size} values are not whole {rows} x {cols} frames", path=where(ds))
    frames = frames.reshape(-1, rows, cols)
    return ds, _frame_labels(ds), frames


def _projections(ds: Any, labels: dict[int, np.ndarray], frames: np.ndarray, gate: int | None) -> SpectProjections:
    """SpectProjections of one time slot (1-based ``gate``) or of their sum (``None``)."""
    slots = labels[TIME_SLOT_VECTOR]
    n_gates = int(slots.max()) + 1
    if gate is not None and not 1 <= int(gate) <= n_gates:
        raise InputError(f"gate must lie in 1..{n_gates} (the acquisition has {n_gates} time slot(s))")
    windows = _energy_windows(ds)
    counts, view_keys = None, None
    for k in range(n_gates) if gate is None else (int(gate) - 1,):
        sel = slots == k
        if not sel.any():
            raise FormatError(f"time slot {k + 1} of {n_gates} has no frames", path=where(ds))
        c, keys = _gather_frames(ds, {t: v[sel] for t, v in labels.items()}, frames[sel], len(windows))
        if view_keys is not None and keys != view_keys:
            raise FormatError(f"time slot {k + 1} holds other views than time slot 1", path=where(ds))
        counts, view_keys = (c if counts is None else counts + c), keys
    geometry = [_view_geometry(ds, d, r, v) for d, r, v in view_keys]
    rot0 = ds.RotationInformationSequence[0]
    share = 1.0 if gate is None else float(_slot_fractions(ds, n_gates)[int(gate) - 1])
    spacing = numbers(ds, "PixelSpacing", 2)
    holder = rot0 if getattr(rot0, "ActualFrameDuration", None) else ds
    duration_ms = number(holder, "ActualFrameDuration", positive=True)
    t = torch.from_numpy(counts)
    rp = (getattr(ds, "RadiopharmaceuticalInformationSequence", None) or [None])[0]
    code = (getattr(rp, "RadionuclideCodeSequence", None) or [None])[0] if rp is not None else None
    meta = {"n_detectors": len({d for d, _, _ in view_keys}), "n_rotations": len({r for _, r, _ in view_keys}),
            "manufacturer": str(getattr(ds, "Manufacturer", "") or ""),
            "collimator": str(getattr(ds.DetectorInformationSequence[0], "CollimatorGridName", "") or ""),
            "collimator_type": str(getattr(ds.DetectorInformationSequence[0], "CollimatorType", "") or ""),
            **_patient_frame(ds),
            "orbit": "circular" if len({g[1] for g in geometry}) == 1 else "non-circular",
            "n_gates": n_gates, "gate": "sum" if gate is None else int(gate)}
    return SpectProjections(counts=t, angles_deg=[g[0] for g in geometry], radius_mm=[g[1] for g in geometry],
                            pixel_spacing_mm=(spacing[0], spacing[1]), energy_windows=windows,
                            frame_duration_s=float(duration_ms) / MS_PER_S * share,
                            photopeak_window=_photopeak(windows, t),
                            nuclide=str(code.CodeMeaning) if code is not None and "CodeMeaning" in code else None,
                            meta=meta)


def _patient_frame(ds: Any) -> dict[str, Any]:
    """Where the projections lie in the patient: the first detector's ImagePositionPatient (0020,0032) in
    DetectorInformationSequence, the rotation's TableHeight (0018,1130), the FrameOfReferenceUID and the
    study, series and instance UIDs (to pair the study's CT and to reference the source)."""
    det = ds.DetectorInformationSequence[0]
    ipp = getattr(det, "ImagePositionPatient", None)
    height = getattr(ds.RotationInformationSequence[0], "TableHeight", None)
    out: dict[str, Any] = {
        "image_position_patient": [float(v) for v in ipp] if ipp is not None and len(ipp) == 3 else None,
        "table_height_mm": None if height in (None, "") else float(height),
        "patient_position": str(getattr(ds, "PatientPosition", "") or "").upper(),
        "acquisition_datetime": _acquisition_iso(ds)}
    for key, name in (("frame_of_reference_uid", "FrameOfReferenceUID"), ("study_instance_uid", "StudyInstanceUID"),
                      ("series_instance_uid", "SeriesInstanceUID"), ("sop_instance_uid", "SOPInstanceUID")):
        out[key] = str(getattr(ds, name, "") or "") or None
    return out


def _acquisition_iso(ds: Any) -> str | None:
    """The acquisition start (AcquisitionDateTime, else date + time) as ISO text, None when absent or unreadable."""
    from petspect.io.suv import acquisition_datetime

    try:
        when = acquisition_datetime(ds)
    except (ValueError, TypeError, FormatError, InputError):
        return None
    return None if when is None else when.isoformat()


@guarded("DICOM NM folder")
def read_nm_beds(path: str | os.PathLike) -> list[SpectProjections]:
    """Every NM TOMO instance in a folder (one per bed position), ordered from superior to inferior.

    Other files in the folder (the study's CT slices, a DICOMDIR, non-DICOM files) are skipped. A single
    file or a folder with one TOMO instance gives a list of one.

    Raises
    ------
    FormatError
        No NM TOMO instance in ``path``; gated instances among several beds.
    """
    root = require_exists(path)
    if root.is_file():
        return [read_nm_projections(root)]
    files = _tomo_files(root)
    if not files:
        raise FormatError("no DICOM NM TOMO (projection) instance found", path=root)
    beds = [read_nm_projections(f) for f in files]
    if len(beds) > 1 and any(b.meta["n_gates"] > 1 for b in beds):
        raise FormatError("several gated TOMO instances in one folder; give one file", path=root)

    def top(b: SpectProjections) -> float:
        ipp = b.meta.get("image_position_patient")
        return -float(ipp[2]) if ipp else 0.0

    return sorted(beds, key=top)


@guarded("DICOM NM file")
def read_nm_gates(path: str | os.PathLike) -> list[SpectProjections]:
    """Every time slot of a gated NM TOMO acquisition, in order (one item for ungated data)."""
    ds, labels, frames = _parse(path)
    n_gates = int(labels[TIME_SLOT_VECTOR].max()) + 1
    return [_projections(ds, labels, frames, k) for k in range(1, n_gates + 1)]
