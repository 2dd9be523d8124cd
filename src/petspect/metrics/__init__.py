"""Metrics: image quality (PSNR, SSIM, NRMSE), quantitative PET (SUV bias, SUVpeak, contrast recovery), NEMA.

Pure functions: torch tensors or numpy arrays in, floats (or dicts of floats) out. Submodules load on
first use, so importing :mod:`petspect.metrics` is cheap.

* :mod:`petspect.metrics.image` -- :func:`psnr`, :func:`ssim`, :func:`nrmse` (keyword-only ``data_range``)
  and the ultra-low-dose challenge variants :func:`psnr_challenge`, :func:`ssim_challenge`, :func:`nrmse_challenge`.
* :mod:`petspect.metrics.quantitative` -- :func:`region_bias`, :func:`region_stats`, :func:`suv_peak`,
  :func:`sphere_kernel`, :func:`contrast_recovery`, :func:`noise_bias_curve`.
* :mod:`petspect.metrics.distribution` -- widths of error distributions: :func:`width_at_fraction`
  (FWHM / FWTM by interpolation), :func:`gaussian_fit`, :func:`width_summary`, :func:`paired_bootstrap`,
  :func:`fwhm_improvement_ci` (detector resolutions, timing, energy).
* :mod:`petspect.metrics.nema` -- NEMA NU 2 image-quality analysis (when present).
"""

from __future__ import annotations

import importlib
from typing import Any

_ATTRS = {
    **{name: "petspect.metrics.image" for name in
       ("psnr", "ssim", "nrmse", "psnr_challenge", "ssim_challenge", "nrmse_challenge")},
    **{name: "petspect.metrics.quantitative" for name in
       ("region_bias", "region_stats", "suv_peak", "sphere_kernel", "contrast_recovery", "noise_bias_curve")},
    **{name: "petspect.metrics.distribution" for name in
       ("width_at_fraction", "gaussian_fit", "width_summary", "paired_bootstrap", "fwhm_improvement_ci")},
}
_SUBMODULES = {"image", "quantitative", "distribution", "nema"}


def _nema() -> Any:
    """The NEMA submodule, or None where this installation has none."""
    try:
        return importlib.import_module("petspect.metrics.nema")
    except ModuleNotFoundError as exc:
        if exc.name != "petspect.metrics.nema":
            raise
        return None


def __getattr__(name: str) -> Any:
    if name in _ATTRS:
        value = getattr(importlib.import_module(_ATTRS[name]), name)
    elif name == "nema":
        value = _nema()
        if value is None:
            raise AttributeError("module 'petspect.metrics' has no attribute 'nema'")
    elif name in _SUBMODULES:
        value = importlib.import_module(f"petspect.metrics.{name}")
    else:  # the NEMA functions (metrics/nema.py's __all__), loaded on first use
        nema = _nema() if not name.startswith("_") else None
        if nema is None or name not in getattr(nema, "__all__", ()):
            raise AttributeError(f"module 'petspect.metrics' has no attribute {name!r}")
        value = getattr(nema, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    nema = _nema()
    return sorted(set(globals()) | set(_ATTRS) | _SUBMODULES | set(getattr(nema, "__all__", ())))


__all__ = sorted(_ATTRS)
