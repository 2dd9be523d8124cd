"""One reconstruction entry point: ``reconstruct(system, data, spec)``.

The cohort engine (:mod:`petspect.simulate.subject`), the Python API and ``petspect recon`` all call
:func:`reconstruct` with a :class:`~petspect.systems.acquisition.SystemModel`, an
:class:`~petspect.systems.acquisition.AcquisitionData` and a typed :class:`ReconSpec`.

The MAP strength ``beta`` is relative
-------------------------------------
The Poisson log-likelihood is in counts and its gradient scales with the sensitivity image ``A^T 1``
(counts per unit image value, i.e. with the dose, the scan time and the calibration); the RDP and
quadratic penalties scale with the image values only. ``ReconSpec.beta`` is therefore relative: the
penalty weight used is ``beta * mean(A^T 1)`` over the voxels the system sees (:func:`absolute_beta`).
The same ``beta`` gives the same smoothing at 100 % and at 10 % of the counts and in any image unit;
0.01-0.1 are usual for RDP with ``gamma = 2`` on images in Bq/mL.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch

from petspect.errors import InputError
from petspect.operators.base import LinearOperator
from petspect.recon.em import mlem, osem
from petspect.recon.fbp_systems import fbp_pet_model, fbp_spect_model
from petspect.recon.map import bsrem
from petspect.recon.postfilter import gaussian_post_filter
from petspect.recon.priors import make_prior
from petspect.systems.acquisition import AcquisitionData, SystemModel, system_model
from petspect.systems.records import Modality
from petspect.volume import Volume

__all__ = ["Algorithm", "FbpWindow", "PriorKind", "ReconSpec", "absolute_beta", "reconstruct", "reconstruct_image"]


class Algorithm(str, Enum):
    """Reconstruction algorithm: filtered back-projection, MLEM, OSEM, or MAP (BSREM with a prior)."""

    FBP = "fbp"
    MLEM = "mlem"
    OSEM = "osem"
    MAP = "map"


class PriorKind(str, Enum):
    """MAP prior: relative difference (with ``gamma``) or quadratic."""

    RDP = "rdp"
    QUADRATIC = "quadratic"


class FbpWindow(str, Enum):
    """Apodisation window of the FBP ramp filter."""

    RAMP = "ramp"
    HANN = "hann"
    HAMMING = "hamming"
    SHEPP_LOGAN = "shepp-logan"
    COSINE = "cosine"


def _enum(cls: type[Enum], value: Any, what: str) -> Any:
    if isinstance(value, cls):
        return value
    try:
        return cls(str(value).lower().replace("_", "-") if cls is not Algorithm else str(value).lower())
    except ValueError:
        raise InputError(f"unknown {what} {value!r}; choose one of {[m.value for m in cls]}") from None


@dataclass(frozen=True)
class ReconSpec:
    """Settings of one reconstruction.

    Parameters
    ----------
    algorithm : Algorithm or str
        ``fbp``, ``mlem``, ``osem`` or ``map``.
    iterations : int
        Full passes over the data (ignored by FBP).
    subsets : int
        Ordered subsets of views (OSEM and MAP; MLEM uses 1).
    beta : float
        MAP prior strength **relative to the data's scale** (see the module docstring); 0 gives OSEM.
    prior : PriorKind or str
        ``rdp`` or ``quadratic``.
    gamma : float
        Edge preservation of the RDP (larger: more edge-preserving).
    post_filter_fwhm_mm : float, optional
        Isotropic Gaussian post-filter FWHM in mm (normalised at the grid borders); None: none.
    fbp_window : FbpWindow or str
        FBP ramp apodisation.
    fbp_cutoff : float
        FBP cut-off as a fraction of Nyquist, in (0, 1].
    """

    algorithm: Algorithm = Algorithm.OSEM
    iterations: int = 4
    subsets: int = 8
    beta: float = 0.0
    prior: PriorKind = PriorKind.RDP
    gamma: float = 2.0
    post_filter_fwhm_mm: float | None = None
    fbp_window: FbpWindow = FbpWindow.HANN
    fbp_cutoff: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "algorithm", _enum(Algorithm, self.algorithm, "algorithm"))
        object.__setattr__(self, "prior", _enum(PriorKind, self.prior, "prior"))
        object.__setattr__(self, "fbp_window", _enum(FbpWindow, self.fbp_window, "FBP window"))
        if self.algorithm is not Algorithm.FBP and int(self.iterations) < 1:
            raise InputError(f"iterations must be >= 1, got {self.iterations}")
        if int(self.subsets) < 1:
            raise InputError(f"subsets must be >= 1, got {self.subsets}")
        if not float(self.beta) >= 0:
            raise InputError(f"beta must be >= 0 (relative prior strength), got {self.beta}")
        if not float(self.gamma) > 0:
            raise InputError(f"gamma must be positive, got {self.gamma}")
        if self.post_filter_fwhm_mm is not None and not float(self.post_filter_fwhm_mm) >= 0:
            raise InputError(f"post_filter_fwhm_mm must be >= 0 mm, got {self.post_filter_fwhm_mm}")
        if not 0 < float(self.fbp_cutoff) <= 1:
            raise InputError(f"fbp_cutoff must be in (0, 1] (fraction of Nyquist), got {self.fbp_cutoff}")

    def to_dict(self) -> dict[str, Any]:
        """JSON form (enums as their values)."""
        return {f.name: (v.value if isinstance(v, Enum) else v)
                for f in dataclasses.fields(self) for v in [getattr(self, f.name)]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ReconSpec":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise InputError(f"unknown reconstruction settings {sorted(unknown)}; allowed: {sorted(names)}")
        return cls(**d)


def absolute_beta(operator: LinearOperator, beta_relative: float) -> float:
    """The penalty weight of a relative ``beta``: ``beta_relative`` times the mean sensitivity ``A^T 1``.

    The mean is over the voxels with positive sensitivity (those the system sees).
    """
    device = next((b.device for b in operator.buffers()), None) if hasattr(operator, "buffers") else None
    sens = operator.adjoint(torch.ones(operator.out_shape, dtype=torch.float32, device=device))
    inside = sens > 0
    if not bool(inside.any()):
        raise InputError("the system has zero sensitivity everywhere")
    return float(beta_relative) * float(sens[inside].mean())


def reconstruct(system: SystemModel, data: AcquisitionData, spec: ReconSpec, *,
                callback: Callable | None = None, compute_objective: bool = False,
                progress: bool | None = None) -> torch.Tensor:
    """Reconstruct ``data`` with ``system`` and ``spec``: the image tensor ``(z, y, x)`` in the image unit.

    Parameters
    ----------
    system : SystemModel
        The calibrated model (:func:`petspect.systems.acquisition.system_model`), with or without
        attenuation; its device is where the work runs.
    data : AcquisitionData
        Prompts and additive term (moved to the system's device).
    spec : ReconSpec
    callback, compute_objective : optional
        ``callback(iteration, image, objective)`` for iterative algorithms; the objective (Poisson
        log-likelihood, penalised for MAP) is computed only with ``compute_objective``.
    progress : bool, optional
        Progress bar over the iterations.
    """
    from petspect.systems.acquisition import check_acquisition_values

    check_acquisition_values(data)  # every algorithm, FBP included, refuses NaN data
    base = system.base
    device = next((b.device for b in base.buffers()), torch.device("cpu"))
    post = None
    if spec.post_filter_fwhm_mm:
        post = gaussian_post_filter(system.grid.shape, float(spec.post_filter_fwhm_mm), system.grid.spacing_mm)
    if spec.algorithm is Algorithm.FBP:
        img = _fbp(system, data, spec, device).to(torch.float32)
        return post(img) if post is not None else img
    op = system.operator
    y = data.prompts.to(device=device, dtype=torch.float32)
    b = None if data.additive is None else data.additive.to(device=device)
    if b is not None and not b.is_floating_point():
        b = b.to(torch.float32)
    common = {"additive": b, "n_iter": int(spec.iterations), "callback": callback,
              "compute_objective": compute_objective, "post_filter": post, "progress": progress}
    if spec.algorithm is Algorithm.MLEM:
        return mlem(op, y, **common)
    if spec.algorithm is Algorithm.OSEM:
        return osem(op, y, n_subsets=int(spec.subsets), **common)
    prior = make_prior(spec.prior.value, gamma=float(spec.gamma), spacing_mm=system.grid.spacing_mm)
    return bsrem(op, y, prior, absolute_beta(op, spec.beta), n_subsets=int(spec.subsets), **common)


def _fbp(system: SystemModel, data: AcquisitionData, spec: ReconSpec, device) -> torch.Tensor:
    """FBP of the prompts minus the additive term, corrected with the model's multiplicative terms.

    PET: the model's factors (attenuation when ``system`` has it) are divided out. SPECT: the projector
    without attenuation gives the line-integral scale; attenuation is corrected after FBP with Chang's
    first-order method when ``system`` is attenuation corrected.
    """
    net = data.prompts.to(device=device, dtype=torch.float64)
    if data.additive is not None:
        net = net - data.additive.to(net)
    window, cutoff = spec.fbp_window.value, float(spec.fbp_cutoff)
    if system.modality is Modality.PET:
        return fbp_pet_model(net, system.base, system.scale, window=window, cutoff=cutoff)
    projector = system.base.with_changes(mu=None) if system.mu_per_mm is not None else system.base
    return fbp_spect_model(net, projector, system.scale, mu_per_mm=system.mu_per_mm, window=window, cutoff=cutoff)


def reconstruct_image(data: AcquisitionData, spec: ReconSpec, *, attenuation: bool = True, device=None,
                      system: SystemModel | None = None, callback: Callable | None = None,
                      compute_objective: bool = False, progress: bool | None = None) -> Volume:
    """:func:`reconstruct` with the acquisition's own system model, as a Volume on its image grid.

    Parameters
    ----------
    data : AcquisitionData
    spec : ReconSpec
    attenuation : bool
        Attenuation correction (PET: the model with attenuation factors; SPECT: the projector with mu,
        or Chang's correction after FBP).
    device : optional
        Compute device.
    system : SystemModel, optional
        The model to use instead of building it from ``data`` (``attenuation`` and ``device`` are then
        the model's): a cohort reuses one model for all the levels of a scan.

    Returns
    -------
    Volume
        Unit of the calibration ("Bq/mL"; "a.u." for measured data without a sensitivity), modality
        "PT" or "NM"; ``meta`` records the algorithm and its settings.
    """
    if system is None:
        system = system_model(data, attenuation=attenuation, device=device)
    img = reconstruct(system, data, spec, callback=callback, compute_objective=compute_objective, progress=progress)
    settings = spec.to_dict()
    if spec.algorithm is not Algorithm.MAP:
        settings.update(beta=0.0, prior="none")
    if spec.algorithm is Algorithm.MLEM:
        settings["subsets"] = 1
    ac: bool | str = system.attenuation_corrected
    if ac and spec.algorithm is Algorithm.FBP and system.modality is Modality.SPECT:
        ac = "chang"
    meta = {**settings, "attenuation_corrected": ac, "system": data.system.preset,
            "tof": bool(getattr(data.system, "tof", False)), "calibration_mode": data.calibration.mode,
            "count_fraction": data.calibration.count_fraction}
    return data.image_volume(img.detach().cpu(), unit=data.calibration.unit,
                             modality="PT" if data.modality is Modality.PET else "NM", meta=meta)
