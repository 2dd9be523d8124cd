"""Dosimetry workflow: quantitative SPECT/CT time points in, dose map (NIfTI, DICOM RT Dose) and a table out.

Steps: read every time point (DICOM, NIfTI, Interfile through :func:`petspect.io.load`); check the unit
(images in Bq/mL are used as they are; images in counts need ``calibration_bq_per_count``, the
sensitivity that turns a voxel's counts into Bq, and the workflow refuses to guess it); rigidly register
each later CT to the first one (SimpleITK, mutual information; a local minimal registration, the SPECT
moving with its CT); resample onto one axial grid of cubic voxels; voxel-wise time-integrated activity
(:func:`petspect.dosimetry.tac.voxel_tia`); dose by the chosen method; organ/lesion table with the
region TAC fits (:func:`petspect.dosimetry.tac.fit_tac`) and dose statistics.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from petspect.errors import InputError, UnitError

METHODS = ("local_deposition", "kernel_water", "kernel_density", "monte_carlo")
#: Voxels of the first SPECT above this fraction of its maximum make up "the body" of the overlap checks.
BODY_FRACTION_OF_MAX = 0.005
#: A CT or a later time point must cover at least this fraction of the first SPECT's body.
MIN_OVERLAP = 0.5
#: A time point later than this many physical half-lives is taken for a unit mix-up (minutes or seconds).
MAX_HALF_LIVES = 5
#: A registration between sessions of one patient that moves a body voxel further than this is refused (mm).
MAX_REGISTRATION_SHIFT_MM = 200.0


@dataclass
class DoseRequest:
    """What to compute: images per time point, CTs, nuclide, labels, calibration, method and grid."""

    spect: list[Path]
    hours: list[float]
    ct: list[Path] = field(default_factory=list)
    nuclide: str = "Lu-177"
    labels: Path | None = None
    calibration_bq_per_count: float | None = None
    method: str = "kernel_density"
    voxel_mm: float | None = None
    register: bool = True
    ct_unit: str | None = None
    spect_unit: str | None = None


@dataclass
class DoseResult:
    """Paths written and the region table."""

    out_dir: Path
    files: list[Path]
    regions: list[dict]
    notes: list[str]
    wall_s: float

    def summary_lines(self) -> list[str]:
        lines = list(self.notes)
        for r in self.regions:
            lines.append(f"{r['name']}: mean {r['mean_gy']:.3g} Gy, D2 {r['d2_gy']:.3g} Gy, "
                         f"TIA {r['tia_mbq_h']:.4g} MBq h ({r['tac_model']})")
        lines.append(f"wrote {', '.join(p.name for p in self.files)} in {self.out_dir} ({self.wall_s:.1f} s)")
        return lines


def to_sitk(volume):
    """A SimpleITK image of a Volume (LPS geometry kept)."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.asarray(volume.numpy(), dtype=np.float32))
    dz, dy, dx = volume.spacing_mm
    img.SetSpacing((dx, dy, dz))
    img.SetOrigin(tuple(volume.origin_mm))
    d = np.asarray(volume.direction)
    img.SetDirection(tuple(np.stack([d[:, 2], d[:, 1], d[:, 0]], axis=1).ravel()))
    return img


