"""MLAA: joint maximum-likelihood estimation of activity and attenuation from TOF PET data.

Alternates (Rezaei et al, IEEE TMI 31:2224, 2012; Nuyts et al, IEEE TMI 18:393, 1999):

1. **activity**: OSEM iterations with the attenuation factors ``a = exp(-L mu)`` of the current ``mu``
   (TOF system model ``y ~ P(c diag(n a) P_tof x + b)``);
2. **attenuation**: MLTR steps on the TOF-summed data with the current activity. With the unattenuated
   expected trues ``t_i = sum_t (c n P_tof x)_it``, ``psi_i = a_i t_i`` and ``ybar_i = psi_i + b_i``::

       mu_j <- mu_j + [sum_i l_ij psi_i (1 - y_i / ybar_i) - R'(mu)_j] / [sum_i l_ij (L 1)_i psi_i^2 / ybar_i + R''_j]

   (a separable-surrogate Newton step; ``L`` the non-TOF line-integral projector), clipped to
   ``[0, mu_max_per_mm]`` and to the ``support``.

Without TOF the problem has cross-talk between activity and attenuation and is refused. With TOF the
attenuation sinogram is determined only up to a constant factor on the lines through the activity
(Defrise et al, PMB 57:885, 2012): the activity up to the inverse factor. This is resolved here by a
quadratic **prior towards a reference map** ``mu_prior`` (e.g. the segmentation-based map of
:mod:`petspect.ac.segmentation_ac`), weight ``prior_weight``, plus optional quadratic smoothing between
neighbours (``smoothing_weight``). Both weights are relative to the mean MLTR curvature, so they do not
depend on the counts; with ``prior_weight = 0`` the global scale is left as the data make it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from petspect.errors import InputError
from petspect.recon.em import osem
from petspect.systems.acquisition import AcquisitionData, system_model
from petspect.systems.records import PetSystemSpec

__all__ = ["MlaaSettings", "MlaaResult", "mlaa"]


@dataclass(frozen=True)
class MlaaSettings:
    """Iterations and penalties of :func:`mlaa` (see the module docstring).

    Parameters
    ----------
    iterations : int
        Outer iterations (one activity update and one attenuation update each).
    activity_iterations, subsets : int
        OSEM passes and subsets of each activity update.
    mu_iterations : int
        MLTR steps of each attenuation update.
    prior_weight : float
        Weight of ``sum (mu - mu_prior)^2 / 2`` relative to the mean MLTR curvature (0: none).
    smoothing_weight : float
        Weight of the quadratic difference penalty between 6-neighbours, same scale (0: none).
    mu_max_per_mm : float
        Upper bound of mu (1/mm; cortical bone ~0.017).
    """

    iterations: int = 10
    activity_iterations: int = 1
    subsets: int = 4
    mu_iterations: int = 2
    prior_weight: float = 0.05
    smoothing_weight: float = 0.02
    mu_max_per_mm: float = 0.03

    def __post_init__(self) -> None:
        for name in ("iterations", "activity_iterations", "subsets", "mu_iterations"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.prior_weight < 0 or self.smoothing_weight < 0:
            raise InputError("prior_weight and smoothing_weight must be >= 0")
        if not 0 < self.mu_max_per_mm <= 0.05:
            raise InputError(f"mu_max_per_mm must be in (0, 0.05] 1/mm, got {self.mu_max_per_mm}")


@dataclass
class MlaaResult:
    """Activity (image unit of the data), attenuation map (1/mm) and attenuation factors (non-TOF sinogram)."""

    activity: torch.Tensor
    mu_per_mm: torch.Tensor
    attenuation: torch.Tensor
    log_likelihood: list[float] = field(default_factory=list)


def _laplacian_terms(mu: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``sum over neighbours (mu_j - mu_k)`` (gradient of half the squared differences) and the neighbour count."""
    grad = torch.zeros_like(mu)
    n = 0
    for axis in range(mu.ndim):
        if mu.shape[axis] < 2:
            continue
        d = torch.diff(mu, dim=axis)
        pad_lo = [0, 0] * mu.ndim
        pad_hi = [0, 0] * mu.ndim
        pad_lo[2 * (mu.ndim - 1 - axis)] = 1
        pad_hi[2 * (mu.ndim - 1 - axis) + 1] = 1
        grad = grad + torch.nn.functional.pad(d, pad_lo) - torch.nn.functional.pad(d, pad_hi)
        n += 2
    return -grad, n  # sum_k (mu_j - mu_k)


