"""CT (HU), attenuation maps (1/mm) and T1/T2-weighted MR of a labelled anatomy.

Pure functions of a label map and its ``label_names``; tissue properties come from :data:`TISSUES`.

Sources of the tissue values
----------------------------
* CT numbers (unenhanced, 120 kVp): Lamba R et al, "CT Hounsfield numbers of soft tissues on
  unenhanced abdominal CT scans: variability between two different manufacturers' MDCT scanners",
  AJR 2014;203:1013-1020 (liver ~55-60, spleen ~45-50, kidney ~30-35, muscle ~45-50, fat ~-100, blood
  ~40, urine ~5); lung parenchyma ~-850..-700 HU; trabecular vertebral bone ~150-300 HU and
  cortical bone > 1000 HU (bulk bone labels here mix cortex and marrow: 300-900 HU).
* MR relaxation at 1.5 T (T1, T2 in ms): Stanisz GJ et al, MRM 2005;54:507-512 (white matter 884/72,
  grey matter 1124/95, muscle 1008/44, liver 576/46, blood 1441/290); de Bazelaire CMJ et al,
  Radiology 2004;230:652-659 (kidney cortex 966/87, medulla 1412/85, spleen 1057/79, subcutaneous fat
  343/58, vertebral marrow 549/49, prostate 1317/88). CSF ~4000/2000. Proton densities are relative
  (water = 1), approx.
* Attenuation: :func:`petspect.materials.hu_to_mu_per_mm` (bilinear; Carney et al 2006 at 511 keV,
  Kinahan et al 1998 otherwise) applied to the CT, so mu is a monotone function of HU; or, with
  :func:`mu_from_labels`, the tissue's composition (:func:`petspect.materials.linear_attenuation_per_mm`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from petspect.errors import InputError

METAL_HU = 3071.0  # 12-bit CT saturation, how metal implants appear on clinical CT


@dataclass(frozen=True)
class Tissue:
    """CT, composition and MR properties of a tissue.

    ``hu``: CT number at 120 kVp; ``materials``: (material, mass fraction) pairs of
    :mod:`petspect.materials`; ``pd``: relative proton density; ``t1_ms``, ``t2_ms``: relaxation at 1.5 T.
    """

    hu: float
    materials: tuple[tuple[str, float], ...]
    pd: float
    t1_ms: float
    t2_ms: float


def _t(hu, mats, pd, t1, t2) -> Tissue:
    return Tissue(hu, tuple(mats.items()), pd, t1, t2)


_ST, _FAT, _BONE = "soft_tissue", "adipose", "cortical_bone"
TISSUES: dict[str, Tissue] = {
    "background": _t(-1000, {"air": 1.0}, 0.0, 1000, 1),
    "air": _t(-1000, {"air": 1.0}, 0.0, 1000, 1),
    "soft_tissue": _t(45, {"muscle": 1.0}, 0.8, 1008, 44),
    "fat": _t(-100, {_FAT: 1.0}, 0.9, 343, 58),
    "skin": _t(30, {_ST: 1.0}, 0.7, 900, 40),
    "lung": _t(-780, {"lung": 1.0}, 0.15, 1200, 40),
    "airway": _t(-1000, {"air": 1.0}, 0.0, 1000, 1),
    "myocardium": _t(45, {"muscle": 1.0}, 0.8, 1030, 40),
    "blood_pool": _t(40, {_ST: 1.0}, 0.9, 1441, 290),
    "aorta": _t(40, {_ST: 1.0}, 0.9, 1441, 290),
    "liver": _t(58, {_ST: 1.0}, 0.75, 576, 46),
    "spleen": _t(47, {_ST: 1.0}, 0.8, 1057, 79),
    "kidney_cortex": _t(33, {_ST: 1.0}, 0.85, 966, 87),
    "kidney_medulla": _t(30, {_ST: 1.0}, 0.9, 1412, 85),
    "stomach": _t(20, {_ST: 1.0}, 0.85, 900, 60),
    "bowel": _t(15, {_ST: 0.9, _FAT: 0.1}, 0.85, 900, 60),
    "bladder": _t(5, {"water": 1.0}, 1.0, 3000, 1500),
    "prostate": _t(40, {_ST: 1.0}, 0.85, 1317, 88),
    "spine": _t(350, {_BONE: 0.35, _ST: 0.65}, 0.5, 549, 49),
    "spinal_cord": _t(35, {_ST: 1.0}, 0.75, 745, 74),
    "ribs": _t(450, {_BONE: 0.45, _ST: 0.55}, 0.4, 549, 49),
    "pelvis": _t(350, {_BONE: 0.35, _ST: 0.65}, 0.5, 549, 49),
    "long_bones": _t(600, {_BONE: 0.55, _FAT: 0.45}, 0.5, 400, 50),
    "skull": _t(900, {_BONE: 0.8, _ST: 0.2}, 0.1, 400, 20),
    "brain": _t(35, {_ST: 1.0}, 0.75, 1000, 85),
    "grey_matter": _t(40, {_ST: 1.0}, 0.8, 1124, 95),
    "white_matter": _t(30, {_ST: 1.0}, 0.7, 884, 72),
    "csf": _t(5, {"water": 1.0}, 1.0, 4000, 2000),
    "caudate": _t(40, {_ST: 1.0}, 0.8, 1124, 95),
    "putamen": _t(40, {_ST: 1.0}, 0.8, 1124, 95),
    "salivary_glands": _t(20, {_ST: 0.8, _FAT: 0.2}, 0.8, 800, 60),
    "thyroid": _t(90, {_ST: 1.0}, 0.8, 900, 60),
    "lesion": _t(40, {_ST: 1.0}, 0.85, 1100, 90),
    "metal": _t(METAL_HU, {"titanium": 1.0}, 0.0, 1000, 1),
}

#: Sequence timings for the weighted images (spin echo): T1w TR 500 / TE 10 ms, T2w TR 4000 / TE 90 ms.
SEQUENCES = {"t1": (500.0, 10.0), "t2": (4000.0, 90.0)}


def _tissue(name: str) -> Tissue:
    try:
        return TISSUES[name]
    except KeyError:
        raise InputError(f"no tissue properties for label {name!r}; known: {sorted(TISSUES)}") from None


def label_lut(label_names: Mapping[int, str], value_of, *, device=None) -> torch.Tensor:
    """Lookup table (float32, index = label id) of ``value_of(tissue)`` for every label name."""
    n = max(label_names) + 1
    lut = torch.zeros(n, dtype=torch.float32, device=device)
    for i, name in label_names.items():
        lut[i] = float(value_of(_tissue(name)))
    return lut


def lookup(lut: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``lut[labels]`` for an integer label map, without a 64-bit copy of the labels."""
    return lut.index_select(0, labels.reshape(-1).to(torch.int32)).reshape(labels.shape)


