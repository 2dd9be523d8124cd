"""Data consistency: the Poisson deviance of an image's forward projection against the measured data.

For an image ``x`` (Bq/mL on the acquisition's grid) the expected counts are ``ybar = c A x + b`` with the
acquisition's own calibrated system model ``c A`` (attenuation, normalisation, resolution model: the
corrections the reconstruction uses, :func:`petspect.systems.acquisition.system_model`) and its additive term
``b`` (estimated randoms + scatter, PET; TEW scatter, SPECT). The Poisson deviance

.. math:: D(x) = 2 \\sum_i \\left[ y_i \\log \\frac{y_i}{\\bar y_i} - (y_i - \\bar y_i) \\right]

is twice the log-likelihood ratio of ``x`` against the saturated model (McCullagh & Nelder, Generalized Linear
Models, 2nd ed., 1989, sec. 2.3). It is 0 only when ``ybar == y``, grows when the image adds or removes
activity the data do not support (a hallucinated or erased lesion, a biased uptake) and needs no ground truth.
For data drawn from ``ybar`` itself its expectation per bin is about 1 at high counts and below 1 at low
counts, so ``deviance_per_bin`` near 1 says "as consistent as the noise allows".

Terms: ``y log(y / ybar)`` is 0 where ``y == 0``; a bin with counts but ``ybar <= 0`` makes ``D`` infinite
(the image cannot have produced those counts).

The per-bin deviance is summed into a map ``(planes, views)`` (PET: sinogram planes x views, summed over radial
bins and TOF bins; SPECT: detector rows x views, summed over columns, the rows reordered inferior first like the
image's z axis), and its margins per view and per plane,
so a localised inconsistency (one bad slice, a patient motion between views) is visible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from petspect.errors import GeometryError, InputError
from petspect.systems.acquisition import AcquisitionData, SystemModel, system_model
from petspect.systems.records import Modality

__all__ = ["ConsistencyResult", "poisson_deviance_terms", "data_consistency", "check_image_on_grid"]


@dataclass
class ConsistencyResult:
    """The data consistency of one image against one acquisition.

    Attributes
    ----------
    deviance : float
        Total Poisson deviance ``D`` (dimensionless; ``inf`` when a bin with counts has zero mean).
    deviance_per_bin : float
        ``D`` divided by the number of projection bins.
    n_bins : int
    plane_view_map : torch.Tensor, shape ``(planes, views)``
        Deviance summed per sinogram plane (PET) or detector row (SPECT) and view.
    per_view : torch.Tensor, shape ``(views,)``
    per_plane : torch.Tensor, shape ``(planes,)``
    measured_counts, expected_counts : float
        ``sum y`` and ``sum ybar`` (a global bias shows as their ratio).
    modality : str
    """

    deviance: float
    deviance_per_bin: float
    n_bins: int
    plane_view_map: torch.Tensor
    per_view: torch.Tensor
    per_plane: torch.Tensor
    measured_counts: float
    expected_counts: float
    modality: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form: the scalars, the margins as lists (the map stays a tensor: write it with numpy)."""
        return {"deviance": self.deviance, "deviance_per_bin": self.deviance_per_bin, "n_bins": self.n_bins,
                "measured_counts": self.measured_counts, "expected_counts": self.expected_counts,
                "expected_over_measured": (self.expected_counts / self.measured_counts
                                           if self.measured_counts > 0 else None),
                "per_view": self.per_view.tolist(), "per_plane": self.per_plane.tolist(),
                "map_shape": list(self.plane_view_map.shape), "map_axes": ["plane", "view"],
                "modality": self.modality}


def poisson_deviance_terms(y: torch.Tensor, ybar: torch.Tensor) -> torch.Tensor:
    """Per-bin deviance ``2 [y log(y / ybar) - (y - ybar)]`` (float64), ``inf`` where ``y > 0`` and ``ybar <= 0``.

    Parameters
    ----------
    y : torch.Tensor
        Measured counts (non-negative).
    ybar : torch.Tensor, same shape
        Expected counts.
    """
    if tuple(y.shape) != tuple(ybar.shape):
        raise InputError(f"measured shape {tuple(y.shape)} != expected shape {tuple(ybar.shape)}")
    y64, m64 = y.to(torch.float64), ybar.to(device=y.device, dtype=torch.float64)
    if bool((y64 < 0).any()) or not bool(torch.isfinite(y64).all()):
        raise InputError("measured counts must be finite and non-negative")
    if not bool(torch.isfinite(m64).all()):
        raise InputError("expected counts are not finite (the image holds NaN or inf)")
    pos_m = m64 > 0
    safe_m = torch.where(pos_m, m64, torch.ones_like(m64))
    safe_y = torch.where(y64 > 0, y64, torch.ones_like(y64))
    ylog = torch.where(y64 > 0, y64 * torch.log(safe_y / safe_m), torch.zeros_like(y64))
    terms = 2.0 * (ylog - (y64 - m64))
    return torch.where((y64 > 0) & ~pos_m, torch.full_like(terms, math.inf), terms)


