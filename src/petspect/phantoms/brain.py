"""Brain phantom from the MNI152 template shipped with nilearn: deformed per subject, with tracers and disease.

Anatomy: the ICBM 2009 symmetric MNI152 grey- and white-matter probability maps and brain mask that
ship inside nilearn (``nilearn.datasets.load_mni152_gm_template`` etc.; no network), resampled through
a random smooth deformation (global scale and rotation plus a trilinear B-spline-like displacement field)
per subject. CSF = brain mask minus grey and white matter; skull (~7 mm) and scalp are shells built from
the distance to the brain. Striatum: caudate and putamen as ellipsoids at MNI coordinates (approximate
centroids of the Harvard-Oxford subcortical atlas, Desikan et al 2006 / Frazier et al 2005, as
distributed with FSL: caudate (+-13, 12, 9) mm, putamen (+-25, 2, 0) mm).

Tracers (SUV tables in :mod:`petspect.phantoms.tracers`): FDG (grey:white ~4:1), amyloid (negative:
white matter above cortex; positive: cortex above white matter), DaT (striatum ~4x background).

Disease patterns with ``severity`` in [0, 1]:

* ``"alzheimer"``: FDG hypometabolism up to 35 % in posterior cingulate/precuneus, temporo-parietal
  (angular gyrus) and lateral/medial temporal cortex (Minoshima S et al, J Nucl Med 1995;36:1238-1248;
  Herholz K et al, NeuroImage 2002;17:302-316); amyloid: cortical uptake rising in the same association
  cortex plus frontal cortex (Clark CM et al, JAMA 2011), sparing sensorimotor, occipital and cerebellar
  cortex.
* ``"parkinson"``: DaT loss in the putamen, posterior first (gradient along the putamen's long axis),
  one side worse, caudate relatively spared (Booij J et al, J Neurol Neurosurg Psychiatry 1997;62:133-140;
  Kraemmer J et al, Mov Disord 2014).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from petspect.errors import DataNotFoundError, InputError
from petspect.phantoms.base import Phantom
from petspect.phantoms.shapes import Grid
from petspect.units import BQ_PER_MBQ

BRAIN_LABELS: tuple[str, ...] = ("background", "soft_tissue", "skull", "csf", "grey_matter", "white_matter",
                                 "caudate_left", "caudate_right", "putamen_left", "putamen_right", "disease_region")
_IDS = {n: i for i, n in enumerate(BRAIN_LABELS)}
DISEASES = (None, "alzheimer", "parkinson")
BRAIN_TRACERS = ("fdg", "amyloid", "dat")
# MNI (RAS) centres and semi-axes (mm) of the striatal ellipsoids
STRIATUM_MNI = {"caudate_left": ((-13.0, 12.0, 9.0), (5.5, 14.0, 9.0)),
                "caudate_right": ((13.0, 12.0, 9.0), (5.5, 14.0, 9.0)),
                "putamen_left": ((-25.0, 2.0, 0.0), (6.5, 16.0, 10.0)),
                "putamen_right": ((25.0, 2.0, 0.0), (6.5, 16.0, 10.0))}
# Alzheimer hypometabolism foci: MNI centre (mm), Gaussian sigma (mm), weight
AD_FOCI = [((0, -55, 30), 14, 1.0), ((-45, -62, 35), 16, 1.0), ((45, -62, 35), 16, 1.0),
           ((-55, -25, -12), 15, 0.8), ((55, -25, -12), 15, 0.8), ((-25, -20, -16), 9, 0.7), ((25, -20, -16), 9, 0.7)]
AMYLOID_EXTRA_FOCI = [((0, 45, 25), 25, 0.9), ((-35, 35, 30), 20, 0.8), ((35, 35, 30), 20, 0.8)]


@functools.lru_cache(maxsize=2)
def load_templates(resolution_mm: int = 2) -> dict[str, Any]:
    """MNI152 grey/white-matter probabilities and brain mask from nilearn's package data (offline).

    Returns
    -------
    dict
        ``"gm"``, ``"wm"``, ``"mask"``: float32 arrays (i, j, k) in [0, 1]; ``"affine"``: 4x4 RAS affine.
    """
    try:
        from nilearn import datasets
        gm = datasets.load_mni152_gm_template(resolution=resolution_mm)
        wm = datasets.load_mni152_wm_template(resolution=resolution_mm)
        mask = datasets.load_mni152_brain_mask(resolution=resolution_mm)
    except Exception as exc:  # nilearn missing or its data files absent
        raise DataNotFoundError(f"cannot load nilearn's MNI152 templates: {exc}") from exc
    data = {k: np.clip(np.asarray(v.get_fdata(), dtype=np.float32), 0, 1) for k, v in
            (("gm", gm), ("wm", wm), ("mask", mask))}
    data["affine"] = np.asarray(gm.affine, dtype=np.float64)
    return data


def sample_brain_subject(rng: np.random.Generator, *, deformation_mm: float) -> dict[str, Any]:
    """Per-subject geometry: global scales, rotations, displacement-field control values, skull/scalp."""
    return {"scale": np.round(np.exp(rng.normal(0, 0.05, 3)), 5).tolist(),
            "rotation_deg": np.round(rng.normal(0, 4.0, 3), 4).tolist(),
            "shift_mm": np.round(rng.normal(0, 3.0, 3), 4).tolist(),
            "displacement": np.round(rng.normal(0, 1.0, (3, 5, 6, 5)) * deformation_mm, 4).tolist(),
            "skull_mm": round(float(rng.uniform(5.5, 8.5)), 3), "scalp_mm": round(float(rng.uniform(4.0, 8.0)), 3),
            "worse_side": "left" if rng.random() < 0.5 else "right"}


def _rotation(angles_deg) -> np.ndarray:
    from petspect.phantoms.shapes import rotation_matrix

    return rotation_matrix(angles_deg, "zyx")


def template_coordinates(grid: Grid, subject: dict[str, Any]) -> torch.Tensor:
    """MNI (RAS) position (mm) of the template point shown at each output voxel, ``(nz, ny, nx, 3)``."""
    p = grid.world(dtype=torch.float64)
    ras = torch.stack([-p[..., 0], -p[..., 1], p[..., 2]], dim=-1)
    lin = np.linalg.inv(_rotation(subject["rotation_deg"]) @ np.diag(subject["scale"]))
    q = (ras - torch.as_tensor(subject["shift_mm"], dtype=torch.float64)) @ torch.as_tensor(lin.T)
    disp = torch.as_tensor(np.asarray(subject["displacement"]), dtype=torch.float64)
    u = F.interpolate(disp[None], size=grid.shape, mode="trilinear", align_corners=True)[0]
    return (q + u.permute(1, 2, 3, 0)).to(torch.float32)


def _sample(volume: np.ndarray, affine: np.ndarray, mni: torch.Tensor) -> torch.Tensor:
    """Trilinear sample of a template array (i, j, k) at MNI points ``(..., 3)`` (0 outside)."""
    # index -> [-1, 1] per axis, folded into one affine map of the MNI points
    scale = 2.0 / (np.asarray(volume.shape, dtype=np.float64) - 1)
    lin = np.linalg.inv(affine[:3, :3]).T * scale[None, :]
    off = -(affine[:3, 3] @ np.linalg.inv(affine[:3, :3]).T) * scale - 1.0
    norm = mni @ torch.as_tensor(lin, dtype=mni.dtype) + torch.as_tensor(off, dtype=mni.dtype)
    grid = norm.flip(-1)[None]  # grid_sample wants (x=W=k, y=H=j, z=D=i)
    vol = torch.as_tensor(volume)[None, None]
    return F.grid_sample(vol, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0, 0]


def _gauss_weight(mni: torch.Tensor, foci) -> torch.Tensor:
    w = torch.zeros(mni.shape[:-1], dtype=torch.float32)
    for c, sigma, weight in foci:
        d2 = ((mni - torch.as_tensor(c, dtype=mni.dtype)) ** 2).sum(-1)
        w = torch.maximum(w, (weight * torch.exp(-0.5 * d2 / sigma ** 2)).float())
    return w


def _in_ellipsoid(mni: torch.Tensor, centre, semi) -> torch.Tensor:
    return (((mni - torch.as_tensor(centre, dtype=mni.dtype)) / torch.as_tensor(semi, dtype=mni.dtype)) ** 2).sum(-1) <= 1


def brain_tissues(grid: Grid, subject: dict[str, Any], resolution_mm: int) -> tuple[torch.Tensor, dict, torch.Tensor]:
    """Hard labels, tissue probabilities (gm, wm, csf inside the brain) and MNI coordinates of the grid."""
    from scipy.ndimage import distance_transform_edt

    t = load_templates(resolution_mm)
    mni = template_coordinates(grid, subject)
    gm, wm, mask = (_sample(t[k], t["affine"], mni) for k in ("gm", "wm", "mask"))
    brain = mask >= 0.5
    gm, wm = gm * brain, wm * brain
    csf = (brain.float() - gm - wm).clamp(0, 1)
    probs = {"grey_matter": gm, "white_matter": wm, "csf": csf}
    labels = torch.zeros(grid.shape, dtype=torch.uint8)
    dist = torch.as_tensor(distance_transform_edt(~brain.numpy(), sampling=grid.spacing_mm), dtype=torch.float32)
    shells = [("soft_tissue", 2.0 + subject["skull_mm"] + subject["scalp_mm"]), ("skull", 2.0 + subject["skull_mm"]),
              ("csf", 2.0)]
    for name, outer in shells:
        labels[(dist > 0) & (dist <= outer)] = _IDS[name]
    cls = torch.stack([csf, gm, wm]).argmax(0)
    labels[brain] = torch.tensor([_IDS["csf"], _IDS["grey_matter"], _IDS["white_matter"]], dtype=torch.uint8)[cls[brain]]
    for name, (c, s) in STRIATUM_MNI.items():
        labels[_in_ellipsoid(mni, c, s) & brain] = _IDS[name]
    return labels, probs, mni


def disease_weight(mni: torch.Tensor, labels: torch.Tensor, disease: str | None, tracer: str,
                   worse_side: str) -> torch.Tensor:
    """Spatial weight in [0, 1] of the disease effect (before ``severity``) at every voxel."""
    if disease is None:
        return torch.zeros(labels.shape, dtype=torch.float32)
    if disease == "alzheimer":
        foci = AD_FOCI + (AMYLOID_EXTRA_FOCI if tracer == "amyloid" else [])
        return _gauss_weight(mni, foci)
    w = torch.zeros(labels.shape, dtype=torch.float32)
    for side in ("left", "right"):
        c, s = STRIATUM_MNI[f"putamen_{side}"]
        post = ((c[1] + s[1] - mni[..., 1]) / (2 * s[1])).clamp(0, 1).float()  # 0 anterior tip .. 1 posterior
        side_factor = 1.0 if side == worse_side else 0.7
        w = torch.where(labels == _IDS[f"putamen_{side}"], side_factor * (0.4 + 0.6 * post), w)
        w = torch.where(labels == _IDS[f"caudate_{side}"], torch.full_like(w, 0.3 * side_factor), w)
    return w


def _check(voxel_mm, tracer, disease, severity, deformation_mm) -> None:
    if not (np.isfinite(voxel_mm) and 0.5 <= float(voxel_mm) <= 8.0):
        raise InputError(f"voxel_mm must be within 0.5..8 mm, got {voxel_mm!r}")
    if tracer not in BRAIN_TRACERS:
        raise InputError(f"brain tracer must be one of {BRAIN_TRACERS}, got {tracer!r}")
    if disease not in DISEASES:
        raise InputError(f"disease must be one of {DISEASES}, got {disease!r}")
    if not 0.0 <= float(severity) <= 1.0:
        raise InputError(f"severity must be within [0, 1], got {severity!r}")
    if not 0.0 <= float(deformation_mm) <= 15.0:
        raise InputError(f"deformation_mm must be within [0, 15], got {deformation_mm!r}")


@functools.lru_cache(maxsize=2)
def _mask_box_ras(resolution_mm: int) -> tuple[np.ndarray, np.ndarray]:
    t = load_templates(resolution_mm)
    ijk = np.argwhere(t["mask"] >= 0.5)
    ras = np.c_[ijk, np.ones(len(ijk))] @ t["affine"][:3].T
    return ras.min(0), ras.max(0)


def brain_grid(voxel_mm: float, resolution_mm: int, margin_mm: float = 28.0) -> Grid:
    """Axial LPS grid holding the MNI152 brain mask plus ``margin_mm`` (skull and scalp) on every side."""
    lo, hi = _mask_box_ras(resolution_mm)
    lo, hi = lo - margin_mm, hi + margin_mm
    centre_ras = 0.5 * (lo + hi)
    n = np.ceil((hi - lo) / voxel_mm).astype(int)
    return Grid.centered((n[2], n[1], n[0]), voxel_mm, centre_mm=(-centre_ras[0], -centre_ras[1], centre_ras[2]))


def _tracer_concentrations(tracer, disease, severity, weight, labels, to_bq, suv) -> torch.Tensor:
    """Activity (Bq/mL) per tissue label, with the disease modulation of cortex or striatum."""
    from petspect.phantoms.anatomy import lookup

    c = {k: float(to_bq(v)) for k, v in suv.items()}
    s = float(severity) if disease is not None else 0.0
    lut = torch.tensor([0.0] + [c[n.split("_")[0] if n.startswith(("caudate", "putamen")) else n]
                                for n in BRAIN_LABELS[1:-1]] + [0.0], dtype=torch.float32)
    act = lookup(lut, labels)
    cortex = labels == _IDS["grey_matter"]
    if disease == "alzheimer" and tracer == "fdg":
        act = torch.where(cortex, act * (1.0 - 0.35 * s * weight), act)
    elif disease == "alzheimer" and tracer == "amyloid":
        act = torch.where(cortex, act * (1.0 + 1.2 * s * weight), act)
    elif disease == "parkinson" and tracer == "dat":  # loss of the specific part above grey matter
        striatum = torch.isin(labels, torch.tensor([_IDS[n] for n in STRIATUM_MNI], dtype=labels.dtype))
        loss = c["grey_matter"] + (act - c["grey_matter"]) * (1.0 - s * weight).clamp(0.0, 1.0)
        act = torch.where(striatum, loss, act)
    return act


def make_brain(*, voxel_mm: float = 2.0, seed: int = 0, tracer: str = "fdg", disease: str | None = None,
               severity: float = 0.0, injected_mbq: float | None = None, weight_kg: float | None = None,
               uptake_time_s: float | None = None, deformation_mm: float = 3.0, texture: float = 0.05,
               ct_noise_hu: float = 10.0, mu_method: str = "ct") -> Phantom:
    """Brain phantom: MNI152 anatomy deformed per subject, tracer uptake, disease pattern, CT, mu, MR.

    Parameters
    ----------
    voxel_mm : float
        Isotropic voxel size (mm); the 1 mm templates are used below 1.5 mm, the 2 mm ones otherwise.
    seed : int
        Subject (deformation, skull, uptake variability, noise).
    tracer : {"fdg", "amyloid", "dat"}
        Radiopharmaceutical (see the module docstring).
    disease : {None, "alzheimer", "parkinson"}
        Pattern applied with ``severity`` in [0, 1] (0 = normal).
    injected_mbq, weight_kg, uptake_time_s : float, optional
        Protocol; defaults: the tracer's usual activity and scan time, 75 kg.
    deformation_mm : float
        Standard deviation of the random displacement field's control values (mm).
    texture : float
        Relative standard deviation of a smooth (~15 mm) uptake variation.
    ct_noise_hu, mu_method
        As in :func:`petspect.phantoms.anatomy.anatomical_volumes`.

    Returns
    -------
    Phantom
        Volumes "labels" (:data:`BRAIN_LABELS`), "activity" (Bq/mL), "disease" (effect map, severity x
        spatial weight), "ct", "mu_511", "mu_140", "mu_208", "mr_t1", "mr_t2"; ``record`` holds the disease
        and severity and rebuilds the phantom bit for bit.
    """
    from petspect import __version__
    from petspect.phantoms.anatomy import anatomical_volumes, package_volumes, smooth_field
    from petspect.phantoms.tracers import get_tracer, sample_organ_suv, suv_to_bq_per_ml

    _check(voxel_mm, tracer, disease, severity, deformation_mm)
    if not 0.0 <= float(texture) < 0.5:
        raise InputError(f"texture must be within [0, 0.5), got {texture!r}")
    params = dict(voxel_mm=float(voxel_mm), seed=int(seed), tracer=tracer, disease=disease, severity=float(severity),
                  injected_mbq=injected_mbq, weight_kg=weight_kg, uptake_time_s=uptake_time_s,
                  deformation_mm=float(deformation_mm), texture=float(texture), ct_noise_hu=float(ct_noise_hu),
                  mu_method=mu_method)
    model = get_tracer(tracer)
    rng_geo, rng_suv, rng_img = (np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(3))
    subject = sample_brain_subject(rng_geo, deformation_mm=float(deformation_mm))
    res = 1 if voxel_mm < 1.5 else 2
    grid = brain_grid(float(voxel_mm), res)
    labels, _, mni = brain_tissues(grid, subject, res)
    weight = disease_weight(mni, labels, disease, tracer, subject["worse_side"])
    suv = sample_organ_suv(tracer, ["soft_tissue", "skull", "csf", "grey_matter", "white_matter", "caudate", "putamen"],
                           seed=rng_suv)
    w_kg = float(weight_kg) if weight_kg is not None else 75.0
    a_inj = (injected_mbq if injected_mbq is not None else model.injected_mbq_for(w_kg)) * BQ_PER_MBQ
    t_scan = float(uptake_time_s if uptake_time_s is not None else model.scan_time_s)
    to_bq = lambda v: suv_to_bq_per_ml(v, injected_bq=a_inj, weight_kg=w_kg, elapsed_s=t_scan,  # noqa: E731
                                       nuclide=model.nuclide)
    activity = _tracer_concentrations(tracer, disease, severity, weight, labels, to_bq, suv)
    img_seed = int(rng_img.integers(2**31))
    if texture > 0:
        g = torch.Generator().manual_seed(img_seed)
        activity = activity * (1.0 + texture * smooth_field(grid.shape, grid.spacing_mm, 15.0, generator=g)).clamp_min(0)
    effect = weight * (float(severity) if disease is not None else 0.0)
    if disease is not None and severity > 0:
        tissue = ("grey_matter",) if disease == "alzheimer" else tuple(n for n in STRIATUM_MNI if "putamen" in n)
        affected = torch.isin(labels, torch.tensor([_IDS[n] for n in tissue], dtype=labels.dtype)) & (weight >= 0.5)
        labels[affected] = _IDS["disease_region"]
    tissue_names = {i: n.split("_")[0] if n.startswith(("caudate", "putamen")) else n for i, n in enumerate(BRAIN_LABELS)}
    tissue_names[_IDS["disease_region"]] = "grey_matter" if disease != "parkinson" else "putamen"
    images = anatomical_volumes(labels, tissue_names, seed=img_seed + 1, spacing_mm=grid.spacing_mm,
                                ct_noise_hu=ct_noise_hu, mu_method=mu_method)
    meta = {"generator": "brain", "tracer": model.name, "nuclide": model.nuclide, "injected_bq": a_inj,
            "weight_kg": w_kg, "uptake_time_s": t_scan, "disease": disease, "severity": float(severity),
            "suv_factor": 1.0 / float(to_bq(1.0))}  # SUV per Bq/mL
    vols = package_volumes(grid, {"labels": labels, "activity": activity, "disease": effect, **images}, meta,
                           activity_modality=model.modality)
    record = {"generator": "brain", "params": params, "petspect_version": __version__,
              "disease": disease, "severity": float(severity), "sampled": {"subject": subject, "suv": suv}}
    return Phantom(volumes=vols, label_names=dict(enumerate(BRAIN_LABELS)), tables={}, record=record)