def smooth_field(shape: tuple[int, int, int], spacing_mm, correlation_mm: float, *, generator: torch.Generator,
                 device=None) -> torch.Tensor:
    """Smooth zero-mean unit-variance-ish random field: coarse Gaussian noise, trilinearly upsampled.

    The coarse lattice has one node per ``correlation_mm``; shape ``(nz, ny, nx)``, float32.
    """
    coarse = [max(2, int(math.ceil(n * s / correlation_mm)) + 1) for n, s in zip(shape, spacing_mm)]
    noise = torch.randn(coarse, generator=generator, dtype=torch.float32)
    out = F.interpolate(noise[None, None], size=tuple(shape), mode="trilinear", align_corners=True)[0, 0]
    return out.to(device) if device is not None else out


def ct_from_labels(labels: torch.Tensor, label_names: Mapping[int, str], *, seed: int, noise_hu: float = 10.0,
                   texture_hu: float = 8.0, spacing_mm=(1.0, 1.0, 1.0),
                   metal_mask: torch.Tensor | None = None) -> torch.Tensor:
    """CT image (HU) of a label map: tissue CT numbers, smooth texture, white noise, optional metal.

    Parameters
    ----------
    labels : torch.Tensor, (nz, ny, nx), integer
        Label map; ``label_names`` gives each id's tissue (a key of :data:`TISSUES`).
    seed : int
        Randomness of texture and noise.
    noise_hu : float
        Standard deviation (HU) of white Gaussian noise inside the body (air stays -1000).
    texture_hu : float
        Standard deviation (HU) of a smooth (~15 mm) texture in soft tissues.
    spacing_mm : (dz, dy, dx)
        Voxel size, for the texture's correlation length.
    metal_mask : torch.Tensor of bool, optional
        Voxels of a metal implant, set to :data:`METAL_HU` (no streaks are simulated).

    Returns
    -------
    torch.Tensor, float32, same shape and device as ``labels``; values >= -1000.
    """
    if noise_hu < 0 or texture_hu < 0:
        raise InputError("noise_hu and texture_hu must be >= 0")
    hu = lookup(label_lut(label_names, lambda t: t.hu, device=labels.device), labels)
    body = hu > -990.0
    g = torch.Generator().manual_seed(int(seed))
    soft = body & (hu > -200) & (hu < 200)
    if texture_hu > 0:
        hu = torch.where(soft, hu + texture_hu * smooth_field(labels.shape, spacing_mm, 15.0, generator=g,
                                                             device=labels.device), hu)
    if noise_hu > 0:
        hu = torch.where(body, hu + noise_hu * torch.randn(labels.shape, generator=g).to(labels.device), hu)
    if metal_mask is not None:
        hu = torch.where(metal_mask.to(labels.device), torch.full_like(hu, METAL_HU), hu)
    return hu.clamp_min(-1000.0)