def check_image_on_grid(image: torch.Tensor, data: AcquisitionData, *, spacing_mm=None, where: Any = None,
                        volume: Any = None) -> None:
    """Refuse an image that is not on the acquisition's image grid: shape; voxel size when given; and, for a
    ``volume`` (a read image file), the placement (direction, and origin within half a voxel) when the acquisition
    records one, so a flipped or shifted image is not silently compared with the data."""
    if tuple(image.shape) != tuple(data.grid.shape):
        raise GeometryError(f"image shape {tuple(image.shape)} != the acquisition's image grid {tuple(data.grid.shape)} "
                            "(z, y, x); resample the image onto the reconstruction grid first", path=where)
    if spacing_mm is not None:
        want = tuple(float(v) for v in data.grid.spacing_mm)
        if any(abs(float(a) - b) > 1e-3 * max(1.0, b) for a, b in zip(spacing_mm, want)):
            raise GeometryError(f"image voxels {tuple(float(v) for v in spacing_mm)} mm != the acquisition's "
                                f"{want} mm", path=where)
    if volume is not None and data.grid.origin_mm is not None:
        import numpy as np

        ref = data.grid.volume(torch.zeros(1, 1, 1))
        d_img, d_ref = np.asarray(volume.direction, float), np.asarray(ref.direction, float)
        off = np.abs(np.asarray(volume.origin_mm, float) - np.asarray(ref.origin_mm, float))
        if not np.allclose(d_img, d_ref, atol=1e-4) or bool((off > 0.5 * min(data.grid.spacing_mm)).any()):
            raise GeometryError(f"image placement (origin {tuple(np.round(volume.origin_mm, 2))} mm, axes "
                                f"{d_img.round(3).tolist()}) differs from the acquisition's image grid (origin "
                                f"{tuple(np.round(ref.origin_mm, 2))} mm, axes {d_ref.round(3).tolist()}); resample the "
                                "image onto the reconstruction grid first", path=where)


def _plane_view(terms: torch.Tensor, modality: Modality) -> torch.Tensor:
    """Sum per-bin terms into ``(planes, views)``."""
    if modality is Modality.PET:  # (planes, views, radial[, tof])
        return terms.sum(dim=tuple(range(2, terms.ndim)))
    # SPECT (views, rows, cols) -> (rows, views); rows run superior first, planes like the image's z (inferior first)
    return terms.sum(dim=2).transpose(0, 1).flip(0)


def data_consistency(image: torch.Tensor, data: AcquisitionData, *, system: SystemModel | None = None,
                     attenuation: bool = True, device=None) -> ConsistencyResult:
    """The Poisson deviance of ``image`` against ``data`` with the acquisition's own corrections.

    Parameters
    ----------
    image : torch.Tensor, shape ``data.grid.shape`` (z, y, x)
        Activity in the calibration's unit (Bq/mL for simulated and calibrated data), non-negative expected;
        negative values (FBP) are kept, and bins whose expectation is not positive count as impossible.
    data : AcquisitionData
        Prompts and additive term (the level's own estimate for a cohort level).
    system : SystemModel, optional
        The model to use (default :func:`~petspect.systems.acquisition.system_model` of ``data``).
    attenuation : bool
        Model attenuation (as an attenuation-corrected reconstruction does).
    device : optional
        Compute device.

    Returns
    -------
    ConsistencyResult
    """
    if not isinstance(image, torch.Tensor):
        image = torch.as_tensor(image)
    check_image_on_grid(image, data)
    if not bool(torch.isfinite(image).all()):
        raise InputError("the image holds NaN or inf values")
    if system is None:
        system = system_model(data, attenuation=attenuation, device=device)
    op = system.operator
    dev = next((b.device for b in op.buffers()), torch.device("cpu"))
    with torch.no_grad():
        ybar = op(image.to(device=dev, dtype=torch.float32)).to(torch.float64)
        if data.additive is not None:
            ybar = ybar + data.additive.to(device=dev, dtype=torch.float64)
        y = data.prompts.to(device=dev)
        terms = poisson_deviance_terms(y, ybar)
    pv = _plane_view(terms, data.modality).cpu()
    total = float(terms.sum())
    return ConsistencyResult(deviance=total, deviance_per_bin=total / terms.numel(), n_bins=int(terms.numel()),
                             plane_view_map=pv.to(torch.float32), per_view=pv.sum(0), per_plane=pv.sum(1),
                             measured_counts=float(y.to(torch.float64).sum()), expected_counts=float(ybar.sum()),
                             modality=data.modality.value)


def write_consistency(result: ConsistencyResult, folder, *, stem: str = "consistency",
                      facts: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``<stem>.json`` (the scalars, margins and ``facts``) and ``<stem>_map.npy`` (float32 ``(planes, views)``)
    into ``folder`` atomically; returns ``{"json": path, "map": path}``.

    The caller checks or claims ``folder`` first (:func:`petspect._fileio.claim_output_folder`).
    """
    from pathlib import Path

    import numpy as np

    from petspect._fileio import atomic_path
    from petspect._json import write_json

    out = Path(folder)
    paths = {"json": out / f"{stem}.json", "map": out / f"{stem}_map.npy"}
    with atomic_path(paths["map"]) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, result.plane_view_map.numpy().astype(np.float32))
    write_json(paths["json"], {**result.to_dict(), "map_file": paths["map"].name, **(facts or {})}, nonfinite="null")
    return paths
