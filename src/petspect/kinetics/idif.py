"""A simulated dynamic FDG image of the chest and an image-derived input function (IDIF) from its aorta or
left-ventricle cavity, with partial-volume (spill-in / spill-out) correction.

The dynamic image is built without inverse crime: region occupancies are computed on a grid twice as fine,
filled with the compartment-model TACs, blurred by the scanner resolution (Gaussian PSF), averaged down to
the image grid and given voxel-level frame noise (:func:`petspect.kinetics.simulate.add_frame_noise`).
The IDIF averages the hottest voxels of the vessel in the early frames; its correction uses the recovery
coefficient of a long cylinder, ``RC = 1 - exp(-R^2 / (2 sigma^2))`` at the axis, and the TAC of a shell
around the vessel for the spill-in: ``Cb = (C_meas - (1 - RC) C_shell) / RC`` (e.g. Zanotti-Fregonara P
et al., J Cereb Blood Flow Metab 2011;31:1986-1998, for the approach and its pitfalls).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from petspect.errors import InputError
from petspect.kinetics.compartments import Model, model_frames
from petspect.kinetics.input_function import FrameSchedule, SampledInput
from petspect.kinetics.simulate import FDG_TISSUES, add_frame_noise
from petspect.units import FWHM_PER_SIGMA

__all__ = ["DynamicPhantom", "simulate_dynamic_chest", "image_derived_input", "frames_to_input"]


@dataclass
class DynamicPhantom:
    """A simulated dynamic study.

    Attributes
    ----------
    frames_bq_per_ml : ndarray (n_frames, nz, ny, nx)
        Noisy, blurred frame images (decay corrected).
    labels : ndarray int (nz, ny, nx)
        1 body (muscle), 2 aorta, 3 LV cavity, 4 myocardium, 5 liver, 6 tumour (on the image grid).
    label_names : dict of int to str
    true_tacs : dict of str to ndarray (n_frames,)
        Noiseless, unblurred frame TACs of each region; ``"blood"`` is the plasma input's frame means.
    voxel_mm : float
    psf_fwhm_mm : float
    aorta_radius_mm : float
    """

    frames_bq_per_ml: np.ndarray
    labels: np.ndarray
    label_names: dict[int, str]
    true_tacs: dict[str, np.ndarray]
    voxel_mm: float
    psf_fwhm_mm: float
    aorta_radius_mm: float


def simulate_dynamic_chest(inp: SampledInput, frames: FrameSchedule, *, shape=(16, 40, 48), voxel_mm: float = 4.0,
                           psf_fwhm_mm: float = 7.0, aorta_radius_mm: float = 11.0, cov_last_voxel: float = 0.15,
                           seed: int = 0) -> DynamicPhantom:
    """A chest-like dynamic FDG phantom (blood from ``inp``, FDG tissue kinetics of
    :data:`~petspect.kinetics.simulate.FDG_TISSUES`)."""
    from scipy.ndimage import gaussian_filter

    if min(shape) < 8 or voxel_mm <= 0 or psf_fwhm_mm < 0 or aorta_radius_mm <= 0:
        raise InputError("simulate_dynamic_chest: shape >= 8 per axis, voxel_mm > 0, psf_fwhm_mm >= 0, radius > 0")
    rng = np.random.default_rng(seed)
    up = 2
    fine = tuple(n * up for n in shape)
    h = voxel_mm / up
    z, y, x = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * h for n in fine], indexing="ij")
    ry, rx = shape[1] * voxel_mm * 0.42, shape[2] * voxel_mm * 0.45
    body = (y / ry) ** 2 + (x / rx) ** 2 <= 1
    aorta = ((y - 0.25 * ry) ** 2 + (x + 0.35 * rx) ** 2 <= aorta_radius_mm ** 2)
    lv_c = (0.0, -0.2 * ry, 0.2 * rx)
    r_lv = np.sqrt((z - lv_c[0]) ** 2 + (y - lv_c[1]) ** 2 + (x - lv_c[2]) ** 2)
    cavity = r_lv <= 16.0
    myo = (r_lv > 16.0) & (r_lv <= 26.0)
    liver = ((y + 0.45 * ry) / (0.45 * ry)) ** 2 + ((x + 0.35 * rx) / (0.45 * rx)) ** 2 <= 1
    tumour = np.sqrt((z - 0.2 * z.max()) ** 2 + (y - 0.45 * ry) ** 2 + (x - 0.15 * rx) ** 2) <= 12.0
    lab = np.zeros(fine, np.int16)
    for value, region in ((1, body), (5, liver & body), (4, myo & body), (3, cavity & body), (6, tumour & body),
                          (2, aorta & body)):
        lab[region] = value
    names = {1: "muscle", 2: "aorta", 3: "lv_cavity", 4: "myocardium", 5: "liver", 6: "tumour"}
    blood = frames.frame_means(inp.times_s, inp.values_bq_per_ml)
    tacs = {"blood": blood}
    for k in ("muscle", "myocardium", "liver", "tumour"):
        tacs[k] = model_frames(FDG_TISSUES[k], Model.TWO_TCM_IRREVERSIBLE, inp, frames)
    per_label = {1: tacs["muscle"], 2: blood, 3: blood, 4: tacs["myocardium"], 5: tacs["liver"], 6: tacs["tumour"]}
    sigma = psf_fwhm_mm / FWHM_PER_SIGMA / h
    imgs = np.zeros((len(frames),) + tuple(shape))
    onehot = {v: (lab == v).astype(np.float64) for v in per_label}
    blurred = {v: gaussian_filter(m, sigma) if sigma > 0 else m for v, m in onehot.items()}  # blur is linear
    for v, occ in blurred.items():
        down = occ.reshape(shape[0], up, shape[1], up, shape[2], up).mean((1, 3, 5))
        imgs += per_label[v][:, None, None, None] * down[None]
    noisy = add_frame_noise(np.moveaxis(imgs, 0, -1), frames, cov_last=cov_last_voxel, rng=rng)
    coarse_lab = np.zeros(shape, np.int16)
    for v in per_label:  # majority occupancy on the image grid
        occ = onehot[v].reshape(shape[0], up, shape[1], up, shape[2], up).mean((1, 3, 5))
        coarse_lab[occ > 0.5] = v
    return DynamicPhantom(np.moveaxis(noisy, -1, 0), coarse_lab, names, tacs, voxel_mm, psf_fwhm_mm, aorta_radius_mm)


def frames_to_input(values_bq_per_ml: np.ndarray, frames: FrameSchedule) -> SampledInput:
    """A piecewise-linear input through frame means placed at frame mid-times (0 at t = 0), held constant after."""
    v = np.asarray(values_bq_per_ml, dtype=np.float64)
    t = np.concatenate([[0.0], frames.mid_s, [frames.end_s[-1] + 1.0]])
    return SampledInput(t, np.concatenate([[0.0], v, [v[-1]]]))


def image_derived_input(frames_img: np.ndarray, frames: FrameSchedule, vessel_mask: np.ndarray, *,
                        n_hottest: int = 8, early_s: float = 120.0, correct_pv: bool = True,
                        vessel_radius_mm: float | None = None, psf_fwhm_mm: float | None = None,
                        voxel_mm: float | None = None) -> np.ndarray:
    """Image-derived blood TAC (frame means, Bq/mL) from a vessel or cavity.

    Parameters
    ----------
    frames_img : ndarray (n_frames, nz, ny, nx)
    vessel_mask : ndarray bool (nz, ny, nx)
        The aorta or LV cavity (e.g. drawn on CT).
    n_hottest : int
        Voxels of the mask with the highest early (first ``early_s`` s) activity are averaged.
    correct_pv : bool
        Apply the cylinder recovery coefficient and the spill-in of the surrounding shell (needs
        ``vessel_radius_mm``, ``psf_fwhm_mm``, ``voxel_mm``).
    """
    from scipy.ndimage import binary_dilation

    img = np.asarray(frames_img, dtype=np.float64)
    m = np.asarray(vessel_mask, dtype=bool)
    if img.ndim != 4 or img.shape[0] != len(frames) or img.shape[1:] != m.shape:
        raise InputError(f"frames image {img.shape} must be (n_frames={len(frames)},) + mask shape {m.shape}")
    if m.sum() < 1:
        raise InputError("the vessel mask is empty")
    early = frames.end_s <= early_s
    if not early.any():
        early = np.zeros(len(frames), bool)
        early[0] = True
    score = (img[early] * frames.duration_s[early, None, None, None]).sum(0)
    idx = np.argsort(score[m])[::-1][: max(1, min(n_hottest, int(m.sum())))]
    tac = img[:, m][:, idx].mean(1)
    if not correct_pv:
        return tac
    if None in (vessel_radius_mm, psf_fwhm_mm, voxel_mm):
        raise InputError("partial-volume correction needs vessel_radius_mm, psf_fwhm_mm and voxel_mm")
    sigma = psf_fwhm_mm / FWHM_PER_SIGMA
    rc = 1.0 - math.exp(-vessel_radius_mm ** 2 / (2 * sigma ** 2))
    n_shell = max(1, int(round(1.5 * psf_fwhm_mm / voxel_mm)))
    shell = binary_dilation(m, iterations=n_shell + 1) & ~binary_dilation(m, iterations=n_shell)
    bg = img[:, shell].mean(1) if shell.any() else np.zeros(len(frames))
    return (tac - (1 - rc) * bg) / rc