def mu_from_ct(ct_hu: torch.Tensor, energy_kev: float, *, kvp: float = 120.0) -> torch.Tensor:
    """Linear attenuation (1/mm) at ``energy_kev`` from a CT via :func:`petspect.materials.hu_to_mu_per_mm`."""
    from petspect.materials import hu_to_mu_per_mm

    return hu_to_mu_per_mm(ct_hu, float(energy_kev), float(kvp)).to(torch.float32)


def mu_from_labels(labels: torch.Tensor, label_names: Mapping[int, str], energy_kev: float) -> torch.Tensor:
    """Linear attenuation (1/mm) per label from the tissues' compositions (mass-fraction mixtures).

    ``mu = rho_mix * sum_i w_i (mu/rho)_i`` with ``1/rho_mix = sum_i w_i / rho_i`` (ideal mixing).
    """
    from petspect.materials import density_g_per_ml, mass_attenuation_cm2_per_g

    def mu_of(t: Tissue) -> float:
        inv_rho = sum(w / density_g_per_ml(m) for m, w in t.materials)
        mu_rho = sum(w * mass_attenuation_cm2_per_g(m, float(energy_kev)) for m, w in t.materials)
        return mu_rho / inv_rho / 10.0  # 1/cm -> 1/mm

    return lookup(label_lut(label_names, mu_of, device=labels.device), labels)