def rigid_register(fixed_ct, moving_ct, *, iterations: int = 60):
    """Rigid (Euler 3D) transform mapping ``fixed_ct`` points into ``moving_ct`` (Mattes mutual information)."""
    import SimpleITK as sitk

    from petspect.registration.rigid import sitk_threads

    f = sitk.Clamp(to_sitk(fixed_ct), lowerBound=-1000, upperBound=2000)
    m = sitk.Clamp(to_sitk(moving_ct), lowerBound=-1000, upperBound=2000)
    init = sitk.CenteredTransformInitializer(f, m, sitk.Euler3DTransform(),
                                             sitk.CenteredTransformInitializerFilter.GEOMETRY)
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.2, seed=1)  # SimpleITK reads a seed of 0 as "seed from the clock"
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(2.0, 0.01, iterations)
    reg.SetOptimizerScalesFromPhysicalShift()
    # coarse to fine, ending at full resolution (ending at half resolution left 1-2 mm errors); levels that
    # would shrink the smallest axis below 6 voxels are left out
    shrink = [k for k in (4, 2) if min(fixed_ct.shape) / k >= 6] + [1]
    reg.SetShrinkFactorsPerLevel(shrink)
    reg.SetSmoothingSigmasPerLevel([{4: 2.0, 2: 1.0, 1: 0.0}[k] for k in shrink])
    reg.SetInitialTransform(init, inPlace=False)
    with sitk_threads(1):  # sums in a fixed order: the same transform on every run
        return reg.Execute(f, m)


def resample_onto(volume, grid, *, transform=None, nearest: bool = False, fill: float = 0.0) -> np.ndarray:
    """``volume`` sampled on ``grid`` (a Volume), optionally through a transform grid -> volume space."""
    import SimpleITK as sitk

    out = sitk.Resample(to_sitk(volume), to_sitk(grid), transform or sitk.Transform(),
                        sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear, float(fill))
    return sitk.GetArrayFromImage(out).astype(np.float64)


def _to_concentration(vol, calibration, path) -> np.ndarray:
    """Activity concentration (Bq/mL) of a SPECT ``vol`` in Bq/mL, kBq/mL, MBq/mL, or counts with a calibration."""
    unit = (vol.unit or "").strip()
    data = np.asarray(vol.numpy(), dtype=np.float64)
    if not np.all(np.isfinite(data)):
        raise InputError(f"image has {int(np.count_nonzero(~np.isfinite(data)))} non-finite (NaN/inf) voxels",
                         path=path)
    if not np.any(data > 0):
        raise InputError("image has no positive activity (all voxels zero or negative)", path=path)
    if unit in ("Bq/mL", "BQML", "kBq/mL", "MBq/mL"):
        if calibration is not None:
            raise InputError(f"image is already in {unit!r}; --calibration-bq-per-count applies only to images in "
                             "counts (leave it out)", path=path)
        from petspect.io.stated_units import ACTIVITY_PER_BQML

        return data * ACTIVITY_PER_BQML.get(unit, 1.0)
    if unit in ("a.u.", ""):
        raise UnitError("the image carries no unit (a file from another tool): state it with --spect-unit Bq/mL "
                        "(calibrated) or --spect-unit counts (with --calibration-bq-per-count)", path=path)
    if unit in ("counts", "cps"):
        if calibration is None:
            raise UnitError(f"image is in {unit!r}, not Bq/mL: give the sensitivity (--calibration-bq-per-count, "
                            "Bq per count of a voxel) or a calibrated image", path=path)
        return data * float(calibration) / vol.voxel_volume_ml
    raise UnitError(f"image unit {unit!r} is not an activity; dosimetry needs Bq/mL or counts with a calibration",
                    path=path)


def _looks_like_hu(data: np.ndarray) -> tuple[bool, str]:
    """Whether CT numbers of a file without a unit look like HU: air near -1000 HU, soft tissue, a CT's range.

    Padding below -1050 (-1024, -2000, -3024 outside a scanner's round field of view) is left out of the
    fractions. Returns ``(looks_like_hu, the figures)``.
    """
    v = data[data >= -1050.0]
    if v.size < 0.25 * data.size or v.size == 0:
        return False, f"{100 * (1 - v.size / max(data.size, 1)):.0f} % of the voxels lie below -1050"
    air = float(np.mean(v <= -900.0))
    tissue = float(np.mean((v >= -200.0) & (v <= 300.0)))
    hi = float(np.percentile(v, 99.9))
    ok = air >= 0.005 and tissue >= 0.01 and hi <= 4000.0 and float(data.min()) >= -32768.0
    return ok, (f"values {float(data.min()):.4g} to {float(data.max()):.4g}, {100 * air:.1f} % of the voxels near "
                f"air (-1050 to -900 HU), {100 * tissue:.1f} % soft tissue (-200 to 300 HU)")


