"""The Poisson log-likelihood of emission data, split into ordered subsets.

Model (Shepp & Vardi 1982)
--------------------------
Counts ``y_i`` in projection bin ``i`` are independent Poisson variables with mean

.. math:: \\bar y_i(x) = (A x)_i + s_i

where ``A`` is the system model (a :class:`~petspect.operators.LinearOperator` that already holds the
multiplicative terms: attenuation factors, normalisation, sensitivity, scan time and voxel volume) and
``s`` the additive term (randoms + scatter, in expected counts). The log-likelihood, without the
constant ``-sum log y_i!``, is

.. math:: L(x) = \\sum_i y_i \\log \\bar y_i - \\bar y_i,

its gradient ``\\nabla L(x) = A^T (y / \\bar y - 1)`` and the sensitivity image ``s = A^T 1``.

Numerical choices
-----------------
* ``y / ybar`` is taken as 0 where ``ybar == 0`` (``0/0 -> 0``; a bin with counts but zero mean can only
  be reached by an image that is zero on the whole line, which EM cannot change anyway), and
  ``y log ybar`` as 0 where ``y == 0``. ``L`` is ``-inf`` when a bin with counts has zero mean.
* Ordered subsets (Hudson & Larkin 1994) split the bins along the operator's view axis with
  :meth:`~petspect.operators.LinearOperator.subset`; the subset operators, data and sensitivity
  images are built once and cached. Subset ``k`` of ``n`` holds views ``k, k + n, ...``.

The statistics live here, apart from the algorithms (:mod:`petspect.recon.em`, :mod:`petspect.recon.map`)
and the priors (:mod:`petspect.recon.priors`).
"""

from __future__ import annotations

import torch

from petspect.errors import InputError
from petspect.operators.base import LinearOperator
from petspect.physics.counts import check_nonnegative

__all__ = ["PoissonLogLikelihood", "safe_divide"]


