"""Linear operators in torch: forward, adjoint, shapes, composition, norm and autograd.

Every system model in petspect (PET and SPECT projectors, attenuation, normalisation, resolution
models) is a :class:`LinearOperator`. An operator is a ``torch.nn.Module`` so the tensors it holds
are buffers that move with ``.to(device)``; device and dtype follow the input.

Public methods (``forward``/``apply``, ``adjoint``) check shapes; subclasses implement the maths in
``_forward`` (never ``_apply``: that name belongs to nn.Module) and ``_adjoint``.

Ordered subsets
---------------
Projection operators whose output has a view axis implement :meth:`LinearOperator.subset`, which
returns the operator restricted to the views ``k, k + n, k + 2n, ...`` and the index tensor of those
views; :meth:`LinearOperator.take_subset` slices matching data. Element-wise operators in projection
space (attenuation factors, normalisation) subset along the same axis, and compositions subset their
parts, so OSEM works on any composed system model.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence

import torch

from petspect.errors import InputError

Shape = tuple[int, ...]


def subset_view_indices(n_views: int, k: int, n_subsets: int, device=None) -> torch.Tensor:
    """Views of subset ``k`` of ``n_subsets``: ``k, k + n, k + 2n, ...`` (interleaved, standard OSEM)."""
    if not (1 <= n_subsets <= n_views):
        raise InputError(f"n_subsets must be in 1..{n_views}, got {n_subsets}")
    if not (0 <= k < n_subsets):
        raise InputError(f"subset index must be in 0..{n_subsets - 1}, got {k}")
    return torch.arange(k, n_views, n_subsets, device=device)


class LinearOperator(torch.nn.Module, abc.ABC):
    """Abstract linear map ``A: R^in_shape -> R^out_shape`` with its adjoint ``A^T``.

    Subclasses set ``in_shape`` and ``out_shape`` and implement ``_forward`` and ``_adjoint``.
    Operators that act on projection data with a view axis set ``view_axis`` (an index into
    ``out_shape``) and implement ``_subset``.
    """

    in_shape: Shape
    out_shape: Shape
    view_axis: int | None = None
    #: True when both input and output are projection data (so subsets split the input too)
    in_view_space: bool = False

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int]) -> None:
        super().__init__()
        self.in_shape = tuple(int(s) for s in in_shape)
        self.out_shape = tuple(int(s) for s in out_shape)

    # -------------------------------------------------------------- maths (subclasses)
    @abc.abstractmethod
    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """Forward map on a tensor of shape ``in_shape``."""

    @abc.abstractmethod
    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Adjoint map on a tensor of shape ``out_shape``."""

    # -------------------------------------------------------------- public, checked
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D401 - nn.Module API
        """Apply the operator: ``A x`` (x of shape ``in_shape``)."""
        if tuple(x.shape) != self.in_shape:
            raise InputError(f"{type(self).__name__}: input shape {tuple(x.shape)} != {self.in_shape}")
        return self._forward(x)

    apply = forward

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Apply the adjoint (transpose): ``A^T y`` (y of shape ``out_shape``)."""
        if tuple(y.shape) != self.out_shape:
            raise InputError(f"{type(self).__name__}: adjoint input shape {tuple(y.shape)} != {self.out_shape}")
        return self._adjoint(y)

    @property
    def H(self) -> "LinearOperator":
        """The adjoint as an operator."""
        return AdjointOperator(self)

    def __matmul__(self, other: "LinearOperator") -> "LinearOperator":
        return CompositeOperator([self, other])

    def __mul__(self, scalar: float) -> "LinearOperator":
        return ScaledOperator(self, float(scalar))

    __rmul__ = __mul__

    def __add__(self, other: "LinearOperator") -> "LinearOperator":
        return SumOperator([self, other])

    # -------------------------------------------------------------- subsets
    @property
    def n_views(self) -> int:
        """Number of views along ``view_axis`` (raises if the operator has none)."""
        if self.view_axis is None:
            raise InputError(f"{type(self).__name__} has no view axis and cannot be split into subsets")
        return self.out_shape[self.view_axis]

    def subset(self, k: int, n_subsets: int) -> "LinearOperator":
        """The operator restricted to the views of subset ``k`` of ``n_subsets``."""
        if n_subsets == 1:
            return self
        idx = subset_view_indices(self.n_views, k, n_subsets)
        return self._subset(idx)

    def _subset(self, view_index: torch.Tensor) -> "LinearOperator":
        raise InputError(f"{type(self).__name__} does not support ordered subsets")

    def take_subset(self, y: torch.Tensor, k: int, n_subsets: int) -> torch.Tensor:
        """The part of projection data ``y`` (shape ``out_shape``) seen by :meth:`subset` ``(k, n)``."""
        if n_subsets == 1:
            return y
        idx = subset_view_indices(self.n_views, k, n_subsets, device=y.device)
        return y.index_select(self.view_axis, idx)

    # -------------------------------------------------------------- utilities
    def norm(self, *, n_iter: int = 30, seed: int = 0, device=None, dtype=torch.float32) -> float:
        """Operator 2-norm ``||A||`` estimated by power iteration on ``A^T A``."""
        gen = torch.Generator().manual_seed(seed)
        x = torch.rand(self.in_shape, generator=gen, dtype=dtype).to(device or _first_device(self))
        lam = 0.0
        for _ in range(n_iter):
            x = self.adjoint(self.forward(x))
            lam = float(torch.linalg.vector_norm(x))
            if lam == 0.0:
                return 0.0
            x = x / lam
        return math.sqrt(lam)

    def as_layer(self) -> "OperatorLayer":
        """A differentiable ``nn.Module`` whose backward is this operator's adjoint."""
        return OperatorLayer(self)

    def extra_repr(self) -> str:
        return f"in_shape={self.in_shape}, out_shape={self.out_shape}"


