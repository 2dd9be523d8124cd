"""petspect: physics-grounded deep learning for PET and SPECT.

Importing the package is silent and cheap: sub-packages (io, phantoms, projectors, recon, nn, ...)
are loaded on first attribute access.

Conventions used everywhere
---------------------------
* Voxel order is ``(z, y, x)``; spacings and positions are in mm.
* Patient coordinates follow DICOM LPS (x to the patient's Left, y Posterior, z Superior).
* Time in s, energy in keV, activity in Bq, activity concentration in Bq/mL, dose in Gy.
  Names carry a unit suffix when a quantity is not in those base units (``fwhm_mm``, ``tof_fwhm_ps``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_SUBMODULES = {
    "io", "phantoms", "geometry", "operators", "projectors", "physics", "recon", "simulate", "nn",
    "train", "tasks", "metrics", "report", "detector", "nuclides", "materials", "units", "volume",
    "errors", "cli",
}
_ATTRS = {
    "Volume": ("petspect.volume", "Volume"),
    "PetspectError": ("petspect.errors", "PetspectError"),
}

if TYPE_CHECKING:  # pragma: no cover
    from petspect.errors import PetspectError
    from petspect.volume import Volume


def __getattr__(name: str) -> Any:
    if name in _ATTRS:
        module_name, attr = _ATTRS[name]
        value = getattr(importlib.import_module(module_name), attr)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"petspect.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'petspect' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SUBMODULES | set(_ATTRS))


__all__ = ["Volume", "PetspectError", "__version__"]