def _ct_in_hu(vol, path, ct_unit: str | None, notes: list[str]):
    """The CT ``vol`` (read from ``path``) in HU, or a :class:`UnitError` naming the file.

    A file that carries a unit must carry HU; one without a unit (a NIfTI from another tool) is used when the
    unit is stated (``ct_unit="HU"``) or when its values look like HU (:func:`_looks_like_hu`).
    """
    from petspect.io.stated_units import state_unit

    if ct_unit is not None and ct_unit.strip().upper() != "HU":
        raise UnitError(f"--ct-unit {ct_unit!r}: the dose needs the CT in HU (convert it first)", path=path)
    vol = state_unit(vol, ct_unit, path=path)
    data = np.asarray(vol.numpy(), dtype=np.float64)
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        raise InputError(f"the CT holds {bad} NaN or infinite voxels", path=path)
    if vol.unit == "HU":
        return vol
    if vol.unit in ("a.u.", ""):
        ok, figures = _looks_like_hu(data)
        if not ok:
            raise UnitError(f"the CT carries no unit and its values do not look like HU ({figures}); the dose "
                            "needs a CT in HU (not an attenuation map or an activity image): give one, or state "
                            "--ct-unit HU if this file is one", path=path)
        notes.append(f"{Path(path).name}: no unit in the file; its values look like HU ({figures}), used as HU")
        return vol.with_data(vol.data, unit="HU")
    raise UnitError(f"--ct takes a CT in HU; this image is in {vol.unit!r} (an activity image or an attenuation "
                    "map read as HU gives a wrong density and a wrong dose)", path=path)