def _first_device(op: torch.nn.Module) -> torch.device:
    for b in op.buffers():
        return b.device
    return torch.device("cpu")


class AdjointOperator(LinearOperator):
    """``A^T`` as an operator; its adjoint is ``A``."""

    def __init__(self, op: LinearOperator) -> None:
        super().__init__(op.out_shape, op.in_shape)
        self.op = op

    def _forward(self, x):
        return self.op.adjoint(x)

    def _adjoint(self, y):
        return self.op.forward(y)


class ScaledOperator(LinearOperator):
    """``c A`` for a scalar ``c``."""

    def __init__(self, op: LinearOperator, scale: float) -> None:
        super().__init__(op.in_shape, op.out_shape)
        self.op, self.scale = op, scale
        self.view_axis = op.view_axis

    def _forward(self, x):
        return self.op.forward(x) * self.scale

    def _adjoint(self, y):
        return self.op.adjoint(y) * self.scale

    def subset(self, k, n_subsets):
        return ScaledOperator(self.op.subset(k, n_subsets), self.scale) if n_subsets > 1 else self


class CompositeOperator(LinearOperator):
    """``A_0 A_1 ... A_{n-1}``: ``ops[-1]`` acts first. Subsets restrict the outermost operators."""

    def __init__(self, ops: Sequence[LinearOperator]) -> None:
        if len(ops) < 1:
            raise InputError("CompositeOperator needs at least one operator")
        for a, b in zip(ops[:-1], ops[1:]):
            if a.in_shape != b.out_shape:
                raise InputError(f"cannot compose {type(a).__name__} (in {a.in_shape}) with "
                                 f"{type(b).__name__} (out {b.out_shape})")
        super().__init__(ops[-1].in_shape, ops[0].out_shape)
        self.ops = torch.nn.ModuleList(ops)
        self.view_axis = ops[0].view_axis

    def _forward(self, x):
        for op in reversed(self.ops):
            x = op.forward(x)
        return x

    def _adjoint(self, y):
        for op in self.ops:
            y = op.adjoint(y)
        return y

    def subset(self, k, n_subsets):
        if n_subsets == 1:
            return self
        # subset every operator down to (and including) the first one that maps into view space
        new = []
        split_done = False
        for op in self.ops:
            if not split_done and op.view_axis is not None:
                new.append(op.subset(k, n_subsets))
                split_done = not _acts_in_view_space(op)
            else:
                new.append(op)
        return CompositeOperator(new)


