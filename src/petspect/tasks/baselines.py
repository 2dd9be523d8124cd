"""Classical denoising baselines and their tuning on a validation set.

Every baseline is a post-filter of a low-count reconstruction with one free parameter, tuned on the
validation subjects to the value that maximises the mean PSNR against the full-dose reference (peak =
max of the reference, the ultra-low-dose PET challenge convention, :func:`petspect.metrics.psnr_challenge`).

=========  ==============================================  ============================================
name       filter                                           tuned parameter
=========  ==============================================  ============================================
gaussian   isotropic 3D Gaussian (``GaussianPSF``)          ``fwhm_mm``: FWHM in mm
nlm        non-local means (scikit-image, 3D, fast mode)    ``h_rel``: filtering strength ``h`` divided by
                                                            the mean uptake of the image's body voxels
bm4d       BM4D (``bm4d`` package, NON-COMMERCIAL licence;  ``sigma_rel``: noise SD divided by the body
           used only when importable, never a dependency)   mean uptake
=========  ==============================================  ============================================

Relative parameters (``h_rel``, ``sigma_rel``) make a tuned value independent of the image unit (Bq/mL
or SUV) and of the injected activity. The body is the set of voxels above 5 % of the image's 99.9th
percentile. MAP reconstruction with a relative-difference prior and the full-dose OSEM are not filters:
they are reconstructions read from the dataset (``recon_d<PCT>_map_ac``, ``recon_d100_osem_ac``).
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
from petspect.volume import Volume

#: default search grids of the tuned parameter, per baseline
DEFAULT_GRIDS: dict[str, tuple[float, ...]] = {
    "gaussian": (0.0, 2.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 12.0, 14.0, 17.0, 20.0),
    "nlm": (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8, 1.2),
    "bm4d": (0.05, 0.1, 0.2, 0.3, 0.5, 0.8),
}
PARAMETERS = {"gaussian": "fwhm_mm", "nlm": "h_rel", "bm4d": "sigma_rel"}


def body_scale(image: torch.Tensor | np.ndarray) -> float:
    """Mean of the body voxels (above 5 % of the 99.9th percentile), in the image's unit; 1.0 for an empty image."""
    x = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image).detach().double()
    hi = float(torch.quantile(x.flatten()[:: max(1, x.numel() // 2_000_000)], 0.999))
    if not hi > 0:
        return 1.0
    body = x[x > 0.05 * hi]
    return float(body.mean()) if body.numel() else 1.0


def gaussian_filter(volume: Volume, fwhm_mm: float) -> Volume:
    """Isotropic 3D Gaussian post-filter (zero padding, kernel normalised to sum 1).

    Parameters
    ----------
    volume : Volume
        Reconstruction in any activity unit; device and dtype are kept.
    fwhm_mm : float
        Full width at half maximum in mm (0: the image unchanged).
    """
    from petspect.physics.resolution import GaussianPSF

    if not math.isfinite(fwhm_mm) or fwhm_mm < 0:
        raise InputError(f"fwhm_mm must be a non-negative number, got {fwhm_mm!r}")
    if fwhm_mm == 0:
        return volume.with_data(volume.data.clone())
    psf = GaussianPSF(volume.shape, fwhm_mm, volume.spacing_mm)
    return volume.with_data(psf(volume.data.float()).to(volume.data.dtype))


def nlm_filter(volume: Volume, h_rel: float, *, patch_size: int = 3, patch_distance: int = 3) -> Volume:
    """3D non-local means (scikit-image ``denoise_nl_means``, fast mode) on the CPU.

    Parameters
    ----------
    volume : Volume
    h_rel : float
        Filtering strength ``h`` divided by :func:`body_scale` of the image (dimensionless).
    patch_size, patch_distance : int
        Patch side and search radius in voxels.

    Notes
    -----
    Anisotropic voxels are handled by scikit-image only through the patch shape, which is isotropic in
    voxels here; the result is returned on the volume's device.
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


FILTERS: dict[str, Callable[[Volume, float], Volume]] = {
    "gaussian": gaussian_filter, "nlm": nlm_filter, "bm4d": bm4d_filter,
}


def available_baselines() -> list[str]:
    """Names of the filters usable here (bm4d only when importable)."""
    return [n for n in FILTERS if n != "bm4d" or bm4d_available()]


@dataclass
class TunedFilter:
    """A baseline filter with its tuned parameter and the validation scores that chose it.

    Attributes
    ----------
    name : str
        "gaussian", "nlm" or "bm4d".
    value : float
        The chosen parameter (see :data:`PARAMETERS` for its name and unit).
    scores : list of dict
        ``{"value", "psnr_db"}`` for every value tried (mean over the validation pairs).
    """

    name: str
    value: float
    scores: list[dict[str, float]] = field(default_factory=list)

    @property
    def parameter(self) -> str:
        return PARAMETERS[self.name]

    def __call__(self, volume: Volume) -> Volume:
        return FILTERS[self.name](volume, self.value)

    def describe(self) -> str:
        return f"{self.name} ({self.parameter} = {self.value:g}, tuned on validation)"


def apply_filter(name: str, volume: Volume, value: float) -> Volume:
    """Apply baseline ``name`` with parameter ``value`` (see :data:`PARAMETERS`)."""
    if name not in FILTERS:
        raise InputError(f"unknown baseline {name!r}; choose one of {sorted(FILTERS)}")
    return FILTERS[name](volume, float(value))


def tune_filter(name: str, pairs: Sequence[tuple[Volume, Volume]], grid: Sequence[float] | None = None) -> TunedFilter:
    """Choose the parameter of a baseline that maximises the mean challenge PSNR over ``pairs``.

    Parameters
    ----------
    name : {"gaussian", "nlm", "bm4d"}
    pairs : sequence of (low-count Volume, full-dose reference Volume)
        Validation subjects.
    grid : sequence of float, optional
        Values to try (default :data:`DEFAULT_GRIDS`).

    Returns
    -------
    TunedFilter
    """
    from petspect.metrics import psnr_challenge

    if not pairs:
        raise InputError("tuning needs at least one (low-count, reference) pair")
    values = tuple(DEFAULT_GRIDS[name] if grid is None else grid)
    if not values:
        raise InputError("the tuning grid is empty")
    scores = []
    for v in values:
        vals = [psnr_challenge(apply_filter(name, low, v).data, ref.data) for low, ref in pairs]
        scores.append({"value": float(v), "psnr_db": float(np.mean(vals))})
    best = max(scores, key=lambda s: s["psnr_db"])
    return TunedFilter(name, best["value"], scores)


def tune_baselines(pairs: Sequence[tuple[Volume, Volume]], names: Sequence[str] | None = None,
                   grids: Mapping[str, Sequence[float]] | None = None) -> dict[str, TunedFilter]:
    """Tune every available baseline (or ``names``) on the validation ``pairs``; name -> TunedFilter."""
    grids = dict(grids or {})
    return {n: tune_filter(n, pairs, grids.get(n)) for n in (names or available_baselines())}


def describe_baselines(tuned: Mapping[str, TunedFilter]) -> dict[str, Any]:
    """JSON-serialisable record of tuned baselines: name -> {parameter, value, scores}."""
    return {n: {"parameter": t.parameter, "value": t.value, "scores": t.scores} for n, t in tuned.items()}
