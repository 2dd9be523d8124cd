import pytest
import torch

from petspect.errors import InputError
from petspect.operators import (CompositeOperator, ElementwiseMultiply, IdentityOperator, LinearOperator,
                                adjointness_test)


class MatrixOperator(LinearOperator):
    """Dense matrix with a view axis on its (views, bins) output: a test double."""

    def __init__(self, a: torch.Tensor, out_shape):
        super().__init__((a.shape[1],), out_shape)
        self.register_buffer("a", a)
        self.view_axis = 0

    def _forward(self, x):
        return (self.a.to(x.dtype) @ x).reshape(self.out_shape)

    def _adjoint(self, y):
        return self.a.to(y.dtype).T @ y.reshape(-1)

    def _subset(self, idx):
        a = self.a.reshape(*self.out_shape, -1)[idx.to(self.a.device)]
        return MatrixOperator(a.reshape(-1, self.a.shape[1]), (len(idx), self.out_shape[1]))


def _matrix(device):
    gen = torch.Generator().manual_seed(3)
    return MatrixOperator(torch.rand(12, 5, generator=gen, dtype=torch.float64), (6, 2)).to(device)


def test_adjointness_composition_and_scaling(device):
    a = _matrix(device)
    w = ElementwiseMultiply(torch.linspace(0.5, 1.5, 12, dtype=torch.float64).reshape(6, 2), view_axis=0).to(device)
    for op in (a, w @ a, 2.5 * a, a + a, a.H, CompositeOperator([w, a, IdentityOperator((5,))])):
        assert adjointness_test(op, device=device) < 1e-12


def test_norm_matches_largest_singular_value():
    a = _matrix("cpu")
    expected = float(torch.linalg.matrix_norm(a.a, ord=2))
    assert a.norm(n_iter=200, dtype=torch.float64) == pytest.approx(expected, rel=1e-6)


def test_subsets_partition_the_views():
    a = _matrix("cpu")
    w = ElementwiseMultiply(torch.arange(12.0, dtype=torch.float64).reshape(6, 2), view_axis=0)
    sys = w @ a
    x = torch.rand(5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    full = sys(x)
    for k in range(3):
        torch.testing.assert_close(sys.subset(k, 3)(x), sys.take_subset(full, k, 3))
    with pytest.raises(InputError):
        sys.subset(0, 7)


def test_autograd_bridge_backward_is_adjoint():
    a = _matrix("cpu")
    layer = a.as_layer()
    x = torch.rand(3, 5, dtype=torch.float64, requires_grad=True)
    y = layer(x)
    assert y.shape == (3, 6, 2)
    g = torch.rand_like(y)
    (y * g).sum().backward()
    torch.testing.assert_close(x.grad, torch.stack([a.adjoint(gi) for gi in g]))


def test_shape_checks():
    a = _matrix("cpu")
    with pytest.raises(InputError):
        a(torch.zeros(4, dtype=torch.float64))
    with pytest.raises(InputError):
        a.adjoint(torch.zeros(12, dtype=torch.float64))