def mlaa(data: AcquisitionData, mu_init: torch.Tensor, *, settings: MlaaSettings | None = None,
         mu_prior: torch.Tensor | None = None, support: torch.Tensor | None = None,
         x0: torch.Tensor | None = None, device=None) -> MlaaResult:
    """Joint activity and attenuation from TOF PET data (module docstring).

    Parameters
    ----------
    data : AcquisitionData
        TOF PET prompts with their additive term and normalisation; its ``attenuation`` is ignored.
    mu_init : torch.Tensor, shape (nz, ny, nx)
        Start attenuation map, 1/mm (e.g. a body outline filled with water).
    settings : MlaaSettings, optional
    mu_prior : torch.Tensor, optional
        Reference map of the prior (default: ``mu_init``).
    support : torch.Tensor of bool, optional
        Voxels where mu may be non-zero (default: everywhere).
    x0 : torch.Tensor, optional
        Start activity (default: uniform).

    Returns
    -------
    MlaaResult
    """
    s = settings or MlaaSettings()
    if not isinstance(data.system, PetSystemSpec):
        raise InputError("MLAA is a PET method; SPECT attenuation needs a map (or Chang's correction)")
    if not data.system.tof or data.prompts.ndim != 4:
        raise InputError("MLAA needs TOF data: without time of flight activity and attenuation are not jointly "
                         "identifiable (cross-talk); use segmentation-based AC instead")
    mu = torch.as_tensor(mu_init, dtype=torch.float32).clone()
    if tuple(mu.shape) != data.grid.shape:
        raise InputError(f"mu_init shape {tuple(mu.shape)} != image grid {data.grid.shape}")
    if not bool(torch.isfinite(mu).all()) or bool((mu < 0).any()) or float(mu.max()) > 0.05:
        raise InputError("mu_init must be finite, >= 0 and in 1/mm (max 0.05)")
    prior = mu.clone() if mu_prior is None else torch.as_tensor(mu_prior, dtype=torch.float32)
    mask = torch.ones_like(mu, dtype=torch.bool) if support is None else torch.as_tensor(support, dtype=torch.bool)
    if tuple(prior.shape) != tuple(mu.shape) or tuple(mask.shape) != tuple(mu.shape):
        raise InputError("mu_prior and support must have the shape of mu_init")
    mu = torch.where(mask, mu, torch.zeros_like(mu))
    free = replace(data, attenuation=None)
    model = system_model(free, attenuation=False, device=device)  # c diag(n) P_tof [G]
    dev = next((b.device for b in model.base.buffers()), torch.device("cpu"))
    line = model.base.projector.non_tof()
    y = data.prompts.to(dev, torch.float32)
    b = torch.zeros_like(y) if data.additive is None else data.additive.to(dev, torch.float32)
    y_sum, b_sum = y.sum(-1), b.sum(-1)
    ones_len = line.forward(torch.ones(data.grid.shape, device=dev))
    x = x0
    history: list[float] = []
    for _ in range(int(s.iterations)):
        att = torch.exp(-line.forward(mu.to(dev)))
        with_att = system_model(replace(data, attenuation=att.cpu()), attenuation=True, device=device)
        x = osem(with_att.operator, y, additive=b, n_iter=int(s.activity_iterations), n_subsets=int(s.subsets),
                 x0=x, progress=False)
        trues = model.operator.forward(x).sum(-1)  # unattenuated expected trues, TOF summed
        for _ in range(int(s.mu_iterations)):
            att = torch.exp(-line.forward(mu.to(dev)))
            psi = att * trues
            ybar = (psi + b_sum).clamp_min(1e-12)
            grad = line.adjoint(psi * (1.0 - y_sum / ybar))
            curv = line.adjoint(ones_len * psi * psi / ybar)
            scale = float(curv[mask.to(dev)].mean().clamp_min(1e-30))
            lap, n_nb = _laplacian_terms(mu.to(dev))
            pen_grad = s.prior_weight * scale * (mu.to(dev) - prior.to(dev)) + s.smoothing_weight * scale * lap
            pen_curv = (s.prior_weight + n_nb * s.smoothing_weight) * scale
            step = (grad - pen_grad) / (curv + pen_curv).clamp_min(1e-30)
            mu = (mu.to(dev) + step).clamp(0.0, s.mu_max_per_mm).cpu()
            mu = torch.where(mask, mu, torch.zeros_like(mu))
        att = torch.exp(-line.forward(mu.to(dev)))
        ybar = (att * trues + b_sum).clamp_min(1e-12)
        history.append(float((y_sum * torch.log(ybar) - ybar).sum()))
    att = torch.exp(-line.forward(mu.to(dev)))
    final = system_model(replace(data, attenuation=att.cpu()), attenuation=True, device=device)
    x = osem(final.operator, y, additive=b, n_iter=int(s.activity_iterations), n_subsets=int(s.subsets), x0=x,
             progress=False)  # the activity that goes with the final attenuation
    return MlaaResult(activity=x.detach().cpu(), mu_per_mm=mu, attenuation=att.cpu(), log_likelihood=history)
