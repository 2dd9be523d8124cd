"""Myocardial perfusion SPECT phantom: a left-ventricle shell in a thorax slab, with perfusion defects.

Anatomy (LPS mm, the grid centred on the body axis, z = 0 near the middle of the left ventricle): an
elliptical body cylinder with a subcutaneous fat layer, two lungs, the spine, the descending aorta,
optional breasts (``sex="female"``), the liver dome under the right hemidiaphragm (its left lobe may reach
under the heart), a bowel loop / stomach below the left hemidiaphragm, the rest of the heart's blood pool
(right ventricle and atria) and the left ventricle as a truncated prolate-ellipsoid shell:

* the epicardial surface is ``(s / a)^2 + (r / b)^2 = 1`` with ``s`` along the long axis (base plane at
  ``s = 0``, apex at ``s = a``) and ``r`` the distance from the axis; the endocardium is the same shape
  ``wall_mm`` smaller; ``s < 0`` is open (the valve plane). Adult LV: long axis ~70-90 mm, outer
  diameter ~50-65 mm, wall ~8-12 mm (Lang RM et al, J Am Soc Echocardiogr 2015;28:1-39, approx).
* the long axis points from the base to the apex towards the patient's left, anterior and inferior
  (azimuth ~45 deg from the left towards anterior, ~20-30 deg below the transverse plane).

Perfusion territories, by the angle ``phi`` around the long axis (0 = anterior, 90 = septal, 180 =
inferior, 270 = lateral) on the AHA 17-segment model (Cerqueira MD et al, Circulation 2002;105:539-542):
LAD = anterior, anteroseptal and the apex (``phi`` in [-60, 120] deg); RCA = inferoseptal and inferior
([120, 210] deg); LCx = inferolateral and anterolateral ([210, 300] deg). A defect covers the middle
``extent`` fraction of its territory's angles, from the apex towards the base (LAD) or from the base
towards the apex (RCA, LCx), with smooth (~10 deg, ~8 mm) edges, and lowers the myocardial uptake by
``severity`` (0-1) there. Normal myocardium varies too: a smooth texture and apical thinning
(0-15 % lower uptake in the distal 15 % of the long axis).

Tracer: Tc-99m sestamibi (:mod:`petspect.phantoms.tracers` ``"sestamibi"``): myocardium SUV ~6, liver
and bowel high and variable (hepatobiliary excretion), lungs and blood pool low.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from petspect.errors import InputError
from petspect.phantoms.base import Phantom
from petspect.phantoms.shapes import Grid
from petspect.units import BQ_PER_MBQ

MYOCARDIUM_LABELS: tuple[str, ...] = ("background", "soft_tissue", "fat", "lung", "spine", "aorta", "breast",
                                      "liver", "bowel", "blood_pool", "myocardium")
_IDS = {n: i for i, n in enumerate(MYOCARDIUM_LABELS)}
#: tissue (for CT, mu and the tracer table) of each label
_TISSUE = {"breast": "soft_tissue"}
DEFECT_TERRITORIES = ("lad", "lcx", "rca")
#: territory -> (lowest, highest) angle phi around the LV long axis (deg; 0 anterior, 90 septal)
TERRITORY_PHI_DEG = {"lad": (-60.0, 120.0), "rca": (120.0, 210.0), "lcx": (210.0, 300.0)}
#: default field of view (z, y, x) in mm
DEFAULT_FOV_MM = (192.0, 288.0, 384.0)


def sample_thorax(rng: np.random.Generator, *, sex: str | None = None) -> dict[str, Any]:
    """Every random quantity of one subject's thorax and heart (mm, deg), JSON-serialisable."""
    sex = sex if sex is not None else ("female" if rng.random() < 0.5 else "male")
    r = lambda lo, hi: round(float(rng.uniform(lo, hi)), 3)  # noqa: E731
    body = [r(135, 170), r(95, 122)]
    return {"sex": sex, "body_semi_mm": body, "fat_mm": r(5, 28),
            "lv_base_centre_mm": [r(12, 35), r(-35, -15), r(-5, 15)],
            "lv_azimuth_deg": r(32, 58), "lv_elevation_deg": r(15, 35), "lv_long_mm": r(68, 88),
            "lv_radius_mm": r(26, 33), "wall_mm": r(8, 12),
            "liver_dome_below_mm": r(25, 60), "liver_centre_x_mm": r(-55, -15),
            "bowel_centre_mm": [r(35, 75), r(-30, 25)], "bowel_below_mm": r(35, 70),
            "breast_scale": r(0.6, 1.35) if sex == "female" else 0.0,
            "apical_thinning": r(0.0, 0.15), "texture_seed": int(rng.integers(2**31))}