def mr_from_labels(labels: torch.Tensor, label_names: Mapping[int, str], *, weighting: str, seed: int,
                   spacing_mm=(1.0, 1.0, 1.0), bias_strength: float = 0.2, noise_fraction: float = 0.02) -> torch.Tensor:
    """T1- or T2-weighted-like MR magnitude image (a.u., max signal ~1) of a label map.

    Signal of a spin echo ``S = PD (1 - exp(-TR/T1)) exp(-TE/T2)`` with :data:`SEQUENCES` timings and
    the tissue values of :data:`TISSUES`; times a smooth bias field ``exp(bias_strength * f)`` (f a
    ~150 mm-correlated random field); plus Rician noise ``|S + n_re + i n_im|`` with
    ``sigma = noise_fraction * max(S)``.

    Returns
    -------
    torch.Tensor, float32, same shape and device as ``labels``; values >= 0.
    """
    if weighting not in SEQUENCES:
        raise InputError(f"weighting must be one of {sorted(SEQUENCES)}, got {weighting!r}")
    if bias_strength < 0 or noise_fraction < 0:
        raise InputError("bias_strength and noise_fraction must be >= 0")
    tr, te = SEQUENCES[weighting]
    lut = label_lut(label_names, lambda t: t.pd * (1 - math.exp(-tr / t.t1_ms)) * math.exp(-te / t.t2_ms),
                    device=labels.device)
    lut = lut / lut.max().clamp_min(1e-12)
    s = lookup(lut, labels)
    g = torch.Generator().manual_seed(int(seed))
    if bias_strength > 0:
        s = s * torch.exp(bias_strength * smooth_field(labels.shape, spacing_mm, 150.0, generator=g,
                                                       device=labels.device))
    if noise_fraction > 0:
        sigma = noise_fraction * float(s.max())
        re = torch.randn(labels.shape, generator=g).to(labels.device).mul_(sigma).add_(s)
        im = torch.randn(labels.shape, generator=g).to(labels.device).mul_(sigma)
        s = torch.hypot(re, im)
    return s.to(torch.float32)


def anatomical_volumes(labels: torch.Tensor, label_names: Mapping[int, str], *, seed: int, spacing_mm,
                       energies_kev=(511.0, 140.0, 208.0), ct_noise_hu: float = 10.0, mu_method: str = "ct",
                       metal_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """CT, mu at each energy, T1w and T2w MR of one label map: ``{"ct", "mu_511", ..., "mr_t1", "mr_t2"}``."""
    if mu_method not in ("ct", "labels"):
        raise InputError(f"mu_method must be 'ct' or 'labels', got {mu_method!r}")
    seeds = np.random.SeedSequence(int(seed)).generate_state(3)
    ct = ct_from_labels(labels, label_names, seed=int(seeds[0]), noise_hu=ct_noise_hu, spacing_mm=spacing_mm,
                        metal_mask=metal_mask)
    out = {"ct": ct}
    for e in energies_kev:
        out[f"mu_{int(round(e))}"] = (mu_from_ct(ct, e) if mu_method == "ct"
                                      else mu_from_labels(labels, label_names, e))
    out["mr_t1"] = mr_from_labels(labels, label_names, weighting="t1", seed=int(seeds[1]), spacing_mm=spacing_mm)
    out["mr_t2"] = mr_from_labels(labels, label_names, weighting="t2", seed=int(seeds[2]), spacing_mm=spacing_mm)
    return out


_UNITS = {"ct": ("HU", "CT"), "mr_t1": ("a.u.", "MR"), "mr_t2": ("a.u.", "MR")}


def package_volumes(grid, arrays: Mapping[str, torch.Tensor], meta: dict, *, activity_modality: str) -> dict:
    """Wrap a phantom's arrays as Volumes on ``grid`` with their standard units and modalities.

    Keys: "labels"/"lesions" (label, SEG), "activity" (Bq/mL), "ct" (HU), "mu_<keV>" (1/mm, with
    ``energy_kev`` in meta), "mr_t1"/"mr_t2" (a.u., MR); anything else is "a.u.".
    """
    out = {}
    for key, arr in arrays.items():
        m = dict(meta)
        if key in ("labels", "lesions"):
            unit, modality = "label", "SEG"
        elif key == "activity":
            unit, modality = "Bq/mL", activity_modality
        elif key.startswith("mu_"):
            unit, modality = "1/mm", None
            m["energy_kev"] = float(key[3:])
        else:
            unit, modality = _UNITS.get(key, ("a.u.", None))
        out[key] = grid.volume(arr, unit=unit, modality=modality, meta=m)
    return out
