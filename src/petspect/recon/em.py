"""MLEM and OSEM: maximum-likelihood expectation maximisation for emission tomography.

MLEM (Shepp & Vardi 1982; Lange & Carson 1984) maximises the Poisson log-likelihood
(:class:`~petspect.recon.objectives.PoissonLogLikelihood`) with the multiplicative update

.. math:: x_j \\leftarrow \\frac{x_j}{s_j} \\sum_i a_{ij} \\frac{y_i}{(A x)_i + b_i},
          \\qquad s = A^T 1,

which is gradient ascent preconditioned by ``diag(x / s)``:
``x + (x / s) * grad L(x) = (x / s) A^T (y / ybar)``. OSEM (Hudson & Larkin 1994) applies the same
update with the views of one subset at a time (``A_k``, ``y_k``, ``b_k``, ``s_k = A_k^T 1``); one
iteration visits every subset, and with one subset OSEM *is* MLEM.

Properties kept exactly
-----------------------
* Non-negativity: a non-negative start image stays non-negative.
* Count conservation (no additive term): ``sum_i (A x^{n+1})_i = sum_i y_i`` after every MLEM
  iteration, since ``s . x^{n+1} = sum_i y_i (A x^n)_i / ybar_i``.
* Zero sensitivity: voxels with ``s_j = 0`` (outside the field of view) are 0 and stay 0; a voxel not
  seen by subset ``k`` but seen by others is left unchanged by that subset's update.
* Zero counts: ``y / ybar`` is ``0/0 -> 0`` and the image becomes 0, finite.

Units: the image is in the units the operator maps from (Bq/mL with a calibrated system model).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from petspect.errors import InputError
from petspect.operators.base import LinearOperator
from petspect.recon.iterate import Callback, run_iterations
from petspect.recon.objectives import PoissonLogLikelihood, safe_divide

__all__ = ["em_update", "mlem", "osem", "start_image"]


def em_update(likelihood: PoissonLogLikelihood, x: torch.Tensor, k: int,
              denominator: torch.Tensor | None = None) -> torch.Tensor:
    """One EM update with subset ``k``: ``x * A_k^T(y_k / ybar_k) / s_k`` (see module notes at zeros).

    ``denominator`` replaces ``s_k`` (one-step-late MAP passes ``s_k + beta grad R``); voxels with
    ``s_k = 0`` are kept (or zeroed outside the support) either way.
    """
    sens_k = likelihood.sensitivity(k)
    den = sens_k if denominator is None else denominator
    upd = x * safe_divide(likelihood.ratio_backprojection(x, k), den)
    if likelihood.n_subsets == 1 and denominator is None:
        return upd
    seen_elsewhere = likelihood.sensitivity() > 0
    return torch.where(sens_k > 0, upd, torch.where(seen_elsewhere, x, torch.zeros_like(x)))


def start_image(likelihood: PoissonLogLikelihood, x0: torch.Tensor | None) -> torch.Tensor:
    """The start image: ``x0`` (checked, clipped to the support) or :meth:`PoissonLogLikelihood.initial_image`."""
    if x0 is None:
        return likelihood.initial_image()
    if tuple(x0.shape) != likelihood.image_shape:
        raise InputError(f"x0 shape {tuple(x0.shape)} != image shape {likelihood.image_shape}")
    if bool((x0 < 0).any()) or not bool(torch.isfinite(x0).all()):
        raise InputError("x0 must be finite and non-negative")
    x0 = x0.to(device=likelihood.device, dtype=likelihood.dtype)
    return torch.where(likelihood.sensitivity() > 0, x0, torch.zeros_like(x0))


def osem(operator: LinearOperator, data: torch.Tensor, *, additive: torch.Tensor | None = None, n_iter: int = 4,
         n_subsets: int = 8, x0: torch.Tensor | None = None, callback: Callback | list[Callback] | None = None,
         compute_objective: bool = False, post_filter: Callable[[torch.Tensor], torch.Tensor] | None = None,
         progress: bool | None = None, sensitivity: torch.Tensor | None = None) -> torch.Tensor:
    """Ordered-subsets expectation maximisation (Hudson & Larkin 1994).

    Parameters
    ----------
    operator : LinearOperator
        System model ``A`` (image -> expected counts), multiplicative corrections (attenuation,
        normalisation, calibration) included; needs a ``view_axis`` for ``n_subsets > 1``.
    data : torch.Tensor, shape ``operator.out_shape``
        Measured counts ``y``.
    additive : torch.Tensor, optional, shape ``operator.out_shape``
        Expected randoms + scatter ``b`` in counts.
    n_iter : int
        Iterations (each visits every subset once).
    n_subsets : int
        Number of subsets (interleaved views; 1 gives MLEM).
    x0 : torch.Tensor, optional, shape ``operator.in_shape``
        Start image (non-negative); default uniform with the data's net counts.
    callback : callable or list, optional
        ``callback(iteration, image, objective)`` after each iteration (see :mod:`petspect.recon.iterate`).
    compute_objective : bool
        Pass the Poisson log-likelihood of the whole data to the callbacks.
    post_filter : callable, optional
        Image-space filter applied to the final image.
    progress : bool, optional
        Progress bar on/off.
    sensitivity : torch.Tensor, optional
        List-mode EM (Parra & Barrett 1998): ``operator`` maps the image to each event's expected
        counts, ``data`` is all ones, ``additive`` the expected randoms + scatter of each event's bin, and
        ``sensitivity`` the scan's sensitivity image over all bins (see
        :class:`~petspect.recon.objectives.PoissonLogLikelihood`).

    Returns
    -------
    torch.Tensor, shape ``operator.in_shape``
        The image, non-negative, dtype and device of ``data``.
    """
    lik = PoissonLogLikelihood(operator, data, additive, n_subsets=n_subsets, sensitivity=sensitivity)
    x = start_image(lik, x0)
    name = "MLEM" if n_subsets == 1 else f"OSEM ({n_subsets} subsets)"
    return run_iterations(x, lambda v, k: em_update(lik, v, k), n_iter=n_iter, n_subsets=n_subsets,
                          objective=lik.value if compute_objective else None, callback=callback,
                          post_filter=post_filter, description=name, progress=progress)


def mlem(operator: LinearOperator, data: torch.Tensor, *, additive: torch.Tensor | None = None, n_iter: int = 20,
         x0: torch.Tensor | None = None, callback: Callback | list[Callback] | None = None,
         compute_objective: bool = False, post_filter: Callable[[torch.Tensor], torch.Tensor] | None = None,
         progress: bool | None = None, sensitivity: torch.Tensor | None = None) -> torch.Tensor:
    """Maximum-likelihood EM (Shepp & Vardi 1982): :func:`osem` with one subset; same parameters."""
    return osem(operator, data, additive=additive, n_iter=n_iter, n_subsets=1, x0=x0, callback=callback,
                compute_objective=compute_objective, post_filter=post_filter, progress=progress,
                sensitivity=sensitivity)