def lv_frame(subject: dict[str, Any]) -> dict[str, np.ndarray]:
    """The LV frame in LPS: base centre ``c``, unit vectors ``u`` (to apex), ``ant`` (phi = 0), ``sep`` (90 deg)."""
    az, el = math.radians(subject["lv_azimuth_deg"]), math.radians(subject["lv_elevation_deg"])
    u = np.array([math.cos(el) * math.cos(az), -math.cos(el) * math.sin(az), -math.sin(el)])
    ant = np.array([0.0, -1.0, 0.0]) - u * (-u[1])
    ant /= np.linalg.norm(ant)
    sep = np.cross(u, ant)
    if sep[0] > 0:  # the septum faces the right ventricle, towards the patient's right (-x in LPS)
        sep = -sep
    return {"c": np.asarray(subject["lv_base_centre_mm"], dtype=np.float64), "u": u, "ant": ant, "sep": sep}


def lv_coordinates(points: torch.Tensor, frame: dict[str, np.ndarray]) -> tuple[torch.Tensor, ...]:
    """``(s, r, phi_deg)`` of LPS points ``(..., 3)``: along the axis (mm), from the axis (mm), angle in [-90, 270)."""
    d = points.to(torch.float64) - torch.as_tensor(frame["c"])
    s = d @ torch.as_tensor(frame["u"])
    a, b = d @ torch.as_tensor(frame["ant"]), d @ torch.as_tensor(frame["sep"])
    r = torch.sqrt(a * a + b * b)
    phi = torch.rad2deg(torch.atan2(b, a))
    phi = torch.where(phi < -90.0, phi + 360.0, phi)
    return s, r, phi


def _ramp(x: torch.Tensor, width: float) -> torch.Tensor:
    """Smooth step from 0 (x <= -width/2) to 1 (x >= width/2)."""
    return (0.5 + x / max(width, 1e-6)).clamp(0.0, 1.0)


def defect_weight(s: torch.Tensor, phi: torch.Tensor, long_mm: float, territory: str, extent: float) -> torch.Tensor:
    """Spatial weight in [0, 1] of a defect (before ``severity``) in LV coordinates."""
    lo, hi = TERRITORY_PHI_DEG[territory]
    mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo) * float(extent)
    dphi = (phi - mid + 180.0) % 360.0 - 180.0
    w_phi = _ramp(half - dphi.abs(), 10.0)
    cover = (0.3 + 0.7 * float(extent)) * long_mm
    w_s = _ramp(s - (long_mm - cover), 8.0) if territory == "lad" else _ramp(cover - s, 8.0)
    w = w_phi * w_s
    if territory == "lad":  # the LAD also supplies the apex cap whatever the angle
        w = torch.maximum(w, _ramp(s - (long_mm - 0.25 * cover), 8.0))
    return w.float()


def _ellipsoid(p: torch.Tensor, centre, semi) -> torch.Tensor:
    q = (p - torch.as_tensor(centre, dtype=p.dtype)) / torch.as_tensor(semi, dtype=p.dtype)
    return (q * q).sum(-1) <= 1.0