def _body_points(conc: np.ndarray, vol, max_points: int = 20000) -> np.ndarray:
    """LPS positions (n, 3) in mm of the body voxels of ``vol`` (concentration ``conc``), at most ``max_points``."""
    idx = np.argwhere(conc > BODY_FRACTION_OF_MAX * float(conc.max()))
    step = max(1, len(idx) // max_points)
    return vol.voxel_to_world(idx[::step])


def _inside_fov(points_lps_mm: np.ndarray, vol) -> np.ndarray:
    """Which points (n, 3; LPS mm) lie inside the field of view of ``vol`` (its voxels, to their outer faces)."""
    k = vol.world_to_voxel(points_lps_mm)
    n = np.asarray(vol.shape, dtype=float)
    return np.all((k >= -0.5) & (k <= n - 0.5), axis=1)


def _fov_text(vol) -> str:
    corners = vol.voxel_to_world(np.asarray([[-0.5] * 3, np.asarray(vol.shape) - 0.5]))
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    return f"LPS {np.round(lo).astype(int).tolist()} to {np.round(hi).astype(int).tolist()} mm"


def _check_overlap(fraction: float, path, what: str, spect_name: str, spect, other) -> None:
    """Refuse an image that covers less than :data:`MIN_OVERLAP` of a SPECT's body, with the numbers."""
    if fraction < MIN_OVERLAP:
        how = "it does not overlap it" if fraction == 0 else "too little overlap"
        raise InputError(f"{what} covers {100 * fraction:.0f} % of the body of {spect_name} in patient coordinates "
                         f"(at least {100 * MIN_OVERLAP:.0f} % needed): {how} ({spect_name} {_fov_text(spect)}, "
                         f"this image {_fov_text(other)}); are both of this patient and in one frame of reference?",
                         path=path)


def _transform_points(transform, points_lps_mm: np.ndarray) -> np.ndarray:
    """``points`` (n, 3; LPS mm) mapped through an affine-like SimpleITK transform (as one 4x4 matrix)."""
    from petspect.registration.rigid import map_points, transform_matrix

    return map_points(transform_matrix(transform), points_lps_mm)


def _checked_registration(fixed_ct, moving_ct, fixed_path, moving_path, body_lps_mm: np.ndarray):
    """:func:`rigid_register` of ``moving_ct`` onto ``fixed_ct``, refused when it fails or moves the body
    (points of the first SPECT's body, LPS mm) further than :data:`MAX_REGISTRATION_SHIFT_MM`."""
    try:
        tf = rigid_register(fixed_ct, moving_ct)
    except RuntimeError as exc:  # SimpleITK: e.g. all samples map outside the moving image
        raise InputError(f"rigid registration onto {Path(fixed_path).name} failed "
                         f"({str(exc).strip().splitlines()[-1][:200]})", path=moving_path) from None
    shift = np.linalg.norm(_transform_points(tf, body_lps_mm) - body_lps_mm, axis=1)
    if shift.size and float(shift.max()) > MAX_REGISTRATION_SHIFT_MM:
        raise InputError(f"registering this CT onto {Path(fixed_path).name} moves the body by up to "
                         f"{float(shift.max()):.0f} mm (median {float(np.median(shift)):.0f} mm; at most "
                         f"{MAX_REGISTRATION_SHIFT_MM:.0f} mm is plausible between sessions of one patient): refused. "
                         f"The CTs are not in one frame of reference ({Path(fixed_path).name} "
                         f"{_fov_text(fixed_ct)}, this CT {_fov_text(moving_ct)}) or the registration failed; bring "
                         "them into one frame first (petspect register)", path=moving_path)
    return tf


def voxel_tia_with_gaps(stack: np.ndarray, times_h, *, physical_half_life_h: float) -> np.ndarray:
    """Voxel TIA (:func:`petspect.dosimetry.tac.voxel_tia`, A h) where NaN marks a missing sample.

    Each voxel is integrated from the time points it has (a voxel outside a later image's field of view
    from the others; with one left, Hanscheid's formula); a voxel with none gets 0.

    Parameters
    ----------
    stack : ndarray, shape (n_times, z, y, x)
        Activity (or concentration) at ``times_h``; NaN where an image does not cover the voxel.
    """
    from petspect.dosimetry import tac

    x = np.asarray(stack, dtype=float)
    valid = np.isfinite(x)
    if valid.all():
        return tac.voxel_tia(x, times_h, physical_half_life_h=physical_half_life_h)
    code = np.zeros(x.shape[1:], dtype=np.int64)
    for i in range(x.shape[0]):
        code |= valid[i].astype(np.int64) << i
    out = np.zeros(x.shape[1:])
    for c in np.unique(code):
        if c == 0:
            continue
        sel = code == c
        idx = [i for i in range(x.shape[0]) if (int(c) >> i) & 1]
        out[sel] = tac.voxel_tia(x[idx][:, sel], [float(times_h[i]) for i in idx],
                                 physical_half_life_h=physical_half_life_h)
    return out


def _refuse_repeated_images(spects, paths, hours) -> None:
    """Refuse one file, or identical data, given for two times (a flat TAC would give a silently wrong TIA)."""
    for j in range(1, len(spects)):
        for i in range(j):
            same_file = Path(paths[i]).resolve() == Path(paths[j]).resolve()
            if same_file or (spects[i].same_grid(spects[j]) and np.array_equal(spects[i].numpy(), spects[j].numpy())):
                how = "is given" if same_file else f"holds the same image as {Path(paths[i]).name}"
                raise InputError(f"{how} for {hours[i]:g} h and {hours[j]:g} h: the same image at two times "
                                 "(give each time point's own image)", path=paths[j])


def _label_fractions_in_fov(raw: np.ndarray, lab_vol, grid) -> dict[int, float]:
    """Per label of the label image: the fraction of its voxel centres inside ``grid``'s field of view."""
    out = {}
    for v in np.unique(raw[raw > 0]).astype(np.int64):
        pts = lab_vol.voxel_to_world(np.argwhere(raw == v))
        out[int(v)] = float(np.mean(_inside_fov(pts, grid)))
    return out


def _check_request_numbers(hours, calibration) -> None:
    """Refuse times and a calibration that would give a silent wrong dose (before anything is loaded)."""
    h = np.asarray(hours, dtype=float)
    if not np.all(np.isfinite(h)) or np.any(h <= 0):
        raise InputError(f"--hours must be positive and finite (hours after administration); got {list(hours)}")
    vals, counts = np.unique(h, return_counts=True)
    if np.any(counts > 1):
        raise InputError(f"--hours has the same time twice ({vals[counts > 1].tolist()} h); give one image per time")
    if calibration is not None and not (math.isfinite(float(calibration)) and float(calibration) > 0):
        raise InputError(f"--calibration-bq-per-count must be a positive number (Bq per count); got {calibration}")


def write_rt_dose(dose_gy: np.ndarray, grid, path: Path, *, source=None, description: str = "petspect dose") -> None:
    """Write a DICOM RT Dose (one multi-frame instance, DoseUnits GY, PHYSICAL, PLAN summation).

    ``grid`` is the Volume of the dose grid (axial); ``source`` an optional pydicom dataset of the input whose
    patient and study identity and frame of reference are copied.
    """
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from petspect.volume import AXIAL_DIRECTION

    if not np.allclose(np.asarray(grid.direction), np.asarray(AXIAL_DIRECTION), atol=1e-6):
        raise InputError("RT Dose is written on an axial grid only")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "RTDOSE"
    for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
               "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName", "FrameOfReferenceUID"):
        val = getattr(source, kw, None) if source is not None else None
        setattr(ds, kw, val if val is not None else "")
    if not ds.StudyInstanceUID:
        ds.StudyInstanceUID = generate_uid()
    if not ds.FrameOfReferenceUID:
        ds.FrameOfReferenceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 901
    ds.InstanceNumber = 1
    ds.SeriesDescription = description
    ds.Manufacturer = "petspect"
    ds.PositionReferenceIndicator = ""
    nz, ny, nx = dose_gy.shape
    dz, dy, dx = grid.spacing_mm
    ds.ImagePositionPatient = [float(v) for v in grid.origin_mm]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [float(dy), float(dx)]
    ds.SliceThickness = float(dz)
    ds.NumberOfFrames = nz
    ds.FrameIncrementPointer = pydicom.tag.Tag(0x3004, 0x000C)
    ds.GridFrameOffsetVector = [float(i * dz) for i in range(nz)]
    ds.Rows, ds.Columns = ny, nx
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 32
    ds.BitsStored = 32
    ds.HighBit = 31
    ds.PixelRepresentation = 0
    ds.DoseUnits = "GY"
    ds.DoseType = "PHYSICAL"
    ds.DoseSummationType = "PLAN"
    top = float(np.max(dose_gy)) if dose_gy.size else 0.0
    scale = top / (2 ** 32 - 2) if top > 0 else 1.0
    ds.DoseGridScaling = f"{scale:.10g}"[:16]
    scale = float(ds.DoseGridScaling)
    stored = np.clip(np.round(dose_gy / scale), 0, 2 ** 32 - 1).astype(np.uint32)
    ds.PixelData = stored.tobytes()
    ds.save_as(str(path), enforce_file_format=True)