def safe_divide(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` where ``den > 0``, else 0 (so ``0/0 -> 0`` and nothing is ever inf or nan)."""
    pos = den > 0
    return torch.where(pos, num / torch.where(pos, den, torch.ones_like(den)), torch.zeros_like(num))


def _check_data(t: torch.Tensor, shape: tuple[int, ...], name: str) -> torch.Tensor:
    t = check_nonnegative(t, name)
    if tuple(t.shape) != shape:
        raise InputError(f"{name} shape {tuple(t.shape)} != operator output shape {shape}")
    return t


class PoissonLogLikelihood:
    """Poisson log-likelihood ``L(x) = sum_i y_i log(A x + s)_i - (A x + s)_i`` with ordered subsets.

    Parameters
    ----------
    operator : LinearOperator
        System model ``A``: image (``in_shape``) -> expected counts (``out_shape``), multiplicative
        corrections included. Must have a ``view_axis`` when ``n_subsets > 1``.
    data : torch.Tensor, shape ``operator.out_shape``
        Measured counts ``y`` (prompts), non-negative.
    additive : torch.Tensor, optional, shape ``operator.out_shape``
        Expected additive counts ``s`` (randoms + scatter), non-negative; default zero.
    n_subsets : int
        Number of ordered subsets (1 = the whole data).
    sensitivity : torch.Tensor, optional, shape ``operator.in_shape``
        List-mode reconstruction: the operator maps the image to the expected counts *of each detected
        event's bin* (``data`` all ones), so ``A^T 1`` over events is not the sensitivity; pass the
        scan's sensitivity image ``A_bins^T 1`` (all bins, detected or not). Subset ``k`` then uses the
        share ``n_k / n`` of it (``n_k`` events in the subset) and ``L`` omits the constant
        ``-sum_i b_i`` over all bins (Parra & Barrett 1998, list-mode EM).

    Notes
    -----
    Device and dtype follow ``data``; the operator must live on the same device.
    """

    def __init__(self, operator: LinearOperator, data: torch.Tensor, additive: torch.Tensor | None = None, *,
                 n_subsets: int = 1, sensitivity: torch.Tensor | None = None) -> None:
        if not isinstance(operator, LinearOperator):
            raise InputError(f"operator must be a LinearOperator, got {type(operator).__name__}")
        self.operator = operator
        self.data = _check_data(data, operator.out_shape, "data")
        self.additive = None if additive is None else _check_data(additive, operator.out_shape, "additive").to(
            self.data.dtype)
        n_subsets = int(n_subsets)
        if n_subsets < 1:
            raise InputError(f"n_subsets must be >= 1, got {n_subsets}")
        if n_subsets > 1 and operator.view_axis is None:
            raise InputError(f"{type(operator).__name__} has no view axis: use n_subsets=1")
        if n_subsets > 1 and n_subsets > operator.n_views:
            raise InputError(f"n_subsets={n_subsets} exceeds the {operator.n_views} views")
        self.n_subsets = n_subsets
        self._ops = [operator.subset(k, n_subsets) for k in range(n_subsets)]
        self._y = [operator.take_subset(self.data, k, n_subsets) for k in range(n_subsets)]
        self._s = [None if self.additive is None else operator.take_subset(self.additive, k, n_subsets)
                   for k in range(n_subsets)]
        self._sens: dict[int | None, torch.Tensor] = {}
        self.listmode = sensitivity is not None
        if sensitivity is not None:
            if tuple(sensitivity.shape) != operator.in_shape:
                raise InputError(f"sensitivity shape {tuple(sensitivity.shape)} != image shape {operator.in_shape}")
            full = check_nonnegative(sensitivity, "sensitivity").to(self.data)
            self._sens[None] = full
            n = self.data.numel()
            for k in range(n_subsets):
                self._sens[k] = full * (self._y[k].numel() / n) if n_subsets > 1 else full

    # ------------------------------------------------------------------ pieces
    @property
    def image_shape(self) -> tuple[int, ...]:
        return self.operator.in_shape

    @property
    def dtype(self) -> torch.dtype:
        return self.data.dtype

    @property
    def device(self) -> torch.device:
        return self.data.device

    def _parts(self, k: int | None):
        if k is None:
            return self.operator, self.data, self.additive
        if not 0 <= k < self.n_subsets:
            raise InputError(f"subset {k} out of range 0..{self.n_subsets - 1}")
        return self._ops[k], self._y[k], self._s[k]

    def expected(self, x: torch.Tensor, k: int | None = None) -> torch.Tensor:
        """Expected counts ``A_k x + s_k`` of subset ``k`` (all data when ``k`` is None)."""
        op, _, s = self._parts(k)
        ybar = op.forward(x.to(self.dtype))
        return ybar if s is None else ybar + s

    def sensitivity(self, k: int | None = None) -> torch.Tensor:
        """Sensitivity image ``A_k^T 1`` (cached), shape ``image_shape``."""
        if k not in self._sens:
            op, y, _ = self._parts(k)
            self._sens[k] = op.adjoint(torch.ones_like(y))
        return self._sens[k]

    def ratio_backprojection(self, x: torch.Tensor, k: int | None = None) -> torch.Tensor:
        """EM numerator ``A_k^T (y_k / ybar_k)`` with ``0/0 -> 0``."""
        op, y, _ = self._parts(k)
        return op.adjoint(safe_divide(y, self.expected(x, k)))

    def gradient(self, x: torch.Tensor, k: int | None = None) -> torch.Tensor:
        """``grad L_k(x) = A_k^T (y_k / ybar_k - 1)`` (ascent direction)."""
        return self.ratio_backprojection(x, k) - self.sensitivity(k)

    def value(self, x: torch.Tensor, k: int | None = None) -> float:
        """``L_k(x) = sum y log ybar - ybar`` (float64 sum; ``-inf`` if a bin with counts has zero mean).

        List-mode: ``sum_events log ybar_e - s_k . x``.
        """
        _, y, _ = self._parts(k)
        ybar = self.expected(x, k).to(torch.float64)
        if self.listmode:  # sum over events of y log ybar, minus the expected trues of all bins s . x
            total = (self.sensitivity(k).to(torch.float64) * x.to(torch.float64)).sum()
            y64 = y.to(torch.float64)
            if bool(((ybar <= 0) & (y64 > 0)).any()):
                return float("-inf")
            return float((y64 * torch.log(torch.where(ybar > 0, ybar, torch.ones_like(ybar)))).sum() - total)
        y64 = y.to(torch.float64)
        if bool(((ybar <= 0) & (y64 > 0)).any()):
            return float("-inf")
        ylog = torch.where(y64 > 0, y64 * torch.log(torch.where(ybar > 0, ybar, torch.ones_like(ybar))),
                           torch.zeros_like(y64))
        return float((ylog - ybar).sum())

    def initial_image(self) -> torch.Tensor:
        """A uniform start image whose projection holds the net counts: ``c 1`` on the support of ``A^T 1``.

        ``c = sum(y - s)_+ / sum(A 1)``; voxels with zero sensitivity are 0 (and stay 0 under EM).
        A zero-count acquisition starts from ``1`` on the support (EM then returns zeros after one step).
        """
        ones = torch.ones(self.image_shape, dtype=self.dtype, device=self.device)
        proj_total = float((self.sensitivity() * ones).sum())  # = sum(A 1)
        net = float(self.data.sum()) - (0.0 if self.additive is None else float(self.additive.sum()))
        c = net / proj_total if proj_total > 0 and net > 0 else 1.0
        return torch.where(self.sensitivity() > 0, ones * c, torch.zeros_like(ones))
