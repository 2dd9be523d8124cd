"""Classical denoising baselines, tuned on the validation split by the one search of :mod:`petspect.evaluation`.

=============  =============================================  ==============================================
name           method                                          free parameters (tuned on validation)
=============  =============================================  ==============================================
gaussian       isotropic 3D Gaussian post-filter, normalised   ``fwhm_mm``
               at the grid borders like the reconstruction
               post-filter (:mod:`petspect.recon.postfilter`)
nlm            non-local means (scikit-image, 3D, fast mode)   ``h_rel``: ``h`` / mean body uptake
ct_guided      joint bilateral filter guided by the CT: a      ``fwhm_mm`` (spatial), ``hu_sigma`` (CT range
               Gaussian whose weights fall across CT edges      kernel SD in HU)
               (Tomasi & Manduchi 1998; Petschnigg et al
               2004), border-normalised -- the anatomy-aware
               classical method beside a network given the CT
map_rdp        MAP (BSREM) with a relative-difference prior,    ``beta`` (relative to the mean sensitivity,
               re-reconstructed from the subject's prompts      :func:`petspect.simulate.systems.map_beta`),
               (simulated datasets only)                        ``gamma`` (edge preservation)
bm4d           BM4D (``bm4d`` package, NON-COMMERCIAL licence;  ``sigma_rel``: noise SD / mean body uptake
               used only when importable, never a dependency)
=============  =============================================  ==============================================

Every method, the networks included, is offered the same optional post-processing: scaling its output to
the input's total activity (``preserve_total``), chosen on validation like a parameter. Every search uses
the same :class:`~petspect.evaluation.tuning.Budget` and the same objective: the mean PSNR (dB, data range =
reference range, :func:`petspect.metrics.psnr`) over the validation subjects against the full-dose reference.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from petspect.errors import InputError
from petspect.evaluation.tuning import Budget, TuningResult, grid_search
from petspect.volume import Volume

#: search grids per method
DEFAULT_GRIDS: dict[str, dict[str, tuple[float, ...]]] = {
    "gaussian": {"fwhm_mm": (0.0, 4.0, 6.0, 8.0, 10.0, 13.0)},
    "nlm": {"h_rel": (0.05, 0.1, 0.2, 0.3, 0.45, 0.7)},
    "ct_guided": {"fwhm_mm": (6.0, 8.0, 10.0, 13.0), "hu_sigma": (40.0, 120.0, 400.0)},
    "map_rdp": {"beta": (0.005, 0.02, 0.08), "gamma": (0.5, 2.0)},
    "bm4d": {"sigma_rel": (0.05, 0.1, 0.2, 0.3, 0.5, 0.8)},
}
#: the default tuning budget of every method (configurations scored on validation): each one-parameter grid
#: and MAP's 3 x 2 grid fit it; the CT-guided filter's 4 x 3 grid is subsampled to it (seeded)
DEFAULT_BUDGET = Budget(max_trials=6, seed=0)
USES_CT = {"ct_guided"}
OBJECTIVE = "mean validation PSNR (dB, data range = reference range) against the full-dose reference"


def body_scale(image: torch.Tensor | np.ndarray) -> float:
    """Mean of the body voxels (above 5 % of the 99.9th percentile), in the image's unit; 1.0 for an empty image."""
    x = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image).detach().double()
    hi = float(torch.quantile(x.flatten()[:: max(1, x.numel() // 2_000_000)], 0.999))
    if not hi > 0:
        return 1.0
    body = x[x > 0.05 * hi]
    return float(body.mean()) if body.numel() else 1.0


def gaussian_filter(volume: Volume, fwhm_mm: float) -> Volume:
    """Isotropic 3D Gaussian post-filter, normalised at the grid borders (``G x / G 1``).

    The same filter as the reconstruction post-filter (:func:`petspect.recon.postfilter.gaussian_post_filter`):
    a uniform image stays uniform up to the grid's edges, so no activity is lost to zero padding (a
    zero-padded filter loses a few per cent on a grid of a dozen slices).

    Parameters
    ----------
    volume : Volume
        Reconstruction in any activity unit; device and dtype are kept.
    fwhm_mm : float
        Full width at half maximum in mm (0: the image unchanged).
    """
    from petspect.recon.postfilter import gaussian_post_filter

    if not math.isfinite(fwhm_mm) or fwhm_mm < 0:
        raise InputError(f"fwhm_mm must be a non-negative number, got {fwhm_mm!r}")
    if fwhm_mm == 0:
        return volume.with_data(volume.data.clone())
    filt = gaussian_post_filter(volume.shape, float(fwhm_mm), volume.spacing_mm)
    return volume.with_data(filt(volume.data.float()).to(volume.data.dtype))


def ct_guided_filter(volume: Volume, ct: Volume, fwhm_mm: float, hu_sigma: float) -> Volume:
    """Joint bilateral filter of a PET image guided by the CT (border-normalised).

    ``y_i = sum_j w_ij x_j / sum_j w_ij`` with ``w_ij = exp(-|r_i - r_j|^2 / (2 s^2)) exp(-(c_i - c_j)^2 /
    (2 hu_sigma^2))``, ``s`` the spatial SD of ``fwhm_mm`` and ``c`` the CT in HU: smoothing within organs of
    one density and little across organ boundaries that the CT shows (Petschnigg et al, ACM TOG 23:664, 2004,
    joint bilateral filter; used for PET by e.g. Bagci & Mollura, J Digit Imaging 26:1, 2013).

    Parameters
    ----------
    volume : Volume
        PET reconstruction.
    ct : Volume
        CT in HU on the same grid.
    fwhm_mm : float
        Spatial kernel FWHM in mm (0: unchanged).
    hu_sigma : float
        Range kernel SD in HU (> 0; large values make it a Gaussian filter).
    """
    from petspect.units import fwhm_to_sigma

    if not math.isfinite(fwhm_mm) or fwhm_mm < 0 or not (math.isfinite(hu_sigma) and hu_sigma > 0):
        raise InputError(f"need fwhm_mm >= 0 and hu_sigma > 0, got {fwhm_mm!r}, {hu_sigma!r}")
    if tuple(ct.shape) != tuple(volume.shape):
        raise InputError(f"the CT's shape {tuple(ct.shape)} differs from the PET's {tuple(volume.shape)}")
    if fwhm_mm == 0:
        return volume.with_data(volume.data.clone())
    x = volume.data.detach().to(torch.float32)
    c = ct.data.detach().to(device=x.device, dtype=torch.float32)
    s = fwhm_to_sigma(float(fwhm_mm))
    radii = [max(0, int(math.ceil(2.5 * s / float(d)))) for d in volume.spacing_mm]
    radii = [min(r, n - 1) for r, n in zip(radii, x.shape)]
    pad = [v for r in reversed(radii) for v in (r, r)]
    xp = torch.nn.functional.pad(x[None, None], pad)[0, 0]
    cp = torch.nn.functional.pad(c[None, None], pad, value=float("nan"))[0, 0]
    num, den = torch.zeros_like(x), torch.zeros_like(x)
    nz, ny, nx = x.shape
    for dz in range(-radii[0], radii[0] + 1):
        for dy in range(-radii[1], radii[1] + 1):
            for dx in range(-radii[2], radii[2] + 1):
                d2 = (dz * volume.spacing_mm[0]) ** 2 + (dy * volume.spacing_mm[1]) ** 2 + (dx * volume.spacing_mm[2]) ** 2
                ws = math.exp(-d2 / (2 * s * s))
                if ws < 1e-4:
                    continue
                sl = (slice(radii[0] + dz, radii[0] + dz + nz), slice(radii[1] + dy, radii[1] + dy + ny),
                      slice(radii[2] + dx, radii[2] + dx + nx))
                cj = cp[sl]
                w = ws * torch.exp(-((cj - c) ** 2) / (2.0 * hu_sigma ** 2))
                w = torch.nan_to_num(w, nan=0.0)  # outside the grid: no weight (border normalisation)
                num += w * xp[sl]
                den += w
    return volume.with_data((num / den.clamp_min(1e-12)).to(volume.data.dtype))


def nlm_filter(volume: Volume, h_rel: float, *, patch_size: int = 3, patch_distance: int = 3) -> Volume:
    """3D non-local means (scikit-image ``denoise_nl_means``, fast mode) on the CPU.

    Parameters
    ----------
    volume : Volume
    h_rel : float
        Filtering strength ``h`` divided by :func:`body_scale` of the image (dimensionless).
    patch_size, patch_distance : int
        Patch side and search radius in voxels.
    """
    from skimage.restoration import denoise_nl_means

    if not math.isfinite(h_rel) or h_rel < 0:
        raise InputError(f"h_rel must be a non-negative number, got {h_rel!r}")
    x = volume.numpy().astype(np.float64)
    scale = body_scale(x)
    if h_rel == 0:
        return volume.with_data(volume.data.clone())
    y = denoise_nl_means(x / scale, h=float(h_rel), patch_size=patch_size, patch_distance=patch_distance,
                         fast_mode=True, channel_axis=None) * scale
    return volume.with_data(torch.as_tensor(y, dtype=volume.data.dtype, device=volume.device))


def bm4d_available() -> bool:
    """True when the optional, non-commercially licensed ``bm4d`` package can be imported."""
    return importlib.util.find_spec("bm4d") is not None


def bm4d_filter(volume: Volume, sigma_rel: float) -> Volume:
    """BM4D with a noise SD of ``sigma_rel`` times :func:`body_scale` (needs the optional ``bm4d`` package)."""
    if not bm4d_available():
        raise InputError("the bm4d package is not installed (optional, non-commercial licence)")
    import bm4d

    x = volume.numpy().astype(np.float64)
    scale = body_scale(x)
    y = np.asarray(bm4d.bm4d(x / scale, float(sigma_rel))) * scale
    return volume.with_data(torch.as_tensor(y, dtype=volume.data.dtype, device=volume.device))


def preserve_total(output: Volume, reference_input: Volume) -> Volume:
    """Scale ``output`` so its total (sum over voxels) equals that of ``reference_input`` (the method's input).

    Offered to every method alike (module docstring): the total of a low-count reconstruction is an
    unbiased estimate of the full-count total, so this removes a method's global calibration drift.
    """
    t_in, t_out = float(reference_input.data.double().sum()), float(output.data.double().sum())
    if not (t_in > 0 and t_out > 0):
        raise InputError("preserve_total needs a positive total in the input and the output")
    return output.with_data((output.data.double() * (t_in / t_out)).to(output.data.dtype))


@dataclass
class Case:
    """One subject as a method sees it.

    Attributes
    ----------
    subject : str
    low : Volume
        The low-count input reconstruction.
    reference : Volume or None
        The full-dose reference (None on a subject that is only filtered, e.g. a lesion-absent twin).
    ct : Volume or None
        CT in HU on the same grid (for anatomy-guided methods).
    reconstruct_map : callable(beta, gamma) -> Volume, or None
        Re-reconstruction of the subject's low-count prompts with MAP-RDP (simulated datasets).
    """

    subject: str
    low: Volume
    reference: Volume | None = None
    ct: Volume | None = None
    reconstruct_map: Callable[[float, float], Volume] | None = None


def run_method(name: str, case: Case, params: Mapping[str, float]) -> Volume:
    """Output of classical method ``name`` with ``params`` on ``case`` (before any post-processing)."""
    if name == "gaussian":
        return gaussian_filter(case.low, params["fwhm_mm"])
    if name == "nlm":
        return nlm_filter(case.low, params["h_rel"])
    if name == "bm4d":
        return bm4d_filter(case.low, params["sigma_rel"])
    if name == "ct_guided":
        if case.ct is None:
            raise InputError(f"subject {case.subject} has no CT for the CT-guided filter")
        return ct_guided_filter(case.low, case.ct, params["fwhm_mm"], params["hu_sigma"])
    if name == "map_rdp":
        if case.reconstruct_map is None:
            raise InputError(f"subject {case.subject} cannot be re-reconstructed with MAP (no system record)")
        return case.reconstruct_map(params["beta"], params["gamma"])
    raise InputError(f"unknown baseline {name!r}; choose one of {sorted(DEFAULT_GRIDS)}")


@dataclass
class TunedMethod:
    """A method with its parameters and post-processing chosen on validation.

    Attributes
    ----------
    name : str
    params : dict
        The chosen free parameters.
    preserve_total : bool
        Whether the output is scaled to the input's total (chosen on validation).
    tuning : TuningResult or None
        The search that chose ``params``.
    post_scores : dict
        Mean validation PSNR with and without ``preserve_total``.
    uses_ct : bool
    """

    name: str
    params: dict[str, float]
    preserve_total: bool = False
    tuning: TuningResult | None = None
    post_scores: dict[str, float] = field(default_factory=dict)
    uses_ct: bool = False

    def __call__(self, case: Case) -> Volume:
        out = run_method(self.name, case, self.params)
        return preserve_total(out, case.low) if self.preserve_total else out

    def describe(self) -> dict[str, Any]:
        return {"params": dict(self.params), "preserve_total": self.preserve_total, "uses_ct": self.uses_ct,
                "post_processing_scores": dict(self.post_scores),
                "tuning": self.tuning.to_dict() if self.tuning else None}


def _psnr(pred: Volume, ref: Volume) -> float:
    from petspect.metrics import psnr

    r = ref.data.detach().double().cpu().numpy()
    return float(psnr(pred.data.detach().double().cpu().numpy(), r, data_range=float(r.max() - r.min())))


def psnr_preserved(output: Volume, case: Case) -> float:
    """PSNR of ``output`` scaled to the input's total; NaN when the output's total is not positive."""
    try:
        return _psnr(preserve_total(output, case.low), case.reference)
    except InputError:
        return math.nan


def choose_post_processing(outputs: Sequence[Volume], cases: Sequence[Case]) -> tuple[bool, dict[str, float]]:
    """Choose ``preserve_total`` for a method from its validation outputs (mean PSNR; ties and NaN: off)."""
    off = float(np.mean([_psnr(o, c.reference) for o, c in zip(outputs, cases)]))
    on = float(np.mean([psnr_preserved(o, c) for o, c in zip(outputs, cases)]))
    return bool(on > off), {"psnr_db_without": off, "psnr_db_preserve_total": on}


def tune_method(name: str, cases: Sequence[Case], *, budget: Budget = DEFAULT_BUDGET,
                grid: Mapping[str, Sequence[float]] | None = None) -> TunedMethod:
    """Tune method ``name`` on validation ``cases``: parameters by :func:`grid_search`, then ``preserve_total``.

    Parameters
    ----------
    name : str
        A method of :data:`DEFAULT_GRIDS`.
    cases : sequence of Case
        Validation subjects (with references).
    budget : Budget
        The same for every method.
    grid : mapping, optional
        Search space (default :data:`DEFAULT_GRIDS`).
    """
    if not cases or any(c.reference is None for c in cases):
        raise InputError("tuning needs at least one validation subject with its full-dose reference")
    if name not in DEFAULT_GRIDS:
        raise InputError(f"unknown baseline {name!r}; choose one of {sorted(DEFAULT_GRIDS)}")
    space = dict(DEFAULT_GRIDS[name] if grid is None else grid)
    cache: dict[tuple, list[Volume]] = {}

    def outputs(params: Mapping[str, float]) -> list[Volume]:
        key = tuple(sorted(params.items()))
        if key not in cache:
            cache.clear()  # keep only the latest outputs (memory)
            cache[key] = [run_method(name, c, params) for c in cases]
        return cache[key]

    best_outputs: dict[tuple, list[Volume]] = {}

    def objective(params: dict[str, float]) -> float:
        outs = outputs(params)
        score = float(np.mean([_psnr(o, c.reference) for o, c in zip(outs, cases)]))
        if not best_outputs or score > best_outputs["score"][0]:
            best_outputs.clear()
            best_outputs.update({"score": [score], "outs": outs})
        return score

    result = grid_search(name, objective, space, budget, objective_name=OBJECTIVE)
    outs = best_outputs.get("outs") or outputs(result.best)
    pt, scores = choose_post_processing(outs, cases)
    return TunedMethod(name, dict(result.best), pt, result, scores, name in USES_CT)


def available_baselines(*, with_ct: bool = False, with_map: bool = False) -> list[str]:
    """Names of the classical methods usable here (bm4d only when importable; ct_guided with a CT; MAP with prompts)."""
    names = ["gaussian", "nlm"]
    if with_ct:
        names.append("ct_guided")
    if with_map:
        names.append("map_rdp")
    if bm4d_available():
        names.append("bm4d")
    return names


def tune_baselines(cases: Sequence[Case], names: Sequence[str] | None = None, *, budget: Budget = DEFAULT_BUDGET,
                   grids: Mapping[str, Mapping[str, Sequence[float]]] | None = None) -> dict[str, TunedMethod]:
    """Tune every available classical method (or ``names``) on the validation ``cases``; name -> TunedMethod."""
    grids = dict(grids or {})
    if names is None:
        names = available_baselines(with_ct=all(c.ct is not None for c in cases),
                                    with_map=all(c.reconstruct_map is not None for c in cases))
    return {n: tune_method(n, cases, budget=budget, grid=grids.get(n)) for n in names}


def describe_baselines(tuned: Mapping[str, TunedMethod]) -> dict[str, Any]:
    """JSON-serialisable record of tuned methods: name -> {params, preserve_total, tuning, ...}."""
    return {n: t.describe() for n, t in tuned.items()}