def _load_source_dataset(path: Path):
    try:
        from petspect.io import read_datasets

        p = Path(path)
        if p.is_dir() or p.suffix.lower() in ("", ".dcm"):
            ds = read_datasets(p)
            return ds[0] if ds else None
    except Exception:  # noqa: BLE001 - identity copying is optional; NIfTI inputs have none
        return None
    return None


def run_dose_workflow(req: DoseRequest, out, *, overwrite: bool = False) -> DoseResult:
    """Run the workflow of :class:`DoseRequest` and write into the folder ``out``."""
    from petspect._fileio import atomic_path, atomic_write_text, claim_output_folder
    from petspect.dosimetry import montecarlo, tac, voxel_dose
    from petspect.dosimetry.kernels import SOFT_TISSUE_G_PER_ML, voxel_kernel
    from petspect.dosimetry.spectra import emissions
    from petspect.io import load, save
    from petspect.nuclides import half_life_s
    from petspect.orientation import axial_grid_covering

    t0 = time.perf_counter()
    if req.method not in METHODS:
        raise InputError(f"unknown dose method {req.method!r}; choose from {METHODS}")
    if not req.spect or len(req.spect) != len(req.hours):
        raise InputError("give one time (h) per image")
    _check_request_numbers(req.hours, req.calibration_bq_per_count)
    order = np.argsort(req.hours)
    hours = [float(req.hours[i]) for i in order]
    spect_paths = [Path(req.spect[i]) for i in order]
    if len(req.ct) not in (0, 1, len(spect_paths)):
        raise InputError(f"give no CT, one CT, or one per time point ({len(spect_paths)}); got {len(req.ct)}")
    ct_paths = [Path(req.ct[i]) for i in order] if len(req.ct) == len(spect_paths) > 1 else [Path(p) for p in req.ct]
    em = emissions(req.nuclide)
    t_half_h = half_life_s(em.nuclide) / 3600.0
    if max(hours) > MAX_HALF_LIVES * t_half_h:
        raise InputError(f"--hours {max(hours):g} is {max(hours) / t_half_h:.0f} half-lives of {em.nuclide} "
                         f"({t_half_h:.4g} h) after administration (at most {MAX_HALF_LIVES}): are the times in "
                         "hours (not minutes or seconds)?")
    inputs = spect_paths + ct_paths + ([req.labels] if req.labels else [])
    from petspect._fileio import check_output_path

    check_output_path(out, overwrite=overwrite, inputs=inputs, kind="dose")
    notes: list[str] = []
    from petspect.io.stated_units import state_unit

    spects = [state_unit(load(p), req.spect_unit, path=p) for p in spect_paths]
    _refuse_repeated_images(spects, spect_paths, hours)
    conc = [_to_concentration(v, req.calibration_bq_per_count, p) for v, p in zip(spects, spect_paths)]
    neg = [p.name for c, p in zip(conc, spect_paths) if np.any(c < 0)]
    if neg:
        notes.append(f"negative voxels set to zero before integration in {', '.join(neg)}")
    spects = [v.with_data(c.astype(np.float32), unit="Bq/mL") for v, c in zip(spects, conc)]
    grid = axial_grid_covering(spects[0], req.voxel_mm)
    a = grid.spacing_mm[0]
    cts = [_ct_in_hu(load(p), p, req.ct_unit, notes) for p in ct_paths]
    bodies = [_body_points(c, v) for c, v in zip(conc, spects)]
    ct_cover = 1.0
    for i, (ct, p) in enumerate(zip(cts, ct_paths)):
        frac = float(np.mean(_inside_fov(bodies[i], ct)))
        ct_cover = frac if i == 0 else ct_cover
        _check_overlap(frac, p, "the CT", spect_paths[i].name, spects[i], ct)
    transforms = [None] * len(spects)
    if len(cts) > 1 and req.register:
        for i in range(1, len(cts)):
            transforms[i] = _checked_registration(cts[0], cts[i], ct_paths[0], ct_paths[i], bodies[0])
        notes.append(f"registered {len(cts) - 1} later CT(s) rigidly to the first (SimpleITK Euler3D, Mattes MI)")
    elif len(spects) > 1:
        notes.append("time points not registered (one CT or --no-register): images assumed aligned")
    for i in range(1, len(spects)):
        pts = bodies[0] if transforms[i] is None else _transform_points(transforms[i], bodies[0])
        frac = float(np.mean(_inside_fov(pts, spects[i])))
        _check_overlap(frac, spect_paths[i], f"the time point at {hours[i]:g} h"
                       + (" (after registration)" if transforms[i] is not None else ""),
                       spect_paths[0].name, spects[0], spects[i])
        if frac < 0.999:
            notes.append(f"{spect_paths[i].name} covers {100 * frac:.0f} % of the body of {spect_paths[0].name}; "
                         "voxels outside it are integrated from the time points that cover them")
    # NaN marks a voxel outside an image's field of view (a missing sample, not zero activity)
    stack = np.stack([resample_onto(v, grid, transform=tf, fill=np.nan) for v, tf in zip(spects, transforms)])
    stack = np.clip(stack, 0.0, None)  # as the voxel TIA does, so that region activities match the dose
    if cts:
        hu = resample_onto(cts[0], grid, fill=np.nan)
        outside = ~np.isfinite(hu)
        hu[outside] = 0.0
        rho = voxel_dose.hu_to_density(hu)
        if np.any(outside & (stack[0] > 0)):
            rho[outside] = SOFT_TISSUE_G_PER_ML  # air there would scale the dose by ~800
            notes.append(f"{ct_paths[0].name} covers {100 * ct_cover:.0f} % of the first SPECT's body; soft tissue "
                         f"({SOFT_TISSUE_G_PER_ML} g/mL) assumed outside it")
    else:
        hu = np.zeros(grid.shape)
        rho = np.full(grid.shape, SOFT_TISSUE_G_PER_ML)
        notes.append("no CT: uniform soft tissue (1.03 g/mL) assumed; density-aware methods equal the water kernel")
    tia_bq_ml_h = voxel_tia_with_gaps(stack, hours, physical_half_life_h=t_half_h)
    tia_mbq_s = tia_bq_ml_h * (a ** 3 * 1e-3) * 3600.0 / 1e6
    if req.method == "local_deposition":
        dose = voxel_dose.local_deposition_dose(tia_mbq_s, a, em.mean_electron_energy_mev(), rho)
    elif req.method in ("kernel_water", "kernel_density"):
        k = voxel_kernel(em.nuclide, a)
        dose = voxel_dose.kernel_dose(tia_mbq_s, k.values, density_g_per_ml=rho if req.method == "kernel_density"
                                      else None, kernel_density_g_per_ml=k.info.density_g_per_ml)
    else:
        mc = montecarlo.monte_carlo_dose(tia_mbq_s, hu, a, em.nuclide, density_g_per_ml=rho)
        dose = mc.dose_gy
        notes.append(f"Monte Carlo: median relative standard error {mc.relative_uncertainty():.3f} above 10 % of max")
    labels = None
    names: dict[int, str] = {}
    if req.labels is not None:
        lab_vol = load(req.labels)
        raw = np.asarray(lab_vol.numpy(), dtype=np.float64)
        if not np.all(np.isfinite(raw)) or np.any(raw != np.rint(raw)) or np.any(raw < 0):
            raise InputError("not a label image: labels must be non-negative integers (is this an activity image?)",
                             path=req.labels)
        labels = np.rint(resample_onto(lab_vol, grid, nearest=True)).astype(np.int64)
        in_fov = _label_fractions_in_fov(raw, lab_vol, grid)
        lost = sorted(k for k, f in in_fov.items() if f == 0.0)
        if lost and np.any(labels > 0):
            notes.append(f"label(s) {lost} of {Path(req.labels).name} lie outside the SPECT's field of view: "
                         "not in the table")
        if not np.any(labels > 0):
            where = "has no labelled voxel" if not np.any(raw > 0) else "does not overlap the dose grid (the SPECT)"
            raise InputError(f"the label image {where}; no region dose can be given", path=req.labels)
        names = {int(k): str(v) for k, v in (lab_vol.meta.get("labels") or {}).items()} if isinstance(
            lab_vol.meta.get("labels"), dict) else {}
    regions = []
    if labels is not None:
        for rd in voxel_dose.region_doses(dose, labels, grid.spacing_mm, names):
            m = labels == rd.label
            act_mbq = [float(np.nansum(s[m]) * a ** 3 * 1e-3 / 1e6) for s in stack]
            if np.isnan(stack[:, m]).any():  # part of the region lacks a time point: its sums would be low
                tia_h, se, model = float(tia_bq_ml_h[m].sum() * a ** 3 * 1e-3 / 1e6), None, "voxel_partial"
            elif max(act_mbq) > 0 and len(hours) == 1:
                tia_h, se, model = tac.hanscheid_tia(act_mbq[0], hours[0]), None, "hanscheid"
            elif max(act_mbq) > 0:
                fit = tac.fit_tac(hours, act_mbq, physical_half_life_h=t_half_h)
                tia_h, se, model = fit.tia, fit.tia_se, fit.model
            else:
                tia_h, se, model = 0.0, 0.0, "none"
            regions.append({"name": rd.name, "label": rd.label, "volume_ml": rd.volume_ml, "mean_gy": rd.mean_gy,
                            "max_gy": rd.max_gy, "d98_gy": rd.d98_gy, "d50_gy": rd.d50_gy, "d2_gy": rd.d2_gy,
                            "tia_mbq_h": tia_h, "tia_se_mbq_h": se, "tac_model": model,
                            "activity_mbq": act_mbq, "in_fov_fraction": in_fov.get(rd.label, 1.0)})
            if in_fov.get(rd.label, 1.0) < 0.999:
                notes.append(f"{rd.name}: {100 * in_fov[rd.label]:.0f} % of the region lies inside the SPECT's field "
                             "of view; its volume, dose and TIA are of that part only")
    if len(hours) == 1:
        notes.append(f"one time point ({hours[0]:g} h): TIA = A(t) 2t/ln 2 (Hanscheid et al, J Nucl Med 2018), "
                     "exact only when t equals the effective half-life")
    out_dir = claim_output_folder(out, kind="dose", overwrite=overwrite, inputs=inputs,
                                  outputs=("dose.nii.gz", "rtdose.dcm", "regions.csv", "dose.json"))
    files = []
    dose_vol = grid.with_data(dose.astype(np.float32), unit="Gy", modality="RTDOSE",
                              meta={"dose": {"method": req.method, "nuclide": em.nuclide, "hours": hours}})
    files.append(save(dose_vol, out_dir / "dose.nii.gz", overwrite=True))
    rt = out_dir / "rtdose.dcm"
    with atomic_path(rt) as tmp:
        write_rt_dose(dose, grid, tmp, source=_load_source_dataset(spect_paths[0]),
                      description=f"petspect {req.method} {em.nuclide}")
    files.append(rt)
    buf = io.StringIO()
    cols = ["name", "label", "volume_ml", "mean_gy", "max_gy", "d98_gy", "d50_gy", "d2_gy", "tia_mbq_h",
            "tia_se_mbq_h", "tac_model", "in_fov_fraction"]
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for r in regions:
        w.writerow(r)
    atomic_write_text(out_dir / "regions.csv", buf.getvalue())
    files.append(out_dir / "regions.csv")
    record = {"nuclide": em.nuclide, "method": req.method, "hours": hours, "voxel_mm": a,
              "inputs": [str(p) for p in spect_paths], "ct": [str(p) for p in ct_paths], "notes": notes,
              "regions": regions, "total_tia_mbq_h": float(tia_mbq_s.sum() / 3600.0),
              "wall_s": round(time.perf_counter() - t0, 2)}
    atomic_write_text(out_dir / "dose.json", json.dumps(record, indent=2, default=float))
    files.append(out_dir / "dose.json")
    return DoseResult(out_dir, files, regions, notes, time.perf_counter() - t0)