def _acts_in_view_space(op: LinearOperator) -> bool:
    """True for operators whose input is projection data too (element-wise multipliers, blurs along views)."""
    return bool(getattr(op, "in_view_space", False))


class SumOperator(LinearOperator):
    """``A + B + ...`` for operators of equal shapes."""

    def __init__(self, ops: Sequence[LinearOperator]) -> None:
        for op in ops[1:]:
            if op.in_shape != ops[0].in_shape or op.out_shape != ops[0].out_shape:
                raise InputError("SumOperator needs operators of equal shapes")
        super().__init__(ops[0].in_shape, ops[0].out_shape)
        self.ops = torch.nn.ModuleList(ops)
        self.view_axis = ops[0].view_axis

    def _forward(self, x):
        return sum(op.forward(x) for op in self.ops)

    def _adjoint(self, y):
        return sum(op.adjoint(y) for op in self.ops)

    def subset(self, k, n_subsets):
        return SumOperator([op.subset(k, n_subsets) for op in self.ops]) if n_subsets > 1 else self


class IdentityOperator(LinearOperator):
    """The identity on tensors of a given shape."""

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__(shape, shape)

    def _forward(self, x):
        return x

    def _adjoint(self, y):
        return y


class ElementwiseMultiply(LinearOperator):
    """Multiplication by a fixed tensor ``w`` (a diagonal operator): attenuation factors, normalisation.

    Parameters
    ----------
    weights : torch.Tensor
        The factors; held as a buffer (moves with ``.to()``).
    view_axis : int, optional
        Set when ``weights`` lives in projection space, so the operator can be split into subsets.
    """

    def __init__(self, weights: torch.Tensor, *, view_axis: int | None = None) -> None:
        super().__init__(weights.shape, weights.shape)
        self.register_buffer("weights", weights)
        self.view_axis = view_axis
        self.in_view_space = view_axis is not None

    def _forward(self, x):
        return x * self.weights.to(x.dtype)

    def _adjoint(self, y):
        return y * self.weights.to(y.dtype)

    def _subset(self, view_index):
        return ElementwiseMultiply(self.weights.index_select(self.view_axis, view_index.to(self.weights.device)),
                                   view_axis=self.view_axis)


class _OperatorFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, op):  # type: ignore[override]
        ctx.op = op
        return op.forward(x.detach())

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        return ctx.op.adjoint(grad_out.contiguous()), None


class OperatorLayer(torch.nn.Module):
    """A linear operator as a differentiable layer (backward = adjoint).

    Accepts a single input of shape ``in_shape`` or a batch ``(B, C, *in_shape)`` / ``(B, *in_shape)``;
    the operator is applied to each item.
    """

    def __init__(self, op: LinearOperator) -> None:
        super().__init__()
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(self.op.in_shape)
        if tuple(x.shape[x.ndim - n:]) != self.op.in_shape:
            raise InputError(f"OperatorLayer: trailing shape {tuple(x.shape[-n:])} != {self.op.in_shape}")
        lead = x.shape[: x.ndim - n]
        flat = x.reshape(-1, *self.op.in_shape)
        out = torch.stack([_OperatorFunction.apply(item, self.op) for item in flat])
        return out.reshape(*lead, *self.op.out_shape)


def adjointness_test(op: LinearOperator, *, seed: int = 0, dtype=torch.float64, device=None) -> float:
    """Relative residual of ``<A x, y> = <x, A^T y>`` for random x, y.

    Returns ``|<Ax, y> - <x, A^T y>| / max(|<Ax, y>|, tiny)``; below ~1e-5 in float64 for a
    correct pair.
    """
    dev = device or _first_device(op)
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(op.in_shape, generator=gen, dtype=dtype).to(dev)
    y = torch.rand(op.out_shape, generator=gen, dtype=dtype).to(dev)
    lhs = float((op.forward(x) * y).sum())
    rhs = float((x * op.adjoint(y)).sum())
    return abs(lhs - rhs) / max(abs(lhs), 1e-300)