def thorax_labels(grid: Grid, subject: dict[str, Any]) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Label map (:data:`MYOCARDIUM_LABELS`) and the LV coordinates ``(s, r, phi)`` of every voxel."""
    p = grid.world(dtype=torch.float64)
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    ax, ay = subject["body_semi_mm"]
    lab = torch.zeros(grid.shape, dtype=torch.uint8)
    body = (x / ax) ** 2 + (y / ay) ** 2 <= 1.0
    bs = subject["breast_scale"]
    frame = lv_frame(subject)
    cz = frame["c"][2]
    if bs > 0:
        for side in (-1.0, 1.0):
            breast = _ellipsoid(p, (side * 70.0, -ay + 5.0, cz - 15.0), (55.0 * bs, 40.0 * bs, 50.0 * bs))
            lab[breast & ~body] = _IDS["breast"]
    fat = max(subject["fat_mm"], 1.0)
    lab[body] = _IDS["fat"]
    lab[body & (((x / (ax - fat)) ** 2 + (y / (ay - fat)) ** 2) <= 1.0)] = _IDS["soft_tissue"]
    for side in (-1.0, 1.0):
        lab[_ellipsoid(p, (side * 0.52 * ax, 0.1 * ay, cz + 40.0), (0.36 * ax, 0.62 * ay, 120.0))] = _IDS["lung"]
    dome = cz - subject["liver_dome_below_mm"]
    lab[_ellipsoid(p, (subject["liver_centre_x_mm"], 0.05 * ay, dome - 80.0), (0.7 * ax, 0.75 * ay, 80.0))] = _IDS["liver"]
    bx, by = subject["bowel_centre_mm"]
    lab[_ellipsoid(p, (bx, by, dome - subject["bowel_below_mm"] + 20.0), (35.0, 30.0, 25.0))] = _IDS["bowel"]
    lab[((x - 0.0) ** 2 + (y - (ay - 45.0)) ** 2) <= 18.0 ** 2] = _IDS["spine"]
    lab[((x - 22.0) ** 2 + (y - (ay - 65.0)) ** 2) <= 12.0 ** 2] = _IDS["aorta"]
    c, u, sep = frame["c"], frame["u"], frame["sep"]
    lab[_ellipsoid(p, c - 25.0 * u + 25.0 * sep, (42.0, 38.0, 38.0))] = _IDS["blood_pool"]
    s, r, phi = lv_coordinates(p, frame)
    a, b, t = subject["lv_long_mm"], subject["lv_radius_mm"], subject["wall_mm"]
    epi = ((s / a) ** 2 + (r / b) ** 2 <= 1.0) & (s >= 0)
    endo = ((s / (a - t)) ** 2 + (r / (b - t)) ** 2 <= 1.0) & (s >= 0)
    lab[epi] = _IDS["myocardium"]
    lab[endo] = _IDS["blood_pool"]
    lab[~(body | (lab == _IDS["breast"]))] = _IDS["background"]
    return lab, (s, r, phi)


def _number(name: str, v) -> float:
    """``v`` as a float, or an InputError naming the parameter (a JSON ``--param`` may hold a string)."""
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise InputError(f"{name} must be a number, got {v!r}")
    return float(v)


def _check(voxel_mm, defect, extent, severity, sex, seed=0, texture=0.0, fov_mm=DEFAULT_FOV_MM) -> None:
    voxel_mm, extent, severity, texture = (_number(n, v) for n, v in (
        ("voxel_mm", voxel_mm), ("defect_extent", extent), ("defect_severity", severity), ("texture", texture)))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(fov_mm, (str, bytes)) or not hasattr(fov_mm, "__len__") or len(fov_mm) != 3:
        raise InputError(f"fov_mm must be 3 lengths (z, y, x) in mm, got {fov_mm!r}")
    fov = [_number("fov_mm", v) for v in fov_mm]
    if not all(np.isfinite(v) and v > 0 for v in fov):
        raise InputError(f"fov_mm must be 3 positive lengths in mm, got {fov_mm!r}")
    if not (np.isfinite(voxel_mm) and 1.0 <= float(voxel_mm) <= 12.0):
        raise InputError(f"voxel_mm must be within 1..12 mm, got {voxel_mm!r}")
    if defect is not None and defect not in DEFECT_TERRITORIES:
        raise InputError(f"defect must be None or one of {DEFECT_TERRITORIES}, got {defect!r}")
    if not 0.0 < float(extent) <= 1.0:
        raise InputError(f"defect_extent must be within (0, 1], got {extent!r}")
    if not 0.0 <= float(severity) <= 1.0:
        raise InputError(f"defect_severity must be within [0, 1], got {severity!r}")
    if sex not in (None, "female", "male"):
        raise InputError(f"sex must be None, 'female' or 'male', got {sex!r}")


def make_myocardium(*, voxel_mm: float = 4.0, seed: int = 0, tracer: str = "sestamibi", defect: str | None = None,
                    defect_extent: float = 0.5, defect_severity: float = 0.0, sex: str | None = None,
                    fov_mm: tuple[float, float, float] = DEFAULT_FOV_MM, injected_mbq: float | None = None,
                    weight_kg: float | None = None, texture: float = 0.05, ct_noise_hu: float = 10.0) -> Phantom:
    """Myocardial perfusion phantom (see the module docstring).

    Parameters
    ----------
    voxel_mm : float
        Isotropic voxel size (mm).
    seed : int
        Subject (anatomy, heart position and orientation, uptake, texture).
    tracer : str
        A tracer of :data:`petspect.phantoms.tracers.TRACERS` with a ``myocardium`` entry (default sestamibi).
    defect : {None, "lad", "lcx", "rca"}
        Territory of the perfusion defect (None: normal perfusion).
    defect_extent : float
        Fraction (0, 1] of the territory covered (angles, and the long axis from 30 % to 100 %).
    defect_severity : float
        Fractional uptake reduction in the defect's core, [0, 1].
    sex : {None, "female", "male"}
        Female subjects have breasts (attenuation); None draws it from the seed.
    fov_mm : (float, float, float)
        Field of view (z, y, x) in mm, centred on the body axis and the LV.
    injected_mbq, weight_kg : float, optional
        Protocol (default: the tracer's usual activity, 75 kg).
    texture : float
        Relative SD of a smooth (~20 mm) myocardial uptake variation, [0, 0.5).
    ct_noise_hu : float
        CT noise (HU).

    Returns
    -------
    Phantom
        Volumes "labels", "activity" (Bq/mL), "defect" (severity x spatial weight), "ct", "mu_140",
        "mu_511", "mu_208", "mr_t1", "mr_t2"; ``record["lv_frame"]`` holds the LV base centre and axes
        (LPS) and ``record["sampled"]`` every drawn value.
    """
    from petspect import __version__
    from petspect.phantoms.anatomy import anatomical_volumes, lookup, package_volumes, smooth_field
    from petspect.phantoms.tracers import get_tracer, sample_organ_suv, suv_to_bq_per_ml

    _check(voxel_mm, defect, defect_extent, defect_severity, sex, seed, texture, fov_mm)
    if not 0.0 <= float(texture) < 0.5:
        raise InputError(f"texture must be within [0, 0.5), got {texture!r}")
    model = get_tracer(tracer)
    if "myocardium" not in model.organs:
        raise InputError(f"tracer {tracer!r} has no myocardial uptake in the tracer table")
    params = dict(voxel_mm=float(voxel_mm), seed=int(seed), tracer=tracer, defect=defect,
                  defect_extent=float(defect_extent), defect_severity=float(defect_severity), sex=sex,
                  fov_mm=[float(v) for v in fov_mm], injected_mbq=injected_mbq, weight_kg=weight_kg,
                  texture=float(texture), ct_noise_hu=float(ct_noise_hu))
    rng_geo, rng_suv, rng_img = (np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(3))
    subject = sample_thorax(rng_geo, sex=sex)
    shape = tuple(max(8, int(round(float(f) / float(voxel_mm)))) for f in fov_mm)
    frame = lv_frame(subject)
    grid = Grid.centered(shape, float(voxel_mm), centre_mm=(0.0, 0.0, float(frame["c"][2]) - 10.0))
    labels, (s, r, phi) = thorax_labels(grid, subject)
    organs = ["soft_tissue", "fat", "lung", "spine", "aorta", "liver", "bowel", "blood_pool", "myocardium"]
    suv = sample_organ_suv(tracer, organs, seed=rng_suv)
    suv["breast"] = suv["soft_tissue"]
    w_kg = float(weight_kg) if weight_kg is not None else 75.0
    a_inj = (injected_mbq if injected_mbq is not None else model.injected_mbq_for(w_kg)) * BQ_PER_MBQ
    t_scan = float(model.scan_time_s)
    to_bq = lambda v: float(suv_to_bq_per_ml(v, injected_bq=a_inj, weight_kg=w_kg, elapsed_s=t_scan,  # noqa: E731
                                             nuclide=model.nuclide))
    lut = torch.tensor([0.0] + [to_bq(suv[n]) for n in MYOCARDIUM_LABELS[1:]], dtype=torch.float32)
    activity = lookup(lut, labels)
    myo = labels == _IDS["myocardium"]
    edge = torch.zeros_like(myo)
    for ax in range(3):
        edge.index_fill_(ax, torch.tensor([0, myo.shape[ax] - 1]), True)
    if not myo.any() or (myo & edge).any():
        raise InputError(f"fov_mm {tuple(float(v) for v in fov_mm)} cuts the heart of this subject (the myocardium "
                         f"reaches the edge of the {tuple(myo.shape)}-voxel grid); use a larger field of view "
                         f"(default {DEFAULT_FOV_MM})")
    a_long = subject["lv_long_mm"]
    normal = 1.0 - subject["apical_thinning"] * _ramp(s - 0.85 * a_long, 6.0).float()
    if texture > 0:
        g = torch.Generator().manual_seed(subject["texture_seed"])
        normal = normal * (1.0 + texture * smooth_field(grid.shape, grid.spacing_mm, 20.0, generator=g)).clamp_min(0)
    effect = torch.zeros(grid.shape, dtype=torch.float32)
    if defect is not None and defect_severity > 0:
        effect = float(defect_severity) * defect_weight(s, phi, a_long, defect, defect_extent)
    activity = torch.where(myo, activity * normal.float() * (1.0 - effect), activity)
    effect = torch.where(myo, effect, torch.zeros_like(effect))
    tissue_names = {i: _TISSUE.get(n, n) for i, n in enumerate(MYOCARDIUM_LABELS)}
    images = anatomical_volumes(labels, tissue_names, seed=int(rng_img.integers(2**31)), spacing_mm=grid.spacing_mm,
                                ct_noise_hu=ct_noise_hu, energies_kev=(140.0, 511.0, 208.0))
    meta = {"generator": "myocardium", "tracer": model.name, "nuclide": model.nuclide, "injected_bq": a_inj,
            "weight_kg": w_kg, "uptake_time_s": t_scan, "defect": defect, "defect_severity": float(defect_severity),
            "defect_extent": float(defect_extent), "suv_factor": 1.0 / to_bq(1.0)}
    vols = package_volumes(grid, {"labels": labels, "activity": activity, "defect": effect, **images}, meta,
                           activity_modality=model.modality)
    record = {"generator": "myocardium", "params": params, "petspect_version": __version__,
              "lv_frame": {k: v.tolist() for k, v in frame.items()},
              "sampled": {"subject": subject, "suv": suv}}
    return Phantom(volumes=vols, label_names=dict(enumerate(MYOCARDIUM_LABELS)), tables={}, record=record)
