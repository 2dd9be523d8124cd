"""Maximum a posteriori (penalised-likelihood) reconstruction: BSREM and one-step-late OSEM.

Both maximise the penalised Poisson log-likelihood

.. math:: \\Phi(x) = L(x) - \\beta R(x), \\qquad x \\ge 0,

with ``L`` the Poisson log-likelihood (:class:`~petspect.recon.objectives.PoissonLogLikelihood`) and ``R``
a prior (:mod:`petspect.recon.priors`). Like OSEM they are preconditioned gradient ascent over ordered
subsets; they differ only in the preconditioner and step:

* **BSREM** (block sequential regularised EM; De Pierro & Yamagishi 2001, Ahn & Fessler 2003, after
  De Pierro's 1995 EM-type preconditioning of penalised likelihood, IEEE TMI 14:132):
  ``x <- P[x + alpha_n D(x) (grad L_k(x) - (beta / M) grad R(x))]`` with the EM-like preconditioner
  ``D(x) = M x / (s + beta x h(x))`` (``s = A^T 1``, ``M`` subsets, ``h`` the diagonal of the prior's
  Hessian, :meth:`~petspect.recon.priors.Prior.curvature`; the same for every subset, as the
  convergence proof asks) and a relaxation ``alpha_n = alpha_0 / (1 + decay * n)`` that goes to 0 over
  iterations ``n`` so the subset iterates converge to the MAP solution. The curvature term keeps the
  prior's part of a step at most a Newton step on ``R`` (``-grad R / h`` where the data carry no
  weight), which keeps large ``beta`` stable; with ``beta = 0`` it is the plain EM preconditioner
  ``x / (s / M)``. ``P`` clips to ``[floor, upper_bound]`` on
  the support (``floor`` a tiny fraction of the mean so voxels do not stick at 0; 0 outside the
  support). With one subset, ``alpha_0 = 1`` and ``beta = 0`` the update is exactly MLEM.
* **OSL** (one-step-late; Green 1990): ``x <- x A_k^T(y_k / ybar_k) / (s_k + (beta / M) grad R(x))``,
  the prior gradient taken at the current iterate. Simple, but not convergent for large ``beta``: where
  the denominator falls below ``min_denominator_fraction * s_k`` it is clipped to that value (documented
  safeguard: the step then behaves like EM with a capped prior push). ``beta = 0`` gives OSEM exactly.

``beta`` multiplies the prior as written in :mod:`petspect.recon.priors`; its useful range depends on the
counts and the image scale (the RDP is of degree 1 in ``x``, the quadratic of degree 2).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from petspect.errors import InputError
from petspect.operators.base import LinearOperator
from petspect.recon.em import em_update, start_image
from petspect.recon.iterate import Callback, run_iterations
from petspect.recon.objectives import PoissonLogLikelihood, safe_divide
from petspect.recon.priors import Prior

__all__ = ["bsrem", "osl_osem", "penalised_objective"]


def penalised_objective(likelihood: PoissonLogLikelihood, prior: Prior, beta: float) -> Callable[[torch.Tensor], float]:
    """``x -> L(x) - beta R(x)`` on the whole data (for callbacks)."""
    return lambda x: likelihood.value(x) - beta * float(prior.value(x))


def _check_map_args(prior: Prior, beta: float) -> float:
    if not isinstance(prior, Prior):
        raise InputError(f"prior must be a petspect.recon.priors.Prior, got {type(prior).__name__}")
    beta = float(beta)
    if not beta >= 0:
        raise InputError(f"beta must be >= 0, got {beta}")
    return beta


def _run_map(lik, prior, beta, x, step, *, n_iter, callback, compute_objective, post_filter, name, progress):
    return run_iterations(x, step, n_iter=n_iter, n_subsets=lik.n_subsets,
                          objective=penalised_objective(lik, prior, beta) if compute_objective else None,
                          callback=callback, post_filter=post_filter, description=name, progress=progress)


def bsrem(operator: LinearOperator, data: torch.Tensor, prior: Prior, beta: float, *,
          additive: torch.Tensor | None = None, n_iter: int = 10, n_subsets: int = 8, relaxation: float = 1.0,
          relaxation_decay: float = 0.1, upper_bound: float | None = None, floor_fraction: float = 1e-6,
          x0: torch.Tensor | None = None, callback: Callback | list[Callback] | None = None,
          compute_objective: bool = False, post_filter: Callable[[torch.Tensor], torch.Tensor] | None = None,
          progress: bool | None = None) -> torch.Tensor:
    """BSREM (Ahn & Fessler 2003): relaxed, preconditioned ordered-subsets ascent on ``L - beta R``.

    Parameters
    ----------
    operator, data, additive
        As in :func:`~petspect.recon.em.osem` (system model with multiplicative terms, counts, randoms +
        scatter).
    prior : Prior
        Penalty ``R`` (:class:`~petspect.recon.priors.RelativeDifferencePrior`, ...).
    beta : float
        Penalty strength (>= 0).
    n_iter, n_subsets : int
        Iterations and ordered subsets.
    relaxation, relaxation_decay : float
        ``alpha_n = relaxation / (1 + relaxation_decay * n)`` for iteration ``n = 0, 1, ...``.
    upper_bound : float, optional
        Upper clip of the image (Ahn & Fessler's ``U``); default none.
    floor_fraction : float
        Lower clip on the support, as a fraction of the current mean image value.
    x0, callback, compute_objective, post_filter, progress
        As in :func:`~petspect.recon.em.osem`; the objective is ``L(x) - beta R(x)``.

    Returns
    -------
    torch.Tensor, shape ``operator.in_shape``
        Non-negative image; exactly 0 where the sensitivity is 0.
    """
    beta = _check_map_args(prior, beta)
    if not relaxation > 0 or relaxation_decay < 0:
        raise InputError(f"need relaxation > 0 and relaxation_decay >= 0, got {relaxation}, {relaxation_decay}")
    lik = PoissonLogLikelihood(operator, data, additive, n_subsets=n_subsets)
    x = start_image(lik, x0)
    m = lik.n_subsets
    sens = lik.sensitivity()
    support = sens > 0
    counter = {"sub": 0}

    def step(v: torch.Tensor, k: int) -> torch.Tensor:
        alpha = relaxation / (1.0 + relaxation_decay * (counter["sub"] // m))
        counter["sub"] += 1
        grad = lik.gradient(v, k)
        precond_den = sens / m
        if beta > 0:
            grad = grad - (beta / m) * prior.gradient(v)
            precond_den = (sens + beta * v * prior.curvature(v)) / m
        new = v + alpha * safe_divide(v, precond_den) * grad
        floor = floor_fraction * float(v[support].mean()) if bool(support.any()) else 0.0
        new = new.clamp(min=floor, max=upper_bound)
        return torch.where(support, new, torch.zeros_like(new))

    return _run_map(lik, prior, beta, x, step, n_iter=n_iter, callback=callback,
                    compute_objective=compute_objective, post_filter=post_filter,
                    name=f"BSREM ({n_subsets} subsets)", progress=progress)


def osl_osem(operator: LinearOperator, data: torch.Tensor, prior: Prior, beta: float, *,
             additive: torch.Tensor | None = None, n_iter: int = 10, n_subsets: int = 8,
             min_denominator_fraction: float = 0.01, x0: torch.Tensor | None = None,
             callback: Callback | list[Callback] | None = None, compute_objective: bool = False,
             post_filter: Callable[[torch.Tensor], torch.Tensor] | None = None,
             progress: bool | None = None) -> torch.Tensor:
    """One-step-late MAP-OSEM (Green 1990) on ``L - beta R``.

    Parameters
    ----------
    operator, data, additive, n_iter, n_subsets, x0, callback, compute_objective, post_filter, progress
        As in :func:`~petspect.recon.em.osem`.
    prior : Prior
        Penalty ``R``.
    beta : float
        Penalty strength (>= 0); 0 gives OSEM exactly.
    min_denominator_fraction : float
        Safeguard: the OSL denominator ``s_k + (beta/M) grad R`` is kept >= this fraction of ``s_k``.

    Returns
    -------
    torch.Tensor, shape ``operator.in_shape``
        Non-negative image.
    """
    beta = _check_map_args(prior, beta)
    if not 0 < min_denominator_fraction <= 1:
        raise InputError(f"min_denominator_fraction must be in (0, 1], got {min_denominator_fraction}")
    lik = PoissonLogLikelihood(operator, data, additive, n_subsets=n_subsets)
    x = start_image(lik, x0)
    m = lik.n_subsets

    def step(v: torch.Tensor, k: int) -> torch.Tensor:
        if beta == 0:
            return em_update(lik, v, k)
        sens_k = lik.sensitivity(k)
        den = torch.maximum(sens_k + (beta / m) * prior.gradient(v), min_denominator_fraction * sens_k)
        return em_update(lik, v, k, denominator=den)

    return _run_map(lik, prior, beta, x, step, n_iter=n_iter, callback=callback,
                    compute_objective=compute_objective, post_filter=post_filter,
                    name=f"OSL-OSEM ({n_subsets} subsets)", progress=progress)
