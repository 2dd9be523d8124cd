"""SPECT scatter: a network's estimate against the triple-energy-window (TEW) estimate, and Chang's AC.

Data (:func:`make_spect_case`)
------------------------------
A Tc-99m torso slab (:func:`petspect.phantoms.torso.make_torso`, bone scan ``mdp`` or myocardial ``sestamibi``)
generated at half the reconstruction voxel size is projected with
:func:`petspect.systems.spect_simulate.expected_spect_counts` onto the reconstruction's detector pixels (every
energy window, distance-dependent collimator response, attenuation, object scatter), so the reconstruction
grid is not the simulation's (no inverse crime). The scatter model's parameters -- broad-beam ratio and the
spread kernel -- are drawn per subject (:data:`SCATTER_RANGES`), so a network cannot learn one fixed kernel.
Counts are Poisson draws; the true scatter is the simulation's expected photopeak scatter.

Estimates
---------
* ``tew``: :func:`petspect.simulate.measured.tew_additive` (Ogawa et al, IEEE TMI 10 (1991) 408), smoothed in
  the detector plane (the FWHM is tuned on validation subjects by the study);
* ``dl``: a 2D U-Net (:func:`petspect.ac.networks.train_translation`, the AC trainer) that maps, for every
  detector row, the sinogram-like stack ``(channels, views, cols)`` of photopeak, lower and upper window
  counts and optionally the attenuation line integrals of the CT's map, to the photopeak scatter. Counts are
  divided by the acquisition's mean photopeak count per pixel (:func:`count_normaliser`), the target too.

Reconstruction (:func:`reconstruct_spect`)
-----------------------------------------
OSEM of the photopeak with the attenuation map in the projector (CT-based AC) and a scatter estimate as the
additive term; Chang's first-order correction (:func:`petspect.systems.spect_chang.chang_correct`) of an OSEM
image reconstructed without attenuation is the CT-free-projector alternative.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from petspect.errors import InputError

__all__ = ["SCATTER_RANGES", "SpectScatterCase", "make_spect_case", "count_normaliser", "mu_line_integrals",
           "scatter_inputs", "predict_scatter", "tew_estimate", "reconstruct_spect", "chang_image",
           "scatter_nrmse_pct", "INPUTS_WITH_MU", "INPUTS_EMISSION", "INPUTS_WINDOWS"]

#: Ranges (uniform) of the scatter model's parameters drawn per subject (petspect.physics.spect_scatter.ScatterModel):
#: broad-beam ratio around 0.11/0.154 = 0.72 (Chang 1978; Jaszczak et al 1981) and the spread in the detector plane.
SCATTER_RANGES = {"broad_beam_ratio": (0.66, 0.78), "kernel_fwhm_mm": (30.0, 55.0)}
#: channel names of the network inputs, in order (``tew``: the smoothed TEW estimate, the residual's base)
INPUTS_WITH_MU = ("photopeak", "tew", "mu_line_integral")
INPUTS_EMISSION = ("photopeak", "tew")
INPUTS_WINDOWS = ("photopeak", "scatter_low", "scatter_up", "mu_line_integral")
#: line integrals are divided by this in the input (mu * path through a 30 cm body at 140 keV ~ 4.6)
LINE_INTEGRAL_SCALE = 4.0
SPECT_TRACERS = ("mdp", "sestamibi")


@dataclass
class SpectScatterCase:
    """One simulated SPECT subject.

    Attributes
    ----------
    projections : SpectProjections
        Noisy counts of every window ``(windows, views, rows, cols)``.
    scatter_true : torch.Tensor, shape (views, rows, cols)
        Expected photopeak scatter counts of the simulation.
    data : AcquisitionData
        The photopeak with its system model, image grid, calibration (Bq/mL) and ``mu_per_mm`` (no additive).
    mu_per_mm : torch.Tensor, shape (z, y, x)
        The CT's attenuation map at 140 keV on the reconstruction grid (1/mm).
    activity_true : torch.Tensor, shape (z, y, x)
        True activity on the reconstruction grid (Bq/mL, block mean of the fine truth).
    labels : torch.Tensor, shape (z, y, x)
    label_names : dict
    info : dict
        Region, tracer, seed, scatter model, counts, scatter fraction.
    """

    projections: Any
    scatter_true: torch.Tensor
    data: Any
    mu_per_mm: torch.Tensor
    activity_true: torch.Tensor
    labels: torch.Tensor
    label_names: dict[int, str]
    info: dict[str, Any] = field(default_factory=dict)


def _block_mean(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.avg_pool3d(x[None, None].to(torch.float32), 2)[0, 0]


def make_spect_case(tracer: str, seed: int, *, voxel_mm: float = 6.0, shape=(4, 64, 64), n_views: int = 32,
                    count_scale: float = 1.0, scatter_model=None, system: str = "spect-lehr") -> SpectScatterCase:
    """Simulate one SPECT subject (module docstring).

    Parameters
    ----------
    tracer : str
        A Tc-99m tracer with torso uptakes (``mdp``, ``sestamibi``).
    seed : int
        Anatomy, uptake, scatter-model draw and Poisson noise.
    voxel_mm : float
        Reconstruction voxel and detector pixel size (mm); the truth is made at half of it.
    shape : (int, int, int)
        Reconstruction grid (z, y, x); the detector is ``(z, x)`` pixels.
    n_views : int
        Views over 360 deg; each view lasts ``20 s * 120 / n_views`` (the counts of a 120 x 20 s protocol).
    count_scale : float
        Multiplies the expected counts (a dose or time fraction).
    scatter_model : ScatterModel, optional
        Fixed scatter model; default drawn from :data:`SCATTER_RANGES` with ``seed``.
    """
    from petspect.geometry.spect import get_spect_system
    from petspect.geometry.spect_data import SpectProjections
    from petspect.phantoms.base import make_phantom
    from petspect.physics.spect_scatter import ScatterModel
    from petspect.systems.acquisition import AcquisitionData, Calibration
    from petspect.systems.records import ImageGridSpec, SpectSystemSpec
    from petspect.systems.spect_simulate import expected_spect_counts

    if count_scale <= 0 or n_views < 4:
        raise InputError(f"count_scale must be positive and n_views >= 4, got {count_scale}, {n_views}")
    nz, ny, nx = (int(v) for v in shape)
    sysm = get_spect_system(system)
    ph = make_phantom("torso", voxel_mm=voxel_mm / 2.0, seed=int(seed), tracer=tracer, shape=[2 * nz, 2 * ny, 2 * nx],
                      lesions=False)
    if ph.nuclide is not None and ph.nuclide != sysm.nuclide:
        raise InputError(f"tracer {tracer!r} is labelled with {ph.nuclide}; system {system!r} images {sysm.nuclide}")
    rng = np.random.default_rng(int(seed) * 104729 + 7)
    if scatter_model is None:
        scatter_model = ScatterModel(*(float(rng.uniform(*SCATTER_RANGES[k])) for k in ("broad_beam_ratio",
                                                                                          "kernel_fwhm_mm")))
    angles, radius = sysm.circular_orbit(int(n_views), sysm.radius_mm)
    frame_s = sysm.frame_duration_s * 120.0 / int(n_views)
    expectation, facts = expected_spect_counts(ph["activity"], ph["mu_140"], sysm, angles_deg=angles, radius_mm=radius,
                                               frame_duration_s=frame_s, detector_shape=(nz, nx),
                                               pixel_mm=(voxel_mm, voxel_mm), scatter=scatter_model, psf=True)
    expected = expectation.total * float(count_scale)
    gen = torch.Generator().manual_seed(int(seed) * 7919 + 29)
    counts = torch.poisson(expected, generator=gen)
    peak = sysm.photopeak_window
    proj = SpectProjections(counts=counts, angles_deg=facts["angles_deg"], radius_mm=facts["radius_mm"],
                            pixel_spacing_mm=(voxel_mm, voxel_mm), energy_windows=list(sysm.energy_windows),
                            frame_duration_s=frame_s, photopeak_window=peak, nuclide=sysm.nuclide,
                            meta={"system": sysm.name, "collimator": sysm.collimator.name, "simulated": True})
    grid = ImageGridSpec((nz, ny, nx), (voxel_mm,) * 3)
    spec = SpectSystemSpec(preset=sysm.name, nuclide=sysm.nuclide, collimator=sysm.collimator,
                           angles_deg=facts["angles_deg"].tolist(), radius_mm=facts["radius_mm"].tolist(), psf=True,
                           detector_shape=(nz, nx), pixel_mm=(voxel_mm, voxel_mm),
                           sensitivity_cps_per_mbq=sysm.sensitivity_cps_per_mbq * float(count_scale),
                           photopeak_window=sysm.energy_windows[peak])
    cal = Calibration(time_scale_s=frame_s, unit="Bq/mL", mode="activity", frame_duration_s=frame_s,
                      nuclide=sysm.nuclide, voxel_volume_ml=grid.voxel_volume_ml)
    mu = _block_mean(ph["mu_140"].data)
    data = AcquisitionData(prompts=counts[peak].to(torch.float32), system=spec, grid=grid, calibration=cal,
                           mu_per_mm=mu, provenance={"simulator": "petspect.ac.spect_scatter", "tracer": tracer,
                                                     "seed": int(seed)})
    s_true = expectation.scatter[peak] * float(count_scale)
    info = {"tracer": tracer, "seed": int(seed), "count_scale": float(count_scale),
            "scatter_model": {"broad_beam_ratio": scatter_model.broad_beam_ratio,
                              "kernel_fwhm_mm": scatter_model.kernel_fwhm_mm},
            "photopeak_counts": float(counts[peak].sum()),
            "scatter_fraction": float(s_true.sum() / expected[peak].sum().clamp_min(1e-9)),
            "voxel_mm": float(voxel_mm), "truth_voxel_mm": float(voxel_mm) / 2.0, "n_views": int(n_views)}
    return SpectScatterCase(proj, s_true.to(torch.float32), data, mu, _block_mean(ph["activity"].data),
                            ph["labels"].data[::2, ::2, ::2].contiguous(), dict(ph.label_names), info)


def count_normaliser(proj) -> float:
    """Mean photopeak count per detector pixel (the network's count unit), at least 1e-6."""
    return float(proj.photopeak.to(torch.float64).mean().clamp_min(1e-6))


def mu_line_integrals(proj, mu_per_mm: torch.Tensor, voxel_mm) -> torch.Tensor:
    """Line integrals of ``mu_per_mm`` along every detector pixel's ray, ``(views, rows, cols)`` (dimensionless).

    ``mu_per_mm`` is on a grid centred on the rotation axis with ``voxel_mm`` (dz, dy, dx); the rays are the
    data's own (rotate-and-sum without collimator response), summed over voxels times the step ``dx``.
    """
    from petspect.projectors.spect import SpectProjector

    mu = torch.as_tensor(mu_per_mm, dtype=torch.float32)
    if mu.ndim != 3:
        raise InputError(f"mu must be (z, y, x), got {tuple(mu.shape)}")
    rows, cols = (int(v) for v in proj.counts.shape[2:])
    p = SpectProjector(tuple(mu.shape), tuple(voxel_mm), proj.angles_deg, proj.radius_mm, None, psf=False,
                       detector_shape=(rows, cols), pixel_mm=tuple(proj.pixel_spacing_mm))
    return p(mu) * float(voxel_mm[2])


def _window(proj, name: str) -> torch.Tensor:
    names = [w.name for w in proj.energy_windows]
    if name == "photopeak":
        return proj.photopeak
    if name not in names:
        raise InputError(f"the network needs the {name!r} window; the projections have {names}")
    return proj.window(name)


def scatter_inputs(proj, *, inputs=INPUTS_WITH_MU, mu_per_mm: torch.Tensor | None = None,
                   voxel_mm=None, tew_smooth_fwhm_mm: float | None = None) -> tuple[torch.Tensor, float]:
    """Network inputs ``(rows, channels, views, cols)`` and the count normaliser of one acquisition.

    The scatter windows are found as the TEW does (:func:`petspect.simulate.measured.tew_additive`: the windows
    adjacent to the photopeak) when the names are not the preset's; ``tew`` is that estimate smoothed with
    ``tew_smooth_fwhm_mm``; ``mu_line_integral`` needs ``mu_per_mm`` and ``voxel_mm``.
    """
    from petspect.simulate.measured import _adjacent

    norm = count_normaliser(proj)
    peak = proj.energy_windows[proj.photopeak_window]
    chans = []
    for name in inputs:
        if name == "mu_line_integral":
            if mu_per_mm is None or voxel_mm is None:
                raise InputError("this scatter network also takes the attenuation map: give the mu map (--mu)")
            chans.append(mu_line_integrals(proj, mu_per_mm, voxel_mm) / LINE_INTEGRAL_SCALE)
            continue
        if name == "tew":
            chans.append(tew_estimate(proj, tew_smooth_fwhm_mm) / norm)
            continue
        if name in ("scatter_low", "scatter_up") and name not in [w.name for w in proj.energy_windows]:
            w = _adjacent(list(proj.energy_windows), peak, below=name == "scatter_low")
            if w is None:
                raise InputError(f"no energy window {'below' if name == 'scatter_low' else 'above'} the photopeak "
                                 f"{peak.lower_kev:g}-{peak.upper_kev:g} keV; the network needs it")
            name = w.name
        chans.append(_window(proj, name).to(torch.float32) / norm)
    x = torch.stack(chans, 0)  # (C, views, rows, cols)
    return x.permute(2, 0, 1, 3).contiguous(), norm


def scatter_target(case: SpectScatterCase, norm: float, base: torch.Tensor | None = None) -> torch.Tensor:
    """The training target ``(rows, 1, views, cols)``: true photopeak scatter (minus ``base``, the residual's
    base estimate, when given) over the count normaliser."""
    t = case.scatter_true if base is None else case.scatter_true - base
    return (t / norm).permute(1, 0, 2)[:, None].contiguous()


def predict_scatter(model, proj, *, mu_per_mm=None, voxel_mm=None) -> torch.Tensor:
    """The network's photopeak scatter estimate in counts, ``(views, rows, cols)``, never negative.

    ``model`` is an :class:`~petspect.ac.networks.AcModel` of task ``spect_scatter``; ``trained_on`` names its
    input channels (``inputs``), and with ``residual == "tew"`` the network predicts a correction added to the TEW
    estimate smoothed with ``tew_smooth_fwhm_mm``.
    """
    from petspect.ac.networks import predict_slices

    if model.task != "spect_scatter":
        raise InputError(f"this is a {model.task!r} model, not a SPECT scatter model (task 'spect_scatter')")
    inputs = tuple(model.trained_on.get("inputs", INPUTS_WINDOWS))
    fwhm = model.trained_on.get("tew_smooth_fwhm_mm")
    x, norm = scatter_inputs(proj, inputs=inputs, mu_per_mm=mu_per_mm, voxel_mm=voxel_mm, tew_smooth_fwhm_mm=fwhm)
    y = (predict_slices(model, x)[:, 0] * norm).permute(1, 0, 2)  # (views, rows, cols)
    if model.trained_on.get("residual") == "tew":
        y = y + tew_estimate(proj, fwhm)
    elif model.trained_on.get("residual") not in (None, "none"):
        raise InputError(f"unknown residual base {model.trained_on.get('residual')!r} in the model")
    return y.clamp_min(0.0).contiguous()


def tew_estimate(proj, smooth_fwhm_mm: float | None = None) -> torch.Tensor:
    """TEW photopeak scatter (counts, ``(views, rows, cols)``), smoothed with ``smooth_fwhm_mm`` (0: none)."""
    from petspect.simulate.measured import tew_additive

    return tew_additive(proj, smooth_fwhm_mm=smooth_fwhm_mm)[0]


def scatter_nrmse_pct(estimate: torch.Tensor, truth: torch.Tensor) -> float:
    """``100 ||estimate - truth|| / ||truth||`` over all projection pixels (the PET study's definition)."""
    e, t = estimate.to(torch.float64), truth.to(torch.float64)
    if e.shape != t.shape:
        raise InputError(f"scatter estimate {tuple(e.shape)} and truth {tuple(t.shape)} differ in shape")
    return float(100.0 * torch.linalg.norm(e - t) / torch.linalg.norm(t).clamp_min(1e-12))


def reconstruct_spect(data, scatter: torch.Tensor | None, *, attenuation: bool = True, iterations: int = 4,
                      subsets: int = 8) -> torch.Tensor:
    """OSEM image (Bq/mL, (z, y, x)) of the photopeak with ``scatter`` (counts) as the additive term."""
    from petspect.recon.reconstruct import ReconSpec, reconstruct_image

    if scatter is not None and tuple(scatter.shape) != tuple(data.prompts.shape):
        raise InputError(f"scatter {tuple(scatter.shape)} != photopeak {tuple(data.prompts.shape)}")
    d = replace(data, additive=None if scatter is None else scatter.to(torch.float32).clamp_min(0.0).contiguous())
    if not attenuation:
        d = replace(d, mu_per_mm=None)
    spec = ReconSpec(algorithm="osem", iterations=int(iterations), subsets=int(subsets))
    return reconstruct_image(d, spec, attenuation=attenuation, progress=False).data


def chang_image(data, scatter: torch.Tensor | None, mu_per_mm: torch.Tensor, **recon) -> torch.Tensor:
    """Chang's first-order AC (Chang 1978) of an OSEM image reconstructed without attenuation, (z, y, x)."""
    from petspect.systems.spect_chang import chang_correct

    nac = reconstruct_spect(data, scatter, attenuation=False, **recon)
    angles = torch.as_tensor(data.system.angles_deg, dtype=torch.float64)
    return chang_correct(nac, mu_per_mm.to(torch.float64), voxel_mm=data.grid.spacing_mm, angles_deg=angles)
